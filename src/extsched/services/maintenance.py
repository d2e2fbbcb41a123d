"""Periodic maintenance that every worker runs, on both backends (SPEC §9 self-healing, §10
retention): the reconciler with repair (which also flags overdue schedules and, on Temporal,
re-pins the DST compensation), the retention pass, and the delivery of notifications.

Any number of workers may run these loops: each pass takes a PostgreSQL advisory lock first
(``pg_try_advisory_lock``), so one pass of a kind runs at a time and the others skip theirs.
Notifications are delivered by every worker at once: they split the work by leasing tenants
(``services.webhooks``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from extsched import metrics
from extsched.services.context import AppContext
from extsched.services.reconcile import ReconcileReport, reconcile
from extsched.services.retention import RetentionReport, prune
from extsched.services.supervision import Supervisor
from extsched.services.webhooks import Deliverer

log = logging.getLogger("extsched.jobs")
T = TypeVar("T")

# Advisory lock keys (any bigint; these spell "extsched" + a kind number).
RECONCILE_LOCK = 0x6578747363680001
RETENTION_LOCK = 0x6578747363680002


class Maintenance:
    """The maintenance loops of one worker process."""

    def __init__(self, ctx: AppContext, supervisor: Supervisor) -> None:
        self.ctx = ctx
        self.supervisor = supervisor
        self.deliverer = Deliverer(ctx)

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        """The loops to run beside the worker's own (an interval of 0 turns one off)."""
        s = self.ctx.settings
        loops = []
        if s.reconcile_interval_seconds > 0:
            loops.append(self._every("reconcile", s.reconcile_interval_seconds, self.reconcile))
        if s.retention_interval_seconds > 0:
            loops.append(self._every("retention", s.retention_interval_seconds, self.retention))
        loops.append(self._notify_loop())
        return loops

    async def _notify_loop(self) -> None:
        """Deliver due notifications; after a pass with nothing to send, wait one poll."""
        stop = self.supervisor.stop
        try:
            while not stop.is_set():
                sent = await self.supervisor.guard("notifications", self.deliverer.pass_once)
                if not sent and not stop.is_set():
                    await self.supervisor.sleep(self.ctx.settings.notify_poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await self.deliverer.aclose()

    async def reconcile(self) -> ReconcileReport | None:
        """One reconcile-with-repair pass, or None if another worker is running one."""
        report = await self._exclusive(
            "reconcile", RECONCILE_LOCK, lambda: reconcile(self.ctx, repair=True)
        )
        if report is not None and not report.clean:
            log.warning(
                "reconcile found and repaired drift",
                extra={
                    "orphan_schedules": len(report.orphan_schedules),
                    "orphan_handles": len(report.orphan_handles),
                    "missing_handles": len(report.missing_handles),
                    "stale_handles": len(report.stale_handles),
                    "invalid": len(report.invalid),
                    "repaired": report.repaired,
                },
            )
        return report

    async def retention(self) -> RetentionReport | None:
        """One retention pass, or None if another worker is running one."""
        return await self._exclusive("retention", RETENTION_LOCK, lambda: prune(self.ctx))

    async def _every(
        self, loop: str, interval: float, step: Callable[[], Awaitable[object]]
    ) -> None:
        stop = self.supervisor.stop
        while not stop.is_set():
            await self.supervisor.sleep(interval)
            if not stop.is_set():
                await self.supervisor.guard(loop, step)

    async def _exclusive(self, task: str, key: int, step: Callable[[], Awaitable[T]]) -> T | None:
        async with self._lock(key) as mine:
            if not mine:
                metrics.MAINTENANCE_PASSES.labels(task=task, result="skipped").inc()
                return None
            result = await step()
        metrics.MAINTENANCE_PASSES.labels(task=task, result="ran").inc()
        return result

    @contextlib.asynccontextmanager
    async def _lock(self, key: int) -> AsyncIterator[bool]:
        """Hold the advisory lock ``key`` for the block if no other session holds it."""
        db = self.ctx.db
        async with db.connection() as conn:
            locked = bool(await db.fetch_val(conn, "maintenance_try_lock", {"key": key}))
            try:
                yield locked
            finally:
                if locked:
                    # A lost connection releases the lock with the session anyway.
                    with contextlib.suppress(Exception):
                        await db.fetch_val(conn, "maintenance_unlock", {"key": key})
