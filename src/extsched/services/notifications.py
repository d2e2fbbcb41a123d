"""Notifications (SPEC §5, §9): a tenant's webhook settings, its signing secret, the test
event, the deliveries log, and ``enqueue`` for the services whose outcomes cause events.

Events are queued as rows of ``notification_delivery`` (the outbox) on the transaction of the
change that causes them, so an event exists exactly when its cause committed; the workers
deliver them (``services.webhooks``). Run outcomes queue theirs inside ``runs_complete``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extsched.db.pool import Conn, Database
from extsched.domain import notify
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.domain.notify import DEFAULT_EVENTS, EventType, IPAddress, UrlRefused
from extsched.errors import ValidationFailed, field_error
from extsched.services import audit
from extsched.services.context import AppContext

RESOLVE_TIMEOUT_SECONDS = 5.0
SECRET_BYTES = 32

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise UrlRefused(f"{host} cannot be resolved") from exc
    seen: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


async def check_url(
    url: str, *, allow_private: bool, resolver: Resolver = resolve
) -> tuple[notify.WebhookTarget, IPAddress]:
    """The parsed URL and the one address to connect to, after checking every address its
    name resolves to now (SPEC §4); raises UrlRefused."""
    target = notify.parse_url(url)
    addresses = await resolver(target.host, target.port)
    return target, notify.check_addresses(target.host, addresses, allow_private=allow_private)


@dataclass(frozen=True)
class NotificationSettings:
    webhook_url: str | None
    events: list[str]
    enabled: bool
    secret_hint: str | None


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    type: str
    at: datetime
    status: str
    attempts: int
    last_error: str | None
    http_status: int | None
    count: int
    next_attempt_at: datetime


def _settings(row: Mapping[str, Any] | None) -> NotificationSettings:
    if row is None:
        return NotificationSettings(None, [e.value for e in DEFAULT_EVENTS], False, None)
    return NotificationSettings(
        row["webhook_url"], list(row["events"]), row["enabled"], row["secret_hint"]
    )


async def get_settings(ctx: AppContext, tenant_id: str) -> NotificationSettings:
    async with ctx.db.connection() as conn:
        row = await ctx.db.fetch_one(conn, "notification_settings_get", {"tenant_id": tenant_id})
    return _settings(row)


def _check_events(events: list[str]) -> list[str]:
    known = {e.value for e in EventType}
    unknown = [e for e in events if e not in known]
    if unknown:
        raise field_error(
            "events", f"unknown event {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    return sorted(set(events), key=[e.value for e in EventType].index)


async def put_settings(
    ctx: AppContext,
    actor: Actor,
    tenant_id: str,
    *,
    webhook_url: str | None,
    events: list[str],
    enabled: bool,
) -> NotificationSettings:
    """Set a tenant's webhook, events and switch; the URL is checked as SPEC §4 says (its
    name resolved now, every address allowed). Audited; the first save creates the secret."""
    chosen = _check_events(events)
    url = webhook_url.strip() if webhook_url is not None else None
    if url == "":
        url = None
    if url is None and enabled:
        raise field_error("webhook_url", "required while notifications are enabled")
    if url is not None:
        try:
            await check_url(url, allow_private=ctx.settings.notify_allow_private)
        except UrlRefused as exc:
            raise field_error("webhook_url", str(exc)) from None
    secret = new_secret()
    db = ctx.db
    async with db.transaction() as conn:
        before = await db.fetch_one(conn, "notification_settings_lock", {"tenant_id": tenant_id})
        row = await db.fetch_one(
            conn,
            "notification_settings_put",
            {
                "tenant_id": tenant_id,
                "webhook_url": url,
                "events": chosen,
                "enabled": enabled,
                "secret_encrypted": seal(ctx, tenant_id, secret),
                "secret_hint": notify.secret_hint(secret),
            },
        )
        after = _settings(row)
        old = _settings(before)
        changes = audit.diff(
            {"webhook_url": old.webhook_url, "events": old.events, "enabled": old.enabled},
            {"webhook_url": after.webhook_url, "events": after.events, "enabled": after.enabled},
        )
        if changes or before is None:
            await audit.record(
                db,
                conn,
                actor,
                audit.AuditAction.NOTIFICATIONS_UPDATE,
                audit.Target(audit.TargetType.NOTIFICATIONS, tenant_id, "notifications", tenant_id),
                changes,
            )
    return after


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _aad(tenant_id: str) -> bytes:
    return f"notifications:{tenant_id}".encode()


def seal(ctx: AppContext, tenant_id: str, secret: str) -> bytes:
    """The secret encrypted at rest like install secrets, bound to its tenant."""
    return ctx.secrets.encrypt({"secret": secret}, aad=_aad(tenant_id))


def unseal(ctx: AppContext, tenant_id: str, blob: bytes) -> str:
    return ctx.secrets.decrypt(blob, aad=_aad(tenant_id))["secret"]


async def secret(ctx: AppContext, tenant_id: str) -> str:
    """The tenant's signing secret (created on first use)."""
    fresh = new_secret()
    async with ctx.db.transaction() as conn:
        blob = await ctx.db.fetch_val(
            conn,
            "notification_secret_init",
            {
                "tenant_id": tenant_id,
                "secret_encrypted": seal(ctx, tenant_id, fresh),
                "secret_hint": notify.secret_hint(fresh),
            },
        )
    return unseal(ctx, tenant_id, bytes(blob))


async def send_test(ctx: AppContext, tenant_id: str) -> Delivery:
    """Queue a ``test`` event for delivery now (whatever the subscription, once a URL is set)."""
    async with ctx.db.transaction() as conn:
        queued = await enqueue(
            ctx.db,
            conn,
            tenant_id,
            EventType.TEST,
            ctx.clock(),
            {"message": "This is a test notification from extsched."},
            force=True,
        )
        if queued is None:
            raise field_error("webhook_url", "set a webhook URL first")
        rows = await ctx.db.fetch_all(
            conn,
            "notification_deliveries_page",
            {"tenant_id": tenant_id, "before_id": None, "limit": 1},
        )
    return _delivery(rows[0])


async def enqueue(
    db: Database,
    conn: Conn,
    tenant_id: str,
    type: EventType,
    at: datetime,
    facts: dict[str, Any],
    *,
    coalesce_key: str | None = None,
    force: bool = False,
) -> uuid.UUID | None:
    """Queue ``type`` for ``tenant_id`` on ``conn`` (the transaction of its cause) if the
    tenant subscribed to it; returns the delivery id, or None when nothing was queued."""
    row = await db.fetch_one(
        conn,
        "notification_enqueue",
        {
            "tenant_id": tenant_id,
            "id": uuid7(),
            "type": type.value,
            "at": at,
            "payload": json.dumps(facts, default=str),
            "coalesce_key": coalesce_key,
            "force": force,
        },
    )
    return None if row is None else row["id"]


def schedule_facts(row: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What a schedule event says about its schedule (``row``: a schedule row)."""
    return {
        "extension_id": row.get("extension_id"),
        "schedule": {"id": row["id"], "name": row.get("name")},
        **extra,
    }


async def deliveries(
    ctx: AppContext, tenant_id: str, *, limit: int, before_id: uuid.UUID | None
) -> list[Delivery]:
    """Up to ``limit`` deliveries, newest first, before ``before_id``."""
    async with ctx.db.connection() as conn:
        rows = await ctx.db.fetch_all(
            conn,
            "notification_deliveries_page",
            {"tenant_id": tenant_id, "before_id": before_id, "limit": limit},
        )
    return [_delivery(r) for r in rows]


def _delivery(r: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=r["id"],
        type=r["type"],
        at=r["at"],
        status=r["status"],
        attempts=r["attempts"],
        last_error=r["last_error"],
        http_status=r["http_status"],
        count=r["count"],
        next_attempt_at=r["next_attempt_at"],
    )


def check_events_field(events: object) -> list[str]:
    """``events`` from a form or body: a list of strings (a 422 otherwise)."""
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ValidationFailed(
            "events must be a list of event names",
            field_errors={"events": "must be a list of event names"},
        )
    return events
