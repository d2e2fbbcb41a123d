"""The invocation handler, shared by both job backends.

One call handles one *attempt* of a run that the caller has claimed (status ``running``,
leased to ``owner``): the checks of SPEC §9, the no-overlap lock, the Runner call, and the
bookkeeping. A retryable failure with attempts left is handed back with a time to retry at;
everything else finishes the run, exactly once (the finishing UPDATE matches the lease).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from extsched import metrics
from extsched.config import JobBackendKind
from extsched.crypto import SecretsUnreadable, install_aad
from extsched.db.batch import Batcher
from extsched.db.pool import Conn
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.domain.runs import RunStatus
from extsched.domain.timing import backoff_seconds
from extsched.errors import BackendUnavailable
from extsched.runner.client import RunnerClient, RunnerOutcome, one_line
from extsched.services import audit, handles
from extsched.services.context import AppContext
from extsched.services.schedules import DisabledReason

log = logging.getLogger("extsched.jobs")
T = TypeVar("T")

PREVIEW_BYTES = 1024


class SkipReason:
    OVERLAP = "overlap"
    MISSED = "missed"
    SCHEDULE_DISABLED = "schedule_disabled"
    INSTALL_DISABLED = "install_disabled"
    KILL_SWITCH = "kill_switch"
    DST_REPEAT = "dst_repeat"


@dataclass(frozen=True)
class AttemptResult:
    """``final`` runs are finished; otherwise ``retry_at`` says when to try again."""

    final: bool
    status: RunStatus | None = None
    retry_at: datetime | None = None


def _z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Prepared:
    """One row of ``runs_prepare``: the schedule with its install, version and endpoint."""

    row: dict[str, Any]


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
        self.prepares: Batcher[dict[str, Any], dict[str, Any] | None] = Batcher(
            self._prepare_many, key=_schedule_key, lane=lane, name="runs_prepare"
        )
        self.completions: Batcher[dict[str, Any], dict[str, Any] | None] = Batcher(
            self._complete_many, key=_schedule_key, lane=lane, name="runs_complete"
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claimed attempt may take before its lease lapses."""
        return (self.timeout + self.grace).total_seconds()

    async def attempt(self, run: dict[str, Any], owner: str) -> AttemptResult:
        """Handle one claimed attempt of ``run`` (a row with status running, leased to owner)."""
        started = time.monotonic()
        if run["attempts"] == 1 and run["started_at"] is not None:
            lag = (run["started_at"] - run["scheduled_for"]).total_seconds()
            if run["trigger"] == "schedule":
                metrics.FIRE_LAG.observe(max(0.0, lag))
        outcome_or_skip = await _retrying(lambda: self._prepare(run, owner))
        if isinstance(outcome_or_skip, AttemptResult):
            return outcome_or_skip
        prepared = outcome_or_skip
        row = prepared.row
        try:
            if row["i_secrets_encrypted"] is not None:
                # Proves the stored secrets are readable before anything is sent.
                self.ctx.secrets.decrypt(
                    row["i_secrets_encrypted"],
                    aad=install_aad(row["tenant_id"], str(row["install_id"])),
                )
        except SecretsUnreadable:
            return await self._finish(
                run,
                owner,
                RunStatus.FAILED,
                error="install configuration cannot be loaded: secrets cannot be decrypted",
                started=started,
            )
        envelope, headers = self.envelope(run, prepared)
        outcome = await self.runner.execute(envelope, headers)
        log.debug(
            "runner answered",
            extra={
                "tenant_id": run["tenant_id"],
                "schedule_id": run["schedule_id"],
                "run_id": run["id"],
                "attempt": run["attempts"],
                "status": outcome.status.value,
                "http_status": outcome.http_status,
                "duration_ms": outcome.duration_ms,
            },
        )
        if outcome.retryable and run["attempts"] < self.ctx.settings.max_attempts:
            return await self._retry(run, owner, outcome)
        return await self._finish(
            run,
            owner,
            outcome.status,
            error=outcome.error,
            http_status=outcome.http_status,
            response_preview=outcome.response_preview,
            started=started,
        )

    # ------------------------------------------------------------------ steps
    async def _prepare(self, run: dict[str, Any], owner: str) -> _Prepared | AttemptResult:
        """The checks of SPEC §9 and the overlap lock (``runs_prepare``, batched)."""
        db = self.ctx.db
        row = await self.prepares.submit(run)
        if row is None or row["i_id"] is None:
            # Deleted (with its runs) or uninstalled meanwhile: nothing left to record.
            return AttemptResult(final=True)
        if row["locked"]:
            return _Prepared(row)
        if row["kill_switch"]:
            return await self._finish(
                run, owner, RunStatus.SKIPPED, skip_reason=SkipReason.KILL_SWITCH
            )
        if not row["install_enabled"]:
            return await self._finish(
                run, owner, RunStatus.SKIPPED, skip_reason=SkipReason.INSTALL_DISABLED
            )
        if run["trigger"] == "schedule" and not row["enabled"]:
            return await self._finish(
                run, owner, RunStatus.SKIPPED, skip_reason=SkipReason.SCHEDULE_DISABLED
            )
        if row["ep_id"] is None or row["ep_version_id"] != row["i_version_id"]:
            error = (
                f"endpoint {row['endpoint_method']} {row['endpoint_path']} no longer exists in "
                f"{row['e_name']} {row['v_version']}; the schedule was disabled"
            )
            async with db.transaction() as conn:
                await self._disable(conn, row, DisabledReason.ENDPOINT_MISSING)
                completion = self._completion(run, owner, RunStatus.FAILED, error=error)
                (schedule,) = await self._complete_on(conn, [completion])
            return self._finished(run, completion, schedule)
        return await self._finish(run, owner, RunStatus.SKIPPED, skip_reason=SkipReason.OVERLAP)

    def envelope(self, run: dict[str, Any], p: _Prepared) -> tuple[dict[str, Any], dict[str, str]]:
        """The Runner request of SPEC §6 and its transport headers (values current now)."""
        row = p.row
        request_id = str(uuid.uuid4())
        run_id, schedule_id = str(run["id"]), str(row["id"])
        scheduled_for = _z(run["scheduled_for"])
        method = row["endpoint_method"]
        http_headers = {
            "x-extsched-trigger": run["trigger"],
            "x-extsched-schedule-id": schedule_id,
            "x-extsched-run-id": run_id,
            "x-extsched-scheduled-for": scheduled_for,
        }
        http: dict[str, Any] = {
            "method": method,
            "path": row["endpoint_path"],
            "query": {},
            "headers": http_headers,
        }
        payload = row["payload"]
        if method == "POST" and payload is not None:
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            http_headers["content-type"] = "application/json"
            http["body_b64"] = base64.b64encode(body).decode()
        envelope: dict[str, Any] = {
            "context": {
                "request_id": request_id,
                "tenant_id": run["tenant_id"],
                "extension_id": str(row["extension_id"]),
                "install_id": str(row["install_id"]),
                "version_id": str(row["i_version_id"]),
                "content_hash": row["v_content_hash"],
                "config": dict(row["i_config"]),
                "trigger": run["trigger"],
                "schedule_id": schedule_id,
                "run_id": run_id,
                "scheduled_for": scheduled_for,
                "attempt": run["attempts"],
            },
            "http": http,
            "limits": {"timeout_ms": self.ctx.settings.runner_timeout_ms},
            "providers": list(row["i_providers"]),
        }
        if row["i_secrets_encrypted"] is not None:
            envelope["secret_envelope"] = self.ctx.secrets.envelope(row["i_secrets_encrypted"])
        headers = {
            "content-type": "application/json",
            "x-request-id": request_id,
            "x-idempotency-key": f"{run_id}:{run['attempts']}",
            "x-tenant-id": run["tenant_id"],
            "x-extension-id": str(row["extension_id"]),
        }
        return envelope, headers

    async def _retry(
        self, run: dict[str, Any], owner: str, outcome: RunnerOutcome
    ) -> AttemptResult:
        ctx = self.ctx
        delay = backoff_seconds(
            run["attempts"], ctx.settings.retry_base_seconds, ctx.settings.retry_max_seconds
        )
        retry_at = ctx.clock() + timedelta(seconds=delay)
        async with ctx.db.transaction() as conn:
            await ctx.db.execute(
                conn,
                "run_requeue",
                {
                    "tenant_id": run["tenant_id"],
                    "id": run["id"],
                    "owner": owner,
                    "available_at": retry_at,
                    "error": outcome.error,
                    "http_status": outcome.http_status,
                },
            )
            # Keep the overlap lock through the backoff: the run is still in progress.
            await ctx.db.fetch_one(
                conn,
                "schedule_lock_acquire",
                {
                    "tenant_id": run["tenant_id"],
                    "schedule_id": run["schedule_id"],
                    "run_id": run["id"],
                    "now": ctx.clock(),
                    "until": retry_at + self.timeout + self.grace,
                },
            )
        log.info("run will be retried", extra={"run_id": run["id"], "retry_in_s": round(delay, 1)})
        return AttemptResult(final=False, retry_at=retry_at)

    async def _finish(
        self, run: dict[str, Any], owner: str, status: RunStatus, **kw: Any
    ) -> AttemptResult:
        completion = self._completion(run, owner, status, **kw)
        # Idempotent (it matches the lease), so a connection lost to a restart is retried
        # rather than leaving a run the Runner already answered to be re-sent after its lease.
        schedule = await _retrying(lambda: self.completions.submit(completion))
        limit = self.ctx.settings.pause_after_failures
        if (
            schedule is not None
            and limit
            and schedule["enabled"]
            and schedule["consecutive_failures"] >= limit
        ):
            async with self.ctx.db.transaction() as conn:
                await self._disable(conn, schedule, DisabledReason.CONSECUTIVE_FAILURES)
        return self._finished(run, completion, schedule)

    def _completion(
        self,
        run: dict[str, Any],
        owner: str,
        status: RunStatus,
        *,
        error: str | None = None,
        skip_reason: str | None = None,
        http_status: int | None = None,
        response_preview: str | None = None,
        started: float | None = None,
    ) -> dict[str, Any]:
        """One row of ``runs_complete``: how the run ended and what the schedule records."""
        now = self.ctx.clock()
        started_at = run["started_at"] or now
        error_line = None if error is None else one_line(error)
        if status is RunStatus.SUCCEEDED:
            last_error = None
        elif error_line:
            last_error = error_line
        else:
            last_error = f"skipped: {skip_reason}" if skip_reason else None
        return {
            "tenant_id": run["tenant_id"],
            "schedule_id": run["schedule_id"],
            "run_id": run["id"],
            "owner": owner,
            "status": status.value,
            "skip_reason": skip_reason,
            "finished_at": now,
            "duration_ms": max(0, int((now - started_at).total_seconds() * 1000)),
            "http_status": http_status,
            "error": error_line,
            "response_preview": response_preview,
            "last_error": last_error,
        }

    def _finished(
        self, run: dict[str, Any], completion: dict[str, Any], schedule: dict[str, Any] | None
    ) -> AttemptResult:
        status = RunStatus(completion["status"])
        if schedule is None:
            # Our lease lapsed and the run was handed on (or deleted): nothing is changed.
            log.warning("lost the lease before finishing", extra={"run_id": run["id"]})
            return AttemptResult(final=True)
        skip_reason = completion["skip_reason"]
        metrics.RUNS_TOTAL.labels(status=status.value, trigger=run["trigger"]).inc()
        if status is RunStatus.SKIPPED:
            metrics.RUNS_SKIPPED.labels(reason=skip_reason or "unknown").inc()
        else:
            metrics.RUN_DURATION.observe(completion["duration_ms"] / 1000)
        log.info(
            "run finished",
            extra={
                "tenant_id": run["tenant_id"],
                "schedule_id": run["schedule_id"],
                "run_id": run["id"],
                "status": status.value,
                "skip_reason": skip_reason,
                "attempts": run["attempts"],
            },
        )
        return AttemptResult(final=True, status=status)

    # ------------------------------------------------------------ batched statements
    async def _prepare_many(self, runs: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        now = self.ctx.clock()
        async with self.ctx.db.connection() as conn:
            rows = await self.ctx.db.fetch_all(
                conn,
                "runs_prepare",
                {
                    "tenant_ids": [r["tenant_id"] for r in runs],
                    "schedule_ids": [r["schedule_id"] for r in runs],
                    "run_ids": [r["id"] for r in runs],
                    "triggers": [r["trigger"] for r in runs],
                    "tenants": sorted({r["tenant_id"] for r in runs}),
                    "now": now,
                    "until": now + self.timeout + self.grace,
                },
            )
        by_run = {row["p_run_id"]: row for row in rows}
        return [by_run.get(r["id"]) for r in runs]

    async def _complete_many(self, items: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        async with self.ctx.db.connection() as conn:
            return await self._complete_on(conn, items)

    async def _complete_on(
        self, conn: Conn, items: list[dict[str, Any]]
    ) -> list[dict[str, Any] | None]:
        """Run ``runs_complete`` for ``items`` on ``conn``; the schedule row per item, or None
        where the lease was lost."""
        rows = await self.ctx.db.fetch_all(
            conn,
            "runs_complete",
            {
                "tenant_ids": [c["tenant_id"] for c in items],
                "run_ids": [c["run_id"] for c in items],
                "owners": [c["owner"] for c in items],
                "statuses": [c["status"] for c in items],
                "skip_reasons": [c["skip_reason"] for c in items],
                "finished_ats": [c["finished_at"] for c in items],
                "duration_ms": [c["duration_ms"] for c in items],
                "http_statuses": [c["http_status"] for c in items],
                "errors": [c["error"] for c in items],
                "response_previews": [c["response_preview"] for c in items],
                "last_errors": [c["last_error"] for c in items],
                "tenants": sorted({c["tenant_id"] for c in items}),
            },
        )
        by_run = {row["run_id"]: row for row in rows}
        return [by_run.get(c["run_id"]) for c in items]

    async def _disable(self, conn: Conn, schedule: dict[str, Any], reason: str) -> None:
        """Disable a schedule on the system's behalf (audited, handle paused)."""
        db = self.ctx.db
        row = await db.fetch_one(
            conn,
            "schedule_auto_disable",
            {"tenant_id": schedule["tenant_id"], "schedule_id": schedule["id"], "reason": reason},
        )
        if row is None:
            return
        await handles.sync_schedules(self.ctx, conn, row["tenant_id"], row["install_id"], [row])
        await audit.record(
            db,
            conn,
            tenant_id=row["tenant_id"],
            extension_id=row["extension_id"],
            actor=Actor.system(),
            action="schedule.auto_disable",
            target_type="schedule",
            target_id=row["id"],
            changes={
                "enabled": {"from": True, "to": False},
                "disabled_reason": reason,
                "consecutive_failures": row["consecutive_failures"],
            },
        )


def _schedule_key(item: dict[str, Any]) -> tuple[str, Any]:
    return (item["tenant_id"], item["schedule_id"])


def _tenant_key(item: dict[str, Any]) -> str:
    tenant_id: str = item["tenant_id"]
    return tenant_id


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
