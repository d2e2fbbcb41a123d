"""Notifications on the postgres backend (SPEC §4, §5, §9): settings and the URL rules, the
outbox queued with its cause, delivery to a real HTTP receiver verified with the
``standardwebhooks`` package, retries, the 24-hour give-up, pacing and folding under a burst,
and every event type. The receiver listens on 127.0.0.1, so these tests allow private
addresses unless they test the refusal."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from extsched.domain.notify import IPAddress, UrlRefused, check_addresses
from extsched.services.context import AppContext
from extsched.services.reconcile import reconcile
from extsched.services.retention import prune
from extsched.services.webhooks import Deliverer
from tests.conftest import Actor, Clock, marked_settings
from tests.fake_runner import fake_runner
from tests.integration.test_execution import T0, Harness
from tests.webhook_receiver import Receiver, webhook_receiver

ALL_EVENTS = ["run_failed", "schedule_disabled", "schedule_recovered", "schedule_overdue"]


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {
        "notify_allow_private": True,
        "notify_retry_base_seconds": 30.0,
        "runner_timeout_ms": 1500,
        "lease_grace_seconds": 2.0,
        **marked_settings(request),
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
async def harness(ctx: AppContext, clock: Clock) -> AsyncIterator[Harness]:
    clock.set(T0)
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        yield h
        await h.client.aclose()


@pytest.fixture
async def deliverer(ctx: AppContext) -> AsyncIterator[Deliverer]:
    d = Deliverer(ctx)
    yield d
    await d.aclose()


@pytest.fixture
async def sched(client: httpx.AsyncClient, alice: Actor, install):  # type: ignore[no-untyped-def]
    """``await sched(path, **fields)`` -> a schedule of alice's (acme) on /ok or /fail."""
    published, _ = await install(
        alice,
        endpoints=[{"method": "POST", "path": p, "handler": "h"} for p in ("/ok", "/fail")],
    )

    async def _create(path: str = "/fail", **fields: Any) -> dict[str, Any]:
        endpoint = next(e["id"] for e in published["endpoints"] if e["path"] == path)
        r = await client.post(
            f"/api/v1/extensions/{published['extension_id']}/schedules",
            json={"endpoint_id": endpoint, "cron": "*/5 * * * *", "timezone": "UTC", **fields},
            headers=alice.headers,
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    _create.published = published  # type: ignore[attr-defined]
    return _create


async def subscribe(
    client: httpx.AsyncClient,
    actor: Actor,
    url: str,
    events: list[str] | None = None,
    enabled: bool = True,
) -> str:
    """Alice sets the webhook; returns the signing secret."""
    r = await client.put(
        "/api/v1/notifications",
        json={"webhook_url": url, "events": events or ALL_EVENTS, "enabled": enabled},
        headers=actor.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/notifications/secret", headers=actor.headers)
    assert r.status_code == 200, r.text
    secret: str = r.json()["secret"]
    return secret


async def deliveries(client: httpx.AsyncClient, actor: Actor) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/notifications/deliveries", headers=actor.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def fire(harness: Harness, at_minute: int) -> None:
    """One fire of every */5 schedule at 09:MM, executed to its end."""
    await harness.tick(T0.replace(hour=9, minute=0) + timedelta(minutes=at_minute))
    await harness.drain()


# ------------------------------------------------------------------- settings and the API
async def test_it_starts_unconfigured_and_saves_settings_with_an_audit_entry(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, ctx: AppContext
) -> None:
    r = await client.get("/api/v1/notifications", headers=alice.headers)
    assert r.status_code == 200
    assert r.json() == {
        "webhook_url": None,
        "events": ALL_EVENTS,
        "enabled": False,
        "secret_hint": None,
    }
    url = f"{receiver.url}/hooks/extsched"
    r = await client.put(
        "/api/v1/notifications",
        json={"webhook_url": url, "events": ["run_failed", "test"], "enabled": True},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["webhook_url"] == url and body["events"] == ["run_failed", "test"]
    assert body["enabled"] is True and body["secret_hint"].startswith("whsec_…")
    secret = (await client.get("/api/v1/notifications/secret", headers=alice.headers)).json()[
        "secret"
    ]
    assert secret.startswith("whsec_") and secret.endswith(body["secret_hint"][-4:])
    # The secret is encrypted at rest: its text is nowhere in the row.
    async with ctx.db.connection() as conn:
        cur = await conn.execute("SELECT t::text AS row FROM tenant_notification t")
        stored = (await cur.fetchone())["row"]  # type: ignore[index]
        cur = await conn.execute(
            "SELECT action, target_type, changes FROM extension_audit_log "
            "WHERE tenant_id = 'acme' AND action = 'notifications.update'"
        )
        audits = await cur.fetchall()
    assert secret[6:] not in stored and secret[6:20] not in stored
    assert len(audits) == 1 and audits[0]["target_type"] == "notifications"
    assert audits[0]["changes"]["webhook_url"] == {"from": None, "to": url}


async def test_it_checks_permissions_and_keeps_tenants_apart(
    client: httpx.AsyncClient, alice: Actor, rita: Actor, charlie: Actor, receiver: Receiver
) -> None:
    await subscribe(client, alice, receiver.url)
    body = {"webhook_url": receiver.url, "events": [], "enabled": False}
    assert (
        await client.put("/api/v1/notifications", json=body, headers=rita.headers)
    ).status_code == 403
    assert (
        await client.get("/api/v1/notifications/secret", headers=rita.headers)
    ).status_code == 403
    assert (
        await client.post("/api/v1/notifications/test", headers=rita.headers)
    ).status_code == 403
    assert (await client.get("/api/v1/notifications", headers=rita.headers)).status_code == 200
    assert (await client.get("/api/v1/notifications")).status_code == 401
    # charlie (globex) sees his own, unconfigured settings and none of acme's deliveries.
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    theirs = (await client.get("/api/v1/notifications", headers=charlie.headers)).json()
    assert theirs["webhook_url"] is None
    assert await deliveries(client, charlie) == []
    assert len(await deliveries(client, rita)) == 1


@pytest.mark.settings(notify_allow_private=False)
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:9/hook", "loopback"),  # a name that resolves to 127.0.0.1
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("http://user:pw@example.com/hook", "credentials"),
        ("not-a-url", "http:// or https://"),
        ("http:///nohost", "host"),
    ],
)
async def test_it_refuses_urls_that_are_not_public_http(
    client: httpx.AsyncClient, alice: Actor, url: str, message: str
) -> None:
    r = await client.put(
        "/api/v1/notifications",
        json={"webhook_url": url, "events": ["run_failed"], "enabled": True},
        headers=alice.headers,
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert message in error["field_errors"]["webhook_url"]


@pytest.mark.parametrize(
    "body",
    [
        {"webhook_url": None, "events": [], "enabled": True},
        {"webhook_url": "https://example.com", "events": ["nope"], "enabled": False},
        {"webhook_url": "https://example.com", "events": "run_failed", "enabled": False},
        {"webhook_url": "https://example.com", "events": [], "enabled": "yes"},
        {"webhook_url": "https://example.com", "events": [], "enabled": False, "x": 1},
        {"events": [], "enabled": False},
    ],
)
async def test_it_answers_bad_bodies_with_field_errors(
    client: httpx.AsyncClient, alice: Actor, body: dict[str, Any]
) -> None:
    r = await client.put("/api/v1/notifications", json=body, headers=alice.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


# ------------------------------------------------------------------------- delivery
async def test_it_delivers_a_signed_run_failed_notification(
    client: httpx.AsyncClient,
    alice: Actor,
    receiver: Receiver,
    harness: Harness,
    deliverer: Deliverer,
    sched: Any,
) -> None:
    secret = await subscribe(client, alice, f"{receiver.url}/hooks")
    harness.runner.behaviour = {"/fail": "ext_500"}
    s = await sched(name="Nightly CRM sync")
    await fire(harness, 0)
    # Queued with the outcome, not sent by the run itself.
    assert receiver.received() == []
    [queued] = await deliveries(client, alice)
    assert queued["status"] == "pending" and queued["type"] == "run_failed"

    assert await deliverer.run_until_idle() == 1
    [call] = receiver.received()
    payload = call.verify(secret)  # raises unless the signature is the tenant's
    run = (await client.get(f"/api/v1/schedules/{s['id']}/runs", headers=alice.headers)).json()[
        "items"
    ][0]
    assert payload == {
        "type": "run_failed",
        "at": run["finished_at"],
        "tenant_id": "acme",
        "extension_id": s["extension_id"],
        "schedule": {"id": s["id"], "name": "Nightly CRM sync"},
        "run": {
            "id": run["id"],
            "status": "failed",
            "scheduled_for": "2026-12-01T09:00:00Z",
            "http_status": 500,
            "error": run["error"],
        },
        "count": 1,
    }
    assert call.path == "/hooks" and call.headers["content-type"] == "application/json"
    assert call.headers["webhook-id"] == f"msg_{queued['id']}"
    [done] = await deliveries(client, alice)
    assert done["status"] == "delivered" and done["attempts"] == 1 and done["http_status"] == 200
    # A signature under another secret does not verify.
    with pytest.raises(Exception, match="No matching signature"):
        call.verify("whsec_" + "A" * 43 + "=")


async def test_it_sends_a_test_event_on_request(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, deliverer: Deliverer
) -> None:
    r = await client.post("/api/v1/notifications/test", headers=alice.headers)
    assert r.status_code == 422 and "webhook_url" in r.json()["error"]["field_errors"]
    # Sent even when switched off and not subscribed: the tenant asked for it.
    secret = await subscribe(client, alice, receiver.url, events=["run_failed"], enabled=False)
    r = await client.post("/api/v1/notifications/test", headers=alice.headers)
    assert r.status_code == 202, r.text
    assert r.json()["type"] == "test" and r.json()["status"] == "pending"
    await deliverer.run_until_idle()
    [call] = receiver.received()
    payload = call.verify(secret)
    assert payload["type"] == "test" and payload["tenant_id"] == "acme"
    assert "schedule" not in payload and "run" not in payload


async def test_it_queues_only_what_the_tenant_subscribed_to(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, harness: Harness, sched: Any
) -> None:
    harness.runner.behaviour = {"/fail": "ext_500"}
    await sched()
    await fire(harness, 0)  # nothing configured
    await subscribe(client, alice, receiver.url, events=["schedule_disabled"])
    await fire(harness, 5)  # not subscribed to run_failed
    await subscribe(client, alice, receiver.url, events=ALL_EVENTS, enabled=False)
    await fire(harness, 10)  # switched off
    assert await deliveries(client, alice) == []
    await subscribe(client, alice, receiver.url, events=ALL_EVENTS, enabled=True)
    await fire(harness, 15)
    assert [d["type"] for d in await deliveries(client, alice)] == ["run_failed"]


async def test_it_tells_when_a_schedule_is_disabled_and_when_one_recovers(
    client: httpx.AsyncClient,
    alice: Actor,
    receiver: Receiver,
    harness: Harness,
    deliverer: Deliverer,
    sched: Any,
    ctx: AppContext,
) -> None:
    secret = await subscribe(client, alice, receiver.url)
    harness.runner.behaviour = {"/fail": "ext_500"}
    flaky = await sched(name="Flaky")
    await fire(harness, 0)
    await deliverer.run_until_idle()
    harness.runner.behaviour = {}
    await fire(harness, 5)  # the first success after a failure
    await fire(harness, 10)  # a second success: nothing to say
    await deliverer.run_until_idle()
    types = [c.verify(secret)["type"] for c in receiver.received()]
    assert types == ["run_failed", "schedule_recovered"]
    recovered = receiver.received()[1].verify(secret)
    assert recovered["schedule"] == {"id": flaky["id"], "name": "Flaky"}
    assert recovered["run"]["status"] == "succeeded"

    # Auto-disable after EXTSCHED_PAUSE_AFTER_FAILURES failures in a row.
    harness.runner.behaviour = {"/fail": "ext_500"}
    limit = ctx.settings.pause_after_failures
    for i in range(limit):
        await fire(harness, 15 + 5 * i)
        await deliverer.run_until_idle()
    calls = [c.verify(secret) for c in receiver.received()]
    disabled = [c for c in calls if c["type"] == "schedule_disabled"]
    assert len(disabled) == 1
    assert disabled[0]["schedule"]["id"] == flaky["id"]
    assert disabled[0]["disabled_reason"] == "consecutive_failures"


async def test_it_tells_when_a_remap_disables_a_schedule(
    client: httpx.AsyncClient,
    alice: Actor,
    admin: Actor,
    receiver: Receiver,
    deliverer: Deliverer,
    sched: Any,
    publish: Any,
) -> None:
    secret = await subscribe(client, alice, receiver.url, events=["schedule_disabled"])
    s = await sched(name="Goes away")
    v2 = await publish(
        version="2.0.0", endpoints=[{"method": "POST", "path": "/ok", "handler": "h"}]
    )
    r = await client.post(
        f"/api/v1/extensions/{s['extension_id']}/update",
        json={"version_id": v2["version_id"], "disable_missing_schedules": True},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    await deliverer.run_until_idle()
    [call] = receiver.received()
    payload = call.verify(secret)
    assert payload["type"] == "schedule_disabled"
    assert payload["schedule"] == {"id": s["id"], "name": "Goes away"}
    assert payload["disabled_reason"] == "endpoint_missing"


async def test_it_tells_when_a_schedule_is_overdue_once(
    client: httpx.AsyncClient,
    alice: Actor,
    receiver: Receiver,
    deliverer: Deliverer,
    sched: Any,
    clock: Clock,
    ctx: AppContext,
) -> None:
    clock.set(T0)
    secret = await subscribe(client, alice, receiver.url, events=["schedule_overdue"])
    s = await sched(name="Stuck")
    # No worker fires it: 10 minutes after its 09:00 fire it is overdue.
    clock.set(T0.replace(hour=9, minute=10))
    report = await reconcile(ctx, repair=True)
    assert [o["schedule_id"] for o in report.overdue] == [s["id"]]
    await reconcile(ctx, repair=True)  # still overdue: no second notification
    await deliverer.run_until_idle()
    [call] = receiver.received()
    payload = call.verify(secret)
    assert payload["type"] == "schedule_overdue"
    assert payload["schedule"] == {"id": s["id"], "name": "Stuck"}
    assert payload["overdue_since"] == "2026-12-01T09:10:00Z"


# ------------------------------------------------------------------- retries and failure
async def test_it_retries_with_backoff_after_the_receiver_was_down(
    client: httpx.AsyncClient,
    alice: Actor,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    clock.set(T0)
    secret = await subscribe(client, alice, receiver.url)
    receiver.status = 500
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    assert await deliverer.pass_once() == 1
    [d] = await deliveries(client, alice)
    assert d["status"] == "pending" and d["attempts"] == 1
    assert d["http_status"] == 500 and d["last_error"] == "the webhook answered HTTP 500"
    # Not again before the backoff (30 s) has passed.
    clock.set(T0 + timedelta(seconds=29))
    assert await deliverer.run_until_idle() == 0
    clock.set(T0 + timedelta(seconds=31))
    assert await deliverer.pass_once() == 1  # still down: next wait is 60 s
    clock.set(T0 + timedelta(seconds=31 + 59))
    assert await deliverer.run_until_idle() == 0
    receiver.status = 204
    clock.set(T0 + timedelta(seconds=31 + 61))
    assert await deliverer.run_until_idle() == 1
    [d] = await deliveries(client, alice)
    assert d["status"] == "delivered" and d["attempts"] == 3 and d["http_status"] == 204
    calls = receiver.received()
    assert len(calls) == 3
    # The same message id on every attempt, so a receiver can drop duplicates.
    assert len({c.headers["webhook-id"] for c in calls}) == 1
    calls[-1].verify(secret)


async def test_it_retries_when_nothing_listens_and_gives_up_after_24_hours(
    client: httpx.AsyncClient, alice: Actor, deliverer: Deliverer, clock: Clock
) -> None:
    from tests.helpers.http_server import free_port

    clock.set(T0)
    await subscribe(client, alice, f"http://127.0.0.1:{free_port()}/hook")
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    at = T0
    for _ in range(100):
        if not await deliverer.run_until_idle():
            row = await deliveries(client, alice)
            if row[0]["status"] != "pending":
                break
            at = at + timedelta(hours=1)  # the backoff is capped at 1 h
            clock.set(at)
    [d] = await deliveries(client, alice)
    assert d["status"] == "failed"
    assert "ConnectError" in d["last_error"]
    assert at - T0 <= timedelta(hours=25)
    assert 5 < d["attempts"] < 40


# --------------------------------------------------------------- address checks at delivery
async def test_it_refuses_a_private_address_at_delivery_time(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, ctx: AppContext
) -> None:
    # Saved while private addresses were allowed (or the name resolved elsewhere then)...
    await subscribe(client, alice, receiver.url.replace("127.0.0.1", "localhost"))
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    # ...delivered by a worker that does not allow them: checked again, nothing is sent.
    strict = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"notify_allow_private": False})
    )
    worker = Deliverer(strict)
    try:
        assert await worker.pass_once() == 1
    finally:
        await worker.aclose()
    assert receiver.received() == []
    [d] = await deliveries(client, alice)
    assert d["status"] == "pending" and d["http_status"] is None
    assert d["last_error"].startswith("refused: localhost resolves to a loopback address")


async def test_it_connects_to_the_address_it_checked(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, ctx: AppContext
) -> None:
    """DNS rebinding: the name is resolved once per attempt and the request goes to that
    address; a second resolution (which here would answer a different address) never
    happens. ``hooks.example`` resolves only through the test's resolver."""
    port = int(receiver.url.rsplit(":", 1)[1])
    answers = [["127.0.0.1"], ["10.9.9.9"]]
    asked: list[str] = []

    async def rebinding(host: str, p: int) -> list[IPAddress]:
        import ipaddress

        asked.append(host)
        return [ipaddress.ip_address(a) for a in answers[min(len(asked), 2) - 1]]

    secret = await subscribe(client, alice, receiver.url)
    async with ctx.db.connection() as conn:
        await conn.execute(
            "UPDATE tenant_notification SET webhook_url = %s",
            (f"http://hooks.example:{port}/in",),
        )
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    worker = Deliverer(ctx, resolver=rebinding)
    try:
        assert await worker.pass_once() == 1
    finally:
        await worker.aclose()
    assert asked == ["hooks.example"]
    [call] = receiver.received()
    assert call.headers["host"] == f"hooks.example:{port}"
    call.verify(secret)


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    import ipaddress

    public, private = ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.7")
    assert check_addresses("a.example", [public], allow_private=False) == public
    with pytest.raises(UrlRefused, match="private address"):
        check_addresses("a.example", [public, private], allow_private=False)
    assert check_addresses("a.example", [private, public], allow_private=True) == private


# ------------------------------------------------------------------- bursts and workers
@pytest.mark.settings(
    notify_per_minute=5, worker_concurrency=64, tenant_concurrency=64, pause_after_failures=0
)
async def test_a_burst_of_failures_folds_and_is_paced_per_tenant(
    client: httpx.AsyncClient,
    alice: Actor,
    receiver: Receiver,
    harness: Harness,
    ctx: AppContext,
    clock: Clock,
    sched: Any,
) -> None:
    """1,000 failing runs of 8 schedules: 8 deliveries (each carrying its count), never two
    in flight for the tenant, at most ``notify_per_minute`` per minute, none twice, with two
    workers delivering while the burst is still running."""
    secret = await subscribe(client, alice, receiver.url)
    receiver.delay = 0.05
    harness.runner.behaviour = {"/fail": "ext_500"}
    schedules = [await sched(name=f"S{i}", overlap="allow") for i in range(8)]
    async with ctx.db.transaction() as conn:
        for s in schedules:
            await conn.execute(
                """INSERT INTO extension_schedule_run
                   (tenant_id, id, schedule_id, install_id, trigger, scheduled_for, status,
                    available_at)
                   SELECT 'acme', gen_random_uuid(), %(s)s, install_id, 'run_now',
                          %(at)s + make_interval(secs => g), 'queued', %(at)s
                   FROM tenant_extension_schedule, generate_series(1, 125) g
                   WHERE tenant_id = 'acme' AND id = %(s)s""",
                {"s": s["id"], "at": T0},
            )
    workers = [Deliverer(ctx), Deliverer(ctx)]
    stop = asyncio.Event()

    async def deliver(worker: Deliverer) -> None:
        while not stop.is_set():
            if not await worker.pass_once():
                await asyncio.sleep(0.01)  # a worker's idle poll, shortened

    loops = [asyncio.create_task(deliver(w)) for w in workers]
    try:
        await harness.drain()
        assert len(harness.runner.calls) == 1000
        stop.set()
        await asyncio.gather(*loops)
        # The clock stood still: the tenant's first minute allows 5 attempts.
        calls = receiver.received()
        assert len(calls) <= 5
        clock.set(T0 + timedelta(seconds=61))
        await workers[0].run_until_idle()
        await workers[1].run_until_idle()
        clock.set(T0 + timedelta(seconds=122))
        await workers[1].run_until_idle()
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
        for w in workers:
            await w.aclose()
    calls = receiver.received()
    payloads = [c.verify(secret) for c in calls]
    ids = [c.headers["webhook-id"] for c in calls]
    assert len(ids) == len(set(ids)), "a delivery was sent twice"
    assert receiver.max_in_flight == 1
    # Every failure is accounted for, in few calls: one per schedule and waiting time.
    assert sum(p["count"] for p in payloads) == 1000
    assert len(calls) <= 15
    assert {p["schedule"]["name"] for p in payloads} == {f"S{i}" for i in range(8)}
    items = await deliveries(client, alice)
    assert all(d["status"] == "delivered" for d in items)


async def test_it_keeps_pending_deliveries_and_prunes_old_finished_ones(
    client: httpx.AsyncClient,
    alice: Actor,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
    ctx: AppContext,
) -> None:
    clock.set(T0)
    await subscribe(client, alice, receiver.url)
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    await deliverer.run_until_idle()
    receiver.status = 500
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    await deliverer.run_until_idle()
    assert [d["status"] for d in await deliveries(client, alice)] == ["pending", "delivered"]
    report = await prune(ctx, now=T0 + timedelta(days=ctx.settings.notify_retention_days + 1))
    assert report.deliveries_deleted == 1
    assert [d["status"] for d in await deliveries(client, alice)] == ["pending"]


async def test_it_pages_the_deliveries_log(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver
) -> None:
    await subscribe(client, alice, receiver.url)
    for _ in range(5):
        assert (
            await client.post("/api/v1/notifications/test", headers=alice.headers)
        ).status_code == 202
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get(
                "/api/v1/notifications/deliveries", params=params, headers=alice.headers
            )
        ).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    bad = await client.get(
        "/api/v1/notifications/deliveries", params={"cursor": "xyz"}, headers=alice.headers
    )
    assert bad.status_code == 422


async def test_a_failing_webhook_never_fails_a_run(
    client: httpx.AsyncClient,
    alice: Actor,
    harness: Harness,
    deliverer: Deliverer,
    sched: Any,
    ctx: AppContext,
) -> None:
    """Notification trouble (a receiver down, even a broken settings row) leaves runs alone."""
    from tests.helpers.http_server import free_port

    await subscribe(client, alice, f"http://127.0.0.1:{free_port()}/hook")
    async with ctx.db.connection() as conn:
        await conn.execute("UPDATE tenant_notification SET secret_encrypted = 'garbage'")
    harness.runner.behaviour = {"/fail": "ext_500"}
    ok = await sched(path="/ok")
    bad = await sched(path="/fail")
    await fire(harness, 0)
    await deliverer.run_until_idle()
    runs = {
        s["id"]: (
            await client.get(f"/api/v1/schedules/{s['id']}/runs", headers=alice.headers)
        ).json()["items"][0]["status"]
        for s in (ok, bad)
    }
    assert runs == {ok["id"]: "succeeded", bad["id"]: "failed"}
    [d] = await deliveries(client, alice)
    assert d["status"] == "pending" and "cannot be decrypted" in d["last_error"]


async def test_the_outbox_commits_with_its_cause(ctx: AppContext, db_url: str) -> None:
    """The outbox row and its cause are one transaction: rolled back together."""
    from extsched.domain.notify import EventType
    from extsched.services import notifications

    async with ctx.db.connection() as conn:
        await conn.execute(
            "INSERT INTO tenant_notification (tenant_id, webhook_url, events, enabled) "
            "VALUES ('acme', 'https://example.com', '{test}', true)"
        )
    with pytest.raises(RuntimeError):
        async with ctx.db.transaction() as conn:
            await notifications.enqueue(ctx.db, conn, "acme", EventType.TEST, ctx.clock(), {})
            raise RuntimeError("the cause failed")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM notification_delivery").fetchone() == (0,)


async def test_the_postgres_worker_delivers_what_a_failed_run_queued(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, sched: Any, ctx: AppContext
) -> None:
    """End to end on the postgres backend: the worker (as ``serve`` runs it) executes a
    run-now that fails and its notification loop delivers the event."""
    from extsched.server import running_worker
    from tests.helpers.polling import eventually

    secret = await subscribe(client, alice, receiver.url, events=["run_failed"])
    s = await sched(name="Nightly CRM sync")
    with fake_runner() as runner:
        runner.behaviour = {"/fail": "ext_500"}
        live = dataclasses.replace(
            ctx,
            settings=ctx.settings.model_copy(
                update={"runner_url": runner.url, "notify_poll_seconds": 0.2}
            ),
        )
        async with running_worker(live):
            r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
            assert r.status_code == 202, r.text
            [delivered] = await eventually(
                lambda: deliveries(client, alice),
                lambda items: bool(items) and items[0]["status"] == "delivered",
            )
    assert delivered["type"] == "run_failed"
    [call] = receiver.received()
    payload = call.verify(secret)
    assert payload["run"]["id"] == r.json()["run_id"] and payload["run"]["status"] == "failed"


async def test_the_documented_receiver_verifies_a_real_delivery(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, deliverer: Deliverer
) -> None:
    """docs/notifications.md's Python example, run against a delivery as sent."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    [code] = re.findall(r"```python\n(.*?)```", doc, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/notifications.md", "exec"), namespace)
    handle = namespace["handle"]

    secret = await subscribe(client, alice, receiver.url)
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    await deliverer.run_until_idle()
    [call] = receiver.received()
    assert handle(call.body, call.headers, secret)["type"] == "test"
    assert handle(call.body + b" ", call.headers, secret) is None
    assert handle(call.body, call.headers, "whsec_" + "B" * 43 + "=") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://exa\x00mple.com/hook",
        "http://\ud800.example/hook",
        "http://xn--nxasmq6b.example/hook",  # an IDN that does not resolve here
        "http://bücher.invalid/hook",
        "http://" + "a" * 70 + ".example/hook",  # a DNS label over 63 characters
        "https://hooks.example.com:0/x",
    ],
)
async def test_hostile_or_unresolvable_urls_are_refused_never_a_500(
    client: httpx.AsyncClient, alice: Actor, url: str
) -> None:
    import json

    # Encoded by hand: a lone surrogate travels as its JSON escape, as a hostile client sends it.
    body = json.dumps({"webhook_url": url, "events": [], "enabled": False})
    r = await client.put(
        "/api/v1/notifications",
        content=body.encode(),
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"] in ("BAD_REQUEST", "VALIDATION_FAILED")
    assert (await client.get("/api/v1/notifications", headers=alice.headers)).json()[
        "webhook_url"
    ] is None


async def test_a_bug_in_one_attempt_costs_an_attempt_not_a_crash_loop(
    client: httpx.AsyncClient, alice: Actor, receiver: Receiver, ctx: AppContext, clock: Clock
) -> None:
    clock.set(T0)

    async def broken(host: str, port: int) -> list[IPAddress]:
        raise RuntimeError("a bug")

    await subscribe(client, alice, receiver.url)
    await client.post("/api/v1/notifications/test", headers=alice.headers)
    worker = Deliverer(ctx, resolver=broken)
    try:
        assert await worker.pass_once() == 1
        assert await worker.pass_once() == 0  # moved forward: not retried at once
    finally:
        await worker.aclose()
    [d] = await deliveries(client, alice)
    assert d["status"] == "pending" and d["attempts"] == 1
    assert d["last_error"] == "internal error (RuntimeError)"
