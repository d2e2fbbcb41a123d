"""Fair share in the executor: a small tenant is not stuck behind a big tenant's backlog."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from extsched.db.queries import QUERIES
from extsched.domain.ids import uuid7
from extsched.jobs.backend import handle_id
from extsched.services.context import AppContext
from extsched.workers.postgres import Executor, Scheduler
from tests.conftest import Actor, Clock
from tests.fake_runner import fake_runner
from tests.helpers.polling import eventually
from tests.integration.test_execution import T0, Harness


def _seed_due_runs(
    db_url: str, tenant: str, install: dict[str, Any], n: int, *, runs_queued: bool = True
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """n schedules of ``tenant`` with one queued run each, all due at T0; their
    (schedule id, run id) pairs. Without ``runs_queued`` no run is queued and the schedules'
    handles are due at T0 instead (paused otherwise)."""
    endpoint = install["endpoint"]
    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        ids = [uuid7() for _ in range(n)]
        runs = [(sid, uuid7()) for sid in ids]
        with cur.copy(
            "COPY tenant_extension_schedule (tenant_id, id, install_id, extension_id, "
            "endpoint_id, endpoint_method, endpoint_path, cron, timezone) FROM STDIN"
        ) as copy:
            for sid in ids:
                copy.write_row(
                    (
                        tenant,
                        sid,
                        install["install_id"],
                        install["extension_id"],
                        endpoint["id"],
                        "POST",
                        "/sync",
                        "0 9 * * *",
                        "UTC",
                    )
                )
        with cur.copy(
            "COPY job_handle (tenant_id, schedule_id, handle_id, install_id, cron, timezone, "
            "paused, next_fire_at) FROM STDIN"
        ) as copy:
            for sid in ids:
                copy.write_row(
                    (
                        tenant,
                        sid,
                        handle_id(tenant, install["install_id"], sid),
                        install["install_id"],
                        "* * * * *",
                        "UTC",
                        runs_queued,
                        T0,
                    )
                )
        if not runs_queued:
            return []
        with cur.copy(
            "COPY extension_schedule_run (tenant_id, id, schedule_id, install_id, trigger, "
            "scheduled_for, status, available_at) FROM STDIN"
        ) as copy:
            for sid, rid in runs:
                copy.write_row(
                    (tenant, rid, sid, install["install_id"], "schedule", T0, "queued", T0)
                )
    return runs


@pytest.mark.settings(worker_concurrency=16)
async def test_it_starts_a_small_tenants_runs_before_a_big_backlog_drains(
    ctx: AppContext,
    clock: Clock,
    client: httpx.AsyncClient,
    alice: Actor,
    charlie: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    clock.set(T0)
    targets = {}
    for actor in (alice, charlie):  # the same extension installed by both tenants
        published, inst = await install(actor)
        endpoint = next(e for e in published["endpoints"] if e["path"] == "/sync")
        targets[actor.tenant_id] = {**inst, "endpoint": endpoint}
    _seed_due_runs(db_url, "acme", targets["acme"], 5000)  # the big backlog, older ids
    _seed_due_runs(db_url, "globex", targets["globex"], 10)  # the small tenant, newest
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        try:
            for _ in range(3):  # the first three claim rounds
                await h.executor.claim_and_start()
                await asyncio.gather(*h.executor.in_flight.values())
        finally:
            await h.client.aclose()
        tenants = [c.envelope["context"]["tenant_id"] for c in runner.calls]
    # 16 slots, two tenants waiting: globex gets half of the very first claim, the rest next.
    assert tenants[:16].count("globex") == 8
    assert tenants.count("globex") == 10
    assert len(tenants) <= 48


@pytest.mark.settings(worker_concurrency=16)
async def test_it_gives_a_tenant_alone_every_free_slot(
    ctx: AppContext,
    clock: Clock,
    alice: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    """No idling without contention: one tenant's backlog fills the worker's limit, not a
    per-tenant cap (the old cap was 8)."""
    clock.set(T0)
    published, inst = await install(alice)
    endpoint = next(e for e in published["endpoints"] if e["path"] == "/sync")
    _seed_due_runs(db_url, "acme", {**inst, "endpoint": endpoint}, 40)
    with fake_runner() as runner:
        runner.behaviour["/sync"] = "hang"  # every call stays in flight until released
        h = Harness(ctx, clock, runner)
        try:
            assert await h.executor.claim_and_start() == 16
            await eventually(lambda: _count(runner), lambda n: n == 16)
            assert await h.executor.claim_and_start() == 0  # the worker is full
            runner.release.set()
            await asyncio.gather(*h.executor.in_flight.values())
        finally:
            await h.client.aclose()
    assert len(runner.calls) == 16


@pytest.mark.settings(worker_concurrency=16)
async def test_it_counts_runs_in_flight_on_every_worker(
    ctx: AppContext,
    clock: Clock,
    alice: Actor,
    charlie: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    """One worker holds 12 of acme's runs; when globex's runs become due, another worker's
    next slots all go to globex (fewest in flight anywhere), not half to acme."""
    clock.set(T0)
    targets = {}
    for actor in (alice, charlie):
        published, inst = await install(actor)
        endpoint = next(e for e in published["endpoints"] if e["path"] == "/sync")
        targets[actor.tenant_id] = {**inst, "endpoint": endpoint}
    _seed_due_runs(db_url, "acme", targets["acme"], 100)
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        other = Executor(ctx, h.handler)
        try:
            first = await h.executor.claim(12)
            assert {r["tenant_id"] for r in first} == {"acme"}
            _seed_due_runs(db_url, "globex", targets["globex"], 10)
            second = await other.claim(8)
            assert [r["tenant_id"] for r in second] == ["globex"] * 8
            # Now acme has 12 in flight, globex 8 with 2 left: those 2, and acme for the rest
            # (this claim may stop one short: it reads only as far as a fair share can reach,
            # and the executor claims again at once).
            third = sorted(r["tenant_id"] for r in await other.claim(6))
            assert third in (["acme"] * 4 + ["globex"] * 2, ["acme"] * 3 + ["globex"] * 2)
        finally:
            await h.client.aclose()


async def _count(runner: Any) -> int:
    with runner.lock:
        return len(runner.calls)


@pytest.mark.settings(scheduler_batch_size=20)
async def test_it_interleaves_tenants_when_a_herd_of_handles_is_due(
    ctx: AppContext,
    clock: Clock,
    alice: Actor,
    charlie: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    """More handles due than a tick takes: after the first full tick the scheduler takes
    them across tenants, so a small tenant's fires are written in the next tick, not after
    the big tenant's whole herd."""
    clock.set(T0)
    targets = {}
    for actor in (alice, charlie):
        published, inst = await install(actor)
        endpoint = next(e for e in published["endpoints"] if e["path"] == "/sync")
        targets[actor.tenant_id] = {**inst, "endpoint": endpoint}
    _seed_due_runs(db_url, "acme", targets["acme"], 100, runs_queued=False)
    _seed_due_runs(db_url, "globex", targets["globex"], 5, runs_queued=False)
    scheduler = Scheduler(ctx)
    first = await scheduler.tick(T0)
    second = await scheduler.tick(T0)
    assert (first.runs_queued, second.runs_queued) == (20, 20)
    with psycopg.connect(db_url, autocommit=True) as conn:
        queued: dict[str, int] = {
            tenant: count
            for tenant, count in conn.execute(
                "SELECT tenant_id, count(*) FROM extension_schedule_run GROUP BY tenant_id"
            ).fetchall()
        }
    assert queued.get("globex") == 5  # all within the first two ticks
    assert queued["acme"] == 35
    # The rest, each fire once.
    while (await scheduler.tick(T0)).handles:
        pass
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tenant_id, count(*), count(DISTINCT schedule_id) FROM extension_schedule_run "
            "GROUP BY tenant_id ORDER BY tenant_id"
        ).fetchall()
    assert rows == [("acme", 100, 100), ("globex", 5, 5)]


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


@pytest.mark.settings(worker_concurrency=64)
async def test_a_claim_reads_runs_by_primary_key_and_the_lease_index_without_a_bitmap(
    ctx: AppContext,
    clock: Clock,
    alice: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    """In a herd the claim's plan must not depend on statistics that have not seen it: each
    picked run is locked through the primary key (status_idx would read every queued entry
    of the tenant, dead ones included), and the runs in flight are counted by a plain scan
    of the lease index (a bitmap scan visits every finished run's dead entry in the heap)."""
    clock.set(T0)
    published, inst = await install(alice)
    endpoint = next(e for e in published["endpoints"] if e["path"] == "/sync")
    _seed_due_runs(db_url, "acme", {**inst, "endpoint": endpoint}, 3000)
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        try:
            for _ in range(3):  # finished runs leave dead entries behind, as in a drain
                claimed = await h.executor.claim(64)
                with psycopg.connect(db_url, autocommit=True) as conn:
                    conn.execute(
                        "UPDATE extension_schedule_run SET status = 'succeeded', "
                        "lease_owner = NULL WHERE tenant_id = 'acme' AND id = ANY(%s)",
                        ([r["id"] for r in claimed],),
                    )
            with psycopg.connect(db_url) as conn:
                plan = conn.execute(
                    "EXPLAIN (FORMAT JSON) " + QUERIES["runs_claim"],
                    {
                        "owner": "w",
                        "now": T0,
                        "limit": 64,
                        "lease_seconds": 60,
                        "salt": "0",
                        "after": "",
                        "max_tenants": 64,
                    },
                ).fetchone()[0][0]["Plan"]  # type: ignore[index]
                conn.rollback()
                # The function's own plan, as auto_explain reports it to this session.
                notices: list[str] = []
                conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
                conn.execute("LOAD 'auto_explain'")
                conn.execute("SET auto_explain.log_min_duration = 0")
                conn.execute("SET auto_explain.log_nested_statements = on")
                conn.execute("SET auto_explain.log_level = notice")
                conn.execute("SELECT * FROM extension_runs_in_flight(%s)", (T0,)).fetchall()
        finally:
            await h.client.aclose()
    used = {n.get("Index Name") for n in _plan_nodes(plan)}
    assert "extension_schedule_run_status_idx" not in used
    assert "extension_schedule_run_pkey" in used
    inner = next(n for n in notices if "extension_schedule_run" in n and "lease_expires_at" in n)
    assert "Index Scan using extension_schedule_run_lease_idx" in inner
    assert "Bitmap" not in inner
