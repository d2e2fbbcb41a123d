"""Run listings as CSV (SPEC §5, ``Accept: text/csv``): a header row, then one row per run,
every page's rows in one streamed response, shared by the API and the UI's download button."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from extsched.domain.runs import RunFilter
from extsched.services import runs
from extsched.services.context import AppContext

COLUMNS = (
    "id",
    "schedule_id",
    "schedule_name",
    "extension_id",
    "trigger",
    "replay_of",
    "scheduled_for",
    "status",
    "skip_reason",
    "skipped_count",
    "attempts",
    "started_at",
    "finished_at",
    "duration_ms",
    "http_status",
    "error",
    "response_preview",
)
# A cell a spreadsheet would run as a formula (an extension's error text is not ours to trust)
# is prefixed with an apostrophe, as OWASP's "CSV injection" advice says.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def wants_csv(request: Request) -> bool:
    """Whether the caller asked for CSV (``Accept: text/csv``) rather than JSON."""
    return "text/csv" in request.headers.get("accept", "").lower()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if text.startswith(_FORMULA_START) and not isinstance(value, int):
        return "'" + text
    return text


def row(item: runs.ListedRun) -> list[str]:
    values = {
        **{k: getattr(item.run, k) for k in runs.Run.__dataclass_fields__},
        "schedule_name": item.schedule_name,
        "extension_id": item.extension_id,
    }
    return [_cell(values[c]) for c in COLUMNS]


async def _lines(ctx: AppContext, tenant_id: str, flt: RunFilter) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    async for batch in runs.iter_all(ctx, tenant_id, flt):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(row(item) for item in batch)
        yield buffer.getvalue()


def response(ctx: AppContext, tenant_id: str, flt: RunFilter, filename: str) -> StreamingResponse:
    """Every run matching ``flt`` as one streamed CSV download."""
    return StreamingResponse(
        _lines(ctx, tenant_id, flt),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
