"""Run listings (tenant): one schedule's runs and the tenant's runs across every schedule,
filtered and paged, as JSON or streamed CSV (``Accept: text/csv``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from extsched.api import runs_csv
from extsched.api.deps import Ctx, Reader
from extsched.api.openapi import raises
from extsched.api.schemas import RunPageOut, TenantRunOut, TenantRunPageOut
from extsched.domain.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_time_id
from extsched.domain.runs import RunFilter
from extsched.errors import FeatureDisabled, NotFound
from extsched.services import runs

router = APIRouter(prefix="/api/v1", tags=["runs"])

_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The page as JSON, or with `Accept: text/csv` every matching run as CSV.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
_STATUS = Query(default=None, max_length=200, description="comma-separated run statuses")
_TRIGGER = Query(default=None, max_length=200, description="comma-separated triggers")
_SINCE = Query(default=None, max_length=64, description="scheduled_for at or after (RFC 3339)")
_UNTIL = Query(default=None, max_length=64, description="scheduled_for before (RFC 3339)")


@router.get("/schedules/{schedule_id}/runs", response_model=RunPageOut, responses=_CSV)
@router.get(
    "/extensions/{extension_id}/schedules/{schedule_id}/runs",
    response_model=RunPageOut,
    include_in_schema=False,
)
@raises(NotFound, FeatureDisabled)
async def list_schedule_runs(
    request: Request,
    ctx: Ctx,
    p: Reader,
    schedule_id: uuid.UUID,
    extension_id: uuid.UUID | None = None,
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, max_length=200),
    status: str | None = _STATUS,
    trigger: str | None = _TRIGGER,
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
) -> Response | RunPageOut:
    """A schedule's runs, newest first (404 if the schedule is not the tenant's)."""
    flt = RunFilter.parse(
        status=status, trigger=trigger, since=since, until=until, schedule_id=schedule_id
    )
    scope = (schedule_id, extension_id)
    if runs_csv.wants_csv(request):
        assert p.tenant_id is not None
        after_time_id(cursor)  # checked like the JSON listing's; CSV has every row, no pages
        await runs.check_listing(ctx, p, scope)
        return runs_csv.response(ctx, p.tenant_id, flt, f"runs-{schedule_id}.csv")
    items, next_cursor = await runs.list_page(
        ctx, p, flt, limit=limit, cursor=cursor, schedule_path=scope
    )
    return RunPageOut.of(items, next_cursor)


@router.get("/runs", response_model=TenantRunPageOut, responses=_CSV)
@raises(FeatureDisabled)
async def list_tenant_runs(
    request: Request,
    ctx: Ctx,
    p: Reader,
    extension_id: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, max_length=200),
    status: str | None = _STATUS,
    trigger: str | None = _TRIGGER,
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
) -> Response | TenantRunPageOut:
    """The tenant's runs across every schedule, newest first, each with ``extension_id`` and
    ``schedule_name``. An ``extension_id`` or ``schedule_id`` that is not the tenant's is a
    filter that matches nothing (an empty page), never another tenant's runs."""
    flt = RunFilter.parse(
        status=status,
        trigger=trigger,
        since=since,
        until=until,
        schedule_id=schedule_id,
        extension_id=extension_id,
    )
    if runs_csv.wants_csv(request):
        assert p.tenant_id is not None
        after_time_id(cursor)  # checked like the JSON listing's; CSV has every row, no pages
        await runs.check_listing(ctx, p)
        return runs_csv.response(ctx, p.tenant_id, flt, "runs.csv")
    items, next_cursor = await runs.list_page(ctx, p, flt, limit=limit, cursor=cursor)
    return TenantRunPageOut(items=[TenantRunOut.of(i) for i in items], next_cursor=next_cursor)
