"""Backend-independent service behaviour, run against both job backends: the API keeps every
schedule's handle in the state it should have (SPEC §5, §9), and run-now executes once."""

from __future__ import annotations

from typing import Any

import httpx

from extsched.server import running_worker
from extsched.services.context import AppContext
from tests.conftest import Actor
from tests.fake_runner import FakeRunner
from tests.helpers.polling import eventually
from tests.integration.temporal.conftest import handles_of


async def handle_states(ctx: AppContext, ext: dict[str, Any]) -> dict[str, Any]:
    """schedule id -> (cron, timezone, paused, note) of the install's handles."""
    handles = await handles_of(ctx, "acme", ext["install_id"])
    return {k: (h.cron, h.timezone, h.paused, h.note) for k, h in handles.items()}


async def expect(ctx: AppContext, ext: dict[str, Any], wanted: dict[str, Any]) -> None:
    await eventually(lambda: handle_states(ctx, ext), lambda states: states == wanted)


async def test_schedule_changes_keep_its_handle_in_step(
    backend: str,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    sched: Any,
) -> None:
    s = await sched(cron="30 9 * * 1-5", timezone="Europe/Paris")
    url = f"/api/v1/schedules/{s['id']}"
    await expect(ctx, ext, {s["id"]: ("30 9 * * 1-5", "Europe/Paris", False, None)})
    r = await client.patch(url, json={"cron": "0 7 * * *", "revision": 1}, headers=alice.headers)
    assert r.status_code == 200, r.text
    await expect(ctx, ext, {s["id"]: ("0 7 * * *", "Europe/Paris", False, None)})
    r = await client.patch(url, json={"enabled": False}, headers=alice.headers)
    assert r.status_code == 200, r.text
    await expect(ctx, ext, {s["id"]: ("0 7 * * *", "Europe/Paris", True, "schedule is disabled")})
    r = await client.patch(url, json={"enabled": True}, headers=alice.headers)
    await expect(ctx, ext, {s["id"]: ("0 7 * * *", "Europe/Paris", False, None)})
    assert (await client.delete(url, headers=alice.headers)).status_code == 204
    await expect(ctx, ext, {})


async def test_install_disable_pauses_every_handle_and_enable_restores_them(
    backend: str,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    sched: Any,
) -> None:
    on = await sched(name="on")
    off = await sched(name="off", enabled=False)
    install_url = f"/api/v1/extensions/{ext['extension_id']}"
    assert (await client.post(f"{install_url}/disable", headers=alice.headers)).status_code == 200
    note = "extension install is disabled"
    await expect(
        ctx,
        ext,
        {on["id"]: ("0 9 * * *", "UTC", True, note), off["id"]: ("0 9 * * *", "UTC", True, note)},
    )
    assert (await client.post(f"{install_url}/enable", headers=alice.headers)).status_code == 200
    await expect(
        ctx,
        ext,
        {
            on["id"]: ("0 9 * * *", "UTC", False, None),
            off["id"]: ("0 9 * * *", "UTC", True, "schedule is disabled"),
        },
    )


async def test_kill_switch_pauses_every_handle_of_the_tenant(
    backend: str,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    admin: Actor,
    ext: dict[str, Any],
    sched: Any,
) -> None:
    s = await sched()
    url = "/api/v1/admin/tenants/acme/kill-switch"
    r = await client.post(url, json={"enabled": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    await expect(ctx, ext, {s["id"]: ("0 9 * * *", "UTC", True, "tenant kill switch is on")})
    r = await client.post(url, json={"enabled": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    await expect(ctx, ext, {s["id"]: ("0 9 * * *", "UTC", False, None)})


async def test_uninstall_deletes_every_handle(
    backend: str,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
    sched: Any,
) -> None:
    first, second = await sched(name="a"), await sched(name="b", enabled=False)
    await eventually(lambda: handle_states(ctx, ext), lambda states: len(states) == 2)
    assert {first["id"], second["id"]} == set(await handle_states(ctx, ext))
    r = await client.delete(f"/api/v1/extensions/{ext['extension_id']}", headers=alice.headers)
    assert r.status_code == 204, r.text
    await expect(ctx, ext, {})


async def test_run_now_executes_once(
    backend: str,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    sched: Any,
    runner: FakeRunner,
) -> None:
    s = await sched()
    async with running_worker(ctx):
        r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
        assert r.status_code == 202, r.text

        async def runs() -> list[Any]:
            page = await client.get(f"/api/v1/schedules/{s['id']}/runs", headers=alice.headers)
            items: list[Any] = page.json()["items"]
            return items

        [run] = await eventually(runs, lambda items: [i["status"] for i in items] == ["succeeded"])
    assert run["id"] == r.json()["run_id"] and run["attempts"] == 1
    assert [c.envelope["context"]["run_id"] for c in runner.calls] == [run["id"]]
