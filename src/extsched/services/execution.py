"""The run rules of SPEC §9, shared by both job backends: this module decides, the workers
(``workers/``) only claim runs and drive attempts.

One call handles one *attempt* of a run that the caller has claimed (status ``running``,
leased to ``owner``): the checks before invoking, the no-overlap lock, the Runner call, the
outcome and the bookkeeping (auto-disable and audit included). A retryable failure with
attempts left is handed back with a time to retry at; everything else finishes the run,
exactly once (the finishing UPDATE matches the lease).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from extsched import metrics, tracing
from extsched.config import JobBackendKind
from extsched.crypto import SecretsUnreadable, install_aad
from extsched.db.batch import Batcher
from extsched.db.pool import Conn
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.domain.notify import EventType
from extsched.domain.runs import DisabledReason, RunStatus, SkipReason, Trigger
from extsched.domain.timing import backoff_seconds
from extsched.errors import BackendUnavailable
from extsched.runner import envelope
from extsched.runner.client import RunnerClient, RunnerOutcome, one_line
from extsched.services import audit, handles, notifications
from extsched.services.context import AppContext

log = logging.getLogger("extsched.jobs")
T = TypeVar("T")

PREVIEW_BYTES = 1024
BUFFER_POLL = timedelta(seconds=1)


@dataclass(frozen=True)
class AttemptResult:
    """``final`` runs are finished; otherwise ``retry_at`` says when to try again."""

    final: bool
    status: RunStatus | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run leased to this worker for one attempt (a row of a claim statement)."""

    id: uuid.UUID
    tenant_id: str
    schedule_id: uuid.UUID
    trigger: Trigger
    scheduled_for: datetime
    attempts: int
    started_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ClaimedRun:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            schedule_id=row["schedule_id"],
            trigger=Trigger(row["trigger"]),
            scheduled_for=row["scheduled_for"],
            attempts=row["attempts"],
            started_at=row["started_at"],
        )


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """One row of ``runs_prepare``: the schedule with its install, version and endpoint as
    they are now, and whether this run holds the schedule's overlap lock."""

    tenant_id: str
    schedule_id: uuid.UUID
    extension_id: uuid.UUID
    install_id: uuid.UUID | None
    enabled: bool
    payload: Any
    endpoint_method: str
    endpoint_path: str
    install_enabled: bool
    version_id: uuid.UUID | None
    config: dict[str, str]
    secrets_encrypted: bytes | None
    providers: list[str]
    content_hash: str | None
    version: str | None
    extension_name: str | None
    kill_switch: bool
    endpoint_present: bool
    locked: bool
    overlap: str
    max_attempts: int | None
    timeout_ms: int | None
    buffered_until: datetime | None

    def attempts_allowed(self, default: int) -> int:
        return self.max_attempts or default

    def timeout(self, default_ms: int) -> timedelta:
        return timedelta(milliseconds=self.timeout_ms or default_ms)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PreparedRun:
        return cls(
            tenant_id=row["tenant_id"],
            schedule_id=row["id"],
            extension_id=row["extension_id"],
            install_id=row["i_id"],
            enabled=row["enabled"],
            # A run-now's one-off payload replaces the schedule's for that run only.
            payload=row["r_payload_override"]
            if row["r_payload_override"] is not None
            else row["payload"],
            endpoint_method=row["endpoint_method"],
            endpoint_path=row["endpoint_path"],
            install_enabled=row["install_enabled"],
            version_id=row["i_version_id"],
            config=dict(row["i_config"] or {}),
            secrets_encrypted=row["i_secrets_encrypted"],
            providers=list(row["i_providers"] or []),
            content_hash=row["v_content_hash"],
            version=row["v_version"],
            extension_name=row["e_name"],
            kill_switch=row["kill_switch"],
            # The endpoint must still exist in the install's current version.
            endpoint_present=row["ep_id"] is not None
            and row["ep_version_id"] == row["i_version_id"],
            locked=row["locked"],
            overlap=row["overlap"] or "skip",
            max_attempts=row["max_attempts"],
            timeout_ms=row["timeout_ms"],
            buffered_until=row["buffered_until"],
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """One row of ``runs_complete``: how the run ended and what its schedule records."""

    tenant_id: str
    schedule_id: uuid.UUID
    run_id: uuid.UUID
    owner: str
    status: RunStatus
    skip_reason: SkipReason | None
    finished_at: datetime
    duration_ms: int
    http_status: int | None
    error: str | None
    response_preview: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ScheduleAfterRun:
    """The schedule's bookkeeping as ``runs_complete`` left it."""

    tenant_id: str
    schedule_id: uuid.UUID
    enabled: bool
    consecutive_failures: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScheduleAfterRun:
        return cls(row["tenant_id"], row["id"], row["enabled"], row["consecutive_failures"])


class InvocationHandler:
    def __init__(self, ctx: AppContext, runner: RunnerClient) -> None:
        self.ctx = ctx
        self.runner = runner
        s = ctx.settings
        self.grace = timedelta(seconds=s.lease_grace_seconds)
        self.timeout = timedelta(milliseconds=s.runner_timeout_ms)
        # Concurrent attempts share their two database steps: one statement per batch. The
        # Temporal backend is the one for Citus: there a batch holds one tenant, so each
        # statement stays on one shard; the postgres backend (one PostgreSQL) mixes tenants.
        lane = _tenant_key if s.job_backend is JobBackendKind.TEMPORAL else None
        self.prepares: Batcher[ClaimedRun, PreparedRun | None] = Batcher(
            self._prepare_many, key=_schedule_key, lane=lane, name="runs_prepare"
        )
        self.completions: Batcher[Completion, ScheduleAfterRun | None] = Batcher(
            self._complete_many, key=_schedule_key, lane=lane, name="runs_complete"
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claimed attempt may take before its lease lapses."""
        return (self.timeout + self.grace).total_seconds()

    async def attempt(self, run: ClaimedRun, owner: str) -> AttemptResult:
        """Handle one claimed attempt of ``run`` (status running, leased to ``owner``)."""
        outcome_or_skip = await _retrying(lambda: self._prepare(run, owner))
        if isinstance(outcome_or_skip, AttemptResult):
            return outcome_or_skip
        prepared = outcome_or_skip
        if run.attempts == 1 and run.started_at is not None and run.trigger is Trigger.SCHEDULE:
            # Observed once the run really starts: a buffered run's looks do not count.
            lag = (run.started_at - run.scheduled_for).total_seconds()
            metrics.FIRE_LAG.observe(max(0.0, lag))
        try:
            secret_envelope = self._secret_envelope(prepared)
        except SecretsUnreadable:
            return await self._finish(
                run,
                owner,
                RunStatus.FAILED,
                error="install configuration cannot be loaded: secrets cannot be decrypted",
            )
        body, headers = envelope.build(self.invocation(run, prepared, secret_envelope))
        span_attributes: dict[str, str | int] = {
            "extsched.run.id": str(run.id),
            "extsched.run.trigger": run.trigger.value,
            "extsched.run.attempt": run.attempts,
            "extsched.schedule.id": str(run.schedule_id),
            "extsched.tenant.id": run.tenant_id,
        }
        with tracing.attempt(run.id, run.attempts, span_attributes) as span:
            headers["traceparent"] = span.traceparent
            outcome = await self.runner.execute(body, headers)
            span.outcome(outcome.status.value, outcome.http_status, outcome.error)
        log.debug(
            "runner answered",
            extra={
                "tenant_id": run.tenant_id,
                "schedule_id": run.schedule_id,
                "run_id": run.id,
                "attempt": run.attempts,
                "status": outcome.status.value,
                "http_status": outcome.http_status,
                "duration_ms": outcome.duration_ms,
            },
        )
        if outcome.retryable and run.attempts < prepared.attempts_allowed(
            self.ctx.settings.max_attempts
        ):
            return await self._retry(run, owner, outcome, prepared)
        return await self._finish(
            run,
            owner,
            outcome.status,
            error=outcome.error,
            http_status=outcome.http_status,
            response_preview=outcome.response_preview,
        )

    # ------------------------------------------------------------------ steps
    async def _prepare(self, run: ClaimedRun, owner: str) -> PreparedRun | AttemptResult:
        """The checks of SPEC §9 and the overlap lock (``runs_prepare``, batched)."""
        p = await self.prepares.submit(run)
        if p is None or p.install_id is None:
            # Deleted (with its runs) or uninstalled meanwhile: nothing left to record.
            return AttemptResult(final=True)
        if p.locked:
            return p
        if p.kill_switch:
            return await self._finish(run, owner, RunStatus.SKIPPED, skip=SkipReason.KILL_SWITCH)
        if not p.install_enabled:
            return await self._finish(
                run, owner, RunStatus.SKIPPED, skip=SkipReason.INSTALL_DISABLED
            )
        if run.trigger is Trigger.SCHEDULE and not p.enabled:
            return await self._finish(
                run, owner, RunStatus.SKIPPED, skip=SkipReason.SCHEDULE_DISABLED
            )
        if p.buffered_until is not None:
            return await self._defer(run, owner, p.buffered_until)
        if not p.endpoint_present:
            error = (
                f"endpoint {p.endpoint_method} {p.endpoint_path} no longer exists in "
                f"{p.extension_name} {p.version}; the schedule was disabled"
            )
            async with self.ctx.db.transaction() as conn:
                await self.disable(
                    conn, p.tenant_id, p.schedule_id, DisabledReason.ENDPOINT_MISSING
                )
                completion = self._completion(run, owner, RunStatus.FAILED, error=error)
                (schedule,) = await self._complete_on(conn, [completion])
            return self._finished(run, completion, schedule)
        return await self._finish(run, owner, RunStatus.SKIPPED, skip=SkipReason.OVERLAP)

    def _secret_envelope(self, p: PreparedRun) -> dict[str, Any] | None:
        """The install's sealed secrets, after proving they are readable (nothing is sent
        for an install whose configuration cannot be loaded)."""
        if p.secrets_encrypted is None:
            return None
        self.ctx.secrets.decrypt(
            p.secrets_encrypted, aad=install_aad(p.tenant_id, str(p.install_id))
        )
        return self.ctx.secrets.envelope(p.secrets_encrypted)

    def invocation(
        self, run: ClaimedRun, p: PreparedRun, secret_envelope: dict[str, Any] | None
    ) -> envelope.Invocation:
        """What this attempt sends, with the install's values as they are now."""
        assert p.install_id is not None and p.version_id is not None
        return envelope.Invocation(
            request_id=uuid.uuid4(),
            tenant_id=run.tenant_id,
            extension_id=p.extension_id,
            install_id=p.install_id,
            version_id=p.version_id,
            content_hash=p.content_hash or "",
            config=p.config,
            providers=p.providers,
            trigger=run.trigger.value,
            schedule_id=p.schedule_id,
            run_id=run.id,
            scheduled_for=run.scheduled_for,
            attempt=run.attempts,
            method=p.endpoint_method,
            path=p.endpoint_path,
            payload=p.payload,
            timeout_ms=p.timeout_ms or self.ctx.settings.runner_timeout_ms,
            secret_envelope=secret_envelope,
        )

    async def _defer(self, run: ClaimedRun, owner: str, running_until: datetime) -> AttemptResult:
        """``buffer_one``: wait for the running run to end. The buffered run looks again every
        second (at most until the running run's lock lapses), on both backends alike."""
        now = self.ctx.clock()
        retry_at = min(running_until, now + BUFFER_POLL)
        async with self.ctx.db.transaction() as conn:
            await self.ctx.db.execute(
                conn,
                "run_defer",
                {
                    "tenant_id": run.tenant_id,
                    "id": run.id,
                    "owner": owner,
                    "available_at": retry_at,
                },
            )
        return AttemptResult(final=False, retry_at=retry_at)

    async def _retry(
        self, run: ClaimedRun, owner: str, outcome: RunnerOutcome, p: PreparedRun
    ) -> AttemptResult:
        ctx = self.ctx
        delay = backoff_seconds(
            run.attempts, ctx.settings.retry_base_seconds, ctx.settings.retry_max_seconds
        )
        retry_at = ctx.clock() + timedelta(seconds=delay)
        async with ctx.db.transaction() as conn:
            await ctx.db.execute(
                conn,
                "run_requeue",
                {
                    "tenant_id": run.tenant_id,
                    "id": run.id,
                    "owner": owner,
                    "available_at": retry_at,
                    "error": outcome.error,
                    "http_status": outcome.http_status,
                },
            )
            if p.overlap != "allow":
                # Keep the overlap lock through the backoff: the run is still in progress.
                await ctx.db.fetch_one(
                    conn,
                    "schedule_lock_acquire",
                    {
                        "tenant_id": run.tenant_id,
                        "schedule_id": run.schedule_id,
                        "run_id": run.id,
                        "now": ctx.clock(),
                        "until": retry_at + p.timeout(ctx.settings.runner_timeout_ms) + self.grace,
                    },
                )
        log.info("run will be retried", extra={"run_id": run.id, "retry_in_s": round(delay, 1)})
        return AttemptResult(final=False, retry_at=retry_at)

    async def _finish(
        self,
        run: ClaimedRun,
        owner: str,
        status: RunStatus,
        *,
        skip: SkipReason | None = None,
        error: str | None = None,
        http_status: int | None = None,
        response_preview: str | None = None,
    ) -> AttemptResult:
        completion = self._completion(
            run,
            owner,
            status,
            skip=skip,
            error=error,
            http_status=http_status,
            response_preview=response_preview,
        )
        # Idempotent (it matches the lease), so a connection lost to a restart is retried
        # rather than leaving a run the Runner already answered to be re-sent after its lease.
        schedule = await _retrying(lambda: self.completions.submit(completion))
        limit = self.ctx.settings.pause_after_failures
        if (
            schedule is not None
            and limit
            and schedule.enabled
            and schedule.consecutive_failures >= limit
        ):
            async with self.ctx.db.transaction() as conn:
                await self.disable(
                    conn,
                    schedule.tenant_id,
                    schedule.schedule_id,
                    DisabledReason.CONSECUTIVE_FAILURES,
                )
        return self._finished(run, completion, schedule)

    def _completion(
        self,
        run: ClaimedRun,
        owner: str,
        status: RunStatus,
        *,
        skip: SkipReason | None = None,
        error: str | None = None,
        http_status: int | None = None,
        response_preview: str | None = None,
    ) -> Completion:
        now = self.ctx.clock()
        started_at = run.started_at or now
        error_line = None if error is None else one_line(error)
        if status is RunStatus.SUCCEEDED:
            last_error = None
        elif error_line:
            last_error = error_line
        else:
            last_error = f"skipped: {skip}" if skip else None
        return Completion(
            tenant_id=run.tenant_id,
            schedule_id=run.schedule_id,
            run_id=run.id,
            owner=owner,
            status=status,
            skip_reason=skip,
            finished_at=now,
            duration_ms=max(0, int((now - started_at).total_seconds() * 1000)),
            http_status=http_status,
            error=error_line,
            response_preview=response_preview,
            last_error=last_error,
        )

    def _finished(
        self, run: ClaimedRun, completion: Completion, schedule: ScheduleAfterRun | None
    ) -> AttemptResult:
        status = completion.status
        if schedule is None:
            # Our lease lapsed and the run was handed on (or deleted): nothing is changed.
            log.warning("lost the lease before finishing", extra={"run_id": run.id})
            return AttemptResult(final=True)
        skip = completion.skip_reason
        tracing.run_finished(
            run.id,
            scheduled_for=run.scheduled_for,
            started_at=run.started_at or completion.finished_at,
            finished_at=completion.finished_at,
            attributes={
                "extsched.run.id": str(run.id),
                "extsched.run.trigger": run.trigger.value,
                "extsched.run.status": status.value,
                "extsched.run.attempts": run.attempts,
                "extsched.schedule.id": str(run.schedule_id),
            },
        )
        metrics.RUNS_TOTAL.labels(status=status.value, trigger=run.trigger.value).inc()
        if status is RunStatus.SKIPPED:
            metrics.RUNS_SKIPPED.labels(reason=skip or "unknown").inc()
        else:
            metrics.RUN_DURATION.observe(completion.duration_ms / 1000)
        log.info(
            "run finished",
            extra={
                "tenant_id": run.tenant_id,
                "schedule_id": run.schedule_id,
                "run_id": run.id,
                "status": status.value,
                "skip_reason": skip,
                "attempts": run.attempts,
            },
        )
        return AttemptResult(final=True, status=status)

    # ------------------------------------------------------------ batched statements
    async def _prepare_many(self, runs: list[ClaimedRun]) -> list[PreparedRun | None]:
        now = self.ctx.clock()
        async with self.ctx.db.connection() as conn:
            rows = await self.ctx.db.fetch_all(
                conn,
                "runs_prepare",
                {
                    "tenant_ids": [r.tenant_id for r in runs],
                    "schedule_ids": [r.schedule_id for r in runs],
                    "run_ids": [r.id for r in runs],
                    "triggers": [r.trigger.value for r in runs],
                    "tenants": sorted({r.tenant_id for r in runs}),
                    "now": now,
                    "grace_seconds": self.grace.total_seconds(),
                    "default_timeout_ms": self.ctx.settings.runner_timeout_ms,
                },
            )
        by_run = {row["p_run_id"]: row for row in rows}
        return [
            PreparedRun.from_row(row) if (row := by_run.get(r.id)) is not None else None
            for r in runs
        ]

    async def _complete_many(self, items: list[Completion]) -> list[ScheduleAfterRun | None]:
        async with self.ctx.db.connection() as conn:
            return await self._complete_on(conn, items)

    async def _complete_on(
        self, conn: Conn, items: list[Completion]
    ) -> list[ScheduleAfterRun | None]:
        """Run ``runs_complete`` for ``items`` on ``conn``; the schedule per item, or None
        where the lease was lost."""
        rows = await self.ctx.db.fetch_all(
            conn,
            "runs_complete",
            {
                "tenant_ids": [c.tenant_id for c in items],
                "run_ids": [c.run_id for c in items],
                "owners": [c.owner for c in items],
                "statuses": [c.status.value for c in items],
                "skip_reasons": [c.skip_reason for c in items],
                "finished_ats": [c.finished_at for c in items],
                "duration_ms": [c.duration_ms for c in items],
                "http_statuses": [c.http_status for c in items],
                "errors": [c.error for c in items],
                "response_previews": [c.response_preview for c in items],
                "last_errors": [c.last_error for c in items],
                # Ids for the notifications an outcome may queue (used only if one is).
                "notify_ids": [uuid7() for _ in items],
                "tenants": sorted({c.tenant_id for c in items}),
            },
        )
        by_run = {row["run_id"]: row for row in rows}
        return [
            ScheduleAfterRun.from_row(row) if (row := by_run.get(c.run_id)) is not None else None
            for c in items
        ]

    async def fail_lost(self, conn: Conn, tenant_id: str, run_id: uuid.UUID, now: datetime) -> bool:
        """A run whose last allowed attempt (the schedule's ``max_attempts``) lost its worker
        fails once instead of calling the Runner again, on both backends (the postgres
        reaper, the Temporal activity's retry): its lock is released and its schedule
        records the failure. False if it was not running any more."""
        db = self.ctx.db
        failed = await db.fetch_one(
            conn,
            "run_fail_lost",
            {
                "tenant_id": tenant_id,
                "id": run_id,
                "now": now,
                "error": "worker lost during the last attempt",
            },
        )
        if failed is None:
            return False
        key = {"tenant_id": tenant_id, "schedule_id": failed["schedule_id"]}
        await db.execute(conn, "schedule_lock_release", {**key, "run_id": run_id})
        schedule = await db.fetch_one(
            conn,
            "schedule_record_outcome",
            {**key, "at": now, "status": RunStatus.FAILED.value, "error": failed["error"]},
        )
        if schedule is not None:
            await notifications.enqueue(
                db,
                conn,
                tenant_id,
                EventType.RUN_FAILED,
                now,
                notifications.schedule_facts(
                    schedule,
                    run={
                        "id": failed["id"],
                        "status": RunStatus.FAILED.value,
                        "scheduled_for": failed["scheduled_for"],
                        "http_status": None,
                        "error": failed["error"],
                    },
                ),
                coalesce_key=f"run_failed:{schedule['id']}",
            )
        return True

    async def disable(
        self, conn: Conn, tenant_id: str, schedule_id: uuid.UUID, reason: DisabledReason
    ) -> None:
        """Disable a schedule on the system's behalf (audited, handle paused)."""
        db = self.ctx.db
        row = await db.fetch_one(
            conn,
            "schedule_auto_disable",
            {"tenant_id": tenant_id, "schedule_id": schedule_id, "reason": reason.value},
        )
        if row is None:
            return
        await handles.sync_schedules(self.ctx, conn, row["tenant_id"], row["install_id"], [row])
        await audit.record(
            db,
            conn,
            Actor.system(),
            audit.AuditAction.SCHEDULE_AUTO_DISABLE,
            audit.Target.schedule(row),
            {
                "enabled": {"from": True, "to": False},
                "disabled_reason": reason.value,
                "consecutive_failures": row["consecutive_failures"],
            },
        )
        await notifications.enqueue(
            db,
            conn,
            tenant_id,
            EventType.SCHEDULE_DISABLED,
            self.ctx.clock(),
            notifications.schedule_facts(row, disabled_reason=reason.value),
        )


def _schedule_key(item: ClaimedRun | Completion) -> tuple[str, uuid.UUID]:
    return (item.tenant_id, item.schedule_id)


def _tenant_key(item: ClaimedRun | Completion) -> str:
    return item.tenant_id


def new_owner(kind: str) -> str:
    """A lease owner id for this worker process."""
    return f"{kind}:{uuid7()}"


async def _retrying(step: Callable[[], Awaitable[T]], attempts: int = 4, delay: float = 0.5) -> T:
    """Run a database step, retrying a few times when the database is (briefly) unavailable,
    e.g. a pooled connection that died with a server restart."""
    for attempt in range(1, attempts + 1):
        try:
            return await step()
        except BackendUnavailable:
            if attempt == attempts:
                raise
            await asyncio.sleep(delay * attempt)
    raise AssertionError("unreachable")
