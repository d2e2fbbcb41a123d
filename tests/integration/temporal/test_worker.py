"""Round trips through a real Temporal server and worker: a Temporal Schedule fires and the
fake Runner (a real HTTP server) gets the call, recorded once; run-now executes once; a
retryable failure is retried within the same run after a durable sleep."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import ScheduleBackfill, ScheduleOverlapPolicy

from extsched.jobs.backend import HandleSpec
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.server import running_worker
from extsched.services.context import AppContext
from tests.conftest import Actor
from tests.fake_runner import FakeRunner
from tests.helpers.polling import eventually


@pytest.fixture
async def worker(temporal: TemporalBackend, ctx: AppContext) -> AsyncIterator[None]:
    """The service's worker for the temporal backend (as ``serve`` runs it)."""
    async with running_worker(ctx):
        yield


async def runs_of(client: httpx.AsyncClient, actor: Actor, schedule_id: str) -> list[Any]:
    r = await client.get(f"/api/v1/schedules/{schedule_id}/runs", headers=actor.headers)
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


def finished(runs: list[Any]) -> bool:
    return bool(runs) and all(r["status"] not in ("queued", "running") for r in runs)


async def test_it_runs_now_once_through_temporal(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    runner: FakeRunner,
) -> None:
    s = await sched(enabled=False)  # run-now is allowed on a disabled schedule
    r = await client.post(
        f"/api/v1/schedules/{s['id']}/run-now", headers={**alice.headers, "Idempotency-Key": "k"}
    )
    assert r.status_code == 202, r.text
    again = await client.post(
        f"/api/v1/schedules/{s['id']}/run-now", headers={**alice.headers, "Idempotency-Key": "k"}
    )
    assert again.status_code == 200 and again.json()["run_id"] == r.json()["run_id"]
    [run] = await eventually(lambda: runs_of(client, alice, s["id"]), finished)
    assert (run["id"], run["trigger"], run["status"]) == (
        r.json()["run_id"],
        "run_now",
        "succeeded",
    )
    [call] = runner.calls
    assert call.envelope["context"]["trigger"] == "run_now"
    assert call.envelope["context"]["run_id"] == run["id"]


async def test_it_retries_within_the_same_run_after_a_durable_sleep(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    runner: FakeRunner,
) -> None:
    runner.behaviour = {"/flaky": "flaky:2"}  # Runner 503 twice, then ok
    s = await sched(path="/flaky")
    r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
    assert r.status_code == 202, r.text
    [run] = await eventually(lambda: runs_of(client, alice, s["id"]), finished, within=30)
    assert (run["status"], run["attempts"]) == ("succeeded", 3)
    keys = [c.headers["x-idempotency-key"] for c in runner.calls_to("/flaky")]
    assert keys == [f"{run['id']}:1", f"{run['id']}:2", f"{run['id']}:3"]
    # the workflow slept on a Temporal timer between the attempts
    temporal_client = await temporal.client()
    history = await temporal_client.get_workflow_handle(run["id"]).fetch_history()
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    assert len(timers) == 2


async def test_it_fires_a_real_temporal_schedule_into_the_runner_once(
    worker: None,
    temporal: TemporalBackend,
    ctx: AppContext,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    runner: FakeRunner,
) -> None:
    s = await sched(cron="*/5 * * * *", payload={"e2e": True})
    # Temporal fires on the real clock: give the handle an every-minute cron, straight through
    # the backend (the API refuses intervals under 5 minutes).
    every_minute = HandleSpec(
        tenant_id="acme",
        install_id=uuid.UUID(s["install_id"]),
        schedule_id=uuid.UUID(s["id"]),
        cron="* * * * *",
        timezone="UTC",
        paused=False,
    )
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [every_minute])
    runs = await eventually(lambda: runs_of(client, alice, s["id"]), finished, within=90)
    first = runs[-1]
    async with ctx.db.connection() as conn:  # stop further fires
        await temporal.put_handles(
            conn, [HandleSpec(**{**every_minute.__dict__, "paused": True, "note": "test over"})]
        )
    assert (first["trigger"], first["status"], first["attempts"]) == ("schedule", "succeeded", 1)
    at = datetime.fromisoformat(first["scheduled_for"].replace("Z", "+00:00"))
    assert at.second == 0 and at <= datetime.now(UTC)
    calls = [c for c in runner.calls if c.envelope["context"]["run_id"] == first["id"]]
    assert len(calls) == 1
    assert calls[0].envelope["context"]["scheduled_for"] == first["scheduled_for"]
    assert calls[0].body == {"e2e": True}

    # Temporal delivers the same fire again (a backfill of that minute): nothing new happens.
    temporal_client = await temporal.client()
    schedule = temporal_client.get_schedule_handle(every_minute.handle_id)
    await temporal_client.get_workflow_handle(
        f"{every_minute.handle_id}-{first['scheduled_for']}"
    ).result()
    await schedule.backfill(
        ScheduleBackfill(at - timedelta(seconds=1), at, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    )

    async def redelivered() -> list[Any]:
        described = await schedule.describe()
        return [a for a in described.info.recent_actions if a.scheduled_at == at]

    deliveries = await eventually(redelivered, lambda found: len(found) >= 2)
    for delivery in deliveries:
        await temporal_client.get_workflow_handle(delivery.action.workflow_id).result()
    same = [
        r
        for r in await runs_of(client, alice, s["id"])
        if r["scheduled_for"] == first["scheduled_for"]
    ]
    assert len(same) == 1
    calls = [
        c for c in runner.calls if c.envelope["context"]["scheduled_for"] == first["scheduled_for"]
    ]
    assert len(calls) == 1


async def test_a_worker_stopped_mid_attempt_leaves_the_run_to_the_next_one(
    temporal: TemporalBackend,
    ctx: AppContext,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    runner: FakeRunner,
) -> None:
    # The attempt is a local activity: it lives in the workflow task of the worker that
    # stops. The run must neither be lost (left running) nor run twice at once.
    runner.behaviour = {"/sync": "hang"}
    s = await sched(enabled=False)
    async with running_worker(ctx):
        r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
        assert r.status_code == 202, r.text
        await eventually(lambda: _call_count(runner), lambda n: n == 1)
    runner.behaviour = {}
    runner.release.set()
    async with running_worker(ctx):
        [run] = await eventually(lambda: runs_of(client, alice, s["id"]), finished, within=60)
    assert run["status"] == "succeeded"
    keys = [c.headers["x-idempotency-key"] for c in runner.calls]
    assert keys == [f"{run['id']}:{n}" for n in range(1, run["attempts"] + 1)]


async def _call_count(runner: FakeRunner) -> int:
    return len(runner.calls)
