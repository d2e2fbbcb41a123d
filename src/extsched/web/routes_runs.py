"""The tenant's Runs page (every run across extensions, filtered, paged, downloadable as CSV)
and the dashboard's data for the landing page. Filters live in the query string, so a filtered
view is a link; the CSV button downloads exactly what the filters select, every page of it."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from extsched.api import runs_csv
from extsched.api.deps import Ctx
from extsched.domain.pagination import DEFAULT_LIMIT
from extsched.domain.runs import RunFilter, RunStatus, Trigger
from extsched.errors import ValidationFailed
from extsched.services import runs
from extsched.web import render
from extsched.web.routing import UiRoute
from extsched.web.session import UiReader

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


@dataclass
class RunsQuery:
    """The Runs page's filters as the URL holds them (times on the viewer's wall clock, as a
    ``datetime-local`` input reads them; an explicit offset is also accepted)."""

    status: list[str] = field(default_factory=list)
    trigger: list[str] = field(default_factory=list)
    extension_id: str = ""
    schedule_id: str = ""
    since: str = ""
    until: str = ""

    def params(self) -> list[tuple[str, str]]:
        out = [("status", s) for s in self.status] + [("trigger", t) for t in self.trigger]
        for name in ("extension_id", "schedule_id", "since", "until"):
            if value := getattr(self, name):
                out.append((name, value))
        return out

    def url(self, path: str = "/ui/runs", **extra: str) -> str:
        query = urlencode(self.params() + list(extra.items()))
        return f"{path}?{query}" if query else path

    def without(self, name: str, value: str | None = None) -> str:
        """This view's URL with one filter (or one value of a multi-valued one) removed."""
        copy = RunsQuery(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        current = getattr(copy, name)
        if isinstance(current, list):
            setattr(copy, name, [v for v in current if v != value])
        else:
            setattr(copy, name, "")
        return copy.url()

    @property
    def active(self) -> bool:
        return bool(self.params())

    def to_filter(self, zone_name: str) -> RunFilter:
        """The service's filter; a bad value is a field error named as in the URL."""
        return RunFilter.parse(
            status=",".join(self.status) or None,
            trigger=",".join(self.trigger) or None,
            since=_instant(self.since, zone_name),
            until=_instant(self.until, zone_name),
            schedule_id=self.schedule_id or None,
            extension_id=self.extension_id or None,
        )


def _instant(raw: str, zone_name: str) -> str | None:
    """A wall-clock time in the viewer's zone (``2026-11-30T09:00``) as RFC 3339, or the value
    unchanged when it says its own offset or is no time at all (left to the filter to refuse)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone_name))
    return value.isoformat()


def _query(
    status: list[str],
    trigger: list[str],
    extension_id: str | None,
    schedule_id: str | None,
    since: str | None,
    until: str | None,
) -> RunsQuery:
    def split(values: list[str]) -> list[str]:
        seen: list[str] = []
        for part in (p.strip() for v in values for p in v.split(",")):
            if part and part not in seen:
                seen.append(part)
        return seen

    return RunsQuery(
        split(status),
        split(trigger),
        (extension_id or "").strip(),
        (schedule_id or "").strip(),
        (since or "").strip(),
        (until or "").strip(),
    )


def _list() -> Any:
    # A Query object per parameter: FastAPI records the parameter's name on it, so one shared
    # object would make two parameters read the same one.
    return Query(default=[], max_length=20)


def _text() -> Any:
    return Query(default=None, max_length=64)


@router.get("/runs")
async def runs_page(
    request: Request,
    ctx: Ctx,
    viewer: UiReader,
    status: list[str] = _list(),
    trigger: list[str] = _list(),
    extension_id: str | None = _text(),
    schedule_id: str | None = _text(),
    since: str | None = _text(),
    until: str | None = _text(),
    cursor: str | None = Query(default=None, max_length=200),
) -> Response:
    """The tenant's runs across every extension, newest first, with the filters in the URL."""
    q = _query(status, trigger, extension_id, schedule_id, since, until)
    if any(not v.strip() for _, v in request.query_params.multi_items()):
        # The filter form sends its empty fields too: keep the address short and shareable.
        extra = {"cursor": cursor} if cursor else {}
        return RedirectResponse(q.url(**extra), status_code=303)
    errors: dict[str, str] = {}
    items: list[runs.ListedRun] = []
    next_cursor = None
    try:
        flt = q.to_filter(viewer.timezone)
        items, next_cursor = await runs.list_page(
            ctx, viewer.principal, flt, limit=DEFAULT_LIMIT, cursor=cursor
        )
    except ValidationFailed as exc:
        errors = dict(exc.field_errors or {"cursor": exc.message})
    options = await runs.filter_options(ctx, viewer.tenant_id)
    return render.page(
        request,
        "runs.html",
        viewer,
        status_code=422 if errors else 200,
        section="runs",
        q=q,
        errors=errors,
        items=items,
        next_cursor=next_cursor,
        first_page=cursor is None,
        options=options,
        extensions={str(o.extension_id): o.extension_name for o in options},
        schedule_labels={str(o.schedule_id): o.label for o in options},
        statuses=[s.value for s in RunStatus],
        triggers=[t.value for t in Trigger],
    )


@router.get("/runs.csv")
async def runs_csv_download(
    request: Request,
    ctx: Ctx,
    viewer: UiReader,
    status: list[str] = _list(),
    trigger: list[str] = _list(),
    extension_id: str | None = _text(),
    schedule_id: str | None = _text(),
    since: str | None = _text(),
    until: str | None = _text(),
) -> Response:
    """The Runs page's CSV button: every run the filters select, streamed."""
    q = _query(status, trigger, extension_id, schedule_id, since, until)
    flt = q.to_filter(viewer.timezone)
    await runs.check_listing(ctx, viewer.principal)
    return runs_csv.response(ctx, viewer.tenant_id, flt, "runs.csv")
