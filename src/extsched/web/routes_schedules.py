"""Schedules in the UI: create and edit forms (with the policies), the enabled switch, pause
until and resume, run now (with a one-off payload), replay, history, delete, disable-all, and
the live cron preview. Every change goes through ``services.schedules`` /
``services.runs``; the forms only translate fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from extsched.api.deps import Ctx
from extsched.domain import cron
from extsched.domain.pagination import DEFAULT_LIMIT
from extsched.domain.runs import RunFilter, RunStatus
from extsched.errors import ExtschedError, Forbidden, RevisionConflict, ValidationFailed
from extsched.services import installs, overview, runs, schedules
from extsched.services.schedules import Schedule, ScheduleInput
from extsched.web import policies, render, zones
from extsched.web.forms import (
    POLICY_FORM_FIELDS,
    ScheduleForm,
    form_errors,
    json_value,
    local_instant,
    text,
)
from extsched.web.routes_installs import all_endpoints, ext_url
from extsched.web.routing import UiRoute
from extsched.web.session import UiReader, UiWriter, Viewer

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

PRESETS = (
    ("Hourly", "0 * * * *"),
    ("Daily at 09:00", "0 9 * * *"),
    ("Weekdays at 09:00", "0 9 * * 1-5"),
)
# Errors a form shows in place; the rest (missing install, permissions) get their own page.
_PAGE_ERRORS = ("NOT_INSTALLED", "NOT_FOUND", "FEATURE_DISABLED", "UNAUTHENTICATED", "FORBIDDEN")


def schedule_url(extension_id: uuid.UUID, schedule_id: uuid.UUID, tail: str = "") -> str:
    return ext_url(extension_id, f"/schedules/{schedule_id}{tail}")


def schedule_label(s: Schedule) -> str:
    return s.name or f"{s.endpoint_method} {s.endpoint_path}"


async def _form_page(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    extension_id: uuid.UUID,
    form: ScheduleForm,
    *,
    schedule: Schedule | None = None,
    exc: ExtschedError | None = None,
) -> Response:
    if not viewer.can_write:
        raise Forbidden("your token is read-only (it lacks the extension:write permission)")
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    endpoint_items = await all_endpoints(ctx, viewer, extension_id)
    errors = {
        k: render.field_message(v, k)
        for k, v in form_errors(
            (exc.field_errors if exc else None) or {}, ctx.settings.max_timeout_ms
        ).items()
    }
    message = render.friendly(exc) if exc else None
    if errors:
        shown = (
            "name",
            "endpoint_id",
            "cron",
            "timezone",
            "payload",
            "enabled",
            *POLICY_FORM_FIELDS,
        )
        others = [f"{k}: {v}" for k, v in errors.items() if k not in shown]
        message = " ".join(["Please correct the fields marked below.", *others])
    return render.page(
        request,
        "schedule_form.html",
        viewer,
        tab="schedules",
        install=install,
        schedule=schedule,
        form=form,
        endpoints=endpoint_items,
        endpoint_ids={str(e.id) for e in endpoint_items if e.schedulable},
        errors=errors,
        error_code=exc.code if exc else None,
        message=message,
        zone_choices=zones.choices(ctx.clock()),
        presets=PRESETS,
        overlap_choices=policies.OVERLAP_CHOICES,
        dst_gap_choices=policies.DST_GAP_CHOICES,
        dst_repeat_choices=policies.DST_REPEAT_CHOICES,
        defaults={
            "max_attempts": ctx.settings.max_attempts,
            "timeout_seconds": f"{ctx.settings.runner_timeout_ms / 1000:g}",
            "max_timeout_seconds": f"{ctx.settings.max_timeout_ms / 1000:g}",
        },
        status_code=exc.status if exc else 200,
    )


@router.get("/extensions/{extension_id}/schedules/new")
async def new_schedule(
    request: Request, ctx: Ctx, viewer: UiReader, extension_id: uuid.UUID
) -> Response:
    form = ScheduleForm(timezone=viewer.principal.user_timezone or "")
    if not form.timezone:
        tenant = await overview.tenant_state(ctx, viewer.tenant_id)
        form.timezone = (tenant.timezone if tenant else None) or ""
    return await _form_page(request, ctx, viewer, extension_id, form)


# The form posts back to its own address, so a refused form is shown at the address it was
# opened at (which can be bookmarked or opened again). The older addresses keep working.
@router.post("/extensions/{extension_id}/schedules/new")
@router.post("/extensions/{extension_id}/schedules")
async def create_schedule(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    form = ScheduleForm.parse(await request.form())
    try:
        created = await schedules.create(
            ctx, viewer.principal, extension_id, form.for_create(viewer.timezone)
        )
    except ExtschedError as exc:
        if exc.code in _PAGE_ERRORS:
            raise
        return await _form_page(request, ctx, viewer, extension_id, form, exc=exc)
    fmt = render.Formatter(viewer.timezone)
    nxt = f" Next run: {fmt.local(created.next_run_at)}." if created.next_run_at else ""
    return render.redirect(
        request, ext_url(extension_id), f"Schedule “{schedule_label(created)}” created.{nxt}"
    )


@router.post("/extensions/{extension_id}/schedules/disable-all")
async def disable_all(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    n = await schedules.disable_all(ctx, viewer.principal, extension_id)
    message = (
        f"Disabled {render.plural(n, 'schedule')}." if n else "All schedules were already disabled."
    )
    return render.redirect(request, ext_url(extension_id), message)


@router.get("/extensions/{extension_id}/schedules/{schedule_id}")
async def schedule_detail(
    request: Request,
    ctx: Ctx,
    viewer: UiReader,
    extension_id: uuid.UUID,
    schedule_id: uuid.UUID,
    cursor: str | None = None,
) -> Response:
    """A schedule's next fires and its run history (newest first)."""
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    schedule = await schedules.get(ctx, viewer.principal, schedule_id, extension_id)
    listed, next_cursor = await runs.list_page(
        ctx,
        viewer.principal,
        RunFilter(schedule_id=schedule_id),
        limit=DEFAULT_LIMIT,
        cursor=cursor,
        schedule_path=(schedule_id, extension_id),
    )
    items = [r.run for r in listed]
    busy = any(not RunStatus(r.status).is_terminal for r in items)
    fmt = render.Formatter(viewer.timezone, ctx.clock())
    return render.page(
        request,
        "schedule_detail.html",
        viewer,
        tab="schedules",
        install=install,
        s=schedule,
        runs=items,
        next_cursor=next_cursor,
        first_page=cursor is None,
        busy=busy,
        policy_lines=policies.describe(schedule.policies, ctx.settings, fmt),
        clock_changes=schedules.clock_changes(schedule, ctx.clock()),
        payload_text="" if schedule.payload is None else fmt.json(schedule.payload),
    )


@router.get("/extensions/{extension_id}/schedules/{schedule_id}/edit")
async def edit_schedule(
    request: Request, ctx: Ctx, viewer: UiReader, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    schedule = await schedules.get(ctx, viewer.principal, schedule_id, extension_id)
    return await _form_page(
        request,
        ctx,
        viewer,
        extension_id,
        ScheduleForm.of(schedule, viewer.timezone),
        schedule=schedule,
    )


@router.post("/extensions/{extension_id}/schedules/{schedule_id}/edit")
@router.post("/extensions/{extension_id}/schedules/{schedule_id}")
async def update_schedule(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    form = ScheduleForm.parse(await request.form())
    try:
        updated = await schedules.update(
            ctx,
            viewer.principal,
            schedule_id,
            form.for_update(viewer.timezone),
            revision=form.revision_value,
            extension_id=extension_id,
        )
    except ExtschedError as exc:
        if exc.code in _PAGE_ERRORS:
            raise
        current = await schedules.get(ctx, viewer.principal, schedule_id, extension_id)
        return await _form_page(request, ctx, viewer, extension_id, form, schedule=current, exc=exc)
    return render.redirect(
        request, ext_url(extension_id), f"Schedule “{schedule_label(updated)}” saved."
    )


async def _row_html(
    request: Request, ctx: Ctx, viewer: Viewer, extension_id: uuid.UUID, schedule: Schedule
) -> str:
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    active = await overview.active_run_schedules(ctx, viewer.tenant_id, install.id)
    return render.fragment_html(
        "_schedule_row.html", viewer, ctx.clock(), s=schedule, install=install, active=active
    )


@router.get("/extensions/{extension_id}/schedules/{schedule_id}/row")
async def schedule_row(
    request: Request, ctx: Ctx, viewer: UiReader, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    """The schedule's table row, re-rendered for the page's script."""
    schedule = await schedules.get(ctx, viewer.principal, schedule_id, extension_id)
    html = await _row_html(request, ctx, viewer, extension_id, schedule)
    return JSONResponse({"html": html}, headers={"Cache-Control": "no-store"})


@router.post("/extensions/{extension_id}/schedules/{schedule_id}/enabled")
async def set_schedule_enabled(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    """The list's enabled switch; optimistic locking by the row's revision."""
    form = await request.form()
    revision = text(form, "revision")
    try:
        updated = await schedules.update(
            ctx,
            viewer.principal,
            schedule_id,
            ScheduleInput(enabled=text(form, "enabled") == "true"),
            revision=int(revision) if revision.isdigit() else None,
            extension_id=extension_id,
        )
    except RevisionConflict as exc:
        # Hand the current row back so the page can show what changed.
        current = await schedules.get(ctx, viewer.principal, schedule_id, extension_id)
        body = exc.to_body()
        body["error"]["message"] = render.friendly(exc)
        body["html"] = await _row_html(request, ctx, viewer, extension_id, current)
        return JSONResponse(body, status_code=exc.status)
    except ValidationFailed as exc:
        message = "; ".join(render.field_message(v, k) for k, v in (exc.field_errors or {}).items())
        raise ValidationFailed(
            f"This schedule cannot be enabled: {message or exc.message}",
            field_errors=exc.field_errors,
        ) from None
    html = await _row_html(request, ctx, viewer, extension_id, updated)
    state = "enabled" if updated.enabled else "disabled"
    return JSONResponse({"html": html, "message": f"“{schedule_label(updated)}” {state}."})


@router.post("/extensions/{extension_id}/schedules/{schedule_id}/run-now")
async def run_now(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    """Run now; a ``payload`` field (JSON text) replaces the schedule's payload for this run
    only (empty: the schedule's own)."""
    key = request.headers.get("idempotency-key")
    errors: dict[str, str] = {}
    payload = json_value(text(await request.form(), "payload"), "payload", errors)
    if errors:
        raise ValidationFailed("the payload is invalid", field_errors=errors)
    result = await runs.run_now(
        ctx,
        viewer.principal,
        schedule_id,
        key,
        extension_id,
        payload=schedules.UNSET if payload is None else payload,
    )
    return _started(extension_id, result)


def _started(extension_id: uuid.UUID, result: runs.RunNowResult) -> Response:
    return JSONResponse(
        {
            "run_id": str(result.run.id),
            "status": result.run.status,
            "poll_url": ext_url(extension_id, f"/runs/{result.run.id}"),
            "history_url": schedule_url(extension_id, result.run.schedule_id),
        },
        status_code=202 if result.created else 200,
    )


@router.post("/extensions/{extension_id}/runs/{run_id}/replay")
async def replay_run(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, run_id: uuid.UUID
) -> Response:
    """A new run for a run's ``scheduled_for`` (the history's "Replay" button)."""
    run = await runs.get_run(ctx, viewer.tenant_id, run_id)
    await schedules.get(ctx, viewer.principal, run.schedule_id, extension_id)  # this extension's
    return _started(extension_id, await runs.replay(ctx, viewer.principal, run_id))


def _back(extension_id: uuid.UUID, schedule_id: uuid.UUID, to: str) -> str:
    """Where a pause or resume returns to: the schedule's page or the list (nothing else)."""
    if to == "detail":
        return schedule_url(extension_id, schedule_id)
    return ext_url(extension_id)


@router.post("/extensions/{extension_id}/schedules/{schedule_id}/pause")
async def pause_schedule(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    """Pause until a date and time (read on the viewer's wall clock); resumes by itself."""
    form = await request.form()
    back = _back(extension_id, schedule_id, text(form, "next"))
    errors: dict[str, str] = {}
    until = local_instant(text(form, "paused_until"), viewer.timezone, "paused_until", errors)
    fmt = render.Formatter(viewer.timezone, ctx.clock())
    if until is None and not errors:
        errors["paused_until"] = "choose a date and time"
    elif until is not None and until <= fmt.now:
        errors["paused_until"] = "must be in the future (to resume now, use “Resume now”)"
    if errors:
        return render.redirect(request, back, f"Not paused: {errors['paused_until']}.", "error")
    assert until is not None
    updated = await _set_pause(ctx, viewer, extension_id, schedule_id, until)
    return render.redirect(
        request,
        back,
        f"“{schedule_label(updated)}” paused until {fmt.short(until)} ({viewer.timezone})."
        f"{_next_run(fmt, updated)}",
    )


@router.post("/extensions/{extension_id}/schedules/{schedule_id}/resume")
async def resume_schedule(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    form = await request.form()
    back = _back(extension_id, schedule_id, text(form, "next"))
    updated = await _set_pause(ctx, viewer, extension_id, schedule_id, None)
    fmt = render.Formatter(viewer.timezone, ctx.clock())
    return render.redirect(
        request, back, f"“{schedule_label(updated)}” resumed.{_next_run(fmt, updated)}"
    )


async def _set_pause(
    ctx: Ctx,
    viewer: Viewer,
    extension_id: uuid.UUID,
    schedule_id: uuid.UUID,
    until: datetime | None,
) -> Schedule:
    return await schedules.update(
        ctx,
        viewer.principal,
        schedule_id,
        ScheduleInput(paused_until=until),
        revision=None,  # a pause changes no other field: nothing of another edit is lost
        extension_id=extension_id,
    )


def _next_run(fmt: render.Formatter, s: Schedule) -> str:
    return f" Next run: {fmt.local(s.next_run_at)}." if s.next_run_at else ""


@router.get("/extensions/{extension_id}/runs/{run_id}")
async def run_status(
    request: Request, ctx: Ctx, viewer: UiReader, extension_id: uuid.UUID, run_id: uuid.UUID
) -> Response:
    """One run's state, polled by the page after "Run now"."""
    run = await runs.get_run(ctx, viewer.tenant_id, run_id)
    fmt = render.Formatter(viewer.timezone)
    body: dict[str, Any] = {
        "id": str(run.id),
        "status": run.status,
        "label": render.RUN_STATUS_LABELS.get(run.status, run.status),
        "terminal": RunStatus(run.status).is_terminal,
        "http_status": run.http_status,
        "duration": fmt.duration(run.duration_ms) if run.duration_ms is not None else None,
        "error": run.error,
        "history_url": schedule_url(extension_id, run.schedule_id),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/extensions/{extension_id}/schedules/{schedule_id}/delete")
async def delete_schedule(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID, schedule_id: uuid.UUID
) -> Response:
    current = await schedules.get(ctx, viewer.principal, schedule_id, extension_id)
    await schedules.delete(ctx, viewer.principal.actor, viewer.tenant_id, schedule_id, extension_id)
    return render.redirect(
        request, ext_url(extension_id), f"Schedule “{schedule_label(current)}” deleted."
    )


@router.get("/cron-preview")
async def cron_preview(
    ctx: Ctx,
    viewer: UiReader,
    cron_expr: str = Query(default="", alias="cron", max_length=200),
    timezone: str = Query(default="", max_length=100),
    dst_gap: str = Query(default="", max_length=20),
    dst_repeat: str = Query(default="", max_length=20),
) -> Response:
    """What the form's cron field means: the description, the next 5 fires and the next fires
    a clock change moves, drops or doubles (with the form's DST choice), or the same field
    errors the schedule services would give."""
    tz = timezone or viewer.principal.user_timezone or "UTC"
    gap, repeat = dst_gap or None, dst_repeat or None
    try:
        parsed: cron.CronExpr | None = cron.parse_cron(cron_expr)
    except cron.CronError:
        parsed = None
    errors = cron.validate_dst(parsed, gap, repeat)
    choice = cron.DEFAULT_DST if errors else cron.DstChoice.of(gap, repeat)
    errors.update(
        cron.validate_schedule(
            cron_expr,
            tz,
            min_interval_seconds=ctx.settings.min_interval_seconds,
            now=ctx.clock(),
            dst=choice,
        )
    )
    if errors:
        raise ValidationFailed(
            next(iter(errors.values())),
            field_errors={k: render.field_message(v, k) for k, v in errors.items()},
        )
    description, fires = cron.preview(cron_expr, tz, 5, ctx.clock(), dst=choice)
    expr, zone = cron.compile_schedule(cron_expr, tz)
    changes = cron.dst_fires(expr, zone, ctx.clock(), choice)
    fmt = render.Formatter(viewer.timezone)
    return JSONResponse(
        {
            "valid": True,
            "description": description,
            "timezone": tz,
            # The DST choices apply to fixed-time schedules only (SPEC §8); the form says so.
            "fixed_time": expr.fixed_time,
            "next_runs": [
                {
                    "at": fmt.iso(f.at),
                    "utc": fmt.utc(f.at),
                    "local": f.local.strftime("%a %Y-%m-%d %H:%M %Z"),
                    # The viewer's own wall time, when it reads differently.
                    "viewer": None
                    if fmt.local(f.at) == f.local.strftime("%Y-%m-%d %H:%M %Z")
                    else fmt.local(f.at),
                    "note": f.note,
                }
                for f in fires
            ],
            "dst_fires": [
                {
                    "at": fmt.iso(f.at),
                    "local": f.local.strftime("%a %Y-%m-%d %H:%M"),
                    "note": f.note,
                    "dropped": f.dropped,
                }
                for f in changes
            ],
        },
        headers={"Cache-Control": "no-store"},
    )
