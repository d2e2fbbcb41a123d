"""Run-now (idempotent, rate-limited) and run history."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from extsched.db.pool import Conn
from extsched.domain.auth import Principal
from extsched.domain.ids import uuid7
from extsched.domain.pagination import after_time_id, time_id_cursor
from extsched.domain.runs import RunFilter, Trigger
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


def _rate_params(tenant_id: str, schedule_id: uuid.UUID, window: datetime) -> dict[str, Any]:
    """``rate_limit_hits``: one hit for the schedule and one for its tenant in the fixed
    one-minute window starting at ``window``, in counters shared by every API process."""
    return {
        "tenant_id": tenant_id,
        "schedule_bucket": f"schedule:{schedule_id}",
        "window_start": window,
    }


def _check_rate(
    ctx: AppContext, rows: list[dict[str, Any]], now: datetime, window: datetime
) -> None:
    """Refuse a run-now over either limit (the caller's transaction then rolls both hits
    back)."""
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
        changes: dict[str, Any] = {"run_id": str(run_id)}
        if replay_of is not None:
            changes["replay_of"] = str(replay_of)
        if payload_override is not None:
            changes["payload"] = payload_override
        request = RunRequest(tenant_id, schedule["install_id"], schedule_id, run_id)
        window = now.replace(second=0, microsecond=0)
        # The run, its audit entry, a transactional backend's start (postgres: a notification,
        # sent at the commit) and the rate-limit hits go in one round trip. The tenant's counter
        # row is shared by all its run-nows and held to the commit: taken last, so over a
        # limit all of it rolls back. A remote backend (Temporal) starts the run only after
        # the check, as a rollback would not undo it. A concurrent use of the same
        # Idempotency-Key is a field error, by the unique constraint (db.pool.UNIQUE_VIOLATIONS).
        early = ctx.backend.transactional
        async with db.pipeline(conn):
            inserted = await db.send(
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
            if early:
                await ctx.backend.start_run(conn, request)
            rates = await db.send(
                conn, "rate_limit_hits", _rate_params(tenant_id, schedule_id, window)
            )
        row = await inserted.fetchone()
        assert row is not None
        _check_rate(ctx, await rates.fetchall(), now, window)
        if not early:
            await ctx.backend.start_run(conn, request)
        return RunNowResult(Run.from_row(row), created=True)


@dataclass(frozen=True)
class ListedRun:
    """A run as the listings show it: with its schedule's name and extension."""

    run: Run
    schedule_name: str | None
    extension_id: uuid.UUID | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> ListedRun:
        return cls(Run.from_row(r), r["schedule_name"], r["extension_id"])


CSV_BATCH = 2000


def _list_params(
    tenant_id: str, flt: RunFilter, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "schedule_id": flt.schedule_id,
        "extension_id": flt.extension_id,
        "statuses": None if flt.statuses is None else [s.value for s in flt.statuses],
        "triggers": None if flt.triggers is None else [t.value for t in flt.triggers],
        "since": flt.since,
        "until": flt.until,
        "before_at": None if after is None else after[0],
        "before_id": None if after is None else after[1],
        "limit": limit,
    }


async def _fetch(
    ctx: AppContext,
    conn: Conn,
    tenant_id: str,
    flt: RunFilter,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[ListedRun]:
    rows = await ctx.db.fetch_all(
        conn, "runs_list", _list_params(tenant_id, flt, after, limit), prepare=False
    )
    return [ListedRun.from_row(r) for r in rows]


async def list_filtered(
    ctx: AppContext, conn: Conn, tenant_id: str, flt: RunFilter, limit: int
) -> list[ListedRun]:
    """The first ``limit`` runs matching ``flt``, newest first, on the caller's connection."""
    return await _fetch(ctx, conn, tenant_id, flt, None, limit)


@dataclass(frozen=True)
class FilterOption:
    """A schedule the Runs page can narrow to, with its extension."""

    schedule_id: uuid.UUID
    label: str
    extension_id: uuid.UUID
    extension_name: str


async def filter_options(ctx: AppContext, tenant_id: str) -> list[FilterOption]:
    """Every schedule of the tenant with its extension (one query), for the filter pickers."""
    async with ctx.db.connection() as conn:
        rows = await ctx.db.fetch_all(conn, "runs_filter_options", {"tenant_id": tenant_id})
    return [
        FilterOption(
            r["id"],
            r["name"] or f"{r['endpoint_method']} {r['endpoint_path']}",
            r["extension_id"],
            r["extension_name"],
        )
        for r in rows
    ]


async def _check_scope(
    ctx: AppContext,
    conn: Conn,
    tenant_id: str,
    schedule_id: uuid.UUID | None,
    extension_id: uuid.UUID | None,
) -> None:
    """The feature must be on; a schedule named in the path must be the tenant's (404)."""
    await tenants.require_feature(ctx.db, conn, tenant_id)
    if schedule_id is None:
        return
    schedule = await ctx.db.fetch_one(
        conn, "schedule_get", {"tenant_id": tenant_id, "id": schedule_id}
    )
    if schedule is None or (extension_id is not None and schedule["extension_id"] != extension_id):
        raise NotFound("unknown schedule")


async def list_page(
    ctx: AppContext,
    principal: Principal,
    flt: RunFilter,
    *,
    limit: int,
    cursor: str | None,
    schedule_path: tuple[uuid.UUID, uuid.UUID | None] | None = None,
) -> tuple[list[ListedRun], str | None]:
    """One page of the tenant's runs matching ``flt``, newest first (by ``scheduled_for``,
    then id: the order the indexes of migration 0007 serve, so ``since``/``until`` bound the
    same column the page is read by), with the next page's
    cursor. ``schedule_path`` is the (schedule, extension?) of a per-schedule listing: unknown
    there is a 404, whereas an unknown id in a filter only matches nothing."""
    assert principal.tenant_id is not None
    tenant_id = principal.tenant_id
    after = after_time_id(cursor)
    async with ctx.db.connection() as conn:
        if schedule_path is not None:
            await _check_scope(ctx, conn, tenant_id, *schedule_path)
        else:
            await _check_scope(ctx, conn, tenant_id, None, None)
        items = await _fetch(ctx, conn, tenant_id, flt, after, limit + 1)
    last = items[limit - 1].run if len(items) > limit else None
    next_cursor = None if last is None else time_id_cursor(last.scheduled_for, last.id)
    return items[:limit], next_cursor


async def check_listing(
    ctx: AppContext,
    principal: Principal,
    schedule_path: tuple[uuid.UUID, uuid.UUID | None] | None = None,
) -> None:
    """Raise what a listing would (feature off, unknown schedule) before a CSV stream starts,
    so its errors are ordinary error responses rather than a broken download."""
    assert principal.tenant_id is not None
    async with ctx.db.connection() as conn:
        if schedule_path is not None:
            await _check_scope(ctx, conn, principal.tenant_id, *schedule_path)
        else:
            await _check_scope(ctx, conn, principal.tenant_id, None, None)


async def iter_csv_rows(
    ctx: AppContext, tenant_id: str, flt: RunFilter, *, batch: int | None = None
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Every run matching ``flt`` as CSV cells (``runs_csv_batch``: formatted by the database),
    newest first, in keyset batches: each batch is one short query on a connection taken for it
    alone, so a slow reader holds no connection, no transaction and never more than one batch
    in memory."""
    size = batch or CSV_BATCH
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        async with ctx.db.connection() as conn:
            rows = await ctx.db.fetch_tuples(
                conn, "runs_csv_batch", _list_params(tenant_id, flt, after, size)
            )
        if rows:
            yield [r[2:] for r in rows]
        if len(rows) < size:
            return
        after = (rows[-1][0], rows[-1][1])


async def get_run(ctx: AppContext, tenant_id: str, run_id: uuid.UUID) -> Run:
    async with ctx.db.connection() as conn:
        row = await ctx.db.fetch_one(conn, "run_get", {"tenant_id": tenant_id, "id": run_id})
    if row is None:
        raise NotFound("unknown run")
    return Run.from_row(row)
