"""Schedule policies (SPEC §5, §8, §9) on the postgres backend, against a real fake Runner (an
HTTP server) and PostgreSQL: overlap, attempts, timeout, jitter, windows, pause, run-now
payloads and replay; and their validation through the API.

The clock is the test's (``harness.tick`` sets it); actors as elsewhere (alice of ``acme``).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from extsched.domain.ids import uuid7
from extsched.domain.timing import jitter_offset
from extsched.services.context import AppContext
from extsched.workers.postgres import Executor, PostgresWorker
from tests.conftest import Actor
from tests.integration.test_execution import (
    T0,
    Harness,
    harness,
    runs_of,
    sched,
    settings_overrides,
)

__all__ = ["harness", "sched", "settings_overrides"]  # fixtures of the execution suite

NINE = T0.replace(hour=9, minute=0)
POLL = 0.01


async def _until_called(harness: Harness, path: str, n: int = 1) -> None:
    for _ in range(500):
        if len(harness.runner.calls_to(path)) >= n:
            return
        await asyncio.sleep(POLL)  # polling for the Runner to hold the call
    raise AssertionError(f"the Runner never received {n} call(s) to {path}")


async def _patch(
    client: httpx.AsyncClient, actor: Actor, sid: str, **fields: Any
) -> httpx.Response:
    return await client.patch(f"/api/v1/schedules/{sid}", json=fields, headers=actor.headers)


# ----------------------------------------------------------------------------- overlap
async def test_allow_runs_two_fires_of_one_schedule_side_by_side(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    harness.runner.behaviour = {"/hang": "hang"}
    s = await sched(path="/hang", cron="*/5 * * * *", overlap="allow")
    assert s["overlap"] == "allow"
    await harness.tick(NINE)
    assert await harness.executor.claim_and_start() == 1
    await _until_called(harness, "/hang")
    await harness.tick(NINE + timedelta(minutes=5))
    second = Executor(harness.ctx, harness.handler)
    assert await second.claim_and_start() == 1
    await _until_called(harness, "/hang", 2)  # both calls are in the Runner at once
    harness.runner.release.set()
    await asyncio.gather(*harness.executor.in_flight.values(), *second.in_flight.values())
    runs = await runs_of(client, alice, s["id"])
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"]


# The test's clock jumps 10 minutes while the first call hangs: a long grace keeps its lock.
@pytest.mark.settings(lease_grace_seconds=900.0)
async def test_buffer_one_starts_the_next_fire_right_after_the_running_one(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    harness.runner.behaviour = {"/hang": "hang"}
    s = await sched(path="/hang", cron="*/5 * * * *", overlap="buffer_one")
    await harness.tick(NINE)
    assert await harness.executor.claim_and_start() == 1
    await _until_called(harness, "/hang")
    # Two more fires while the first runs: one waits (buffered), the other is skipped.
    await harness.tick(NINE + timedelta(minutes=5))
    await harness.tick(NINE + timedelta(minutes=10))
    other = Executor(harness.ctx, harness.handler)
    assert await other.claim_and_start() == 2
    await asyncio.gather(*other.in_flight.values())
    runs = {r["scheduled_for"]: r for r in await runs_of(client, alice, s["id"])}
    assert runs["2026-12-01T09:05:00Z"]["status"] == "queued"  # buffered, attempt not used
    assert runs["2026-12-01T09:05:00Z"]["attempts"] == 0
    assert runs["2026-12-01T09:10:00Z"]["skip_reason"] == "overlap"
    assert len(harness.runner.calls_to("/hang")) == 1
    # The running run ends; the buffered one starts at its next look (within a second).
    harness.runner.release.set()
    await asyncio.gather(*harness.executor.in_flight.values())
    harness.clock.set(harness.clock() + timedelta(seconds=1))
    await harness.drain()
    runs = {r["scheduled_for"]: r for r in await runs_of(client, alice, s["id"])}
    assert runs["2026-12-01T09:05:00Z"]["status"] == "succeeded"
    assert runs["2026-12-01T09:05:00Z"]["attempts"] == 1
    assert len(harness.runner.calls_to("/hang")) == 2


# ----------------------------------------------------------------------------- attempts, timeout
async def test_max_attempts_and_timeout_are_the_schedules_own(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    harness.runner.behaviour = {"/r500": "runner_500"}
    s = await sched(path="/r500", max_attempts=1, timeout_ms=2500)
    await harness.tick(NINE)
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert run["status"] == "failed" and run["attempts"] == 1  # the default would retry
    [call] = harness.runner.calls_to("/r500")
    assert call.envelope["limits"] == {"timeout_ms": 2500}

    # The client enforces the schedule's timeout, not the service default (1500 ms here).
    harness.runner.behaviour["/hang"] = "hang"
    h = await sched(path="/hang", max_attempts=1, timeout_ms=1000)
    await harness.tick(NINE + timedelta(days=1))
    started = asyncio.get_running_loop().time()
    await harness.drain()
    elapsed = asyncio.get_running_loop().time() - started
    [hung] = await runs_of(client, alice, h["id"])
    assert hung["status"] == "timed_out" and "1000 ms" in hung["error"]
    assert elapsed < 1.4


async def test_a_schedules_longer_timeout_stretches_its_runs_lease(
    harness: Harness,
    sched,
    ctx: AppContext,  # type: ignore[no-untyped-def]
) -> None:
    """A run is claimed with the service's lease (its timeout + grace); a schedule whose
    timeout is longer stretches the lease when the attempt starts, so no reaper hands a
    legitimately long call to another worker."""
    harness.runner.behaviour = {"/hang": "hang"}
    s = await sched(path="/hang", max_attempts=1, timeout_ms=120_000)
    await harness.tick(NINE)
    assert await harness.executor.claim_and_start() == 1
    await _until_called(harness, "/hang")
    async with ctx.db.connection() as conn:
        cur = await conn.execute(
            "SELECT lease_expires_at - started_at AS lease FROM extension_schedule_run "
            "WHERE tenant_id = 'acme' AND schedule_id = %s",
            (uuid.UUID(s["id"]),),
        )
        row = await cur.fetchone()
    assert row is not None
    assert row["lease"] >= timedelta(seconds=120)  # the default lease is far shorter
    assert harness.handler.lease_seconds < 120
    harness.runner.release.set()
    await asyncio.gather(*harness.executor.in_flight.values())


async def test_a_lost_last_attempt_fails_once_under_the_schedules_max_attempts(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(max_attempts=1)  # the service default is 3
    await harness.tick(NINE)
    dead = Executor(ctx, harness.handler, owner="worker:dead")
    assert len(await dead.claim(10)) == 1  # claims the run and dies
    harness.clock.set(harness.clock() + timedelta(seconds=harness.handler.lease_seconds + 1))
    assert await harness.reaper.sweep() == 1
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert (run["status"], run["attempts"]) == ("failed", 1)
    assert run["error"] == "worker lost during the last attempt"
    assert harness.runner.calls == []


# ----------------------------------------------------------------------------- jitter
async def test_jitter_delays_the_run_but_keeps_the_nominal_fire_time(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="*/10 * * * *", jitter_seconds=240)
    delay = jitter_offset(uuid.UUID(s["id"]), NINE, 240)
    assert delay == jitter_offset(uuid.UUID(s["id"]), NINE, 240)  # a fixed function
    await harness.tick(NINE)
    if delay > timedelta(0):
        assert await harness.executor.claim_and_start() == 0  # not before its offset
    harness.clock.set(NINE + delay)
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert run["scheduled_for"] == "2026-12-01T09:00:00Z" and run["status"] == "succeeded"
    assert run["started_at"] == (NINE + delay).strftime("%Y-%m-%dT%H:%M:%SZ")
    [call] = harness.runner.calls_to("/sync")
    assert call.envelope["context"]["scheduled_for"] == "2026-12-01T09:00:00Z"


async def test_the_live_executor_starts_each_jittered_run_when_it_becomes_due(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    # Runs that become due later (jittered fires, retries) are not announced: the executor
    # wakes for each instead of finding them at its next poll, so jitter is not re-bunched.
    s = await sched(cron="*/10 * * * *", overlap="allow")
    harness.clock.frozen = None  # the live loop runs on the real clock
    now = harness.clock()
    due = [now + timedelta(seconds=0.4 + 0.35 * k) for k in range(6)]
    async with ctx.db.connection() as conn:
        for k, at in enumerate(due):
            await conn.execute(
                "INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id, "
                "trigger, scheduled_for, status, available_at) "
                "VALUES ('acme', %s, %s, %s, 'schedule', %s, 'queued', %s)",
                (uuid7(), s["id"], s["install_id"], NINE + timedelta(minutes=10 * k), at),
            )
    worker = PostgresWorker(ctx, harness.handler, scheduler=False, stop_grace_seconds=1.0)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(1000):
            if len(harness.runner.calls) >= len(due):
                break
            await asyncio.sleep(POLL)  # polling for the Runner to receive every call
    finally:
        worker.stop()
        await task
    async with ctx.db.connection() as conn:
        cur = await conn.execute(
            "SELECT status, extract(epoch FROM started_at - available_at) AS late "
            "FROM extension_schedule_run"
        )
        rows = await cur.fetchall()
    assert [r["status"] for r in rows] == ["succeeded"] * len(due)
    # Polling every 0.5 s would start them 0-0.5 s late, at random.
    assert max(float(r["late"]) for r in rows) < 0.25, rows


def test_jitter_offsets_spread_over_the_whole_range() -> None:
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    offsets = {jitter_offset(uuid.uuid4(), at, 60).total_seconds() for _ in range(2000)}
    assert offsets == {float(s) for s in range(61)}
    assert jitter_offset(uuid.uuid4(), at, 0) == timedelta(0)


# ----------------------------------------------------------------------------- windows, pause
async def test_fires_outside_the_window_are_neither_made_nor_recorded(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(
        cron="0 9 * * *",
        starts_at="2026-12-03T00:00:00Z",
        ends_at="2026-12-05T09:00:00Z",
    )
    assert s["next_run_at"] == "2026-12-03T09:00:00Z"
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert [f["at"] for f in got["next_runs"]] == ["2026-12-03T09:00:00Z", "2026-12-04T09:00:00Z"]
    for day in range(1, 8):
        await harness.tick(datetime(2026, 12, day, 9, 0, 30, tzinfo=UTC))
        await harness.drain()
    runs = await runs_of(client, alice, s["id"])
    assert sorted(r["scheduled_for"] for r in runs) == [
        "2026-12-03T09:00:00Z",
        "2026-12-04T09:00:00Z",
    ]
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["next_run_at"] is None and got["next_runs"] == []


async def test_pause_until_skips_silently_and_resumes_by_itself(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="0 9 * * *")
    r = await _patch(client, alice, s["id"], paused_until="2026-12-04T12:00:00+01:00")
    assert r.status_code == 200, r.text
    assert r.json()["paused_until"] == "2026-12-04T11:00:00Z"
    assert r.json()["next_run_at"] == "2026-12-05T09:00:00Z"
    for day in range(1, 7):
        await harness.tick(datetime(2026, 12, day, 9, 0, 30, tzinfo=UTC))
        await harness.drain()
    runs = await runs_of(client, alice, s["id"])
    # No "missed" records for the pause: it resumed by itself at the first fire after it.
    assert sorted((r["scheduled_for"], r["status"]) for r in runs) == [
        ("2026-12-05T09:00:00Z", "succeeded"),
        ("2026-12-06T09:00:00Z", "succeeded"),
    ]


# ----------------------------------------------------------------------------- run-now, replay
async def test_run_now_sends_a_one_off_payload_and_replay_repeats_a_run(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(payload={"full": False})
    r = await client.post(
        f"/api/v1/schedules/{s['id']}/run-now",
        json={"payload": {"full": True}},
        headers=alice.headers,
    )
    assert r.status_code == 202, r.text
    await harness.drain()
    assert harness.runner.calls_to("/sync")[-1].body == {"full": True}
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["payload"] == {"full": False}  # the schedule's own payload is unchanged

    await harness.tick(NINE)
    await harness.drain()
    fired = next(x for x in await runs_of(client, alice, s["id"]) if x["trigger"] == "schedule")
    r = await client.post(f"/api/v1/runs/{fired['id']}/replay", headers=alice.headers)
    assert r.status_code == 202, r.text
    await harness.drain()
    replay = next(x for x in await runs_of(client, alice, s["id"]) if x["trigger"] == "replay")
    assert replay["replay_of"] == fired["id"] and replay["id"] == r.json()["run_id"]
    assert replay["scheduled_for"] == "2026-12-01T09:00:00Z" and replay["status"] == "succeeded"
    call = harness.runner.calls_to("/sync")[-1]
    assert call.envelope["context"]["trigger"] == "replay"
    assert call.body == {"full": False}  # today's payload

    # Another tenant's run is not found; bad payloads change nothing.
    missing = await client.post(f"/api/v1/runs/{uuid.uuid4()}/replay", headers=alice.headers)
    assert missing.status_code == 404
    bad = await client.post(
        f"/api/v1/schedules/{s['id']}/run-now", json={"payload": 3}, headers=alice.headers
    )
    assert bad.status_code == 422 and "payload" in bad.json()["error"]["field_errors"]


async def test_replay_is_another_tenants_404(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,
    charlie: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched()
    await harness.tick(NINE)
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    r = await client.post(f"/api/v1/runs/{run['id']}/replay", headers=charlie.headers)
    assert r.status_code == 404


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("fields", "field_name", "message"),
    [
        ({"overlap": "queue"}, "overlap", ""),
        ({"max_attempts": 0}, "max_attempts", "1 to 10"),
        ({"max_attempts": 11}, "max_attempts", "1 to 10"),
        ({"timeout_ms": 999}, "timeout_ms", "1000 to 300000"),
        ({"timeout_ms": 300_001}, "timeout_ms", "1000 to 300000"),
        ({"jitter_seconds": -1}, "jitter_seconds", "0 to 3600"),
        ({"jitter_seconds": 150}, "jitter_seconds", "shortest gap (150 s)"),
        ({"starts_at": "2026-12-05T00:00:00Z", "ends_at": "2026-12-04T00:00:00Z"}, "ends_at", ""),
        ({"starts_at": "2026-12-05T00:00:00"}, "starts_at", ""),
        ({"cron": "*/30 * * * *", "dst_gap": "skip"}, "dst_gap", "fixed-time"),
        ({"cron": "0 */2 * * *", "dst_repeat": "both"}, "dst_repeat", "fixed-time"),
        ({"dst_repeat": "second"}, "dst_repeat", ""),
    ],
)
async def test_it_refuses_bad_policies_with_a_field_error(
    sched,
    client: httpx.AsyncClient,
    alice: Actor,
    fields: dict[str, Any],
    field_name: str,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="*/5 * * * *")
    body = {"cron": "*/5 * * * *", **fields}
    r = await _patch(client, alice, s["id"], **body)
    assert r.status_code == 422, r.text
    errors = r.json()["error"]["field_errors"]
    assert field_name in errors and message in errors[field_name], errors
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["revision"] == s["revision"]  # nothing changed


async def test_old_clients_get_todays_behaviour_and_null_resets_a_policy(
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="0 9 * * *")
    assert s["overlap"] is None and s["max_attempts"] is None and s["origin"] == "user"
    r = await _patch(client, alice, s["id"], dst_gap="skip", dst_repeat="both", max_attempts=5)
    assert r.status_code == 200 and r.json()["dst_gap"] == "skip", r.text
    r = await _patch(client, alice, s["id"], max_attempts=None)
    assert r.json()["max_attempts"] is None and r.json()["dst_repeat"] == "both"
