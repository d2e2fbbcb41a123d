"""Schedule policies (SPEC §5, §8, §9) on the temporal backend, mirroring
tests/integration/test_policies.py: a real Temporal dev server, the service's Temporal worker
and the fake Runner (a real HTTP server).

Temporal fires on the real clock, so the tests deliver fires themselves where they need
several in a row: schedules run every minute of an hour twelve hours away (nothing fires by
itself during a test; ``min_interval_seconds`` is lowered to allow it), and a *backfill* asks
Temporal to deliver one of their past fires now, through the schedule's own overlap policy.
The activity judges a fire against the service's clock (``clock.set``: "it is now one second
after that fire"), as it would a fire Temporal delivers on time. Jitter waits for a real fire.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleBackfill

from extsched.domain.timing import jitter_offset
from extsched.jobs.backend import handle_id
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.jobs.temporal.types import AttemptInput, AttemptOutcome, RunInput
from extsched.runner.client import RunnerClient
from extsched.server import running_worker
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.workers.temporal.activities import Activities
from tests.conftest import Actor, Clock
from tests.fake_runner import FakeRunner
from tests.helpers.polling import eventually

pytestmark = pytest.mark.settings(min_interval_seconds=60)

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def ext(client: httpx.AsyncClient, alice: Actor, install: Any) -> dict[str, Any]:
    """alice's installed extension with a hanging endpoint besides /sync and /flaky."""
    published, installed = await install(
        alice,
        endpoints=[
            {"method": "POST", "path": path, "handler": "h"}
            for path in ("/sync", "/flaky", "/hang")
        ],
    )
    return {**published, "install_id": installed["install_id"]}


@pytest.fixture
async def worker(temporal: TemporalBackend, ctx: AppContext) -> AsyncIterator[None]:
    """The service's Temporal worker (as ``serve`` runs it)."""
    async with running_worker(ctx):
        yield


def fire_lags() -> float:
    return REGISTRY.get_sample_value("extsched_fire_lag_seconds_count") or 0.0


def quiet_hour() -> datetime:
    """The start of the hour twelve hours ago: a schedule on that hour does not fire by itself
    during the test, and its fires of that hour are in the past, ready to be backfilled."""
    return (datetime.now(UTC) - timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)


def every_minute_of(hour: datetime) -> str:
    return f"* {hour.hour} * * *"


def z(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def deliver(temporal: TemporalBackend, s: dict[str, Any], *fires: datetime) -> None:
    """Have Temporal deliver these fires of the schedule now (a backfill with the schedule's
    own overlap policy)."""
    client = await temporal.client()
    handle = client.get_schedule_handle(schedule_handle_id(s))
    await handle.backfill(*(ScheduleBackfill(at - SECOND, at) for at in fires))


def schedule_handle_id(s: dict[str, Any]) -> str:
    return handle_id("acme", uuid.UUID(s["install_id"]), uuid.UUID(s["id"]))


async def settle(temporal: TemporalBackend, s: dict[str, Any], n: int) -> None:
    """Wait until the schedule has started ``n`` workflows and every one has ended."""
    client = await temporal.client()
    handle = client.get_schedule_handle(schedule_handle_id(s))

    async def started() -> list[str]:
        described = await handle.describe()
        return [
            a.action.workflow_id
            for a in described.info.recent_actions
            if isinstance(a.action, ScheduleActionExecutionStartWorkflow)
        ]

    for workflow_id in await eventually(started, lambda ids: len(ids) >= n):
        await client.get_workflow_handle(workflow_id).result()


async def runs_of(client: httpx.AsyncClient, actor: Actor, s: dict[str, Any]) -> list[Any]:
    r = await client.get(f"/api/v1/schedules/{s['id']}/runs", headers=actor.headers)
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


def by_fire(runs: list[Any]) -> dict[str, Any]:
    return {r["scheduled_for"]: r for r in runs if r["trigger"] == "schedule"}


def ended(runs: list[Any], fire: datetime) -> bool:
    run = by_fire(runs).get(z(fire))
    return run is not None and run["status"] not in ("queued", "running")


def finished(runs: list[Any]) -> bool:
    return bool(runs) and all(r["status"] not in ("queued", "running") for r in runs)


async def calls(runner: FakeRunner, path: str, n: int) -> None:
    await eventually(lambda: _count(runner, path), lambda got: got >= n)


async def _count(runner: FakeRunner, path: str) -> int:
    return len(runner.calls_to(path))


# ----------------------------------------------------------------------------- overlap
async def test_skip_records_a_fire_that_arrives_while_the_previous_one_runs(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    runner.behaviour = {"/hang": "hang"}
    hour = quiet_hour()
    # A long timeout keeps the first run's lock while the service's clock moves a minute on.
    s = await sched(path="/hang", cron=every_minute_of(hour), overlap="skip", timeout_ms=120_000)
    first, second = hour + 10 * MINUTE, hour + 11 * MINUTE
    clock.set(first + SECOND)
    await deliver(temporal, s, first)
    await calls(runner, "/hang", 1)
    clock.set(second + SECOND)
    # Temporal starts the fire (it does not drop it itself); the service records it skipped.
    await deliver(temporal, s, second)
    runs = await eventually(
        lambda: runs_of(client, alice, s), lambda rs: ended(rs, second), within=20
    )
    skipped = by_fire(runs)[z(second)]
    assert (skipped["status"], skipped["skip_reason"]) == ("skipped", "overlap")
    assert len(runner.calls_to("/hang")) == 1
    runner.release.set()
    runs = await eventually(lambda: runs_of(client, alice, s), finished)
    assert by_fire(runs)[z(first)]["status"] == "succeeded"


async def test_allow_runs_two_fires_of_one_schedule_side_by_side(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    runner.behaviour = {"/hang": "hang"}
    hour = quiet_hour()
    s = await sched(path="/hang", cron=every_minute_of(hour), overlap="allow")
    first, second = hour + 10 * MINUTE, hour + 11 * MINUTE
    clock.set(first + SECOND)
    await deliver(temporal, s, first)
    await calls(runner, "/hang", 1)
    clock.set(second + SECOND)
    await deliver(temporal, s, second)
    await calls(runner, "/hang", 2)  # both calls are in the Runner at once
    assert {c.envelope["context"]["scheduled_for"] for c in runner.calls_to("/hang")} == {
        z(first),
        z(second),
    }
    runner.release.set()
    runs = await eventually(lambda: runs_of(client, alice, s), finished)
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"]


# The run-now and the fire below run on the real clock; the fire is the schedule's latest, an
# hour or more ago, so the catch-up window is widened to let it run instead of being missed.
@pytest.mark.settings(min_interval_seconds=60, catchup_window_seconds=86_400)
async def test_buffer_one_starts_the_waiting_fire_right_after_the_running_run(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    runner.behaviour = {"/hang": "hang"}
    hour = quiet_hour()
    latest = hour + 59 * MINUTE
    # One attempt allowed: the buffered run's many looks must not use it up.
    s = await sched(
        path="/hang",
        cron=every_minute_of(hour),
        overlap="buffer_one",
        timeout_ms=60_000,
        max_attempts=1,
    )
    lags_before = fire_lags()
    url = f"/api/v1/schedules/{s['id']}/run-now"
    running = (await client.post(url, headers=alice.headers)).json()["run_id"]
    await calls(runner, "/hang", 1)
    await deliver(temporal, s, latest)

    def waiting(rs: list[Any]) -> bool:
        run = by_fire(rs).get(z(latest))
        return run is not None and (run["status"], run["attempts"]) == ("queued", 0)

    await eventually(lambda: runs_of(client, alice, s), waiting)  # buffered, no attempt used
    # Another run while one waits is skipped.
    third = (await client.post(url, headers=alice.headers)).json()["run_id"]
    runs = await eventually(
        lambda: runs_of(client, alice, s),
        lambda rs: any(r["id"] == third and r["status"] == "skipped" for r in rs),
    )
    assert next(r for r in runs if r["id"] == third)["skip_reason"] == "overlap"
    assert len(runner.calls_to("/hang")) == 1
    released = time.monotonic()
    runner.release.set()
    runs = await eventually(lambda: runs_of(client, alice, s), finished)
    statuses = {r["id"]: (r["status"], r["attempts"]) for r in runs}
    buffered = by_fire(runs)[z(latest)]
    assert statuses[running] == ("succeeded", 1)
    assert (buffered["status"], buffered["attempts"]) == ("succeeded", 1)
    # It started right after the running run ended (it looks again every second).
    [call] = [
        c for c in runner.calls_to("/hang") if c.envelope["context"]["run_id"] == buffered["id"]
    ]
    assert released <= call.at < released + 3
    assert call.envelope["context"]["scheduled_for"] == z(latest)
    ended = next(r for r in runs if r["id"] == running)["finished_at"]
    assert buffered["started_at"] >= ended
    # Its fire lag is observed once, when it starts, not at each of its looks.
    assert fire_lags() - lags_before == 1


# ----------------------------------------------------------------------------- attempts, timeout
async def test_max_attempts_and_timeout_are_the_schedules_own(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    runner.behaviour = {"/flaky": "flaky:2", "/hang": "hang"}
    flaky = await sched(path="/flaky", max_attempts=1)  # the default (3) would succeed
    hung = await sched(path="/hang", max_attempts=1, timeout_ms=1000)  # the default is 3000 here
    for s in (flaky, hung):
        r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
        assert r.status_code == 202, r.text
    [failed] = await eventually(lambda: runs_of(client, alice, flaky), finished)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert len(runner.calls_to("/flaky")) == 1
    [timed_out] = await eventually(lambda: runs_of(client, alice, hung), finished)
    assert timed_out["status"] == "timed_out" and "1000 ms" in timed_out["error"]
    assert 1000 <= timed_out["duration_ms"] < 2500
    [call] = runner.calls_to("/hang")
    assert call.envelope["limits"] == {"timeout_ms": 1000}


@pytest.fixture
async def activities(ctx: AppContext, runner: FakeRunner) -> AsyncIterator[Activities]:
    """The activity called directly, as Temporal would call it, with the test's clock."""
    s = ctx.settings
    client = RunnerClient(
        runner.url, s.runner_timeout_ms, s.runner_max_response_bytes, token=s.runner_token_value
    )
    yield Activities(ctx, InvocationHandler(ctx, client), "temporal:test")
    await client.aclose()


def fire(s: dict[str, Any], at: datetime) -> AttemptInput:
    return AttemptInput(
        RunInput("acme", s["install_id"], s["id"], s["cron"], s["timezone"]), at, None
    )


async def test_a_lost_last_attempt_fails_once_under_the_schedules_max_attempts(
    activities: Activities,
    ctx: AppContext,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="0 9 * * *", max_attempts=1)  # the service default is 3
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    clock.set(at + SECOND)
    dead = Activities(ctx, activities.handler, "temporal:dead")
    # The dead worker records and claims the fire in one statement, then is lost.
    found = await dead._fire("acme", uuid.UUID(s["id"]), fire(s, at))
    assert isinstance(found, dict) and found["lease_owner"] == "temporal:dead"
    clock.set(clock() + timedelta(seconds=activities.handler.lease_seconds + 1))
    # Temporal retries the activity: the only attempt was used, so the run fails, unsent.
    assert await activities.attempt(fire(s, at)) == AttemptOutcome(None)
    [run] = await runs_of(client, alice, s)
    assert (run["status"], run["attempts"]) == ("failed", 1)
    assert run["error"] == "worker lost during the last attempt"
    assert runner.calls == []


# ----------------------------------------------------------------------------- jitter
async def test_jitter_starts_a_real_fire_at_its_offset_and_keeps_the_nominal_time(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    s = await sched(cron="* * * * *", enabled=False)  # no fire before its jitter is set
    # A jitter under half the one-minute gap whose offsets for the next fires are a few
    # seconds at least, so the wait shows (the offset is a fixed function of the fire).
    now = datetime.now(UTC)
    upcoming = [now.replace(second=0, microsecond=0) + k * MINUTE for k in (1, 2, 3)]
    sid = uuid.UUID(s["id"])
    jitter = next(
        j
        for j in range(29, 4, -1)
        if all(jitter_offset(sid, at, j) >= 4 * SECOND for at in upcoming)
    )
    r = await client.patch(
        f"/api/v1/schedules/{s['id']}",
        json={"jitter_seconds": jitter, "enabled": True},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    runs = await eventually(
        lambda: runs_of(client, alice, s),
        lambda rs: any(r["status"] == "succeeded" for r in rs),
        within=150,
    )
    run = next(r for r in runs if r["status"] == "succeeded")
    nominal = parse_z(run["scheduled_for"])
    assert nominal.second == 0 and nominal in upcoming
    delay = jitter_offset(sid, nominal, jitter)
    started = parse_z(run["started_at"])
    assert nominal + delay <= started < nominal + delay + 3 * SECOND
    call = next(c for c in runner.calls if c.envelope["context"]["run_id"] == run["id"])
    assert call.envelope["context"]["scheduled_for"] == run["scheduled_for"]
    # The workflow waited on a durable Temporal timer.
    temporal_client = await temporal.client()
    workflow_id = f"{handle_id('acme', uuid.UUID(s['install_id']), sid)}-{run['scheduled_for']}"
    history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    assert any(e.HasField("timer_started_event_attributes") for e in history.events)


# ----------------------------------------------------------------------------- windows, pause
async def test_fires_outside_the_window_are_neither_made_nor_recorded(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    hour = quiet_hour()
    inside = hour + 4 * MINUTE
    s = await sched(cron=every_minute_of(hour), starts_at=z(inside), ends_at=z(inside + MINUTE))
    client_t = await temporal.client()
    described = await client_t.get_schedule_handle(schedule_handle_id(s)).describe()
    assert described.schedule.spec.start_at == inside
    assert described.schedule.spec.end_at == inside + MINUTE
    clock.set(inside + SECOND)
    # Temporal skips the fires before its start_at, but its end_at is inclusive: it delivers
    # the fire at ends_at too, which the activity drops (the window is [starts_at, ends_at)).
    await deliver(temporal, s, *(hour + k * MINUTE for k in range(1, 8)))
    await settle(temporal, s, 2)
    runs = await runs_of(client, alice, s)
    assert [(r["scheduled_for"], r["status"]) for r in runs] == [(z(inside), "succeeded")]
    assert [c.envelope["context"]["scheduled_for"] for c in runner.calls] == [z(inside)]


async def test_pause_until_is_temporals_start_and_the_activitys_check(
    activities: Activities,
    temporal: TemporalBackend,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    clock.set(datetime(2026, 12, 1, 8, tzinfo=UTC))
    s = await sched(cron="0 9 * * *")
    r = await client.patch(
        f"/api/v1/schedules/{s['id']}",
        json={"paused_until": "2026-12-04T12:00:00+01:00"},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    client_t = await temporal.client()
    described = await client_t.get_schedule_handle(schedule_handle_id(s)).describe()
    assert described.schedule.spec.start_at == datetime(2026, 12, 4, 11, tzinfo=UTC)
    # A fire delivered during the pause (a spec Temporal read before the change) is dropped;
    # the first one after it runs: the pause ended by itself.
    for day in range(1, 7):
        at = datetime(2026, 12, day, 9, tzinfo=UTC)
        clock.set(at + SECOND)
        assert await activities.attempt(fire(s, at)) == AttemptOutcome(None)
    runs = await runs_of(client, alice, s)
    assert sorted((r["scheduled_for"], r["status"]) for r in runs) == [
        ("2026-12-05T09:00:00Z", "succeeded"),
        ("2026-12-06T09:00:00Z", "succeeded"),
    ]
    assert len(runner.calls) == 2


async def test_refreshing_the_dst_compensation_keeps_the_window(
    temporal: TemporalBackend, sched: Any, clock: Clock
) -> None:
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    s = await sched(
        cron="30 2 * * *",
        timezone="Europe/Paris",
        starts_at="2027-01-01T00:00:00Z",
        ends_at="2029-01-01T00:00:00Z",
    )
    clock.set(datetime(2027, 4, 1, tzinfo=UTC))  # March 2028 comes into the horizon
    assert await temporal.refresh_compensation() == 1
    client_t = await temporal.client()
    described = await client_t.get_schedule_handle(schedule_handle_id(s)).describe()
    assert described.schedule.spec.start_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert described.schedule.spec.end_at == datetime(2029, 1, 1, tzinfo=UTC)


# ----------------------------------------------------------------------------- run-now, replay
async def test_run_now_sends_a_one_off_payload_and_replay_repeats_a_run(
    worker: None,
    temporal: TemporalBackend,
    sched: Any,
    clock: Clock,
    runner: FakeRunner,
    client: httpx.AsyncClient,
    alice: Actor,
) -> None:
    hour = quiet_hour()
    s = await sched(cron=every_minute_of(hour), payload={"full": False})
    r = await client.post(
        f"/api/v1/schedules/{s['id']}/run-now",
        json={"payload": {"full": True}},
        headers=alice.headers,
    )
    assert r.status_code == 202, r.text
    await eventually(lambda: runs_of(client, alice, s), finished)
    assert runner.calls_to("/sync")[-1].body == {"full": True}
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["payload"] == {"full": False}

    at = hour + 10 * MINUTE
    clock.set(at + SECOND)
    await deliver(temporal, s, at)
    runs = await eventually(
        lambda: runs_of(client, alice, s), lambda rs: finished(rs) and z(at) in by_fire(rs)
    )
    fired = by_fire(runs)[z(at)]
    r = await client.post(f"/api/v1/runs/{fired['id']}/replay", headers=alice.headers)
    assert r.status_code == 202, r.text
    runs = await eventually(
        lambda: runs_of(client, alice, s),
        lambda rs: finished(rs) and any(x["trigger"] == "replay" for x in rs),
    )
    replay = next(x for x in runs if x["trigger"] == "replay")
    assert replay["replay_of"] == fired["id"] and replay["id"] == r.json()["run_id"]
    assert (replay["scheduled_for"], replay["status"]) == (z(at), "succeeded")
    call = runner.calls_to("/sync")[-1]
    assert call.envelope["context"]["trigger"] == "replay"
    assert call.envelope["context"]["run_id"] == replay["id"]
    assert call.body == {"full": False}  # today's payload
