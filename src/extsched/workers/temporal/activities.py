"""The Temporal activity: one attempt of one run, through the shared InvocationHandler.

A scheduled fire arrives with Temporal's scheduled start time. The activity checks it
against the time engine (a fire the engine does not produce is skipped as ``dst_repeat``;
a fire superseded by a newer due one, or older than the catch-up window, is skipped as
``missed``), records it once per (schedule, scheduled_for) through the unique index, claims
the run with an UPDATE that matches its state, and hands it to the same handler the postgres
backend uses. A run-now arrives with the id of its already queued run.

A fresh fire (the common case, and all of a burst) is recorded and claimed in one statement,
batched across the worker's concurrent fires of a tenant (``temporal_fires_claim``); a fire
that is skipped, recorded before, or not recordable takes the one-fire path.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from extsched import metrics
from extsched.db.batch import Batcher
from extsched.db.pool import Conn
from extsched.domain import cron
from extsched.domain.ids import uuid7
from extsched.domain.runs import RunStatus, SkipReason
from extsched.domain.timing import jitter_offset
from extsched.jobs.temporal import dst
from extsched.jobs.temporal.types import ACTIVITY, AttemptInput, AttemptOutcome
from extsched.services import faults
from extsched.services.context import AppContext
from extsched.services.execution import ClaimedRun, InvocationHandler

log = logging.getLogger("extsched.jobs")

# A run-now workflow may start before the API's transaction that queued its run commits;
# the activity waits (Temporal retries it with backoff) this many attempts for the row.
MISSING_RUN_ATTEMPTS = 8
# An attempt that finds the run leased by another tries again this long after the lease ends.
LEASE_MARGIN = timedelta(seconds=1)
DONE = AttemptOutcome(run_id=None)


class RunNotVisibleYet(Exception):
    """The run row is not committed yet; Temporal retries the activity."""


@dataclass(frozen=True, slots=True)
class _Fire:
    """One delivered fire for ``temporal_fires_claim``."""

    tenant_id: str
    id: uuid.UUID
    schedule_id: uuid.UUID
    scheduled_for: datetime
    available_at: datetime


class Activities:
    def __init__(self, ctx: AppContext, handler: InvocationHandler, owner: str) -> None:
        self.ctx = ctx
        self.handler = handler
        self.owner = owner
        # One statement per tenant per batch (one shard on Citus), each schedule once.
        self.fires: Batcher[_Fire, dict[str, Any] | None] = Batcher(
            self._claim_fires,
            key=lambda f: f.schedule_id,
            lane=lambda f: f.tenant_id,
            name="temporal_fires_claim",
        )

    @activity.defn(name=ACTIVITY)
    async def attempt(self, task: AttemptInput) -> AttemptOutcome:
        """Run one attempt; ``retry_at`` in the outcome asks the workflow to call again."""
        request = task.request
        tenant_id = request.tenant_id
        schedule_id = uuid.UUID(request.schedule_id)
        due = None
        run: dict[str, Any] | None = None
        if task.run_id is not None:
            run_id = uuid.UUID(task.run_id)
        else:
            found = await self._fire(tenant_id, schedule_id, task)
            if isinstance(found, AttemptOutcome):
                return found
            if isinstance(found, dict):
                run, run_id = found, found["id"]  # recorded and claimed at once
            else:
                run_id, due = found
        if run is None:
            run = await self._claim(tenant_id, run_id, due)
        if run is None:
            if task.run_id is not None and await self._may_appear(tenant_id, schedule_id, run_id):
                raise RunNotVisibleYet(f"run {run_id} is not visible yet")
            return DONE
        result = await self.handler.attempt(ClaimedRun.from_row(run), self.owner)
        if result.final:
            return DONE
        return AttemptOutcome(run_id=str(run_id), retry_at=result.retry_at)

    async def _fire(
        self, tenant_id: str, schedule_id: uuid.UUID, task: AttemptInput
    ) -> tuple[uuid.UUID, datetime | None] | dict[str, Any] | AttemptOutcome:
        """The run of a delivered fire, recorded once: the run row when it was recorded and
        claimed at once, (run id, due) to claim, or the outcome when there is nothing to run
        now."""
        at = task.scheduled_for
        if at is None:
            raise ApplicationError("a scheduled fire needs its time", non_retryable=True)
        skip: str | None = None
        invalid: Exception | None = None
        try:
            skip = self._skip_reason(task, at)
        except Exception as exc:
            invalid = exc
        if skip is None and invalid is None:
            fire = _Fire(
                tenant_id,
                uuid7(),
                schedule_id,
                at,
                at + jitter_offset(schedule_id, at, task.request.jitter_seconds),
            )
            row = await self.fires.submit(fire)
            if row is not None:
                if row["status"] == RunStatus.RUNNING.value:
                    return row
                # A jittered fire (SPEC §8): the workflow sleeps until its offset on a
                # durable timer, then claims the run by id, as after a retry.
                return AttemptOutcome(run_id=str(row["id"]), retry_at=row["available_at"])
            # Recorded before, or not recordable: the one-fire path below decides.
        db = self.ctx.db
        key = {"tenant_id": tenant_id, "schedule_id": schedule_id, "scheduled_for": at}
        async with db.connection() as conn:
            existing = await db.fetch_one(conn, "run_fire_get", key)
        if existing is None:
            if invalid is not None:
                # A spec that cannot be evaluated costs this schedule, not the worker: it is
                # disabled as invalid instead of failing on every fire (SPEC §9).
                await self._isolate(task, invalid)
                return DONE
            if skip is not None:
                await self._record_skip(tenant_id, schedule_id, at, skip)
                return DONE
            async with db.transaction() as conn:
                row = await self._insert(
                    conn,
                    tenant_id,
                    schedule_id,
                    at,
                    RunStatus.QUEUED,
                    None,
                    task.request.jitter_seconds,
                )
                if row is None:
                    existing = await db.fetch_one(conn, "run_fire_get", key)
            if row is not None:
                if row["available_at"] > self.ctx.clock():
                    # A jittered fire (SPEC §8): the workflow sleeps until its offset on a
                    # durable timer, then claims the run by id, as after a retry.
                    return AttemptOutcome(run_id=str(row["id"]), retry_at=row["available_at"])
                return row["id"], None
            if existing is None:
                # The schedule is gone, or the fire is outside its window or pause (SPEC §8).
                return DONE
        # Recorded before: by another delivery of the same fire, or by an earlier try of
        # this activity that died. Whoever claims it runs it; a run waiting for its retry
        # time is waited for.
        if RunStatus(existing["status"]).is_terminal:
            return DONE
        now = self.ctx.clock()
        available = existing["available_at"]
        if existing["status"] == RunStatus.QUEUED.value and available and available > now:
            return AttemptOutcome(run_id=str(existing["id"]), retry_at=available)
        return existing["id"], now

    def _skip_reason(self, task: AttemptInput, at: datetime) -> str | None:
        """Why a delivered, not yet recorded fire must not run (SPEC §8), or None."""
        request = task.request
        # A spec that no longer evaluates raises here; the caller isolates that schedule.
        expr, zone = cron.compile_schedule(request.cron, request.timezone)
        choice = cron.DstChoice.of(request.dst_gap or None, request.dst_repeat or None)
        if not dst.is_engine_fire(expr, zone, at, choice):
            # Temporal's own DST evaluation delivered a time our engine (with the schedule's
            # DST choice) does not fire at: a repeated or dropped wall time.
            return SkipReason.DST_REPEAT
        now = self.ctx.clock()
        following = dst.next_engine_fire(expr, zone, at, choice)
        window = timedelta(seconds=self.ctx.settings.catchup_window_seconds)
        if now - at > window or (following is not None and following <= now):
            # Delivered late: a newer fire is already due, or it is older than the catch-up
            # window. Only the latest fire runs; fires are never replayed in bulk.
            return SkipReason.MISSED
        return None

    async def _claim_fires(self, fires: list[_Fire]) -> list[dict[str, Any] | None]:
        """``temporal_fires_claim`` for one tenant's batch; each fire's row, or None."""
        db = self.ctx.db
        async with db.connection() as conn:
            rows = await db.fetch_all(
                conn,
                "temporal_fires_claim",
                {
                    "tenant_ids": [f.tenant_id for f in fires],
                    "ids": [f.id for f in fires],
                    "schedule_ids": [f.schedule_id for f in fires],
                    "scheduled_fors": [f.scheduled_for for f in fires],
                    "available_ats": [f.available_at for f in fires],
                    "tenants": sorted({f.tenant_id for f in fires}),
                    "now": self.ctx.clock(),
                    "owner": self.owner,
                    "lease_seconds": self.handler.lease_seconds,
                },
            )
        by_id = {row["id"]: row for row in rows}
        return [by_id.get(f.id) for f in fires]

    async def _isolate(self, task: AttemptInput, exc: Exception) -> None:
        request = task.request
        async with self.ctx.db.transaction() as conn:
            await faults.disable_invalid(
                self.ctx,
                conn,
                tenant_id=request.tenant_id,
                install_id=uuid.UUID(request.install_id),
                schedule_id=uuid.UUID(request.schedule_id),
                error=exc,
            )

    async def _insert(
        self,
        conn: Conn,
        tenant_id: str,
        schedule_id: uuid.UUID,
        at: datetime,
        status: RunStatus,
        reason: str | None,
        jitter_seconds: int = 0,
    ) -> dict[str, Any] | None:
        queued = status is RunStatus.QUEUED
        return await self.ctx.db.fetch_one(
            conn,
            "temporal_fire_insert",
            {
                "tenant_id": tenant_id,
                "id": uuid7(),
                "schedule_id": schedule_id,
                "scheduled_for": at,
                "status": status.value,
                "skip_reason": reason,
                "skipped_count": 1 if reason == SkipReason.MISSED else None,
                # Jitter delays the run, never its nominal fire time (SPEC §8); the workflow
                # waits for available_at as it waits for a retry.
                "available_at": at + jitter_offset(schedule_id, at, jitter_seconds)
                if queued
                else None,
                "finished_at": None if queued else self.ctx.clock(),
            },
        )

    async def _record_skip(
        self, tenant_id: str, schedule_id: uuid.UUID, at: datetime, reason: str
    ) -> None:
        db = self.ctx.db
        async with db.transaction() as conn:
            row = await self._insert(conn, tenant_id, schedule_id, at, RunStatus.SKIPPED, reason)
            if row is None:
                return
            await db.fetch_one(
                conn,
                "schedule_record_outcome",
                {
                    "tenant_id": tenant_id,
                    "schedule_id": schedule_id,
                    "at": self.ctx.clock(),
                    "status": RunStatus.SKIPPED.value,
                    "error": f"skipped: {reason}",
                },
            )
        metrics.RUNS_TOTAL.labels(status=RunStatus.SKIPPED.value, trigger="schedule").inc()
        metrics.RUNS_SKIPPED.labels(reason=reason).inc()
        log.info(
            "fire skipped",
            extra={"tenant_id": tenant_id, "schedule_id": schedule_id, "skip_reason": reason},
        )

    async def _claim(
        self, tenant_id: str, run_id: uuid.UUID, due: datetime | None
    ) -> dict[str, Any] | None:
        """Lease the run for this attempt; None if it is not ours to run."""
        ctx, db = self.ctx, self.ctx.db
        now = ctx.clock()
        async with db.transaction() as conn:
            run = await db.fetch_one(
                conn,
                "temporal_run_claim",
                {
                    "tenant_id": tenant_id,
                    "id": run_id,
                    "owner": self.owner,
                    "now": now,
                    "due": due,
                    "lease_seconds": self.handler.lease_seconds,
                    "default_max_attempts": ctx.settings.max_attempts,
                },
            )
            if run is not None:
                return run
            lease_ends = await self._fail_if_lost(conn, tenant_id, run_id, now)
        if lease_ends is not None:
            # Another attempt holds a live lease: a worker that died mid-attempt (its workflow
            # task timed out and this is the next worker's try), or another delivery of the
            # fire still running. Returning would end this workflow and leave a dead worker's
            # run running for good, so it tries again when the lease lapses: then it takes
            # the run over, or finds it finished and ends.
            raise ApplicationError(
                f"run {run_id} is leased by another attempt until {lease_ends.isoformat()}",
                type="RunLeased",
                next_retry_delay=max(lease_ends - now, timedelta(0)) + LEASE_MARGIN,
            )
        return None

    async def _fail_if_lost(
        self, conn: Conn, tenant_id: str, run_id: uuid.UUID, now: datetime
    ) -> datetime | None:
        """A run whose last allowed attempt lost its worker fails once (as the postgres
        backend's reaper does), instead of calling the Runner once more. Returns when the
        lease of a run another attempt holds ends, else None."""
        db = self.ctx.db
        row = await db.fetch_one(conn, "run_get", {"tenant_id": tenant_id, "id": run_id})
        if row is None or row["status"] != RunStatus.RUNNING.value:
            return None
        lease_ends: datetime | None = row["lease_expires_at"]
        if lease_ends is None:
            return None
        if lease_ends >= now:
            return lease_ends
        await self.handler.fail_lost(conn, tenant_id, run_id, now)
        return None

    async def _may_appear(self, tenant_id: str, schedule_id: uuid.UUID, run_id: uuid.UUID) -> bool:
        """Whether a run-now's missing row may still be committed: its schedule exists and
        the activity has not waited long yet."""
        if activity.info().attempt >= MISSING_RUN_ATTEMPTS:
            log.warning("run-now row never appeared; giving up", extra={"run_id": run_id})
            return False
        async with self.ctx.db.connection() as conn:
            run = await self.ctx.db.fetch_one(
                conn, "run_get", {"tenant_id": tenant_id, "id": run_id}
            )
            if run is not None:
                return False  # it exists and is not ours to run (finished or leased)
            schedule = await self.ctx.db.fetch_one(
                conn, "schedule_get", {"tenant_id": tenant_id, "id": schedule_id}
            )
        return schedule is not None
