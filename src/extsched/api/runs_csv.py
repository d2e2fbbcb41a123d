"""Run listings as CSV (SPEC §5, ``Accept: text/csv``): a header row, then one row per run,
every page's rows in one streamed response, shared by the API and the UI's download button."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

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


def wants_csv(request: Request) -> bool:
    """Whether the caller asked for CSV (``Accept: text/csv``) rather than JSON."""
    return "text/csv" in request.headers.get("accept", "").lower()


async def _lines(ctx: AppContext, tenant_id: str, flt: RunFilter) -> AsyncIterator[str]:
    """The header, then one chunk per keyset batch. The database formats the cells (times,
    and an apostrophe before text a spreadsheet would run as a formula: OWASP "CSV
    injection"), so this only joins them: the csv module quotes commas, quotes and newlines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    async for batch in runs.iter_csv_rows(ctx, tenant_id, flt):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(batch)
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
