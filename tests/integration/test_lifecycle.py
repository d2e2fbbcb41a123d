"""Lifecycle: version update with remap, disable/enable/uninstall, kill switch, admin, reconcile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from extsched.services.context import AppContext
from tests.conftest import Actor, Clock, endpoint_id
from tests.fake_runner import fake_runner
from tests.integration.test_api_schedules import FailingBackend
from tests.integration.test_execution import T0, Harness, runs_of

V1 = [
    {"method": "POST", "path": "/sync", "handler": "h/sync"},
    {"method": "GET", "path": "/report", "handler": "h/report"},
    {"method": "POST", "path": "/legacy", "handler": "h/legacy"},
]
V2 = [  # /legacy is gone, /report stays, a new endpoint appears
    {"method": "post", "path": "/sync", "handler": "h/sync2"},
    {"method": "GET", "path": "/report", "handler": "h/report2"},
    {"method": "POST", "path": "/new", "handler": "h/new"},
]


@pytest.fixture
async def harness(ctx: AppContext, clock: Clock) -> AsyncIterator[Harness]:
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        yield h
        await h.client.aclose()


@pytest.fixture
async def setup(client: httpx.AsyncClient, alice: Actor, install, publish, clock: Clock):  # type: ignore[no-untyped-def]
    """alice's install of v1 with three schedules (one per endpoint) and v2 published."""
    clock.set(T0)
    v1, _ = await install(alice, endpoints=V1)
    v2 = await publish(endpoints=V2, version="2.0.0")
    ext = v1["extension_id"]
    ids = {}
    for path, method in (("/sync", "POST"), ("/report", "GET"), ("/legacy", "POST")):
        r = await client.post(
            f"/api/v1/extensions/{ext}/schedules",
            headers=alice.headers,
            json={
                "name": path,
                "endpoint_id": endpoint_id(v1, method, path),
                "cron": "0 9 * * *",
                "timezone": "UTC",
            },
        )
        assert r.status_code == 201, r.text
        ids[path] = r.json()["id"]
    return {"ext": ext, "v1": v1, "v2": v2, "ids": ids}


async def _schedules(client: httpx.AsyncClient, actor: Actor, ext: str) -> dict[str, Any]:
    items = (await client.get(f"/api/v1/extensions/{ext}/schedules", headers=actor.headers)).json()[
        "items"
    ]
    return {i["name"]: i for i in items}


async def _audit_actions(client: httpx.AsyncClient, actor: Actor, ext: str) -> list[str]:
    items = (
        await client.get(
            f"/api/v1/extensions/{ext}/audit", headers=actor.headers, params={"limit": 200}
        )
    ).json()["items"]
    return [i["action"] for i in items]


async def test_it_blocks_an_update_that_would_orphan_schedules_and_changes_nothing(
    client: httpx.AsyncClient, alice: Actor, setup: dict[str, Any]
) -> None:
    ext, v2 = setup["ext"], setup["v2"]
    before = await _schedules(client, alice, ext)
    audit_before = await _audit_actions(client, alice, ext)
    r = await client.post(
        f"/api/v1/extensions/{ext}/update",
        headers=alice.headers,
        json={"version_id": v2["version_id"]},
    )
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "SCHEDULE_REMAP_FAILED"
    assert err["details"]["schedules"] == [
        {
            "schedule_id": setup["ids"]["/legacy"],
            "name": "/legacy",
            "method": "POST",
            "path": "/legacy",
        }
    ]
    assert await _schedules(client, alice, ext) == before
    assert await _audit_actions(client, alice, ext) == audit_before
    inst = (await client.get(f"/api/v1/extensions/{ext}", headers=alice.headers)).json()
    assert inst["version"] == "1.0.0"


async def test_it_previews_the_same_report_without_changing_anything(
    client: httpx.AsyncClient, alice: Actor, setup: dict[str, Any]
) -> None:
    ext, v2 = setup["ext"], setup["v2"]
    before = await _schedules(client, alice, ext)
    r = await client.post(
        f"/api/v1/extensions/{ext}/update/preview",
        headers=alice.headers,
        json={"version_id": v2["version_id"]},
    )
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["would_block"] is True
    assert {x["schedule_id"] for x in p["remapped"]} == {
        setup["ids"]["/sync"],
        setup["ids"]["/report"],
    }
    assert [x["path"] for x in p["schedules"]] == ["/legacy"]
    r = await client.post(
        f"/api/v1/extensions/{ext}/update/preview",
        headers=alice.headers,
        json={"version_id": v2["version_id"], "disable_missing_schedules": True},
    )
    assert r.json()["would_block"] is False and r.json()["disabled"] == [setup["ids"]["/legacy"]]
    assert await _schedules(client, alice, ext) == before


async def test_it_disables_exactly_the_unmatched_schedules_with_the_override(
    client: httpx.AsyncClient, alice: Actor, setup: dict[str, Any], harness: Harness
) -> None:
    ext, v1, v2, ids = setup["ext"], setup["v1"], setup["v2"], setup["ids"]
    # a user-disabled schedule that matches stays disabled
    await client.patch(
        f"/api/v1/schedules/{ids['/report']}", json={"enabled": False}, headers=alice.headers
    )
    r = await client.post(
        f"/api/v1/extensions/{ext}/update",
        headers=alice.headers,
        json={"version_id": v2["version_id"], "disable_missing_schedules": True},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["install"]["version"] == "2.0.0" and body["disabled"] == [ids["/legacy"]]
    remap = {x["schedule_id"]: x for x in body["remapped"]}
    assert remap[ids["/sync"]]["from_endpoint_id"] == endpoint_id(v1, "POST", "/sync")
    assert remap[ids["/sync"]]["to_endpoint_id"] == endpoint_id(v2, "POST", "/sync")
    s = await _schedules(client, alice, ext)
    assert s["/sync"]["enabled"] is True
    assert s["/sync"]["endpoint"]["id"] == endpoint_id(v2, "POST", "/sync")
    assert s["/report"]["enabled"] is False and s["/report"]["disabled_reason"] is None
    assert s["/legacy"]["enabled"] is False
    assert s["/legacy"]["disabled_reason"] == "endpoint_missing"
    assert s["/legacy"]["endpoint"] == {
        "id": endpoint_id(v1, "POST", "/legacy"),
        "method": "POST",
        "path": "/legacy",
    }
    actions = await _audit_actions(client, alice, ext)
    assert {"install.update", "schedule.remap", "schedule.disable_override"} <= set(actions)
    # the remapped schedule runs against the new version
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    [call] = harness.runner.calls
    assert call.envelope["context"]["version_id"] == v2["version_id"]
    assert call.envelope["context"]["content_hash"] == v2["content_hash"]
    # re-enabling the orphan needs a new endpoint of the current version
    r = await client.patch(
        f"/api/v1/schedules/{ids['/legacy']}", json={"enabled": True}, headers=alice.headers
    )
    assert r.status_code == 422 and "endpoint_id" in r.json()["error"]["field_errors"]
    r = await client.patch(
        f"/api/v1/schedules/{ids['/legacy']}",
        headers=alice.headers,
        json={"enabled": True, "endpoint_id": endpoint_id(v2, "POST", "/new")},
    )
    assert r.status_code == 200 and r.json()["disabled_reason"] is None


async def test_it_rolls_back_to_the_old_version_and_keeps_running(
    client: httpx.AsyncClient, alice: Actor, setup: dict[str, Any], harness: Harness
) -> None:
    ext, v1, v2, ids = setup["ext"], setup["v1"], setup["v2"], setup["ids"]
    await client.post(
        f"/api/v1/extensions/{ext}/update",
        headers=alice.headers,
        json={"version_id": v2["version_id"], "disable_missing_schedules": True},
    )
    r = await client.post(
        f"/api/v1/extensions/{ext}/update",
        headers=alice.headers,
        json={"version_id": v1["version_id"]},
    )
    assert r.status_code == 200, r.text
    s = await _schedules(client, alice, ext)
    assert s["/sync"]["endpoint"]["id"] == endpoint_id(v1, "POST", "/sync")
    assert s["/legacy"]["enabled"] is False  # disabled schedules stay disabled
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    assert {c.path for c in harness.runner.calls} == {"/sync", "/report"}
    assert all(
        c.envelope["context"]["version_id"] == v1["version_id"] for c in harness.runner.calls
    )
    runs = await runs_of(client, alice, ids["/sync"])
    assert [r["status"] for r in runs] == ["succeeded"]


async def test_it_changes_nothing_when_the_backend_fails_during_an_update(
    client: httpx.AsyncClient, alice: Actor, setup: dict[str, Any], ctx: AppContext
) -> None:
    ext, v2 = setup["ext"], setup["v2"]
    before = await _schedules(client, alice, ext)
    real = ctx.backend
    ctx.backend = FailingBackend(real)  # type: ignore[assignment]
    try:
        r = await client.post(
            f"/api/v1/extensions/{ext}/update",
            headers=alice.headers,
            json={"version_id": v2["version_id"], "disable_missing_schedules": True},
        )
        assert r.status_code == 503
    finally:
        ctx.backend = real
    assert await _schedules(client, alice, ext) == before
    inst = (await client.get(f"/api/v1/extensions/{ext}", headers=alice.headers)).json()
    assert inst["version"] == "1.0.0"


async def test_it_refuses_a_version_of_another_extension(
    client: httpx.AsyncClient,
    alice: Actor,
    setup: dict[str, Any],
    publish,  # type: ignore[no-untyped-def]
) -> None:
    other = await publish(name="org.other")
    r = await client.post(
        f"/api/v1/extensions/{setup['ext']}/update",
        headers=alice.headers,
        json={"version_id": other["version_id"]},
    )
    assert r.status_code == 422 and "version_id" in r.json()["error"]["field_errors"]


async def test_it_pauses_everything_while_the_install_is_disabled(
    client: httpx.AsyncClient,
    alice: Actor,
    setup: dict[str, Any],
    harness: Harness,
    ctx: AppContext,
) -> None:
    ext, ids = setup["ext"], setup["ids"]
    await client.patch(
        f"/api/v1/schedules/{ids['/report']}", json={"enabled": False}, headers=alice.headers
    )
    for _ in range(2):
        r = await client.post(f"/api/v1/extensions/{ext}/disable", headers=alice.headers)
        assert r.status_code == 200
    s = await _schedules(client, alice, ext)
    assert all(i["next_run_at"] is None for i in s.values())
    async with ctx.db.connection() as conn:
        assert all(h.paused for h in await ctx.backend.list_handles(conn, "acme"))
    assert (await harness.tick(T0.replace(hour=9, minute=0))).runs_queued == 0
    r = await client.post(f"/api/v1/schedules/{ids['/sync']}/run-now", headers=alice.headers)
    assert r.status_code == 409
    await client.post(f"/api/v1/extensions/{ext}/enable", headers=alice.headers)
    s = await _schedules(client, alice, ext)
    assert {n for n, i in s.items() if i["enabled"]} == {"/sync", "/legacy"}
    async with ctx.db.connection() as conn:
        paused = {h.schedule_id for h in await ctx.backend.list_handles(conn, "acme") if h.paused}
    assert {str(x) for x in paused} == {ids["/report"]}
    await harness.tick(T0.replace(hour=9, minute=0) + timedelta(days=1))
    await harness.drain()
    assert {c.path for c in harness.runner.calls} == {"/sync", "/legacy"}


async def test_it_records_a_run_in_flight_when_the_install_is_disabled(
    client: httpx.AsyncClient, alice: Actor, setup: dict[str, Any], harness: Harness
) -> None:
    ext, ids = setup["ext"], setup["ids"]
    harness.runner.behaviour = {"/sync": "hang"}
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.executor.claim_and_start()
    for _ in range(500):
        if harness.runner.calls_to("/sync"):
            break
        await asyncio.sleep(0.01)
    await client.post(f"/api/v1/extensions/{ext}/disable", headers=alice.headers)
    harness.runner.release.set()
    await harness.drain()
    runs = await runs_of(client, alice, ids["/sync"])
    assert [r["status"] for r in runs] == ["succeeded"]


async def test_it_uninstalls_handles_schedules_and_runs_in_order(
    client: httpx.AsyncClient,
    alice: Actor,
    setup: dict[str, Any],
    harness: Harness,
    ctx: AppContext,
) -> None:
    ext = setup["ext"]
    await harness.tick(T0.replace(hour=9, minute=0))
    await harness.drain()
    assert (
        await client.delete(f"/api/v1/extensions/{ext}", headers=alice.headers)
    ).status_code == 204
    async with ctx.db.connection() as conn:
        for table in (
            "job_handle",
            "tenant_extension_schedule",
            "extension_schedule_run",
            "tenant_extension_install",
        ):
            cur = await conn.execute(f"SELECT count(*) AS n FROM {table}")
            row = await cur.fetchone()
            assert row is not None and row["n"] == 0, table
    assert (
        await client.delete(f"/api/v1/extensions/{ext}", headers=alice.headers)
    ).status_code == 404
    audit = (await client.get(f"/api/v1/extensions/{ext}/audit", headers=alice.headers)).json()
    deleted = audit["items"][0]
    assert deleted["action"] == "install.delete" and len(deleted["changes"]["schedules"]) == 3


async def test_it_applies_the_kill_switch_and_restores(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    setup: dict[str, Any],
    harness: Harness,
) -> None:
    ext, ids = setup["ext"], setup["ids"]
    url = "/api/v1/admin/tenants/acme/kill-switch"
    assert (
        await client.post(url, json={"enabled": True}, headers=alice.headers)
    ).status_code == 403
    r = await client.post(url, json={"enabled": True}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["changed"] is True
    s = await _schedules(client, alice, ext)
    assert all(i["next_run_at"] is None and i["enabled"] for i in s.values())
    r = await client.post(f"/api/v1/schedules/{ids['/sync']}/run-now", headers=alice.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "SCHEDULES_PAUSED"
    assert (await harness.tick(T0.replace(hour=9, minute=0))).runs_queued == 0
    r = await client.post(url, json={"enabled": False}, headers=admin.headers)
    assert r.json()["changed"] is True
    s = await _schedules(client, alice, ext)
    assert all(i["next_run_at"] is not None for i in s.values())
    assert "tenant.kill_switch" in await _audit_actions(client, alice, ext)
    r = await client.post(
        "/api/v1/admin/tenants/nobody/kill-switch", json={"enabled": True}, headers=admin.headers
    )
    assert r.status_code == 404


async def test_it_lists_and_deletes_schedules_across_tenants_for_admins_only(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, setup: dict[str, Any]
) -> None:
    assert (await client.get("/api/v1/admin/schedules", headers=alice.headers)).status_code == 403
    r = await client.get(
        "/api/v1/admin/schedules", params={"tenant": "acme"}, headers=admin.headers
    )
    items = r.json()["items"]
    assert len(items) == 3 and all(i["tenant_id"] == "acme" and i["handle_present"] for i in items)
    assert items[0]["handle_id"].startswith("extsched:acme:")
    sid = setup["ids"]["/legacy"]
    r = await client.delete(f"/api/v1/admin/tenants/acme/schedules/{sid}", headers=admin.headers)
    assert r.status_code == 204
    r = await client.delete(f"/api/v1/admin/tenants/globex/schedules/{sid}", headers=admin.headers)
    assert r.status_code == 404
    audit = (
        await client.get(f"/api/v1/extensions/{setup['ext']}/audit", headers=alice.headers)
    ).json()["items"]
    assert audit[0]["action"] == "schedule.delete" and audit[0]["actor"]["type"] == "admin"


async def test_it_reconciles_and_repairs_without_touching_disabled_configuration(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    setup: dict[str, Any],
    ctx: AppContext,
    install,  # type: ignore[no-untyped-def]
) -> None:
    ids = setup["ids"]
    await client.patch(
        f"/api/v1/schedules/{ids['/report']}", json={"enabled": False}, headers=alice.headers
    )
    other, _ = await install(alice, name="org.other")
    r = await client.post(
        f"/api/v1/extensions/{other['extension_id']}/schedules",
        headers=alice.headers,
        json={"endpoint_id": endpoint_id(other, "POST", "/sync"), "cron": "0 8 * * *"},
    )
    orphan_id = r.json()["id"]
    async with ctx.db.connection() as conn:
        # damage: a missing handle, a stale handle, a handle without schedule, an orphan schedule
        await conn.execute("DELETE FROM job_handle WHERE schedule_id = %s", (ids["/sync"],))
        await conn.execute(
            "UPDATE job_handle SET paused = false, next_fire_at = now() WHERE schedule_id = %s",
            (ids["/report"],),
        )
        await conn.execute(
            "INSERT INTO job_handle (tenant_id, schedule_id, handle_id, install_id, cron, timezone)"
            " VALUES ('acme', gen_random_uuid(), 'extsched:acme:x:y', gen_random_uuid(), "
            "'0 1 * * *', 'UTC')"
        )
        await conn.execute(
            "DELETE FROM tenant_extension_install WHERE extension_id = %s", (other["extension_id"],)
        )
    before = await _schedules(client, alice, setup["ext"])
    r = await client.post("/api/v1/admin/reconcile", headers=admin.headers)
    report = r.json()
    assert [o["schedule_id"] for o in report["orphan_schedules"]] == [orphan_id]
    assert len(report["orphan_handles"]) == 1 and len(report["missing_handles"]) == 1
    assert len(report["stale_handles"]) == 1 and report["repaired"] == 0
    r = await client.post(
        "/api/v1/admin/reconcile", params={"repair": "true"}, headers=admin.headers
    )
    assert r.json()["repaired"] >= 4
    clean = (await client.post("/api/v1/admin/reconcile", headers=admin.headers)).json()
    assert clean == {
        "orphan_schedules": [],
        "orphan_handles": [],
        "missing_handles": [],
        "stale_handles": [],
        "overdue": [],
        "repaired": 0,
    }
    after = await _schedules(client, alice, setup["ext"])
    assert after["/report"] == before["/report"]  # disabled schedule untouched
    async with ctx.db.connection() as conn:
        handles = {str(h.schedule_id): h for h in await ctx.backend.list_handles(conn, "acme")}
    assert not handles[ids["/sync"]].paused and handles[ids["/report"]].paused
    assert orphan_id not in handles


async def test_it_backfills_endpoints_through_the_admin_route(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, setup: dict[str, Any]
) -> None:
    r = await client.post("/api/v1/admin/registry/backfill-endpoints", headers=admin.headers)
    assert r.json() == {"versions": 2, "endpoints_written": 0}
    r = await client.post("/api/v1/admin/registry/backfill-endpoints", headers=alice.headers)
    assert r.status_code == 403


async def test_it_flags_overdue_schedules_once_and_clears_them(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    setup: dict[str, Any],
    ctx: AppContext,
    clock: Clock,
    harness: Harness,
) -> None:
    # The scheduler stopped: 09:00 passed long ago and the handles were never advanced.
    clock.set(T0.replace(hour=9, minute=10))
    r = (await client.post("/api/v1/admin/reconcile", headers=admin.headers)).json()
    assert len(r["overdue"]) == 3 and r["overdue"][0]["expected_at"].startswith("2026-12-01T09:00")
    await client.post("/api/v1/admin/reconcile", headers=admin.headers)  # audited only once
    actions = await _audit_actions(client, alice, setup["ext"])
    assert actions.count("schedule.overdue") == 3
    listing = (await client.get("/api/v1/admin/schedules", headers=admin.headers)).json()
    assert all(i["overdue_since"] for i in listing["items"])
    assert "extsched_schedules_overdue 3.0" in (await client.get("/metrics")).text
    await harness.tick(clock())  # the scheduler catches up
    r = (await client.post("/api/v1/admin/reconcile", headers=admin.headers)).json()
    assert r["overdue"] == []
    listing = (await client.get("/api/v1/admin/schedules", headers=admin.headers)).json()
    assert not any(i["overdue_since"] for i in listing["items"])
