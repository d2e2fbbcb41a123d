"""Delivering notifications (SPEC §5, §9): the worker's side of the outbox, on both backends
(``services.maintenance`` runs :meth:`Deliverer.pass_once` in every worker).

A pass leases tenants with a due delivery (``notify_lease_tenant``: an UPDATE matching the
tenant's free lease, on its shard, so however many workers run, one delivery per tenant is in
flight and none is sent twice at once), takes each leased tenant's oldest due delivery and
sends it:

- the URL is checked again now: its name is resolved **once**, every address it resolves to
  is checked, and the request goes to the checked address (Host header and TLS SNI keep the
  name), so a second resolution (DNS rebinding) cannot swap in a private address;
- the body is JSON signed with Standard Webhooks headers under the tenant's secret; redirects
  are not followed (a redirect could lead anywhere), so only a 2xx answer delivers;
- a failure is retried with exponential backoff until 24 h after the event was queued, then
  the delivery is ``failed``. Each outcome is stored on the row (``last_error``,
  ``http_status``), which is the deliveries log.

Pacing per tenant (docs/notifications.md): one delivery in flight, at most
``EXTSCHED_NOTIFY_PER_MINUTE`` attempts per one-minute window; ``run_failed`` events of one
schedule that arrive while its previous one waits fold into it (``count``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from extsched import __version__, metrics
from extsched.crypto import SecretsUnreadable
from extsched.domain import notify
from extsched.domain.notify import DeliveryStatus, EventType, UrlRefused
from extsched.services import notifications
from extsched.services.context import AppContext
from extsched.services.execution import new_owner

log = logging.getLogger("extsched.notify")

MAX_RESPONSE_BYTES = 4096  # only the status matters; the body is never read beyond this


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: delivered, or the error (and status) to retry with."""

    delivered: bool
    error: str | None = None
    http_status: int | None = None
    refused: bool = False


class Deliverer:
    """Sends due notifications; one per worker process."""

    def __init__(self, ctx: AppContext, resolver: notifications.Resolver | None = None) -> None:
        self.ctx = ctx
        self.owner = new_owner("notify")
        self.resolver = resolver or notifications.resolve
        self._client: httpx.AsyncClient | None = None

    @property
    def lease_seconds(self) -> float:
        # Resolution and the request together, with room to record the outcome.
        return notifications.RESOLVE_TIMEOUT_SECONDS + self.ctx.settings.notify_timeout_seconds + 30

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                timeout=self.ctx.settings.notify_timeout_seconds,
                trust_env=False,  # no proxy: the connection must go to the checked address
                headers={"user-agent": f"extsched/{__version__} (notifications)"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def pass_once(self) -> int:
        """Lease tenants with due deliveries and send one for each; returns how many tenants
        were worked on (0: nothing was due, or every tenant with work is at its pace or
        leased by another worker)."""
        s, db, now = self.ctx.settings, self.ctx.db, self.ctx.clock()
        tenants: list[dict[str, Any]] = []
        async with db.connection() as conn:
            due = await db.fetch_all(
                conn, "notify_due_tenants", {"now": now, "limit": 4 * s.notify_concurrency}
            )
            for candidate in due:
                leased = await db.fetch_one(
                    conn,
                    "notify_lease_tenant",
                    {
                        "tenant_id": candidate["tenant_id"],
                        "owner": self.owner,
                        "now": now,
                        "lease_seconds": self.lease_seconds,
                        "per_minute": s.notify_per_minute,
                    },
                )
                if leased is not None:
                    tenants.append(leased)
                    if len(tenants) >= s.notify_concurrency:
                        break
        if not tenants:
            return 0
        done = await asyncio.gather(*(self._tenant(t) for t in tenants), return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                # One tenant's trouble must not stop the others' deliveries: its lease was
                # released and its delivery stays due.
                log.error("notification delivery crashed", exc_info=outcome)
        # Count tenants worked on (a crashed one too), so the loop does not sleep on a backlog.
        return len(done)

    async def run_until_idle(self, max_passes: int = 1000) -> int:
        """Passes until one finds nothing to send (tests, and a draining worker)."""
        total = 0
        for _ in range(max_passes):
            sent = await self.pass_once()
            if not sent:
                return total
            total += sent
        return total

    async def seconds_until_next(self, cap: float) -> float:
        async with self.ctx.db.connection() as conn:
            at = await self.ctx.db.fetch_val(conn, "notify_next_due")
        if not isinstance(at, datetime):
            return cap
        return max(0.0, min(cap, (at - self.ctx.clock()).total_seconds()))

    async def _tenant(self, tenant: Mapping[str, Any]) -> int:
        db, tenant_id = self.ctx.db, tenant["tenant_id"]
        try:
            async with db.transaction() as conn:
                row = await db.fetch_one(
                    conn,
                    "notify_take_next",
                    {"tenant_id": tenant_id, "owner": self.owner, "now": self.ctx.clock()},
                )
            if row is None:
                return 0
            try:
                attempt = await self._attempt(tenant, row)
            except Exception as exc:
                # A bug met by one delivery costs that delivery an attempt (its next one moves
                # forward as for any failure), never a loop that retries it on every pass.
                log.exception("notification attempt crashed", extra={"delivery_id": row["id"]})
                attempt = Attempt(False, f"internal error ({exc.__class__.__name__})")
            await self._record(row, attempt)
            return 1
        finally:
            async with db.connection() as conn:
                await db.execute(
                    conn, "notify_release_tenant", {"tenant_id": tenant_id, "owner": self.owner}
                )

    async def _attempt(self, tenant: Mapping[str, Any], row: Mapping[str, Any]) -> Attempt:
        """One delivery attempt; never raises for anything the receiver or network does."""
        url = tenant["webhook_url"]
        if url is None:
            return Attempt(False, "no webhook URL is set", refused=True)
        if row["type"] != EventType.TEST and not (
            tenant["enabled"] and row["type"] in tenant["events"]
        ):
            return Attempt(False, "notifications were switched off for this event", refused=True)
        try:
            secret = notifications.unseal(
                self.ctx, tenant["tenant_id"], bytes(tenant["secret_encrypted"] or b"")
            )
        except SecretsUnreadable:
            return Attempt(False, "the signing secret cannot be decrypted")
        try:
            target = notify.parse_url(url)
            addresses = await self.resolver(target.host, target.port)
            address = notify.check_addresses(
                target.host, addresses, allow_private=self.ctx.settings.notify_allow_private
            )
        except UrlRefused as exc:
            return Attempt(False, f"refused: {exc}")
        body = json.dumps(
            notify.payload(
                type=row["type"],
                at=row["at"],
                tenant_id=row["tenant_id"],
                facts=row["payload"] or {},
                count=row["count"],
            ),
            separators=(",", ":"),
        )
        # Wall-clock time, not the service clock: receivers check it against theirs.
        now = datetime.now(UTC)
        msg_id = f"msg_{row['id']}"
        headers = {
            "content-type": "application/json",
            "host": target.host_header,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with self.client().stream(
                "POST",
                target.url_for(address),
                content=body.encode(),
                headers=headers,
                extensions=extensions,
            ) as response:
                await _drain(response)
        except httpx.TimeoutException:
            return Attempt(False, "the webhook did not answer in time")
        except httpx.HTTPError as exc:
            return Attempt(False, notify.one_line(f"{exc.__class__.__name__}: {exc}"))
        if 200 <= response.status_code < 300:
            return Attempt(True, http_status=response.status_code)
        return Attempt(
            False, f"the webhook answered HTTP {response.status_code}", response.status_code
        )

    async def _record(self, row: Mapping[str, Any], attempt: Attempt) -> None:
        s, now = self.ctx.settings, self.ctx.clock()
        next_at = None
        if attempt.delivered:
            status, result = DeliveryStatus.DELIVERED, "delivered"
        else:
            next_at = (
                None
                if attempt.refused
                else notify.next_attempt(
                    attempts=row["attempts"] + 1,
                    now=now,
                    created_at=row["created_at"],
                    base=s.notify_retry_base_seconds,
                    cap=s.notify_retry_max_seconds,
                    give_up=s.notify_give_up_seconds,
                )
            )
            status = DeliveryStatus.PENDING if next_at else DeliveryStatus.FAILED
            result = "retry" if next_at else "failed"
        metrics.NOTIFICATION_ATTEMPTS.labels(type=row["type"], result=result).inc()
        async with self.ctx.db.connection() as conn:
            await self.ctx.db.execute(
                conn,
                "notify_record_attempt",
                {
                    "tenant_id": row["tenant_id"],
                    "id": row["id"],
                    "status": status.value,
                    "now": now,
                    "error": attempt.error,
                    "http_status": attempt.http_status,
                    "next_attempt_at": next_at,
                },
            )
        log.info(
            "notification attempt",
            extra={
                "tenant_id": row["tenant_id"],
                "delivery_id": row["id"],
                "type": row["type"],
                "result": result,
                "http_status": attempt.http_status,
                "attempt": row["attempts"] + 1,
            },
        )


async def _drain(response: httpx.Response) -> None:
    """Read at most MAX_RESPONSE_BYTES of the answer (a receiver cannot make us buffer more)."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= MAX_RESPONSE_BYTES:
            break
