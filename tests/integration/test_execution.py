"""Execution on the postgres backend: firing, invocation, outcomes, retries, overlap, leases,
catch-up, run-now and history, against a real fake Runner (an HTTP server) and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from extsched.runner.client import RunnerClient
from extsched.services import handles
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.workers.postgres import Executor, Reaper, Scheduler
from tests.conftest import Actor, Clock, endpoint_id, marked_settings
from tests.fake_runner import FakeRunner, fake_runner

T0 = datetime(2026, 12, 1, 8, 59, 0, tzinfo=UTC)  # a Tuesday


class Harness:
    """Drives the scheduler and executor step by step with the test's clock."""

    def __init__(self, ctx: AppContext, clock: Clock, runner: FakeRunner) -> None:
        self.ctx, self.clock, self.runner = ctx, clock, runner
        self.client = RunnerClient(
            runner.url,
            ctx.settings.runner_timeout_ms,
            ctx.settings.runner_max_response_bytes,
            token=ctx.settings.runner_token_value,
        )
        self.handler = InvocationHandler(ctx, self.client)
        self.scheduler = Scheduler(ctx)
        self.executor = Executor(ctx, self.handler)
        self.reaper = Reaper(ctx, self.handler)

    async def tick(self, at: datetime) -> Any:
        self.clock.set(at)
        return await self.scheduler.tick()

    async def drain(self, max_rounds: int = 50) -> None:
        """Execute queued runs until none is available; retries jump the clock forward."""
        for _ in range(max_rounds):
            started = await self.executor.claim_and_start()
            if self.executor.in_flight:
                await asyncio.gather(*self.executor.in_flight.values())
                continue
            if not started:
                nxt = await self._next_available()
                if nxt is None:
                    return
                self.clock.set(max(self.clock(), nxt))
        raise AssertionError("runs did not drain")

    async def _next_available(self) -> datetime | None:
        async with self.ctx.db.connection() as conn:
            cur = await conn.execute(
                "SELECT min(available_at) AS at FROM extension_schedule_run WHERE status='queued'"
            )
            row = await cur.fetchone()
        return None if row is None else row["at"]


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {
        "retry_base_seconds": 10.0,
        "runner_timeout_ms": 1500,
        "lease_grace_seconds": 2.0,
        **marked_settings(request),
    }


@pytest.fixture
async def harness(ctx: AppContext, clock: Clock) -> AsyncIterator[Harness]:
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        yield h
        await h.client.aclose()


@pytest.fixture
async def sched(client: httpx.AsyncClient, alice: Actor, install, clock: Clock):  # type: ignore[no-untyped-def]
    """``await sched(path='/sync', cron=..., **fields)`` -> schedule body (alice's, acme)."""
    clock.set(T0)
    published, _ = await install(
        alice,
        endpoints=[
            {"method": "POST", "path": p, "handler": "h"}
            for p in (
                "/sync",
                "/e404",
                "/e500",
                "/r500",
                "/r429",
                "/r400",
                "/nonjson",
                "/empty",
                "/huge",
                "/hang",
                "/flaky",
            )
        ]
        + [{"method": "GET", "path": "/report", "handler": "h"}],
    )

    async def _create(path: str = "/sync", method: str = "POST", **fields: Any) -> dict[str, Any]:
        body = {
            "endpoint_id": endpoint_id(published, method, path),
            "cron": "0 9 * * *",
            "timezone": "UTC",
            **fields,
        }
        r = await client.post(
            f"/api/v1/extensions/{published['extension_id']}/schedules",
            json=body,
            headers=alice.headers,
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    return _create


async def runs_of(
    client: httpx.AsyncClient, actor: Actor, schedule_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/schedules/{schedule_id}/runs", headers=actor.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_it_fires_a_due_schedule_once_with_the_spec_envelope(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(payload={"full": True, "note": "é"})
    fire = T0.replace(minute=0, hour=9)
    assert (await harness.tick(fire - timedelta(seconds=1))).runs_queued == 0
    assert (await harness.tick(fire + timedelta(milliseconds=200))).runs_queued == 1
    assert (await harness.tick(fire + timedelta(seconds=2))).runs_queued == 0  # advanced
    await harness.drain()
    [call] = harness.runner.calls
    ctx_ = call.envelope["context"]
    assert ctx_["tenant_id"] == "acme" and ctx_["trigger"] == "schedule"
    assert ctx_["scheduled_for"] == "2026-12-01T09:00:00Z" and ctx_["attempt"] == 1
    assert ctx_["schedule_id"] == s["id"] and ctx_["content_hash"].startswith("sha256:")
    assert call.envelope["http"]["method"] == "POST" and call.envelope["http"]["path"] == "/sync"
    assert call.body == {"full": True, "note": "é"}
    assert call.envelope["http"]["headers"]["x-extsched-scheduled-for"] == "2026-12-01T09:00:00Z"
    assert call.envelope["http"]["headers"]["content-type"] == "application/json"
    assert "user" not in call.envelope and "secret_envelope" not in call.envelope
    assert call.headers["x-idempotency-key"] == f"{ctx_['run_id']}:1"
    assert call.headers["x-tenant-id"] == "acme"
    assert call.headers["x-request-id"] == ctx_["request_id"]
    [run] = await runs_of(client, alice, s["id"])
    assert run["status"] == "succeeded" and run["trigger"] == "schedule"
    assert run["attempts"] == 1 and run["http_status"] == 200
    assert run["response_preview"] == '{"ok":true}'
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["last_run_status"] == "succeeded" and got["consecutive_failures"] == 0
    assert got["last_success_at"] is not None and got["next_run_at"] == "2026-12-02T09:00:00Z"


async def test_it_sends_get_without_a_body(harness: Harness, sched) -> None:  # type: ignore[no-untyped-def]
    await sched(path="/report", method="GET", payload={"ignored": True})
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    [call] = harness.runner.calls
    assert call.envelope["http"]["method"] == "GET" and "body_b64" not in call.envelope["http"]
    assert "content-type" not in call.envelope["http"]["headers"]


@pytest.mark.parametrize(
    ("path", "status", "http_status", "attempts", "error_part"),
    [
        ("/e404", "failed", 404, 1, "404"),
        ("/e500", "failed", 500, 1, "500"),
        ("/r500", "failed", None, 3, "500"),
        ("/r429", "failed", None, 3, "429"),
        ("/r400", "failed", None, 1, "400"),
        ("/nonjson", "failed", None, 1, "JSON"),
        ("/empty", "failed", None, 1, ""),
        ("/huge", "failed", None, 1, "exceeds"),
        ("/hang", "timed_out", None, 3, ""),
        ("/flaky", "succeeded", 200, 3, None),
    ],
)
async def test_it_classifies_every_outcome_and_retries_only_transient_ones(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
    path: str,
    status: str,
    http_status: int | None,
    attempts: int,
    error_part: str | None,
) -> None:
    harness.runner.behaviour = {
        "/r500": "runner_500",
        "/r429": "runner_429",
        "/r400": "runner_400",
        "/e404": "ext_404",
        "/e500": "ext_500",
        "/nonjson": "non_json",
        "/empty": "empty",
        "/huge": "huge",
        "/hang": "hang",
        "/flaky": "flaky:2",
    }
    s = await sched(path=path)
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert (run["status"], run["http_status"], run["attempts"]) == (status, http_status, attempts)
    assert len(harness.runner.calls_to(path)) == attempts
    keys = [c.headers["x-idempotency-key"] for c in harness.runner.calls_to(path)]
    assert keys == [f"{run['id']}:{n}" for n in range(1, attempts + 1)]
    if error_part is None:
        assert run["error"] is None
    else:
        assert run["error"] and error_part in run["error"] and "\n" not in run["error"]
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["last_run_status"] == status
    assert got["consecutive_failures"] == (0 if status == "succeeded" else 1)


@pytest.mark.settings(runner_timeout_ms=600_000)  # the first run may outlast the interval
async def test_it_skips_a_fire_that_overlaps_a_running_run(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    harness.runner.behaviour = {"/hang": "hang"}
    s = await sched(path="/hang", cron="*/5 * * * *")
    await harness.tick(T0.replace(minute=0, hour=9))
    assert await harness.executor.claim_and_start() == 1
    # wait until the Runner holds the first call (polling, not sleeping a fixed time)
    for _ in range(200):
        if harness.runner.calls_to("/hang"):
            break
        await asyncio.sleep(0.01)
    await harness.tick(T0.replace(minute=5, hour=9))
    second = Executor(harness.ctx, harness.handler)
    assert await second.claim_and_start() == 1
    await asyncio.gather(*second.in_flight.values())
    harness.runner.release.set()
    await asyncio.gather(*harness.executor.in_flight.values())
    runs = await runs_of(client, alice, s["id"])
    by_time = {r["scheduled_for"]: r for r in runs}
    assert by_time["2026-12-01T09:05:00Z"]["status"] == "skipped"
    assert by_time["2026-12-01T09:05:00Z"]["skip_reason"] == "overlap"
    assert by_time["2026-12-01T09:00:00Z"]["status"] == "succeeded"
    assert len(harness.runner.calls_to("/hang")) == 1
    # the lock is released: the next fire runs
    await harness.tick(T0.replace(minute=10, hour=9))
    await harness.drain()
    assert len(harness.runner.calls_to("/hang")) == 2


@pytest.mark.settings(runner_timeout_ms=600_000)
async def test_two_runs_of_one_schedule_claimed_together_still_do_not_overlap(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    """A fire and a run-now of one schedule, claimed together and prepared by batched
    statements: the no-overlap lock goes to exactly one of them."""
    harness.runner.behaviour = {"/hang": "hang"}
    s = await sched(path="/hang", cron="*/5 * * * *")
    await harness.tick(T0.replace(minute=0, hour=9))
    r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
    assert r.status_code == 202
    assert await harness.executor.claim_and_start() == 2
    for _ in range(500):  # until one attempt holds the Runner and the other has finished
        if harness.runner.calls_to("/hang") and len(harness.executor.in_flight) == 1:
            break
        await asyncio.sleep(0.01)
    harness.runner.release.set()
    await asyncio.gather(*harness.executor.in_flight.values())
    runs = await runs_of(client, alice, s["id"])
    assert sorted((r["status"], r["skip_reason"]) for r in runs) == [
        ("skipped", "overlap"),
        ("succeeded", None),
    ]
    assert len(harness.runner.calls_to("/hang")) == 1


async def test_concurrent_attempts_share_their_statements(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    ids = [(await sched(cron="0 9 * * *", name=f"s{i}"))["id"] for i in range(12)]
    await harness.tick(T0.replace(minute=0, hour=9))
    await harness.drain()
    for sid in ids:
        assert [r["status"] for r in await runs_of(client, alice, sid)] == ["succeeded"]
    prepares, completions = harness.handler.prepares, harness.handler.completions
    assert prepares.items == completions.items == 12
    # one statement for the whole claim to prepare; completions as answers arrive
    assert prepares.flushes <= 2 and completions.flushes < 12


async def test_it_catches_up_only_the_latest_missed_fire(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="*/5 * * * *")
    # down from 09:00 to 10:02: 13 fires were due (09:00..10:00); 10:00 is within 600 s
    await harness.tick(datetime(2026, 12, 1, 10, 2, tzinfo=UTC))
    await harness.drain()
    runs = await runs_of(client, alice, s["id"])
    assert len(harness.runner.calls) == 1
    ran = [r for r in runs if r["status"] == "succeeded"]
    missed = [r for r in runs if r["skip_reason"] == "missed"]
    assert [r["scheduled_for"] for r in ran] == ["2026-12-01T10:00:00Z"]
    assert len(missed) == 1 and missed[0]["skipped_count"] == 12
    assert missed[0]["scheduled_for"] == "2026-12-01T09:00:00Z"
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["next_run_at"] == "2026-12-01T10:05:00Z"


async def test_it_skips_everything_when_the_outage_outlasts_the_window(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="0 9 * * *")
    await harness.tick(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    await harness.drain()
    runs = await runs_of(client, alice, s["id"])
    assert harness.runner.calls == []
    assert [(r["status"], r["skipped_count"]) for r in runs] == [("skipped", 3)]
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["last_run_status"] == "skipped"  # the missed fires are booked on the schedule


async def test_it_records_a_fire_once_under_two_concurrent_schedulers(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    ids = [(await sched(cron="*/5 * * * *", name=f"s{i}"))["id"] for i in range(40)]
    harness.clock.set(T0.replace(hour=9, minute=0))
    other = Scheduler(ctx)
    results = await asyncio.gather(*(s.tick() for s in [harness.scheduler, other] * 3))
    assert sum(r.runs_queued for r in results) == 40
    await harness.drain()
    assert len(harness.runner.calls) == 40
    assert sorted(c.envelope["context"]["schedule_id"] for c in harness.runner.calls) == sorted(ids)


async def test_it_auto_disables_after_consecutive_failures(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    harness.runner.behaviour = {"/e500": "ext_500"}
    s = await sched(path="/e500", cron="*/5 * * * *")
    limit = ctx.settings.pause_after_failures
    for i in range(limit):
        await harness.tick(T0.replace(hour=9, minute=0) + timedelta(minutes=5 * i))
        await harness.drain()
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["enabled"] is False and got["disabled_reason"] == "consecutive_failures"
    assert got["next_run_at"] is None and got["consecutive_failures"] == limit
    audit = (
        await client.get(f"/api/v1/extensions/{s['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    assert audit[0]["action"] == "schedule.auto_disable" and audit[0]["actor"]["type"] == "system"
    # nothing fires any more
    assert (await harness.tick(T0.replace(hour=11))).runs_queued == 0


async def test_it_disables_a_schedule_whose_endpoint_vanished(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched()
    async with ctx.db.connection() as conn:
        await conn.execute(
            "DELETE FROM extension_api_endpoint WHERE id = %s", (s["endpoint"]["id"],)
        )
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert run["status"] == "failed" and "no longer exists" in run["error"]
    assert harness.runner.calls == []
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=alice.headers)).json()
    assert got["enabled"] is False and got["disabled_reason"] == "endpoint_missing"


async def test_it_fails_without_calling_the_runner_when_secrets_cannot_load(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched()
    async with ctx.db.connection() as conn:
        await conn.execute(
            "UPDATE tenant_extension_install SET secrets_encrypted = %s, secret_names = '{K}'",
            (b"\x01" + b"garbage" * 8,),
        )
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert run["status"] == "failed" and "cannot be loaded" in run["error"]
    assert harness.runner.calls == []


async def test_it_sends_the_secret_envelope_and_current_config(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched()
    await client.patch(
        f"/api/v1/extensions/{s['extension_id']}",
        json={"secrets": {"TOKEN": "hunter2"}, "config": {"region": "eu"}},
        headers=alice.headers,
    )
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    [call] = harness.runner.calls
    env = call.envelope["secret_envelope"]
    assert env["algorithm"] == "AES-256-GCM" and env["version"] == 1
    assert b"hunter2" not in base64.b64decode(env["ciphertext_b64"])
    assert call.envelope["context"]["config"] == {"region": "eu"}


async def test_it_recovers_a_run_whose_worker_died(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched()
    await harness.tick(T0.replace(hour=9, minute=0))
    # a worker claims the run and dies (its lease is never renewed or finished)
    dead = Executor(ctx, harness.handler, owner="worker:dead")
    claimed = await dead.claim(10)
    assert len(claimed) == 1
    assert await harness.reaper.sweep() == 0  # lease still valid
    harness.clock.set(harness.clock() + timedelta(seconds=harness.handler.lease_seconds + 1))
    assert await harness.reaper.sweep() == 1
    await harness.drain()
    [run] = await runs_of(client, alice, s["id"])
    assert run["status"] == "succeeded" and run["attempts"] == 2
    assert len(harness.runner.calls) == 1


async def test_it_runs_now_idempotently_and_rate_limits(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(enabled=False)
    url = f"/api/v1/schedules/{s['id']}/run-now"
    r1 = await client.post(url, headers={**alice.headers, "Idempotency-Key": "k1"})
    r2 = await client.post(url, headers={**alice.headers, "Idempotency-Key": "k1"})
    assert (r1.status_code, r2.status_code) == (202, 200)
    assert r1.json()["run_id"] == r2.json()["run_id"] and r1.json()["status"] == "queued"
    await harness.drain()
    runs = await runs_of(client, alice, s["id"])
    assert [(r["trigger"], r["status"]) for r in runs] == [("run_now", "succeeded")]
    assert harness.runner.calls[0].envelope["context"]["trigger"] == "run_now"
    for _ in range(ctx.settings.run_now_per_schedule - 1):
        assert (await client.post(url, headers=alice.headers)).status_code == 202
    limited = await client.post(url, headers=alice.headers)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # The refused run-now wrote its run and audit entry before counting: both rolled back.
    allowed = ctx.settings.run_now_per_schedule
    assert len(await runs_of(client, alice, s["id"])) == allowed
    entries = (
        await client.get(f"/api/v1/extensions/{s['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    assert [e["action"] for e in entries].count("schedule.run_now") == allowed
    harness.clock.set(harness.clock() + timedelta(minutes=1))
    assert (await client.post(url, headers=alice.headers)).status_code == 202


async def test_it_refuses_run_now_when_install_disabled_or_tenant_paused(
    harness: Harness,
    sched,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,  # type: ignore[no-untyped-def]
    rita: Actor,
    charlie: Actor,
) -> None:
    s = await sched()
    url = f"/api/v1/schedules/{s['id']}/run-now"
    assert (await client.post(url, headers=rita.headers)).status_code == 403
    assert (await client.post(url, headers=charlie.headers)).status_code == 404
    await client.post(f"/api/v1/extensions/{s['extension_id']}/disable", headers=alice.headers)
    r = await client.post(url, headers=alice.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "INSTALL_DISABLED"
    await client.post(f"/api/v1/extensions/{s['extension_id']}/enable", headers=alice.headers)
    async with ctx.db.connection() as conn:
        await conn.execute("UPDATE tenant SET kill_switch = true WHERE tenant_id = 'acme'")
    r = await client.post(url, headers=alice.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "SCHEDULES_PAUSED"
    assert await runs_of(client, alice, s["id"]) == []


async def test_it_pages_run_history_newest_first(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,
    alice: Actor,
    charlie: Actor,  # type: ignore[no-untyped-def]
) -> None:
    s = await sched(cron="*/5 * * * *")
    for i in range(5):
        await harness.tick(T0.replace(hour=9, minute=0) + timedelta(minutes=5 * i))
        await harness.drain()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(
                f"/api/v1/schedules/{s['id']}/runs", params=params, headers=alice.headers
            )
        ).json()
        seen += [r["scheduled_for"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    r = await client.get(f"/api/v1/schedules/{s['id']}/runs", headers=charlie.headers)
    assert r.status_code == 404


class TestDstDays:
    """Europe/Paris 2027: clocks go 02:00→03:00 on 2027-03-28 (01:00Z) and 03:00→02:00 on
    2027-10-31 (01:00Z). The scheduler, ticking every 5 minutes, fires what the SPEC says."""

    async def _fired(
        self,
        harness: Harness,
        sched,
        cron_expr: str,
        start: datetime,  # type: ignore[no-untyped-def]
        hours: int,
    ) -> list[str]:
        harness.clock.set(start)
        s = await sched(cron=cron_expr, timezone="Europe/Paris", name=cron_expr)
        t = start
        while t <= start + timedelta(hours=hours):
            await harness.tick(t)
            await harness.drain()
            t += timedelta(minutes=5)
        calls = [c for c in harness.runner.calls if c.envelope["context"]["schedule_id"] == s["id"]]
        return [c.envelope["context"]["scheduled_for"] for c in calls]

    async def test_it_moves_a_skipped_fixed_time_to_the_jump(self, harness: Harness, sched) -> None:  # type: ignore[no-untyped-def]
        fired = await self._fired(
            harness, sched, "30 2 * * *", datetime(2027, 3, 27, 22, 0, tzinfo=UTC), 6
        )
        assert fired == ["2027-03-28T01:00:00Z"]  # 03:00 CEST, once

    async def test_it_fires_a_repeated_fixed_time_once(self, harness: Harness, sched) -> None:  # type: ignore[no-untyped-def]
        fired = await self._fired(
            harness, sched, "30 2 * * *", datetime(2027, 10, 30, 22, 0, tzinfo=UTC), 6
        )
        assert fired == ["2027-10-31T00:30:00Z"]  # the first 02:30 (CEST) only

    async def test_it_follows_real_time_for_step_schedules(self, harness: Harness, sched) -> None:  # type: ignore[no-untyped-def]
        fired = await self._fired(
            harness, sched, "*/30 * * * *", datetime(2027, 10, 30, 23, 50, tzinfo=UTC), 2
        )
        # 02:00 and 02:30 happen twice (CEST, then CET): all four fire
        assert fired == [
            "2027-10-31T00:00:00Z",
            "2027-10-31T00:30:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T01:30:00Z",
        ]


class TestDstChoices:
    """The same days with a fixed-time schedule's DST choice (SPEC §8): Europe/Paris 2027,
    02:00→03:00 on 2027-03-28 (01:00Z), 03:00→02:00 on 2027-10-31 (01:00Z)."""

    async def _fired(
        self,
        harness: Harness,
        sched,  # type: ignore[no-untyped-def]
        choice: tuple[str | None, str | None],
        start: datetime,
        hours: int,
    ) -> tuple[list[str], datetime | None]:
        """What fired in ``hours`` of 5-minute ticks, and the handle's next fire after."""
        harness.clock.set(start)
        s = await sched(cron="30 2 * * *", timezone="Europe/Paris", name="choice")
        db = harness.ctx.db
        async with db.transaction() as conn:
            # Set in the row as the schedules API will (issue 14), then re-put the handle.
            cur = await conn.execute(
                "UPDATE tenant_extension_schedule SET dst_gap = %s, dst_repeat = %s"
                " WHERE id = %s RETURNING tenant_id, install_id",
                (*choice, s["id"]),
            )
            row = await cur.fetchone()
            assert row is not None
            await handles.sync_install(harness.ctx, conn, row["tenant_id"], row["install_id"])
        t = start
        while t <= start + timedelta(hours=hours):
            await harness.tick(t)
            await harness.drain()
            t += timedelta(minutes=5)
        calls = [c for c in harness.runner.calls if c.envelope["context"]["schedule_id"] == s["id"]]
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT next_fire_at FROM job_handle WHERE schedule_id = %s", (s["id"],)
            )
            handle = await cur.fetchone()
        assert handle is not None
        return [c.envelope["context"]["scheduled_for"] for c in calls], handle["next_fire_at"]

    async def test_it_skips_the_day_whose_time_does_not_exist(
        self,
        harness: Harness,
        sched,  # type: ignore[no-untyped-def]
    ) -> None:
        fired, following = await self._fired(
            harness, sched, ("skip", None), datetime(2027, 3, 27, 22, 0, tzinfo=UTC), 6
        )
        assert fired == []
        assert following == datetime(2027, 3, 29, 0, 30, tzinfo=UTC)  # Monday 02:30 CEST

    async def test_it_fires_the_second_occurrence(
        self,
        harness: Harness,
        sched,  # type: ignore[no-untyped-def]
    ) -> None:
        fired, _ = await self._fired(
            harness, sched, (None, "last"), datetime(2027, 10, 30, 22, 0, tzinfo=UTC), 6
        )
        assert fired == ["2027-10-31T01:30:00Z"]  # the second 02:30 (CET) only

    async def test_it_fires_both_occurrences(
        self,
        harness: Harness,
        sched,  # type: ignore[no-untyped-def]
    ) -> None:
        fired, following = await self._fired(
            harness, sched, ("skip", "both"), datetime(2027, 10, 30, 22, 0, tzinfo=UTC), 6
        )
        assert fired == ["2027-10-31T00:30:00Z", "2027-10-31T01:30:00Z"]
        assert following == datetime(2027, 11, 1, 1, 30, tzinfo=UTC)


async def test_it_exports_the_spec_metrics(
    harness: Harness,
    sched,
    client: httpx.AsyncClient,  # type: ignore[no-untyped-def]
) -> None:
    harness.runner.behaviour = {"/e500": "ext_500"}
    await sched()
    await sched(path="/e500", name="failing")
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    text = (await client.get("/metrics")).text
    assert 'extsched_runs_total{status="succeeded",trigger="schedule"}' in text
    assert 'extsched_runs_total{status="failed",trigger="schedule"}' in text
    for name in (
        "extsched_run_duration_seconds_bucket",
        "extsched_fire_lag_seconds_bucket",
        "extsched_schedules{",
    ):
        assert name in text
    assert "acme" not in text  # no tenant ids as labels
