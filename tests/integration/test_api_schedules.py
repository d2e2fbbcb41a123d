"""Schedules API: validation, CRUD, optimistic locking, quotas, isolation, audit, preview."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from extsched.errors import AlreadyInstalled, BackendUnavailable
from extsched.jobs.backend import HandleSpec
from extsched.services.context import AppContext
from tests.conftest import Actor, Clock, endpoint_id, marked_settings
from tests.helpers.polling import eventually

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
async def ext(client: httpx.AsyncClient, alice: Actor, install, clock: Clock):  # type: ignore[no-untyped-def]
    clock.set(NOW)
    published, _ = await install(alice)
    return published


def sched_url(ext: dict[str, Any]) -> str:
    return f"/api/v1/extensions/{ext['extension_id']}/schedules"


def body(ext: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id(ext, "POST", "/sync"),
        "cron": "30 9 * * 1-5",
        "timezone": "Europe/Paris",
        **fields,
    }


async def test_it_creates_and_reads_a_schedule(
    client: httpx.AsyncClient, alice: Actor, rita: Actor, ext: dict[str, Any]
) -> None:
    r = await client.post(
        sched_url(ext),
        json=body(ext, name="  Morning sync ", payload={"full": True}),
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["name"] == "Morning sync" and s["timezone"] == "Europe/Paris"
    assert s["endpoint"] == {
        "id": endpoint_id(ext, "POST", "/sync"),
        "method": "POST",
        "path": "/sync",
    }
    assert s["enabled"] is True and s["revision"] == 1 and s["payload"] == {"full": True}
    # Monday 2026-11-30 09:30 Paris = 08:30Z
    assert s["next_run_at"] == "2026-11-30T08:30:00Z"
    assert s["last_run_status"] is None and s["consecutive_failures"] == 0
    got = (await client.get(f"/api/v1/schedules/{s['id']}", headers=rita.headers)).json()
    assert [n["at"] for n in got["next_runs"]] == [
        "2026-11-30T08:30:00Z",
        "2026-12-01T08:30:00Z",
        "2026-12-02T08:30:00Z",
        "2026-12-03T08:30:00Z",
        "2026-12-04T08:30:00Z",
    ]
    assert got["next_runs"][0]["local"].startswith("2026-11-30T09:30:00+01:00")
    # Creating answers with the next fires too, like reading does.
    assert s["next_runs"] == got["next_runs"]
    listing = (await client.get(sched_url(ext), headers=rita.headers)).json()
    assert [i["id"] for i in listing["items"]] == [s["id"]]
    assert "next_runs" not in listing["items"][0] or listing["items"][0]["next_runs"] is None
    nested = await client.get(f"{sched_url(ext)}/{s['id']}", headers=rita.headers)
    assert nested.status_code == 200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "* * * * *"}, "cron"),
        ({"cron": "*/1 * * * *"}, "cron"),
        ({"cron": "0-59 * * * *"}, "cron"),
        ({"cron": "0 9 * * * *"}, "cron"),
        ({"cron": "@daily"}, "cron"),
        ({"cron": "0 9 L * *"}, "cron"),
        ({"cron": "0 9 1 * 1"}, "cron"),
        ({"cron": "0 0 31 2 *"}, "cron"),
        ({"cron": "61 9 * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"payload": 5}, "payload"),
        ({"payload": "text"}, "payload"),
        ({"payload": {"x": "a" * 100_001}}, "payload"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 129}, "name"),
        ({"endpoint_id": "not-a-uuid"}, "endpoint_id"),
        ({"enabled": "yes"}, "enabled"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_it_refuses_invalid_schedules_with_field_errors(
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    fields: dict[str, Any],
    field: str,
) -> None:
    r = await client.post(sched_url(ext), json=body(ext, **fields), headers=alice.headers)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED" and field in err["field_errors"]
    assert (await client.get(sched_url(ext), headers=alice.headers)).json()["items"] == []


async def test_it_explains_cron_errors_precisely(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    r = await client.post(sched_url(ext), json=body(ext, cron="61 9 * * *"), headers=alice.headers)
    assert r.json()["error"]["field_errors"]["cron"] == "minute: 61 is out of range 0-59"


@pytest.mark.parametrize(("method", "path"), [("GET", "/contacts/:id"), ("DELETE", "/cache")])
async def test_it_refuses_unschedulable_endpoints(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], method: str, path: str
) -> None:
    r = await client.post(
        sched_url(ext),
        json=body(ext, endpoint_id=endpoint_id(ext, method, path)),
        headers=alice.headers,
    )
    assert r.status_code == 422 and "endpoint_id" in r.json()["error"]["field_errors"]


async def test_it_refuses_endpoints_of_other_versions_and_extensions(
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    publish,  # type: ignore[no-untyped-def]
) -> None:
    newer = await publish(version="2.0.0")
    other = await publish(name="org.other")
    for foreign in (
        endpoint_id(newer, "POST", "/sync"),
        endpoint_id(other, "POST", "/sync"),
        "00000000-0000-0000-0000-000000000000",
    ):
        r = await client.post(
            sched_url(ext), json=body(ext, endpoint_id=foreign), headers=alice.headers
        )
        assert r.status_code == 422
        msg = r.json()["error"]["field_errors"]["endpoint_id"]
        assert "org.other" not in msg


async def test_it_defaults_the_timezone_user_then_tenant_then_utc(
    client: httpx.AsyncClient, ctx: AppContext, admin: Actor, alice: Actor, ext: dict[str, Any]
) -> None:
    from extsched.services import tokens

    no_tz = body(ext)
    no_tz.pop("timezone")
    r = await client.post(sched_url(ext), json={**no_tz, "name": "a"}, headers=alice.headers)
    assert r.json()["timezone"] == "UTC"
    await client.put(
        "/api/v1/admin/tenants/acme", json={"timezone": "Asia/Kolkata"}, headers=admin.headers
    )
    r = await client.post(sched_url(ext), json={**no_tz, "name": "b"}, headers=alice.headers)
    assert r.json()["timezone"] == "Asia/Kolkata"
    _, tok = await tokens.create(ctx.db, tenant_id="acme", user_id="zed", timezone="America/Lima")
    r = await client.post(
        sched_url(ext), json={**no_tz, "name": "c"}, headers={"Authorization": f"Bearer {tok}"}
    )
    assert r.json()["timezone"] == "America/Lima"


async def test_it_keeps_names_unique_per_install_case_insensitively(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    rs = await asyncio.gather(
        *(
            client.post(sched_url(ext), json=body(ext, name=n), headers=alice.headers)
            for n in ["Daily", "daily", "DAILY", "Daily "]
        )
    )
    assert sorted(r.status_code for r in rs) == [201, 422, 422, 422]
    for r in rs:
        if r.status_code == 422:
            assert "name" in r.json()["error"]["field_errors"]


async def test_it_enforces_quotas_under_concurrency(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], settings: Any, ctx: AppContext
) -> None:
    limit = settings.max_schedules_per_install
    rs = await asyncio.gather(
        *(
            client.post(sched_url(ext), json=body(ext, name=f"s{i}"), headers=alice.headers)
            for i in range(limit + 20)
        )
    )
    codes = [r.status_code for r in rs]
    assert codes.count(201) == limit
    assert all(r.json()["error"]["code"] == "QUOTA_EXCEEDED" for r in rs if r.status_code == 422)
    assert len((await client.get(sched_url(ext), headers=alice.headers)).json()["items"]) == limit
    # A create over quota wrote its schedule and audit entry before counting: both rolled back.
    entries = (
        await client.get(f"/api/v1/extensions/{ext['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    assert [e["action"] for e in entries].count("schedule.create") == limit
    async with ctx.db.connection() as conn:
        handles = await (await conn.execute("SELECT count(*) AS n FROM job_handle")).fetchone()
    assert handles is not None and handles["n"] == limit


async def test_a_kill_switch_turned_on_while_a_create_waits_pauses_its_handle(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], ctx: AppContext
) -> None:
    # The postgres backend writes the new handle before the create takes the tenant lock;
    # a kill switch committed while the create waits for that lock must still pause it.
    async with ctx.db.transaction() as locker:
        await locker.execute(
            "SELECT 1 FROM tenant WHERE tenant_id = %s FOR UPDATE", (alice.tenant_id,)
        )
        create = asyncio.create_task(
            client.post(sched_url(ext), json=body(ext, name="late"), headers=alice.headers)
        )

        async def waiting_for_the_lock() -> int:
            async with ctx.db.connection() as watcher:
                cur = await watcher.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE '%%schedule_quota%%'"
                )
                row = await cur.fetchone()
            return 0 if row is None else int(row["n"])

        await eventually(waiting_for_the_lock, lambda n: n == 1 or create.done())
        assert not create.done(), (await create).text
        await locker.execute(
            "UPDATE tenant SET kill_switch = true WHERE tenant_id = %s", (alice.tenant_id,)
        )
    r = await create
    assert r.status_code == 201, r.text
    assert r.json()["next_run_at"] is None
    async with ctx.db.connection() as conn:
        cur = await conn.execute(
            "SELECT paused, note, next_fire_at FROM job_handle WHERE schedule_id = %s",
            (uuid.UUID(r.json()["id"]),),
        )
        handle = await cur.fetchone()
    assert handle == {"paused": True, "note": "tenant kill switch is on", "next_fire_at": None}


async def test_a_pipelined_statement_that_fails_is_translated_and_rolls_back(
    ext: dict[str, Any], alice: Actor, ctx: AppContext
) -> None:
    # Database.pipeline queues statements; a failure among them (here a second install of the
    # same extension) surfaces at the end of the block as the service's error, and the
    # transaction rolls back with the statements queued before it.
    db = ctx.db
    params = {
        "tenant_id": alice.tenant_id,
        "extension_id": uuid.UUID(ext["extension_id"]),
        "version_id": uuid.UUID(ext["version_id"]),
        "config": "{}",
        "secret_names": [],
        "secrets_encrypted": None,
        "providers": [],
        "signing_secrets_encrypted": None,
    }
    async with db.transaction() as conn:
        with pytest.raises(AlreadyInstalled):
            async with db.pipeline(conn):
                await db.execute(conn, "tenant_ensure", {"tenant_id": "t-pipeline"})
                await db.execute(conn, "install_insert", {**params, "id": uuid.uuid4()})
    async with db.connection() as conn:
        assert await db.fetch_one(conn, "tenant_get", {"tenant_id": "t-pipeline"}) is None


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {
        "max_schedules_per_install": 5,
        "max_schedules_per_tenant": 7,
        **marked_settings(request),
    }


async def test_it_enforces_the_tenant_quota_across_installs(
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    install,  # type: ignore[no-untyped-def]
) -> None:
    other, _ = await install(alice, name="org.other")
    for i in range(5):
        assert (
            await client.post(sched_url(ext), json=body(ext, name=f"a{i}"), headers=alice.headers)
        ).status_code == 201
    codes = []
    for i in range(3):
        r = await client.post(
            sched_url(other), json=body(other, name=f"b{i}"), headers=alice.headers
        )
        codes.append(r.status_code)
    assert codes == [201, 201, 422]


async def test_it_patches_partially_with_optimistic_locking(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    s = (
        await client.post(sched_url(ext), json=body(ext, payload={"a": 1}), headers=alice.headers)
    ).json()
    url = f"/api/v1/schedules/{s['id']}"
    r = await client.patch(
        url, json={"cron": "0 18 * * *"}, headers={**alice.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.json()["revision"] == 2 and r.json()["payload"] == {"a": 1}
    assert r.headers["ETag"] == '"2"'
    stale = await client.patch(url, json={"name": "x", "revision": 1}, headers=alice.headers)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "REVISION_CONFLICT"
    r = await client.patch(url, json={"payload": None, "revision": 2}, headers=alice.headers)
    assert r.json()["payload"] is None and r.json()["revision"] == 3
    same = await client.patch(url, json={"payload": None}, headers=alice.headers)
    assert same.json()["revision"] == 3  # nothing changed, no new revision
    r = await client.patch(url, json={"enabled": False}, headers=alice.headers)
    assert r.json()["enabled"] is False and r.json()["next_run_at"] is None
    r = await client.patch(url, json={"cron": "* * * * *"}, headers=alice.headers)
    assert r.status_code == 422
    r = await client.patch(url, json={"cron": None}, headers=alice.headers)
    assert r.status_code == 422
    audit = (
        await client.get(f"/api/v1/extensions/{ext['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    assert [a["action"] for a in audit][:4] == [
        "schedule.disable",
        "schedule.update",
        "schedule.update",
        "schedule.create",
    ]
    assert audit[2]["changes"]["cron"] == {"from": "30 9 * * 1-5", "to": "0 18 * * *"}


async def test_it_deletes_and_disables_all(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], ctx: AppContext
) -> None:
    a = (await client.post(sched_url(ext), json=body(ext, name="a"), headers=alice.headers)).json()
    await client.post(sched_url(ext), json=body(ext, name="b"), headers=alice.headers)
    r = await client.post(f"{sched_url(ext)}/disable-all", headers=alice.headers)
    assert r.json() == {"disabled": 2}
    assert (await client.post(f"{sched_url(ext)}/disable-all", headers=alice.headers)).json() == {
        "disabled": 0
    }
    async with ctx.db.connection() as conn:
        handles = await ctx.backend.list_handles(conn, "acme")
    assert len(handles) == 2 and all(h.paused for h in handles)
    assert (
        await client.delete(f"/api/v1/schedules/{a['id']}", headers=alice.headers)
    ).status_code == 204
    assert (
        await client.delete(f"/api/v1/schedules/{a['id']}", headers=alice.headers)
    ).status_code == 404
    async with ctx.db.connection() as conn:
        assert len(await ctx.backend.list_handles(conn, "acme")) == 1


async def test_it_isolates_tenants_on_every_schedule_route(
    client: httpx.AsyncClient, alice: Actor, charlie: Actor, rita: Actor, ext: dict[str, Any]
) -> None:
    s = (await client.post(sched_url(ext), json=body(ext), headers=alice.headers)).json()
    sid = s["id"]
    for method, url, payload in [
        ("GET", f"/api/v1/schedules/{sid}", None),
        ("PATCH", f"/api/v1/schedules/{sid}", {"name": "pwned"}),
        ("DELETE", f"/api/v1/schedules/{sid}", None),
        ("POST", f"/api/v1/schedules/{sid}/run-now", None),
        ("GET", f"/api/v1/schedules/{sid}/runs", None),
    ]:
        r = await client.request(method, url, json=payload, headers=charlie.headers)
        assert r.status_code == 404, (method, url)
    for method, url in [("GET", sched_url(ext)), ("POST", f"{sched_url(ext)}/disable-all")]:
        r = await client.request(method, url, headers=charlie.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_INSTALLED"
    r = await client.patch(f"/api/v1/schedules/{sid}", json={"name": "x"}, headers=rita.headers)
    assert r.status_code == 403
    audit = await client.get(
        f"/api/v1/extensions/{ext['extension_id']}/audit", headers=charlie.headers
    )
    # An extension the tenant never installed has no audit log to read.
    assert audit.status_code == 404 and audit.json()["error"]["code"] == "NOT_INSTALLED"
    got = (await client.get(f"/api/v1/schedules/{sid}", headers=alice.headers)).json()
    assert got["name"] is None and got["revision"] == 1


async def test_it_answers_feature_disabled_when_the_flag_is_off(
    client: httpx.AsyncClient, admin: Actor, alice: Actor, ext: dict[str, Any]
) -> None:
    r = await client.put(
        "/api/v1/admin/tenants/acme", json={"scheduled_tasks_enabled": False}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["scheduled_tasks_enabled"] is False
    for method, url in [("GET", sched_url(ext)), ("POST", sched_url(ext))]:
        r = await client.request(method, url, json=body(ext), headers=alice.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "FEATURE_DISABLED"


async def test_it_refuses_creating_on_a_disabled_or_missing_install(
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    publish,  # type: ignore[no-untyped-def]
) -> None:
    await client.post(f"/api/v1/extensions/{ext['extension_id']}/disable", headers=alice.headers)
    r = await client.post(sched_url(ext), json=body(ext), headers=alice.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "INSTALL_DISABLED"
    other = await publish(name="org.other")
    r = await client.post(sched_url(other), json=body(other), headers=alice.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_INSTALLED"


async def test_it_lists_with_a_constant_number_of_queries(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], ctx: AppContext
) -> None:
    counts = []
    for n in (1, 5):
        while len((await client.get(sched_url(ext), headers=alice.headers)).json()["items"]) < n:
            await client.post(sched_url(ext), json=body(ext), headers=alice.headers)
        before = ctx.db.query_count
        await client.get(sched_url(ext), headers=alice.headers)
        counts.append(ctx.db.query_count - before)
    assert counts[0] == counts[1] <= 4


async def test_it_answers_each_hot_route_in_a_fixed_number_of_queries(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], ctx: AppContext
) -> None:
    """The API bench's routes (docs/performance.md): a round trip more is a regression."""
    s = (await client.post(sched_url(ext), json=body(ext), headers=alice.headers)).json()
    one = f"/api/v1/schedules/{s['id']}"
    calls = [
        ("list", "GET", sched_url(ext), None, 3),
        ("get", "GET", one, None, 2),
        ("create", "POST", sched_url(ext), body(ext), 6),
        ("patch", "PATCH", one, {"payload": {"a": 1}}, 4),
        ("run-now", "POST", f"{one}/run-now", None, 5),
    ]
    for name, method, url, json_body, expected in calls:
        before = ctx.db.query_count
        r = await client.request(method, url, json=json_body, headers=alice.headers)
        assert r.status_code < 300, (name, r.text)
        assert (name, ctx.db.query_count - before) == (name, expected)


class FailingBackend:
    """A job backend that refuses every change, to prove the database rolls back."""

    name = "failing"

    def __init__(self, real: Any) -> None:
        self.real = real

    async def put_handles(self, conn: Any, specs: list[HandleSpec]) -> None:
        raise BackendUnavailable("backend down (test)")

    async def delete_handles(self, conn: Any, tenant_id: str, keys: Any) -> None:
        raise BackendUnavailable("backend down (test)")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.real, name)  # type: ignore[no-any-return]


async def test_it_rolls_back_when_the_backend_fails(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], ctx: AppContext
) -> None:
    s = (
        await client.post(sched_url(ext), json=body(ext, name="keep"), headers=alice.headers)
    ).json()
    real = ctx.backend
    ctx.backend = FailingBackend(real)  # type: ignore[assignment]
    try:
        r = await client.post(sched_url(ext), json=body(ext, name="new"), headers=alice.headers)
        assert r.status_code == 503 and r.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
        r = await client.patch(
            f"/api/v1/schedules/{s['id']}", json={"cron": "0 7 * * *"}, headers=alice.headers
        )
        assert r.status_code == 503
        r = await client.delete(f"/api/v1/schedules/{s['id']}", headers=alice.headers)
        assert r.status_code == 503
        r = await client.post(
            f"/api/v1/extensions/{ext['extension_id']}/disable", headers=alice.headers
        )
        assert r.status_code == 503
    finally:
        ctx.backend = real
    items = (await client.get(sched_url(ext), headers=alice.headers)).json()["items"]
    assert [(i["name"], i["cron"], i["revision"]) for i in items] == [("keep", "30 9 * * 1-5", 1)]
    inst = (
        await client.get(f"/api/v1/extensions/{ext['extension_id']}", headers=alice.headers)
    ).json()
    assert inst["enabled"] is True
    audit = (
        await client.get(f"/api/v1/extensions/{ext['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    assert [a["action"] for a in audit] == ["schedule.create", "install.create"]


async def test_it_previews_cron_expressions(client: httpx.AsyncClient, alice: Actor) -> None:
    r = await client.post(
        "/api/v1/cron/preview",
        json={"cron": "30 2 * * *", "timezone": "Europe/Paris", "count": 3},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["valid"] is True and b["description"] and len(b["next_runs"]) == 3
    r = await client.post(
        "/api/v1/cron/preview", json={"cron": "nope", "timezone": "UTC"}, headers=alice.headers
    )
    assert r.status_code == 422 and "cron" in r.json()["error"]["field_errors"]


async def test_it_marks_dst_moved_fires_in_previews(
    client: httpx.AsyncClient, alice: Actor, clock: Clock
) -> None:
    clock.set(datetime(2027, 3, 27, 12, 0, tzinfo=UTC))  # Paris springs forward 2027-03-28
    r = await client.post(
        "/api/v1/cron/preview",
        json={"cron": "30 2 * * *", "timezone": "Europe/Paris", "count": 2},
        headers=alice.headers,
    )
    first = r.json()["next_runs"][0]
    assert first["at"] == "2027-03-28T01:00:00Z" and first["note"]
