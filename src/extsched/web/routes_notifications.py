"""The tenant's notification settings page: webhook URL, events, the switch, the signing
secret (revealed on request), "Send test" and the last deliveries."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from extsched.api.deps import Ctx
from extsched.domain.notify import EventType
from extsched.errors import ValidationFailed
from extsched.services import notifications
from extsched.web import render
from extsched.web.forms import text
from extsched.web.routing import UiRoute
from extsched.web.session import UiReader, UiWriter, Viewer

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

PAGE = "/ui/notifications"
LAST_DELIVERIES = 20
EVENT_LABELS = {
    EventType.RUN_FAILED: ("A run failed", "a run ended failed or timed out"),
    EventType.SCHEDULE_DISABLED: (
        "A schedule was disabled",
        "by the system: failures in a row, a vanished endpoint, a version update",
    ),
    EventType.SCHEDULE_RECOVERED: (
        "A schedule recovered",
        "its first success after failures",
    ),
    EventType.SCHEDULE_OVERDUE: (
        "A schedule is overdue",
        "an expected fire did not happen in time",
    ),
}


@dataclass
class NotificationForm:
    webhook_url: str
    events: list[str]
    enabled: bool

    @classmethod
    def of(cls, s: notifications.NotificationSettings) -> NotificationForm:
        return cls(s.webhook_url or "", list(s.events), s.enabled)


async def _page(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    form: NotificationForm | None = None,
    *,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    secret: str | None = None,
    status_code: int = 200,
) -> Response:
    current = await notifications.get_settings(ctx, viewer.tenant_id)
    recent = await notifications.deliveries(
        ctx, viewer.tenant_id, limit=LAST_DELIVERIES, before_id=None
    )
    return render.page(
        request,
        "notifications.html",
        viewer,
        current=current,
        form=form or NotificationForm.of(current),
        event_labels=EVENT_LABELS,
        deliveries=recent,
        errors=errors or {},
        message=message,
        secret=secret,
        status_code=status_code,
    )


@router.get("/notifications")
async def notifications_page(request: Request, ctx: Ctx, viewer: UiReader) -> Response:
    return await _page(request, ctx, viewer)


@router.post("/notifications")
async def save(request: Request, ctx: Ctx, viewer: UiWriter) -> Response:
    data = await request.form()
    form = NotificationForm(
        webhook_url=text(data, "webhook_url").strip(),
        events=[e for e in data.getlist("events") if isinstance(e, str)],
        enabled=text(data, "enabled") == "on",
    )
    try:
        await notifications.put_settings(
            ctx,
            viewer.principal.actor,
            viewer.tenant_id,
            webhook_url=form.webhook_url or None,
            events=form.events,
            enabled=form.enabled,
        )
    except ValidationFailed as exc:
        return await _page(
            request,
            ctx,
            viewer,
            form,
            errors=exc.field_errors or {},
            message=render.friendly(exc),
            status_code=exc.status,
        )
    return render.redirect(request, PAGE, "Notification settings saved.")


@router.post("/notifications/secret")
async def reveal_secret(request: Request, ctx: Ctx, viewer: UiWriter) -> Response:
    """The page with the signing secret shown (asked for with a POST: it is not in any URL,
    history entry or cache)."""
    secret = await notifications.secret(ctx, viewer.tenant_id)
    return await _page(request, ctx, viewer, secret=secret)


@router.post("/notifications/test")
async def send_test(request: Request, ctx: Ctx, viewer: UiWriter) -> Response:
    try:
        await notifications.send_test(ctx, viewer.tenant_id)
    except ValidationFailed:
        return render.redirect(request, PAGE, "Save a webhook URL first.", "error")
    return render.redirect(request, PAGE, "Test notification queued; it shows below once sent.")
