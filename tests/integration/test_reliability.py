"""Reliability on the postgres backend (SPEC §9, §10): one poisoned row costs one schedule, a
loop that keeps failing shows in /readyz, every worker self-heals (reconcile with repair and
overdue detection, one pass at a time), and retention keeps storage flat."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from extsched.domain.ids import uuid7
from extsched.runner.client import RunnerClient
from extsched.services import retention
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.services.maintenance import RECONCILE_LOCK, RETENTION_LOCK, Maintenance
from extsched.services.supervision import LoopHealth, Supervisor
from extsched.workers.postgres import PostgresWorker, Scheduler
from tests.conftest import Actor, Clock, endpoint_id
from tests.fake_runner import FakeRunner, fake_runner
from tests.helpers.polling import eventually

T0 = datetime(2026, 12, 1, 8, 59, 0, tzinfo=UTC)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def runner() -> Any:
    with fake_runner() as r:
        yield r


@pytest.fixture
async def make(client: httpx.AsyncClient, install: Any, clock: Clock) -> Any:
    """``await make(actor, **fields)`` -> a schedule of ``actor``'s tenant, created via the API
    (one install per tenant, made on first use)."""
    clock.set(T0)
    published: dict[str, Any] = {}

    async def _make(actor: Actor, **fields: Any) -> dict[str, Any]:
        if actor.name not in published:
            published[actor.name], _ = await install(
                actor, endpoints=[{"method": "POST", "path": "/sync", "handler": "h"}]
            )
        p = published[actor.name]
        body = {
            "endpoint_id": endpoint_id(p, "POST", "/sync"),
            "cron": "*/5 * * * *",
            "timezone": "UTC",
            **fields,
        }
        r = await client.post(
            f"/api/v1/extensions/{p['extension_id']}/schedules", json=body, headers=actor.headers
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    return _make


async def sql(ctx: AppContext, statement: str, *params: Any) -> list[dict[str, Any]]:
    async with ctx.db.connection() as conn:
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


async def poison(ctx: AppContext, kind: str, s: dict[str, Any]) -> None:
    """Break one schedule's rows the way an upgrade or a bad write could."""
    if kind == "zone":  # a zone the new tz database no longer has
        for table in ("tenant_extension_schedule", "job_handle"):
            key = "id" if table == "tenant_extension_schedule" else "schedule_id"
            await sql(
                ctx, f"UPDATE {table} SET timezone = 'Mars/Olympus_Mons' WHERE {key} = %s", s["id"]
            )
    elif kind == "cron":  # a cron string the parser no longer accepts
        for table in ("tenant_extension_schedule", "job_handle"):
            key = "id" if table == "tenant_extension_schedule" else "schedule_id"
            await sql(ctx, f"UPDATE {table} SET cron = '61 * * * *' WHERE {key} = %s", s["id"])
    elif kind == "orphan_handle":  # a handle row with no schedule and a spec that raises
        await sql(
            ctx,
            "INSERT INTO job_handle (tenant_id, schedule_id, handle_id, install_id, cron, "
            "timezone, next_fire_at) SELECT tenant_id, %s, handle_id || ':x', install_id, "
            "'every day at noon', timezone, next_fire_at FROM job_handle WHERE schedule_id = %s",
            uuid.uuid4(),
            s["id"],
        )
        await sql(ctx, "DELETE FROM job_handle WHERE schedule_id = %s", s["id"])
        await sql(ctx, "DELETE FROM tenant_extension_schedule WHERE id = %s", s["id"])


async def run_counts(ctx: AppContext) -> dict[str, int]:
    rows = await sql(
        ctx, "SELECT tenant_id, count(*) AS n FROM extension_schedule_run GROUP BY tenant_id"
    )
    return {r["tenant_id"]: r["n"] for r in rows}


# ------------------------------------------------------------------ fault isolation
@pytest.mark.parametrize("kind", ["zone", "cron", "orphan_handle"])
async def test_it_fires_every_healthy_tenant_past_a_poisoned_row(
    kind: str,
    ctx: AppContext,
    clock: Clock,
    make: Any,
    alice: Actor,
    charlie: Actor,
    client: httpx.AsyncClient,
) -> None:
    bad = await make(alice, name="bad")
    good_acme = await make(alice, name="good")
    good_globex = await make(charlie)
    await poison(ctx, kind, bad)
    invalid_before = metric("extsched_schedules_invalid_total")
    scheduler = Scheduler(ctx)

    results = []
    for minute in (0, 5, 10):
        clock.set(T0.replace(hour=9, minute=minute) + timedelta(seconds=1))
        results.append(await scheduler.tick())

    assert await run_counts(ctx) == {"acme": 3, "globex": 3}
    assert [r.invalid for r in results] == [1, 0, 0]  # taken out of rotation on first sight
    assert metric("extsched_schedules_invalid_total") == invalid_before + 1
    for s, actor in ((good_acme, alice), (good_globex, charlie)):
        r = await client.get(f"/api/v1/schedules/{s['id']}", headers=actor.headers)
        assert r.json()["enabled"] is True
    if kind == "orphan_handle":
        assert await sql(ctx, "SELECT 1 FROM job_handle WHERE cron = 'every day at noon'") == []
        return
    r = await client.get(f"/api/v1/schedules/{bad['id']}", headers=alice.headers)
    assert (r.json()["enabled"], r.json()["disabled_reason"]) == (False, "invalid")
    [entry] = await sql(
        ctx,
        "SELECT actor_type, changes FROM extension_audit_log "
        "WHERE action = 'schedule.auto_disable' AND target_id = %s",
        bad["id"],
    )
    assert entry["actor_type"] == "system"
    assert entry["changes"]["disabled_reason"] == "invalid"
    assert entry["changes"]["enabled"] == {"from": True, "to": False}
    assert entry["changes"]["error"].startswith("CronError")


# ------------------------------------------------------------------ supervised loops
@pytest.fixture
async def worker(ctx: AppContext, runner: FakeRunner) -> AsyncIterator[PostgresWorker]:
    s = ctx.settings
    client = RunnerClient(
        runner.url, s.runner_timeout_ms, s.runner_max_response_bytes, token=s.runner_token_value
    )
    w = PostgresWorker(ctx, InvocationHandler(ctx, client), stop_grace_seconds=1.0)
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        w.stop()
        await task
        await client.aclose()


async def readyz(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/readyz")


@pytest.mark.settings(loop_backoff_max_seconds=2.0, scheduler_poll_seconds=0.2)
async def test_a_loop_that_keeps_failing_shows_in_readyz_and_recovers(
    worker: PostgresWorker,
    ctx: AppContext,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="extsched.jobs")
    ready = await eventually(lambda: readyz(client), lambda r: "scheduler" in r.text)
    assert ready.status_code == 200
    assert ready.json()["worker_loops"]["scheduler"] == "ok"
    failures_before = metric("extsched_worker_loop_failures_total", loop="scheduler")

    # The scheduler's table goes away (a botched manual change): every tick fails.
    await sql(ctx, "ALTER TABLE job_handle RENAME TO job_handle_away")
    broken = await eventually(lambda: readyz(client), lambda r: r.status_code == 503)
    assert broken.json()["status"] == "unavailable"
    assert broken.json()["database"] == "ok"
    assert broken.json()["worker_loops"]["scheduler"] == "failing"
    assert broken.json()["worker_loops"]["executor"] == "ok"
    assert metric("extsched_worker_loop_failures_total", loop="scheduler") >= failures_before + 3
    retries = [
        r.retry_in_s  # type: ignore[attr-defined]
        for r in caplog.records
        if r.levelno == logging.ERROR and getattr(r, "loop", None) == "scheduler"
    ]
    assert retries[:3] == [1.0, 2.0, 2.0]  # exponential, capped: not every second forever
    assert all(
        r.exc_info
        for r in caplog.records
        if getattr(r, "loop", None) == "scheduler" and r.levelno == logging.ERROR
    )

    await sql(ctx, "ALTER TABLE job_handle_away RENAME TO job_handle")
    recovered = await eventually(lambda: readyz(client), lambda r: r.status_code == 200)
    assert recovered.json()["worker_loops"]["scheduler"] == "ok"
    assert any(r.getMessage() == "scheduler recovered" for r in caplog.records)


# ------------------------------------------------------------------ self-healing
@pytest.mark.settings(reconcile_interval_seconds=1, overdue_grace_seconds=10)
async def test_every_worker_repairs_drift_and_flags_overdue_schedules(
    ctx: AppContext, runner: FakeRunner, make: Any, alice: Actor, clock: Clock
) -> None:
    clock.frozen = None  # the worker runs on the real clock here
    drifted = await make(alice, name="drifted")
    stuck = await make(alice, name="stuck")
    await sql(ctx, "DELETE FROM job_handle WHERE schedule_id = %s", drifted["id"])
    await sql(
        ctx,
        "UPDATE job_handle SET next_fire_at = now() - interval '1 hour' WHERE schedule_id = %s",
        stuck["id"],
    )
    s = ctx.settings
    client = RunnerClient(
        runner.url, s.runner_timeout_ms, s.runner_max_response_bytes, token=s.runner_token_value
    )
    # Neither scheduler nor executor: the stuck handle stays stuck, only maintenance acts.
    worker = PostgresWorker(ctx, InvocationHandler(ctx, client), scheduler=False, executor=False)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(
            lambda: sql(ctx, "SELECT 1 FROM job_handle WHERE schedule_id = %s", drifted["id"]),
            bool,
        )
        await eventually(
            lambda: sql(
                ctx,
                "SELECT overdue_since FROM tenant_extension_schedule "
                "WHERE id = %s AND overdue_since IS NOT NULL",
                stuck["id"],
            ),
            bool,
        )
    finally:
        worker.stop()
        await task
        await client.aclose()
    assert await sql(
        ctx,
        "SELECT 1 FROM extension_audit_log WHERE action = 'schedule.overdue' AND target_id = %s",
        stuck["id"],
    )
    assert metric("extsched_schedules_overdue") >= 1


async def test_one_maintenance_pass_of_a_kind_runs_at_a_time(
    ctx: AppContext, db_url: str, make: Any, alice: Actor
) -> None:
    drifted = await make(alice)
    await sql(ctx, "DELETE FROM job_handle WHERE schedule_id = %s", drifted["id"])
    maintenance = Maintenance(ctx, Supervisor(LoopHealth(), asyncio.Event(), 1.0))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as other:
        # Another worker's pass holds both locks: this worker skips its passes.
        await other.execute(
            "SELECT pg_advisory_lock(%s), pg_advisory_lock(%s)", (RECONCILE_LOCK, RETENTION_LOCK)
        )
        assert await maintenance.reconcile() is None
        assert await maintenance.retention() is None
        assert not await sql(ctx, "SELECT 1 FROM job_handle WHERE schedule_id = %s", drifted["id"])
        await other.execute("SELECT pg_advisory_unlock_all()")
    report = await maintenance.reconcile()
    assert report is not None and report.missing_handles and report.repaired == 1
    assert await maintenance.retention() is not None
    # The lock went back with the pass: the next one runs too.
    assert await maintenance.reconcile() is not None


# ------------------------------------------------------------------ retention
async def add_run(
    ctx: AppContext,
    s: dict[str, Any],
    created: datetime,
    status: str = "succeeded",
    tenant_id: str = "acme",
) -> uuid.UUID:
    """A run row of schedule ``s`` created at ``created`` (its UUIDv7 id says so too)."""
    run_id = uuid7(int(created.timestamp() * 1000))
    await sql(
        ctx,
        "INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id, trigger, "
        "scheduled_for, status, created_at) VALUES (%s, %s, %s, %s, 'schedule', %s, %s, %s)",
        tenant_id,
        run_id,
        s["id"],
        s["install_id"],
        created,
        status,
        created,
    )
    return run_id


async def add_audit(ctx: AppContext, tenant_id: str, at: datetime) -> uuid.UUID:
    entry_id = uuid7(int(at.timestamp() * 1000))
    await sql(
        ctx,
        "INSERT INTO extension_audit_log (tenant_id, id, at, actor_type, action, target_type) "
        "VALUES (%s, %s, %s, 'system', 'schedule.overdue', 'schedule')",
        tenant_id,
        entry_id,
        at,
    )
    return entry_id


async def ids_of(ctx: AppContext, table: str) -> set[uuid.UUID]:
    return {r["id"] for r in await sql(ctx, f"SELECT id FROM {table}")}


@pytest.mark.settings(retention_batch_size=2, run_retention_days=90, audit_retention_days=400)
async def test_retention_deletes_old_rows_in_batches_and_keeps_each_latest_run(
    ctx: AppContext, clock: Clock, make: Any, alice: Actor, charlie: Actor
) -> None:
    busy = await make(alice, name="busy")
    quiet = await make(alice, name="quiet")
    other = await make(charlie)
    await sql(ctx, "DELETE FROM extension_audit_log")
    now = datetime(2027, 6, 1, tzinfo=UTC)
    clock.set(now)
    days = [timedelta(days=d) for d in (300, 200, 120, 95, 91, 10)]
    busy_runs = [await add_run(ctx, busy, now - d) for d in days]
    stuck = await add_run(ctx, busy, now - timedelta(days=150), status="queued")
    quiet_last = await add_run(ctx, quiet, now - timedelta(days=200))  # its only run
    other_runs = [await add_run(ctx, other, now - d, tenant_id="globex") for d in days]
    await add_audit(ctx, "acme", now - timedelta(days=401))
    kept_audit = await add_audit(ctx, "acme", now - timedelta(days=399))
    await add_audit(ctx, "globex", now - timedelta(days=500))

    report = await retention.prune(ctx)

    assert await ids_of(ctx, "extension_schedule_run") == {
        busy_runs[-1],
        stuck,  # never delete a run that may still execute
        quiet_last,  # the schedule's latest run explains its last_run_*
        other_runs[-1],
    }
    assert await ids_of(ctx, "extension_audit_log") == {kept_audit}
    assert (report.runs_deleted, report.audit_deleted) == (10, 2)
    assert report.batches > report.tenants * 2  # in small batches, not one statement
    again = await retention.prune(ctx)
    assert (again.runs_deleted, again.audit_deleted) == (0, 0)


async def test_retention_deletes_run_now_rate_windows_an_hour_old(
    ctx: AppContext, clock: Clock, make: Any, alice: Actor, charlie: Actor
) -> None:
    """Each minute with a run-now leaves a counter row per schedule and tenant; a pass deletes
    the windows that ended more than an hour ago, for every tenant, and keeps the recent ones."""
    await make(alice)
    await make(charlie)
    now = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    clock.set(now)
    rows = [
        ("acme", "tenant", now - timedelta(hours=3)),
        ("acme", "schedule:x", now - timedelta(minutes=61)),
        ("acme", "tenant", now - timedelta(minutes=59)),
        ("globex", "tenant", now - timedelta(days=30)),
        ("globex", "tenant", now),
    ]
    for tenant_id, bucket, window in rows:
        await sql(
            ctx,
            "INSERT INTO rate_limit_counter (tenant_id, bucket, window_start, hits) "
            "VALUES (%s, %s, %s, 1)",
            tenant_id,
            bucket,
            window,
        )

    report = await retention.prune(ctx)

    left = await sql(ctx, "SELECT tenant_id, window_start FROM rate_limit_counter ORDER BY 1, 2")
    assert [(r["tenant_id"], r["window_start"]) for r in left] == [
        ("acme", now - timedelta(minutes=59)),
        ("globex", now),
    ]
    assert report.rate_windows_deleted == 3


@pytest.mark.settings(retention_interval_seconds=1, run_retention_days=1)
async def test_the_worker_prunes_on_its_own(
    worker: PostgresWorker, ctx: AppContext, clock: Clock, make: Any, alice: Actor
) -> None:
    s = await make(alice)
    clock.frozen = None
    now = datetime.now(UTC)
    old = await add_run(ctx, s, now - timedelta(days=3))
    newest = await add_run(ctx, s, now - timedelta(days=2))
    await eventually(lambda: ids_of(ctx, "extension_schedule_run"), lambda ids: old not in ids)
    assert newest in await ids_of(ctx, "extension_schedule_run")
