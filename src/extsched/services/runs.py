"""Run-now (idempotent, rate-limited) and run history."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from extsched.db.pool import Conn
from extsched.domain.auth import Principal
from extsched.domain.ids import uuid7
from extsched.domain.pagination import before_id, encode_cursor
from extsched.domain.runs import Trigger
from extsched.errors import (
    InstallDisabled,
    NotFound,
    RateLimited,
    SchedulesPaused,
    ValidationFailed,
    field_error,
)
from extsched.jobs.backend import RunRequest
from extsched.services import audit, schedules, tenants
from extsched.services.context import AppContext
from extsched.services.schedules import UNSET, check_payload

IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Run:
    id: uuid.UUID
    schedule_id: uuid.UUID
    trigger: str
    scheduled_for: datetime
    status: str
    skip_reason: str | None
    skipped_count: int | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    http_status: int | None
    error: str | None
    response_preview: str | None
    replay_of: uuid.UUID | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Run:
        return cls(**{k: r[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RunNowResult:
    run: Run
    created: bool


async def _take_rate(ctx: AppContext, conn: Conn, tenant_id: str, schedule_id: uuid.UUID) -> None:
    """Count one hit for the schedule and one for its tenant in fixed one-minute windows
    shared by every API process (one statement); over either limit rolls both back."""
    now = ctx.clock()
    window = now.replace(second=0, microsecond=0)
    rows = await ctx.db.fetch_all(
        conn,
        "rate_limit_hits",
        {
            "tenant_id": tenant_id,
            "schedule_bucket": f"schedule:{schedule_id}",
            "window_start": window,
        },
    )
    hits = {r["bucket"].split(":", 1)[0]: r["hits"] for r in rows}
    limits = {
        "schedule": ctx.settings.run_now_per_schedule,
        "tenant": ctx.settings.run_now_per_tenant,
    }
    for scope, limit in limits.items():
        if hits[scope] > limit:
            retry_after = max(1, math.ceil(60 - (now - window).total_seconds()))
            raise RateLimited(
                f"run-now limit reached ({limit} per minute); retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
                details={"limit": limit, "scope": scope},
            )


async def run_now(
    ctx: AppContext,
    principal: Principal,
    schedule_id: uuid.UUID,
    idempotency_key: str | None,
    extension_id: uuid.UUID | None = None,
    *,
    payload: Any = UNSET,
) -> RunNowResult:
    """Queue a run of a schedule now, with the schedule's payload or, for this run only,
    ``payload``; the same key within 24 h returns the first run."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise field_error("Idempotency-Key", "must be 1-200 characters")
    override = None
    if payload is not UNSET and payload is not None:
        errors: dict[str, str] = {}
        check_payload(ctx, payload, errors)
        if errors:
            raise ValidationFailed("the payload is invalid", field_errors=errors)
        override = payload
    return await _start(
        ctx,
        principal,
        schedule_id,
        extension_id=extension_id,
        trigger=Trigger.RUN_NOW,
        idempotency_key=idempotency_key,
        payload_override=override,
    )


async def replay(ctx: AppContext, principal: Principal, run_id: uuid.UUID) -> RunNowResult:
    """A new run of the same schedule for the original ``scheduled_for`` (``trigger:
    "replay"``), with today's payload and configuration; checks and limits as run-now."""
    assert principal.tenant_id is not None
    async with ctx.db.connection() as conn:
        original = await ctx.db.fetch_one(
            conn, "run_get", {"tenant_id": principal.tenant_id, "id": run_id}
        )
    if original is None:
        raise NotFound("unknown run")
    return await _start(
        ctx,
        principal,
        original["schedule_id"],
        trigger=Trigger.REPLAY,
        scheduled_for=original["scheduled_for"],
        replay_of=run_id,
    )


async def _start(
    ctx: AppContext,
    principal: Principal,
    schedule_id: uuid.UUID,
    *,
    trigger: Trigger,
    extension_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    scheduled_for: datetime | None = None,
    payload_override: Any = None,
    replay_of: uuid.UUID | None = None,
) -> RunNowResult:
    """Queue a run-now or a replay: the schedule must exist (enabled or not), its install be
    enabled and the tenant's kill switch off; rate-limited per schedule and per tenant."""
    assert principal.tenant_id is not None
    tenant_id = principal.tenant_id
    db = ctx.db
    now = ctx.clock()
    async with db.transaction() as conn:
        schedule = await schedules.load_for_change(ctx, conn, tenant_id, schedule_id, extension_id)
        if idempotency_key is not None:
            await db.execute(
                conn,
                "run_forget_idempotency_key",
                {
                    "tenant_id": tenant_id,
                    "schedule_id": schedule_id,
                    "idempotency_key": idempotency_key,
                    "cutoff": now - IDEMPOTENCY_TTL,
                },
            )
            existing = await db.fetch_one(
                conn,
                "run_by_idempotency_key",
                {
                    "tenant_id": tenant_id,
                    "schedule_id": schedule_id,
                    "idempotency_key": idempotency_key,
                },
            )
            if existing is not None:
                return RunNowResult(Run.from_row(existing), created=False)
        if not schedule["i_enabled"]:
            raise InstallDisabled()
        if schedule["t_kill_switch"]:
            raise SchedulesPaused()
        run_id = uuid7()
        # A concurrent use of the same Idempotency-Key is a field error, by the unique
        # constraint (db.pool.UNIQUE_VIOLATIONS); no savepoint: a conflict ends it all anyway.
        row = await db.fetch_one(
            conn,
            "run_insert_now",
            {
                "tenant_id": tenant_id,
                "id": run_id,
                "schedule_id": schedule_id,
                "install_id": schedule["install_id"],
                "trigger": trigger.value,
                "scheduled_for": scheduled_for or now,
                "now": now,
                "idempotency_key": idempotency_key,
                "payload_override": None
                if payload_override is None
                else json.dumps(payload_override),
                "replay_of": replay_of,
            },
        )
        assert row is not None
        changes: dict[str, Any] = {"run_id": str(run_id)}
        if replay_of is not None:
            changes["replay_of"] = str(replay_of)
        if payload_override is not None:
            changes["payload"] = payload_override
        await audit.record(
            db,
            conn,
            principal.actor,
            audit.AuditAction.SCHEDULE_REPLAY
            if trigger is Trigger.REPLAY
            else audit.AuditAction.SCHEDULE_RUN_NOW,
            audit.Target.schedule(schedule),
            changes,
        )
        # The tenant's counter row is shared by all its run-nows, and held to the commit:
        # taken last (the run and its audit entry are written without it, in this same
        # transaction; over a limit, all of it rolls back), before only the backend call,
        # which a rollback would not undo on Temporal.
        await _take_rate(ctx, conn, tenant_id, schedule_id)
        await ctx.backend.start_run(
            conn, RunRequest(tenant_id, schedule["install_id"], schedule_id, run_id)
        )
        return RunNowResult(Run.from_row(row), created=True)


async def history(
    ctx: AppContext,
    principal: Principal,
    schedule_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    extension_id: uuid.UUID | None = None,
) -> tuple[list[Run], str | None]:
    """Runs of a schedule, newest first, with an opaque cursor."""
    assert principal.tenant_id is not None
    tenant_id = principal.tenant_id
    before = before_id(cursor)
    db = ctx.db
    async with db.connection() as conn:
        await tenants.require_feature(db, conn, tenant_id)
        schedule = await db.fetch_one(
            conn, "schedule_get", {"tenant_id": tenant_id, "id": schedule_id}
        )
        if schedule is None or (
            extension_id is not None and schedule["extension_id"] != extension_id
        ):
            raise NotFound("unknown schedule")
        rows = await db.fetch_all(
            conn,
            "runs_page",
            {
                "tenant_id": tenant_id,
                "schedule_id": schedule_id,
                "before_id": before,
                "limit": limit + 1,
            },
        )
    items = [Run.from_row(r) for r in rows[:limit]]
    next_cursor = encode_cursor([str(items[-1].id)]) if len(rows) > limit else None
    return items, next_cursor


async def get_run(ctx: AppContext, tenant_id: str, run_id: uuid.UUID) -> Run:
    async with ctx.db.connection() as conn:
        row = await ctx.db.fetch_one(conn, "run_get", {"tenant_id": tenant_id, "id": run_id})
    if row is None:
        raise NotFound("unknown run")
    return Run.from_row(row)
