"""The postgres backend's loops: the scheduler (fires due handles), the executor (runs queued
runs through the invocation handler) and the reaper (recovers runs of dead workers).

Any number of processes may run these loops against one database: claims use
``FOR UPDATE SKIP LOCKED`` and state-matching UPDATEs, and a unique index records each fire
once, so there are no duplicates and no lost fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from extsched.db.pool import Conn
from extsched.domain import cron
from extsched.domain.ids import uuid7
from extsched.domain.runs import RunStatus, SkipReason
from extsched.domain.timing import FirePlan, jitter_offset, plan_due_fires
from extsched.errors import BackendUnavailable
from extsched.services import faults
from extsched.services.context import AppContext
from extsched.services.execution import ClaimedRun, InvocationHandler, new_owner
from extsched.services.maintenance import Maintenance
from extsched.services.supervision import Supervisor

log = logging.getLogger("extsched.jobs")

RUNS_CHANNEL = "extsched_runs"
HANDLES_CHANNEL = "extsched_handles"


@dataclass(frozen=True)
class TickResult:
    handles: int
    runs_queued: int
    skipped: int
    invalid: int = 0


class Scheduler:
    """Turns due handles into run rows and advances them, in one transaction per batch."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        # Whether the last tick was full: more handles may be due than one tick takes (a
        # herd), so the next tick interleaves tenants (handles_claim_due_fair).
        self.herd = False

    async def tick(self, now: datetime | None = None) -> TickResult:
        ctx, db = self.ctx, self.ctx.db
        now = now or ctx.clock()
        window = ctx.settings.catchup_window_seconds
        batch = ctx.settings.scheduler_batch_size
        async with db.transaction() as conn:
            if self.herd:
                # Its cost estimate grows with the stored handles (not the due ones) past the
                # JIT thresholds: compiling it took ~220 ms of a ~10 ms statement at 1M stored.
                await conn.execute("SET LOCAL jit = off")
                due = await db.fetch_all(
                    conn,
                    "handles_claim_due_fair",
                    {"now": now, "limit": batch, "salt": f"{random.getrandbits(32):08x}"},
                )
            else:
                due = await db.fetch_all(conn, "handles_claim_due", {"now": now, "limit": batch})
            self.herd = len(due) >= batch
            if not due:
                return TickResult(0, 0, 0)
            runs: dict[str, list[Any]] = {
                k: []
                for k in (
                    "tenant_ids",
                    "ids",
                    "schedule_ids",
                    "install_ids",
                    "triggers",
                    "scheduled_fors",
                    "statuses",
                    "skip_reasons",
                    "skipped_counts",
                    "available_ats",
                    "finished_ats",
                )
            }
            adv: dict[str, list[Any]] = {
                k: [] for k in ("tenant_ids", "schedule_ids", "next_fire_ats", "last_fire_ats")
            }

            def add_run(
                h: dict[str, Any], at: datetime, status: str, reason: str | None, count: int | None
            ) -> None:
                runs["tenant_ids"].append(h["tenant_id"])
                runs["ids"].append(uuid7())
                runs["schedule_ids"].append(h["schedule_id"])
                runs["install_ids"].append(h["install_id"])
                runs["triggers"].append("schedule")
                runs["scheduled_fors"].append(at)
                runs["statuses"].append(status)
                runs["skip_reasons"].append(reason)
                runs["skipped_counts"].append(count)
                # Jitter delays the run, never its nominal fire time (SPEC §8).
                delay = jitter_offset(h["schedule_id"], at, h["jitter_seconds"] or 0)
                runs["available_ats"].append(at + delay if status == "queued" else None)
                runs["finished_ats"].append(None if status == "queued" else now)

            queued = skipped = 0
            invalid: list[tuple[dict[str, Any], Exception]] = []
            # A herd is many handles with the same rule due at the same instant: their plan
            # (a pure function of these fields, `now` and `window`) is computed once a tick.
            plans: dict[tuple[Any, ...], FirePlan | Exception] = {}
            for h in due:
                key = (
                    h["cron"],
                    h["timezone"],
                    h["next_fire_at"],
                    h["ends_at"],
                    h["dst_gap"],
                    h["dst_repeat"],
                )
                plan_or_error = plans.get(key)
                if plan_or_error is None:
                    try:
                        plan_or_error = plan_due_fires(
                            *cron.compile_schedule(h["cron"], h["timezone"]),
                            h["next_fire_at"],
                            now,
                            window,
                            ends_at=h["ends_at"],
                            dst=cron.DstChoice.of(h["dst_gap"], h["dst_repeat"]),
                        )
                    except Exception as exc:
                        plan_or_error = exc
                    plans[key] = plan_or_error
                if isinstance(plan_or_error, Exception):
                    # One row that cannot be evaluated must not stop the batch (SPEC §9).
                    invalid.append((h, plan_or_error))
                    continue
                plan = plan_or_error
                if plan.missed_count and plan.missed_first is not None:
                    add_run(
                        h,
                        plan.missed_first,
                        RunStatus.SKIPPED.value,
                        SkipReason.MISSED,
                        plan.missed_count,
                    )
                    skipped += 1
                if plan.run_at is not None:
                    add_run(h, plan.run_at, RunStatus.QUEUED.value, None, None)
                    queued += 1
                adv["tenant_ids"].append(h["tenant_id"])
                adv["schedule_ids"].append(h["schedule_id"])
                adv["next_fire_ats"].append(plan.next_fire_at)
                adv["last_fire_ats"].append(plan.last_due)
            missed = await db.fetch_all(conn, "runs_insert_fires", runs)
            await db.execute(conn, "handles_advance", adv)
            if missed:
                await _record_missed(self.ctx, conn, missed)
            for h, error in invalid:
                await _isolate(ctx, conn, h, error)
            if queued:
                await conn.execute(f"NOTIFY {RUNS_CHANNEL}")
        return TickResult(len(due), queued, skipped, len(invalid))

    async def seconds_until_next(self, cap: float) -> float:
        async with self.ctx.db.connection() as conn:
            at = await self.ctx.db.fetch_val(conn, "handles_next_due")
        if at is None:
            return cap
        wait: float = (at - self.ctx.clock()).total_seconds()
        return max(0.0, min(cap, wait))


async def _isolate(ctx: AppContext, conn: Conn, handle: dict[str, Any], exc: Exception) -> None:
    """Disable the schedule behind a handle that failed to evaluate, inside a savepoint: if
    even that fails, the rest of the tick still commits (the row is tried again next tick)."""
    try:
        async with conn.transaction():
            await faults.disable_invalid(
                ctx,
                conn,
                tenant_id=handle["tenant_id"],
                install_id=handle["install_id"],
                schedule_id=handle["schedule_id"],
                error=exc,
            )
    except BackendUnavailable:
        raise
    except Exception:
        log.exception(
            "could not disable an invalid schedule",
            extra={"tenant_id": handle["tenant_id"], "schedule_id": handle["schedule_id"]},
        )


async def _record_missed(ctx: AppContext, conn: Any, rows: list[dict[str, Any]]) -> None:
    """Missed fires count as a skipped outcome in the schedule's bookkeeping."""
    from extsched import metrics

    for r in rows:
        await ctx.db.execute(
            conn,
            "schedule_record_outcome",
            {
                "tenant_id": r["tenant_id"],
                "schedule_id": r["schedule_id"],
                "at": ctx.clock(),
                "status": "skipped",
                "error": "skipped: missed",
            },
        )
        metrics.RUNS_SKIPPED.labels(reason=SkipReason.MISSED).inc()


EXECUTOR_POLL_SECONDS = 0.5
# How long the claim loop may hold back while only a few slots are free (see _executor_loop).
CLAIM_GATHER_SECONDS = 0.01
# A claim looks at most at max(this, its slots) tenants with due runs, in turn.
MIN_CLAIM_TENANTS = 32


class Executor:
    """Claims queued runs and runs attempts with a concurrency cap."""

    def __init__(self, ctx: AppContext, handler: InvocationHandler, owner: str | None = None):
        self.ctx = ctx
        self.handler = handler
        self.owner = owner or new_owner("worker")
        self.in_flight: dict[Any, asyncio.Task[None]] = {}
        # Set when a run finishes, so the claim loop refills the freed slot at once.
        self.slot_freed = asyncio.Event()
        # Where the next claim starts looking for tenants with due runs (runs_claim).
        self.cursor = ""

    async def claim_and_start(self) -> int:
        """Claim as many runs as there are free slots; returns how many started."""
        free = self.ctx.settings.worker_concurrency - len(self.in_flight)
        if free <= 0:
            return 0
        claimed = await self.claim(free)
        for run in claimed:
            key = (run["tenant_id"], run["id"])
            task = asyncio.create_task(self._run(run), name=f"run {run['id']}")
            self.in_flight[key] = task
        return len(claimed)

    async def seconds_until_next(self, cap: float) -> float:
        """How long until the next queued run becomes due (a jittered fire, a retry, a
        buffered run's next look), at most ``cap``: such runs are not announced, so the claim
        loop wakes for them instead of finding them at its next poll in a bunch."""
        now = self.ctx.clock()
        async with self.ctx.db.connection() as conn:
            at = await self.ctx.db.fetch_val(conn, "runs_next_available", {"now": now})
        if not isinstance(at, datetime):
            return cap
        return min(cap, max(0.0, (at - now).total_seconds()))

    async def claim(self, limit: int) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due runs to this executor: all of them to a tenant that is
        alone with due runs, else to the tenants with the fewest runs in flight first
        (``runs_claim``)."""
        ctx, db = self.ctx, self.ctx.db
        async with db.transaction() as conn:
            claimed = await db.fetch_all(
                conn,
                "runs_claim",
                {
                    "owner": self.owner,
                    "now": ctx.clock(),
                    "limit": limit,
                    "lease_seconds": self.handler.lease_seconds,
                    "salt": f"{random.getrandbits(32):08x}",
                    "after": self.cursor,
                    "max_tenants": max(MIN_CLAIM_TENANTS, limit),
                },
            )
        if claimed:
            # The next claim starts after the last tenant this one looked at.
            self.cursor = claimed[0]["scan_end"] or ""
        return claimed

    async def _run(self, run: dict[str, Any]) -> None:
        try:
            await self.handler.attempt(ClaimedRun.from_row(run), self.owner)
        except BackendUnavailable:
            log.warning(
                "database lost during a run; its lease will lapse and it will be retried",
                extra={"run_id": run["id"]},
            )
        except Exception:
            log.exception("run attempt crashed", extra={"run_id": run["id"]})
        finally:
            self.in_flight.pop((run["tenant_id"], run["id"]), None)
            self.slot_freed.set()

    async def hand_back(self) -> int:
        """On shutdown: cancel in-flight attempts and return their runs to the queue."""
        runs = list(self.in_flight)
        for task in self.in_flight.values():
            task.cancel()
        await asyncio.gather(*self.in_flight.values(), return_exceptions=True)
        async with self.ctx.db.transaction() as conn:
            for tenant_id, run_id in runs:
                await self.ctx.db.execute(
                    conn,
                    "runs_handback",
                    {
                        "tenant_id": tenant_id,
                        "id": run_id,
                        "owner": self.owner,
                        "now": self.ctx.clock(),
                    },
                )
        return len(runs)


class Reaper:
    """Recovers runs whose worker died: retried while attempts remain, else failed once."""

    def __init__(self, ctx: AppContext, handler: InvocationHandler) -> None:
        self.ctx = ctx
        self.handler = handler

    async def sweep(self) -> int:
        ctx, db = self.ctx, self.ctx.db
        now = ctx.clock()
        handled = 0
        async with db.transaction() as conn:
            expired = await db.fetch_all(
                conn,
                "runs_expired_leases",
                {"now": now, "limit": 500, "default_max_attempts": ctx.settings.max_attempts},
            )
            for r in expired:
                if r["attempts"] < r["max_attempts"]:
                    await db.execute(
                        conn,
                        "run_release_lease",
                        {
                            "tenant_id": r["tenant_id"],
                            "id": r["id"],
                            "now": now,
                            "error": "worker lost; retrying",
                        },
                    )
                else:
                    await self.handler.fail_lost(conn, r["tenant_id"], r["id"], now)
                handled += 1
            if handled:
                await conn.execute(f"NOTIFY {RUNS_CHANNEL}")
        return handled


class PostgresWorker:
    """Runs scheduler, executor and reaper loops, and the maintenance loops every worker runs
    (``services.maintenance``), until ``stop()``. Each loop's passes are supervised: a loop
    that keeps failing backs off, logs, counts and shows in ``/readyz``."""

    def __init__(
        self,
        ctx: AppContext,
        handler: InvocationHandler,
        *,
        scheduler: bool = True,
        executor: bool = True,
        stop_grace_seconds: float = 10.0,
    ) -> None:
        self.ctx = ctx
        self.scheduler = Scheduler(ctx) if scheduler else None
        self.executor = Executor(ctx, handler) if executor else None
        self.reaper = Reaper(ctx, handler)
        self.stop_grace = stop_grace_seconds
        self._stop = asyncio.Event()
        self._wake_runs = asyncio.Event()
        self._wake_handles = asyncio.Event()
        self.supervisor = Supervisor(ctx.loops, self._stop, ctx.settings.loop_backoff_max_seconds)
        self.maintenance = Maintenance(ctx, self.supervisor)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loops = [self._listen()]
        if self.scheduler:
            loops.append(self._scheduler_loop())
        if self.executor:
            loops.append(self._executor_loop())
        loops.append(self._reaper_loop())
        loops.extend(self.maintenance.loops())
        tasks = [asyncio.create_task(c) for c in loops]
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.executor:
                await self._drain()

    async def _drain(self) -> None:
        assert self.executor is not None
        pending = list(self.executor.in_flight.values())
        if pending:
            log.info("waiting for in-flight runs", extra={"count": len(pending)})
            await asyncio.wait(pending, timeout=self.stop_grace)
        with contextlib.suppress(Exception):
            handed = await self.executor.hand_back()
            if handed:
                log.info("handed runs back to the queue", extra={"count": handed})

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    async def _listen(self) -> None:
        """LISTEN for new runs and changed handles, to wake the loops without polling."""
        while not self._stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.ctx.db.url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {RUNS_CHANNEL}")
                    await conn.execute(f"LISTEN {HANDLES_CHANNEL}")
                    async for note in conn.notifies():
                        (
                            self._wake_runs if note.channel == RUNS_CHANNEL else self._wake_handles
                        ).set()
            except (psycopg.OperationalError, OSError):
                await asyncio.sleep(1.0)

    async def _scheduler_loop(self) -> None:
        assert self.scheduler is not None
        sched = self.scheduler
        poll = self.ctx.settings.scheduler_poll_seconds
        batch = self.ctx.settings.scheduler_batch_size

        async def step() -> float:
            """One tick; returns how long to wait before the next (0: more are due now)."""
            result = await sched.tick()
            if result.handles - result.invalid >= batch:
                return 0.0
            return await sched.seconds_until_next(poll)

        while not self._stop.is_set():
            delay = await self.supervisor.guard("scheduler", step)
            if delay is None:
                continue  # failed; the supervisor has waited out its backoff
            if delay > 0:
                await self._wait(self._wake_handles, delay)

    async def _executor_loop(self) -> None:
        assert self.executor is not None
        ex = self.executor
        concurrency = self.ctx.settings.worker_concurrency
        while not self._stop.is_set():
            if 0 < concurrency - len(ex.in_flight) < concurrency // 2:
                # Only a few slots are free and the rest are busy: let a few more free up
                # (briefly) so one claim fills them together. A claim's cost is mostly fixed
                # (it looks at every tenant with due runs), so in a burst of fast calls,
                # claiming a slot or two at a time made the claims most of the database's work.
                await self._gather_slots(ex, concurrency // 2)
            started = await self.supervisor.guard("executor", ex.claim_and_start)
            if started:
                continue
            # Sleep until new runs are announced, a slot frees up, the next queued run is due,
            # or the poll interval ends.
            pause: float | None = EXECUTOR_POLL_SECONDS
            if len(ex.in_flight) < self.ctx.settings.worker_concurrency:
                pause = await self.supervisor.guard(
                    "executor", lambda: ex.seconds_until_next(EXECUTOR_POLL_SECONDS)
                )
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._wake_runs, ex.slot_freed)]
            await asyncio.wait(
                waiters,
                timeout=EXECUTOR_POLL_SECONDS if pause is None else pause,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for w in waiters:
                w.cancel()
            self._wake_runs.clear()
            ex.slot_freed.clear()

    async def _gather_slots(self, ex: Executor, wanted: int) -> None:
        """Wait until ``wanted`` slots are free, at most CLAIM_GATHER_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_GATHER_SECONDS
        while self.ctx.settings.worker_concurrency - len(ex.in_flight) < wanted:
            left = deadline - loop.time()
            if left <= 0:
                return
            ex.slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ex.slot_freed.wait(), left)

    async def _reaper_loop(self) -> None:
        while not self._stop.is_set():
            await self.supervisor.guard("reaper", self.reaper.sweep)
            await self._wait(asyncio.Event(), 5.0)


def lease_deadline(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
