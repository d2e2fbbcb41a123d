"""Reliability on the temporal backend, against a real Temporal dev server: a schedule whose
spec no longer evaluates is disabled as invalid (in the reconciler's repair and in the
activity) while the rest proceeds, and the worker runs the same maintenance loops as the
postgres worker (reconcile with repair, retention)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from extsched.domain.ids import uuid7
from extsched.jobs.backend import handle_id
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.jobs.temporal.types import AttemptInput, AttemptOutcome, RunInput
from extsched.runner.client import RunnerClient
from extsched.server import running_worker
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.services.reconcile import reconcile
from extsched.workers.temporal.activities import Activities
from tests.conftest import Actor
from tests.fake_runner import FakeRunner
from tests.helpers.polling import eventually
from tests.integration.temporal.conftest import handles_of

BOGUS_ZONE = "Mars/Olympus_Mons"


def invalid_total() -> float:
    return REGISTRY.get_sample_value("extsched_schedules_invalid_total") or 0.0


async def sql(ctx: AppContext, statement: str, *params: Any) -> list[dict[str, Any]]:
    async with ctx.db.connection() as conn:
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


async def schedule(client: httpx.AsyncClient, alice: Actor, s: dict[str, Any]) -> dict[str, Any]:
    r = await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def audited_invalid(ctx: AppContext, s: dict[str, Any]) -> dict[str, Any]:
    [entry] = await sql(
        ctx,
        "SELECT changes FROM extension_audit_log "
        "WHERE action = 'schedule.auto_disable' AND target_id = %s",
        s["id"],
    )
    changes: dict[str, Any] = entry["changes"]
    return changes


async def test_reconcile_disables_a_schedule_it_cannot_build_and_repairs_the_rest(
    temporal: TemporalBackend,
    ctx: AppContext,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    bad = await sched(name="bad")
    lost = await sched(name="lost")
    # A zone the tz database no longer has, written straight into the row (the handle on
    # Temporal still says UTC, so the repair must rebuild it), and a handle lost on Temporal.
    await sql(
        ctx,
        "UPDATE tenant_extension_schedule SET timezone = %s WHERE id = %s",
        BOGUS_ZONE,
        bad["id"],
    )
    tc = await temporal.client()
    await tc.get_schedule_handle(
        handle_id("acme", uuid.UUID(lost["install_id"]), uuid.UUID(lost["id"]))
    ).delete()
    before = invalid_total()

    report = await eventually(
        lambda: reconcile(ctx, repair=True), lambda rep: bool(rep.missing_handles)
    )

    assert len(report.invalid) == 1
    got = await schedule(client, alice, bad)
    assert (got["enabled"], got["disabled_reason"]) == (False, "invalid")
    assert (await audited_invalid(ctx, bad))["disabled_reason"] == "invalid"
    assert invalid_total() == before + 1
    handles = await eventually(
        lambda: handles_of(ctx, "acme", lost["install_id"]),
        lambda hs: lost["id"] in hs and bad["id"] not in hs,
    )
    assert not handles[lost["id"]].paused
    # The next pass finds nothing left to do: the bad row no longer fails every pass.
    again = await eventually(lambda: reconcile(ctx, repair=True), lambda rep: rep.clean)
    assert again.invalid == []


@pytest.fixture
async def activities(ctx: AppContext, runner: FakeRunner) -> AsyncIterator[Activities]:
    s = ctx.settings
    client = RunnerClient(
        runner.url, s.runner_timeout_ms, s.runner_max_response_bytes, token=s.runner_token_value
    )
    yield Activities(ctx, InvocationHandler(ctx, client), "temporal:test")
    await client.aclose()


def fire(s: dict[str, Any], at: datetime, timezone: str | None = None) -> AttemptInput:
    request = RunInput("acme", s["install_id"], s["id"], s["cron"], timezone or s["timezone"])
    return AttemptInput(request, at, None)


async def test_the_activity_disables_a_schedule_whose_zone_no_longer_loads(
    temporal: TemporalBackend,
    activities: Activities,
    ctx: AppContext,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    runner: FakeRunner,
) -> None:
    bad = await sched(name="bad", cron="*/5 * * * *")
    good = await sched(name="good", cron="*/5 * * * *")
    await sql(
        ctx,
        "UPDATE tenant_extension_schedule SET timezone = %s WHERE id = %s",
        BOGUS_ZONE,
        bad["id"],
    )
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    at -= timedelta(minutes=at.minute % 5)
    before = invalid_total()

    # Temporal delivers both fires, the bad one with the spec it was created from.
    assert await activities.attempt(fire(bad, at, BOGUS_ZONE)) == AttemptOutcome(None)
    assert await activities.attempt(fire(good, at)) == AttemptOutcome(None)

    assert [c.envelope["context"]["schedule_id"] for c in runner.calls] == [good["id"]]
    got = await schedule(client, alice, bad)
    assert (got["enabled"], got["disabled_reason"]) == (False, "invalid")
    assert (await audited_invalid(ctx, bad))["error"].startswith("CronError")
    assert invalid_total() == before + 1
    # Its Temporal schedule is gone (no handle can be built from the row); the other's stays.
    await eventually(
        lambda: handles_of(ctx, "acme", bad["install_id"]),
        lambda hs: bad["id"] not in hs and good["id"] in hs,
    )


async def test_the_activity_pauses_a_schedule_whose_delivered_spec_is_broken(
    temporal: TemporalBackend,
    activities: Activities,
    ctx: AppContext,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="*/5 * * * *")
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    at -= timedelta(minutes=at.minute % 5)
    # Temporal delivers a fire whose spec (the one its schedule was built from) is broken.
    broken = AttemptInput(RunInput("acme", s["install_id"], s["id"], "*/5 * * *", "UTC"), at, None)

    assert await activities.attempt(broken) == AttemptOutcome(None)

    got = await schedule(client, alice, s)
    assert (got["enabled"], got["disabled_reason"]) == (False, "invalid")
    # The row itself still evaluates: the handle is kept, paused, with the row's spec again.
    handles = await eventually(
        lambda: handles_of(ctx, "acme", s["install_id"]),
        lambda hs: s["id"] in hs and hs[s["id"]].paused,
    )
    assert handles[s["id"]].cron == "*/5 * * * *"


@pytest.fixture
async def worker(temporal: TemporalBackend, ctx: AppContext) -> AsyncIterator[None]:
    async with running_worker(ctx):
        yield


@pytest.mark.settings(reconcile_interval_seconds=1, retention_interval_seconds=1)
async def test_the_temporal_worker_self_heals_and_prunes(
    worker: None,
    temporal: TemporalBackend,
    ctx: AppContext,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched()
    hid = handle_id("acme", uuid.UUID(s["install_id"]), uuid.UUID(s["id"]))
    tc = await temporal.client()
    await tc.get_schedule_handle(hid).delete()
    now = datetime.now(UTC)
    ids = []
    for days in (200, 100):  # past the 90-day retention; the newer one is the latest run
        created = now - timedelta(days=days)
        ids.append(uuid7(int(created.timestamp() * 1000)))
        await sql(
            ctx,
            "INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id, "
            "trigger, scheduled_for, status, created_at) "
            "VALUES ('acme', %s, %s, %s, 'schedule', %s, 'succeeded', %s)",
            ids[-1],
            s["id"],
            s["install_id"],
            created,
            created,
        )

    await eventually(
        lambda: handles_of(ctx, "acme", s["install_id"]), lambda hs: s["id"] in hs, within=30
    )
    remaining = await eventually(
        lambda: sql(ctx, "SELECT id FROM extension_schedule_run WHERE schedule_id = %s", s["id"]),
        lambda rows: len(rows) == 1,
        within=30,
    )
    assert remaining[0]["id"] == ids[-1]
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["worker_loops"] == {
        "dst_compensation": "ok",
        "notifications": "ok",
        "reconcile": "ok",
        "retention": "ok",
        "temporal_worker": "ok",
    }
