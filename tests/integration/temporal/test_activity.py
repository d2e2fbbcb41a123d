"""The Temporal activity called directly (as Temporal would), with the test's clock: DST
checks against the time engine, late deliveries, exactly-once recording, retries and lost
workers. The real Temporal round trip is in test_worker.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from extsched.jobs.temporal.types import AttemptInput, AttemptOutcome, RunInput
from extsched.runner.client import RunnerClient
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.workers.temporal.activities import DONE, LEASE_MARGIN, Activities
from tests.conftest import Actor, Clock
from tests.fake_runner import FakeRunner

# Europe/Paris, Sunday 2027-10-31: clocks go back at 03:00 CEST (01:00Z) to 02:00 CET, so
# 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET).
FIRST_0230 = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
SECOND_0230 = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)


@pytest.fixture
async def activities(ctx: AppContext, runner: FakeRunner) -> AsyncIterator[Activities]:
    s = ctx.settings
    client = RunnerClient(
        runner.url, s.runner_timeout_ms, s.runner_max_response_bytes, token=s.runner_token_value
    )
    yield Activities(ctx, InvocationHandler(ctx, client), "temporal:test")
    await client.aclose()


def fire(s: dict[str, Any], at: datetime, run_id: str | None = None) -> AttemptInput:
    request = RunInput("acme", s["install_id"], s["id"], s["cron"], s["timezone"])
    return AttemptInput(request, at, run_id)


async def runs_of(client: httpx.AsyncClient, actor: Actor, s: dict[str, Any]) -> list[Any]:
    r = await client.get(f"/api/v1/schedules/{s['id']}/runs", headers=actor.headers)
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


async def test_it_skips_a_repeated_dst_time_the_engine_does_not_fire(
    activities: Activities,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="30 2 * * *", timezone="Europe/Paris")
    clock.set(FIRST_0230 + timedelta(seconds=1))
    assert await activities.attempt(fire(s, FIRST_0230)) == AttemptOutcome(None)
    clock.set(SECOND_0230 + timedelta(seconds=1))
    assert await activities.attempt(fire(s, SECOND_0230)) == AttemptOutcome(None)
    runs = {r["scheduled_for"]: r for r in await runs_of(client, alice, s)}
    assert runs["2027-10-31T00:30:00Z"]["status"] == "succeeded"
    repeated = runs["2027-10-31T01:30:00Z"]
    assert (repeated["status"], repeated["skip_reason"]) == ("skipped", "dst_repeat")
    assert repeated["attempts"] == 0
    assert [c.envelope["context"]["scheduled_for"] for c in runner.calls] == [
        "2027-10-31T00:30:00Z"
    ]


async def test_it_skips_by_the_schedules_dst_choice(
    activities: Activities,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    # dst_repeat: last (carried by the Temporal action): the first 02:30 is the one skipped.
    s = await sched(cron="30 2 * * *", timezone="Europe/Paris")
    request = RunInput(
        "acme", s["install_id"], s["id"], s["cron"], s["timezone"], dst_repeat="last"
    )
    clock.set(FIRST_0230 + timedelta(seconds=1))
    assert await activities.attempt(AttemptInput(request, FIRST_0230, None)) == DONE
    clock.set(SECOND_0230 + timedelta(seconds=1))
    assert await activities.attempt(AttemptInput(request, SECOND_0230, None)) == DONE
    runs = {r["scheduled_for"]: r for r in await runs_of(client, alice, s)}
    first = runs["2027-10-31T00:30:00Z"]
    assert (first["status"], first["skip_reason"]) == ("skipped", "dst_repeat")
    assert runs["2027-10-31T01:30:00Z"]["status"] == "succeeded"
    assert [c.envelope["context"]["scheduled_for"] for c in runner.calls] == [
        "2027-10-31T01:30:00Z"
    ]


async def test_it_records_a_fire_once_however_often_it_is_delivered(
    activities: Activities,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="0 9 * * *")
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    clock.set(at + timedelta(seconds=2))
    for _ in range(3):
        assert await activities.attempt(fire(s, at)) == AttemptOutcome(None)
    [run] = await runs_of(client, alice, s)
    assert run["status"] == "succeeded" and run["attempts"] == 1
    assert len(runner.calls) == 1


async def test_it_skips_a_late_delivery_as_missed(
    activities: Activities,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="*/5 * * * *")
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    clock.set(at + timedelta(minutes=6))  # 09:05 is due already: only the newest runs
    await activities.attempt(fire(s, at))
    clock.set(at + timedelta(minutes=6, seconds=1))
    await activities.attempt(fire(s, at + timedelta(minutes=5)))
    runs = {r["scheduled_for"]: r for r in await runs_of(client, alice, s)}
    missed = runs["2026-12-02T09:00:00Z"]
    assert (missed["status"], missed["skip_reason"], missed["skipped_count"]) == (
        "skipped",
        "missed",
        1,
    )
    assert runs["2026-12-02T09:05:00Z"]["status"] == "succeeded"
    assert len(runner.calls) == 1


async def test_it_retries_within_the_same_run_and_waits_for_its_time(
    activities: Activities,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    runner.behaviour = {"/flaky": "flaky:1"}
    s = await sched(path="/flaky", cron="0 9 * * *")
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    clock.set(at + timedelta(seconds=1))
    first = await activities.attempt(fire(s, at))
    assert first.run_id is not None and first.retry_at is not None
    assert first.retry_at > clock()
    # Another delivery of the same fire meanwhile waits for the retry time, runs nothing.
    waiting = await activities.attempt(fire(s, at))
    assert waiting == AttemptOutcome(first.run_id, first.retry_at)
    clock.set(first.retry_at)
    assert await activities.attempt(fire(s, at, first.run_id)) == AttemptOutcome(None)
    [run] = await runs_of(client, alice, s)
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    keys = [c.headers["x-idempotency-key"] for c in runner.calls]
    assert keys == [f"{run['id']}:1", f"{run['id']}:2"]


async def test_it_takes_over_a_run_whose_worker_was_lost(
    activities: Activities,
    ctx: AppContext,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="0 9 * * *")
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    clock.set(at + timedelta(seconds=1))
    # A worker records and claims the fire (one statement), then dies before calling the
    # Runner.
    dead = Activities(ctx, activities.handler, "temporal:dead")
    found = await dead._fire("acme", uuid.UUID(s["id"]), fire(s, at))
    assert isinstance(found, dict)
    assert (found["status"], found["lease_owner"], found["attempts"]) == (
        "running",
        "temporal:dead",
        1,
    )
    # The next worker runs the attempt again (its workflow task timed out): while the lease
    # holds, nothing runs twice, and it asks to be tried again when the lease ends (ending
    # the workflow here would leave the run running for good) ...
    with pytest.raises(ApplicationError) as leased:
        await activities.attempt(fire(s, at))
    assert not leased.value.non_retryable
    assert leased.value.next_retry_delay == found["lease_expires_at"] - clock() + LEASE_MARGIN
    assert runner.calls == []
    # ... once it lapsed, the retry takes the run over.
    clock.set(clock() + timedelta(seconds=activities.handler.lease_seconds + 1))
    assert await activities.attempt(fire(s, at)) == AttemptOutcome(None)
    [run] = await runs_of(client, alice, s)
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    assert len(runner.calls) == 1
