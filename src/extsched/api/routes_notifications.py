"""Notification routes (tenant; read: extension:read, change: extension:write)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from extsched.api.deps import Ctx, Reader, Writer
from extsched.api.notification_schemas import (
    DeliveryOut,
    DeliveryPageOut,
    NotificationSecretOut,
    NotificationsIn,
    NotificationsOut,
)
from extsched.api.openapi import raises
from extsched.domain.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, encode_cursor
from extsched.errors import ValidationFailed
from extsched.services import notifications

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


def _tenant(p: Reader | Writer) -> str:
    assert p.tenant_id is not None
    return p.tenant_id


@router.get("", response_model=NotificationsOut)
async def get_notifications(ctx: Ctx, p: Reader) -> NotificationsOut:
    """The tenant's webhook, the events it receives and whether notifications are on."""
    return NotificationsOut.of(await notifications.get_settings(ctx, _tenant(p)))


@router.put("", response_model=NotificationsOut)
async def put_notifications(ctx: Ctx, p: Writer, body: NotificationsIn) -> NotificationsOut:
    """Set the webhook (http/https; names that resolve to loopback, private, link-local or
    multicast addresses are refused), the events and the switch. Audited."""
    saved = await notifications.put_settings(
        ctx,
        p.actor,
        _tenant(p),
        webhook_url=body.webhook_url,
        events=list(body.events),
        enabled=body.enabled,
    )
    return NotificationsOut.of(saved)


@router.get("/secret", response_model=NotificationSecretOut)
async def get_notification_secret(ctx: Ctx, p: Writer) -> NotificationSecretOut:
    """The secret that signs deliveries (Standard Webhooks), created on first use."""
    return NotificationSecretOut(secret=await notifications.secret(ctx, _tenant(p)))


@router.post("/test", status_code=202, response_model=DeliveryOut)
@raises(ValidationFailed)
async def send_test_notification(ctx: Ctx, p: Writer) -> DeliveryOut:
    """Queue a ``test`` event for delivery now; the delivery shows in the deliveries log."""
    return DeliveryOut.of(await notifications.send_test(ctx, _tenant(p)))


@router.get("/deliveries", response_model=DeliveryPageOut)
async def list_notification_deliveries(
    ctx: Ctx,
    p: Reader,
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, max_length=200),
) -> DeliveryPageOut:
    """The deliveries log, newest first."""
    items = await notifications.deliveries(
        ctx, _tenant(p), limit=limit + 1, before_id=before_id(cursor)
    )
    next_cursor = encode_cursor([str(items[limit - 1].id)]) if len(items) > limit else None
    return DeliveryPageOut(
        items=[DeliveryOut.of(d) for d in items[:limit]], next_cursor=next_cursor
    )
