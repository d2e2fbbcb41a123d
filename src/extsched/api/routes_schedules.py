"""Schedule, cron preview and audit routes (tenant)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from extsched.api.deps import Ctx, CurrentPrincipal, Reader, Writer
from extsched.api.openapi import raises
from extsched.api.schemas import (
    AuditEntryOut,
    AuditPageOut,
    CronPreviewIn,
    CronPreviewOut,
    DisableAllOut,
    DstFireOut,
    FireOut,
    RunNowIn,
    RunNowOut,
    ScheduleCreateIn,
    ScheduleListOut,
    ScheduleOut,
    SchedulePatchIn,
)
from extsched.domain import cron
from extsched.domain.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    before_id,
    encode_cursor,
)
from extsched.errors import (
    FeatureDisabled,
    InstallDisabled,
    NotFound,
    NotInstalled,
    QuotaExceeded,
    RateLimited,
    RevisionConflict,
    SchedulesPaused,
    ValidationFailed,
    field_error,
)
from extsched.services import audit, runs, schedules
from extsched.services.schedules import ScheduleInput

router = APIRouter(prefix="/api/v1")
SCHEDULES: list[str | Enum] = ["schedules"]
RUNS: list[str | Enum] = ["runs"]


@router.get("/extensions/{extension_id}/schedules", response_model=ScheduleListOut, tags=SCHEDULES)
@raises(NotInstalled, FeatureDisabled)
async def list_schedules(ctx: Ctx, p: Reader, extension_id: uuid.UUID) -> ScheduleListOut:
    """The install's schedules."""
    items = await schedules.list_for_extension(ctx, p, extension_id)
    return ScheduleListOut(items=[ScheduleOut.of(s) for s in items])


@router.post(
    "/extensions/{extension_id}/schedules",
    status_code=201,
    response_model=ScheduleOut,
    tags=SCHEDULES,
)
@raises(NotInstalled, FeatureDisabled, InstallDisabled, QuotaExceeded)
async def create_schedule(
    ctx: Ctx, p: Writer, extension_id: uuid.UUID, body: ScheduleCreateIn
) -> ScheduleOut:
    """Schedule one of the install's endpoints."""
    data = ScheduleInput(**body.model_dump(exclude_unset=True))
    return ScheduleOut.of(await schedules.create(ctx, p, extension_id, data))


@router.post(
    "/extensions/{extension_id}/schedules/disable-all", response_model=DisableAllOut, tags=SCHEDULES
)
@raises(NotInstalled, FeatureDisabled)
async def disable_all_schedules(ctx: Ctx, p: Writer, extension_id: uuid.UUID) -> DisableAllOut:
    """Disable every schedule of the install; idempotent."""
    return DisableAllOut(disabled=await schedules.disable_all(ctx, p, extension_id))


# Single-schedule routes answer both at /api/v1/schedules/{id} (the SPEC's form) and nested
# under their extension (which must then match). The nested form is not documented, and its
# extension id is read here so that the documented form shows no such parameter. (async: FastAPI
# runs a plain function dependency in its thread pool, a thread hand-off on every request.)
async def _nested_extension_id(request: Request) -> uuid.UUID | None:
    raw = request.path_params.get("extension_id")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise field_error("extension_id", "must be a UUID") from None


NestedExtensionId = Annotated[uuid.UUID | None, Depends(_nested_extension_id)]


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, tags=SCHEDULES)
@router.get(
    "/extensions/{extension_id}/schedules/{schedule_id}",
    response_model=ScheduleOut,
    include_in_schema=False,
)
@raises(NotFound, FeatureDisabled)
async def get_schedule(
    ctx: Ctx, p: Reader, schedule_id: uuid.UUID, extension_id: NestedExtensionId
) -> ScheduleOut:
    """A schedule with its next 5 fires."""
    return ScheduleOut.of(await schedules.get(ctx, p, schedule_id, extension_id))


def _revision(if_match: str | None, body_revision: int | None) -> int | None:
    header_rev = None
    if if_match is not None:
        text = if_match.strip().removeprefix("W/").strip('"')
        if not text.isdigit():
            raise field_error("If-Match", 'must be the schedule revision, e.g. "3"')
        header_rev = int(text)
    if header_rev is not None and body_revision is not None and header_rev != body_revision:
        raise field_error("revision", "differs from the If-Match header")
    return body_revision if body_revision is not None else header_rev


@router.patch("/schedules/{schedule_id}", response_model=ScheduleOut, tags=SCHEDULES)
@router.patch(
    "/extensions/{extension_id}/schedules/{schedule_id}",
    response_model=ScheduleOut,
    include_in_schema=False,
)
@raises(NotFound, FeatureDisabled, RevisionConflict)
async def update_schedule(
    ctx: Ctx,
    p: Writer,
    schedule_id: uuid.UUID,
    body: SchedulePatchIn,
    response: Response,
    extension_id: NestedExtensionId,
    if_match: str | None = Header(default=None),
) -> ScheduleOut:
    """Change any of a schedule's fields; a stale revision is refused."""
    given = body.model_fields_set
    data = ScheduleInput(**{f: getattr(body, f) for f in given if f != "revision"})
    updated = await schedules.update(
        ctx,
        p,
        schedule_id,
        data,
        revision=_revision(if_match, body.revision),
        extension_id=extension_id,
    )
    response.headers["ETag"] = f'"{updated.revision}"'
    return ScheduleOut.of(updated)


@router.delete("/schedules/{schedule_id}", status_code=204, tags=SCHEDULES)
@router.delete(
    "/extensions/{extension_id}/schedules/{schedule_id}", status_code=204, include_in_schema=False
)
@raises(NotFound, FeatureDisabled)
async def delete_schedule(
    ctx: Ctx, p: Writer, schedule_id: uuid.UUID, extension_id: NestedExtensionId
) -> Response:
    """Delete a schedule and its backend handle."""
    assert p.tenant_id is not None
    await schedules.delete(ctx, p.actor, p.tenant_id, schedule_id, extension_id)
    return Response(status_code=204)


@router.post(
    "/schedules/{schedule_id}/run-now",
    status_code=202,
    response_model=RunNowOut,
    tags=RUNS,
    responses={200: {"model": RunNowOut, "description": "The run first started with this key"}},
)
@router.post(
    "/extensions/{extension_id}/schedules/{schedule_id}/run-now",
    status_code=202,
    response_model=RunNowOut,
    include_in_schema=False,
)
@raises(NotFound, FeatureDisabled, InstallDisabled, SchedulesPaused, RateLimited)
async def run_now(
    ctx: Ctx,
    p: Writer,
    schedule_id: uuid.UUID,
    response: Response,
    extension_id: NestedExtensionId,
    idempotency_key: str | None = Header(default=None),
    body: RunNowIn | None = None,
) -> RunNowOut:
    """Queue a run now, optionally with a payload for this run only; the same
    Idempotency-Key within 24 h answers 200 with the first run."""
    result = await runs.run_now(
        ctx,
        p,
        schedule_id,
        idempotency_key,
        extension_id,
        payload=body.payload if body is not None else None,
    )
    if not result.created:
        response.status_code = 200
    return RunNowOut(run_id=result.run.id, status=result.run.status)


@router.post("/runs/{run_id}/replay", status_code=202, response_model=RunNowOut, tags=RUNS)
@raises(NotFound, FeatureDisabled, InstallDisabled, SchedulesPaused, RateLimited)
async def replay_run(ctx: Ctx, p: Writer, run_id: uuid.UUID) -> RunNowOut:
    """Run a past run again: a new run of its schedule for the same ``scheduled_for``
    (``trigger: "replay"``), with today's payload and configuration."""
    result = await runs.replay(ctx, p, run_id)
    return RunNowOut(run_id=result.run.id, status=result.run.status)


@router.post("/cron/preview", response_model=CronPreviewOut, tags=["cron"])
async def preview_cron(ctx: Ctx, p: CurrentPrincipal, body: CronPreviewIn) -> CronPreviewOut:
    """Validate a cron expression and show its fires from ``from`` (default now) with the
    DST choice, and the next fires a clock change moves, drops or doubles."""
    tz = body.timezone or p.user_timezone or "UTC"
    start = body.from_ or ctx.clock()
    try:
        expr: cron.CronExpr | None = cron.parse_cron(body.cron)
    except cron.CronError:
        expr = None
    errors = cron.validate_dst(expr, body.dst_gap, body.dst_repeat)
    dst = cron.DEFAULT_DST if errors else cron.DstChoice.of(body.dst_gap, body.dst_repeat)
    errors = (
        cron.validate_schedule(
            body.cron,
            tz,
            min_interval_seconds=ctx.settings.min_interval_seconds,
            now=start,
            dst=dst,
        )
        | errors
    )
    if errors:
        raise ValidationFailed(next(iter(errors.values())), field_errors=errors)
    # Fires at or after ``from``: the engine lists those strictly after the instant before.
    after = start - timedelta(microseconds=1) if body.from_ is not None else start
    description, fires = cron.preview(body.cron, tz, body.count, after, dst=dst)
    expr, zone = cron.compile_schedule(body.cron, tz)
    return CronPreviewOut(
        description=description,
        next_runs=[FireOut.of(f) for f in fires],
        dst_fires=[DstFireOut.of(f) for f in cron.dst_fires(expr, zone, after, dst)],
    )


@router.get("/extensions/{extension_id}/audit", response_model=AuditPageOut, tags=["audit"])
@raises(NotInstalled)
async def list_audit_entries(
    ctx: Ctx,
    p: Reader,
    extension_id: uuid.UUID,
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, max_length=200),
) -> AuditPageOut:
    """A page of the extension's audit log, newest first (it outlives an uninstall)."""
    assert p.tenant_id is not None
    entries = await audit.extension_page(
        ctx.db,
        tenant_id=p.tenant_id,
        extension_id=extension_id,
        limit=limit + 1,
        before_id=before_id(cursor),
    )
    next_cursor = encode_cursor([str(entries[limit - 1].id)]) if len(entries) > limit else None
    return AuditPageOut(
        items=[AuditEntryOut.of(e) for e in entries[:limit]], next_cursor=next_cursor
    )
