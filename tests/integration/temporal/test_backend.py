"""The temporal backend against a real Temporal dev server: schedules in place, pause with
notes, idempotent deletes, listing by prefix, run-now workflows, failures as 503 with the
database and Temporal left as before, readiness, and refreshing the DST compensation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from extsched.errors import BackendUnavailable
from extsched.jobs.backend import HandleSpec, RunRequest
from extsched.jobs.temporal import spec as temporal_spec
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.services.context import AppContext
from tests.conftest import Actor, Clock
from tests.helpers.http_server import free_port
from tests.helpers.polling import eventually


def handle(tenant: str = "acme", **fields: Any) -> HandleSpec:
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "install_id": uuid.uuid4(),
        "schedule_id": uuid.uuid4(),
        "cron": "30 9 * * 1-5",
        "timezone": "Europe/Paris",
        "paused": False,
        "note": None,
        **fields,
    }
    return HandleSpec(**values)


async def describe(backend: TemporalBackend, handle_id: str) -> Any:
    client = await backend.client()
    return await client.get_schedule_handle(handle_id).describe()


async def exists(backend: TemporalBackend, handle_id: str) -> bool:
    try:
        await describe(backend, handle_id)
        return True
    except RPCError:
        return False


async def test_it_creates_a_schedule_per_handle_and_updates_it_in_place(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    h = handle()
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [h])
        await temporal.put_handles(conn, [h])  # idempotent
    d = await describe(temporal, h.handle_id)
    assert d.id == f"extsched:acme:{h.install_id}:{h.schedule_id}"
    view = temporal_spec.read_spec(d.schedule.spec)
    assert (view.cron, view.timezone) == ("30 9 * * 1-5", "Europe/Paris")
    assert d.schedule.spec.time_zone_name == "Europe/Paris"
    assert d.schedule.policy.overlap is ScheduleOverlapPolicy.ALLOW_ALL
    assert d.schedule.policy.catchup_window == timedelta(
        seconds=ctx.settings.catchup_window_seconds
    )
    assert d.schedule.action.task_queue == ctx.settings.temporal_task_queue
    assert d.schedule.state.paused is False
    # every next action is a weekday at 09:30 in Paris
    for at in d.info.next_action_times:
        local = at.astimezone(temporal_spec.cron.load_zone("Europe/Paris"))
        assert (local.hour, local.minute) == (9, 30) and local.weekday() < 5
    created_at = d.info.created_at

    changed = HandleSpec(**{**h.__dict__, "cron": "0 7 * * *", "timezone": "America/New_York"})
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [changed])
    d = await describe(temporal, h.handle_id)
    view = temporal_spec.read_spec(d.schedule.spec)
    assert (view.cron, view.timezone) == ("0 7 * * *", "America/New_York")
    assert d.info.created_at == created_at  # the same schedule, changed in place


async def test_it_pauses_with_the_note_and_resumes_without_deleting(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    h = handle()
    paused = HandleSpec(**{**h.__dict__, "paused": True, "note": "extension install is disabled"})
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [h])
        await temporal.put_handles(conn, [paused])
    d = await describe(temporal, h.handle_id)
    assert d.schedule.state.paused is True
    assert d.schedule.state.note == "extension install is disabled"
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [h])
    d = await describe(temporal, h.handle_id)
    assert d.schedule.state.paused is False


async def test_it_deletes_idempotently(temporal: TemporalBackend, ctx: AppContext) -> None:
    h = handle()
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [h])
        await temporal.delete_handles(conn, "acme", [(h.install_id, h.schedule_id)])
        await temporal.delete_handles(conn, "acme", [(h.install_id, h.schedule_id)])
        await temporal.delete_handles(conn, "acme", [(uuid.uuid4(), uuid.uuid4())])
    assert not await exists(temporal, h.handle_id)


async def test_it_lists_handles_by_prefix_and_tenant(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    acme = [handle("acme"), handle("acme", paused=True, note="schedule is disabled")]
    globex = handle("globex", cron="*/15 * * * *", timezone="UTC")
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [*acme, globex])

    async def listed(tenant: str | None) -> dict[str, Any]:
        async with ctx.db.connection() as conn:
            return {h.handle_id: h for h in await temporal.list_handles(conn, tenant)}

    everything = await eventually(lambda: listed(None), lambda v: len(v) == 3)
    assert set(everything) == {h.handle_id for h in [*acme, globex]}
    only_acme = await listed("acme")
    assert set(only_acme) == {h.handle_id for h in acme}
    info = only_acme[acme[1].handle_id]
    assert (info.tenant_id, info.install_id, info.schedule_id) == (
        "acme",
        acme[1].install_id,
        acme[1].schedule_id,
    )
    assert (info.cron, info.timezone, info.paused, info.note) == (
        "30 9 * * 1-5",
        "Europe/Paris",
        True,
        "schedule is disabled",
    )
    assert info.next_fire_at is None
    g = everything[globex.handle_id]
    assert g.cron == "*/15 * * * *" and not g.paused and g.next_fire_at is not None
    assert g.next_fire_at.minute % 15 == 0


async def test_it_starts_the_run_now_workflow_under_the_run_id(
    temporal: TemporalBackend,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    sched: Any,
) -> None:
    s = await sched()
    r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    temporal_client = await temporal.client()
    described = await temporal_client.get_workflow_handle(run_id).describe()
    assert described.id == run_id and described.task_queue == ctx.settings.temporal_task_queue
    # a repeat starts nothing new and is not an error
    async with ctx.db.connection() as conn:
        await temporal.start_run(
            conn,
            RunRequest("acme", uuid.UUID(s["install_id"]), uuid.UUID(s["id"]), uuid.UUID(run_id)),
        )
    again = await temporal_client.get_workflow_handle(run_id).describe()
    assert again.run_id == described.run_id


@pytest.fixture
def dead_backend(ctx: AppContext) -> TemporalBackend:
    """A temporal backend pointed at a port where nothing listens."""
    settings = ctx.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    backend = TemporalBackend(settings, ctx.db, ctx.clock)
    ctx.backend = backend
    return backend


async def test_it_answers_503_and_changes_nothing_when_temporal_is_down(
    dead_backend: TemporalBackend,
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    ext: dict[str, Any],
) -> None:
    url = f"/api/v1/extensions/{ext['extension_id']}/schedules"
    body = {"endpoint_id": ext["endpoints"][0]["id"], "cron": "0 9 * * *", "timezone": "UTC"}
    r = await client.post(url, json=body, headers=alice.headers)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert (await client.get(url, headers=alice.headers)).json()["items"] == []
    audit = await client.get(
        f"/api/v1/extensions/{ext['extension_id']}/audit", headers=alice.headers
    )
    assert [a["action"] for a in audit.json()["items"]] == ["install.create"]
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["job_backend"] == {"name": "temporal", "status": "unavailable"}


async def test_it_reports_temporal_in_readyz(
    temporal: TemporalBackend, client: httpx.AsyncClient
) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["job_backend"] == {"name": "temporal", "status": "ok"}


async def test_it_puts_back_what_a_failed_multi_handle_call_changed(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    first, second = handle(), handle()
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [first])
    # Temporal refuses ids over 1000 characters: the third change fails.
    too_long = handle("t" * 1100)
    pause = [
        HandleSpec(**{**first.__dict__, "paused": True, "note": "tenant kill switch is on"}),
        HandleSpec(**{**second.__dict__, "paused": True, "note": "tenant kill switch is on"}),
        too_long,
    ]
    async with ctx.db.connection() as conn:
        with pytest.raises(BackendUnavailable):
            await temporal.put_handles(conn, pause)
    assert (await describe(temporal, first.handle_id)).schedule.state.paused is False
    assert not await exists(temporal, second.handle_id)  # created by the call: removed again


class FlakyDeletes(TemporalBackend):
    """Deletes of the ids in ``failing`` fail as if Temporal went away mid-call."""

    failing: frozenset[str] = frozenset()

    async def _delete(self, client: Any, schedule_id: str) -> Any:
        if schedule_id in self.failing:
            raise RPCError("injected: connection lost", RPCStatusCode.UNAVAILABLE, b"")
        return await super()._delete(client, schedule_id)


async def test_it_puts_back_what_a_failed_multi_handle_delete_removed(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    first, second, third = handle(), handle(paused=True, note="schedule is disabled"), handle()
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [first, second, third])
    flaky = FlakyDeletes(ctx.settings, ctx.db, ctx.clock)
    flaky.failing = frozenset({third.handle_id})
    async with ctx.db.connection() as conn:
        with pytest.raises(BackendUnavailable):
            await flaky.delete_handles(
                conn, "acme", [(h.install_id, h.schedule_id) for h in (first, second, third)]
            )
    assert (await describe(temporal, first.handle_id)).schedule.state.paused is False
    restored = await describe(temporal, second.handle_id)
    assert restored.schedule.state.paused is True
    assert restored.schedule.state.note == "schedule is disabled"
    assert temporal_spec.read_spec(restored.schedule.spec).cron == "30 9 * * 1-5"
    assert await exists(temporal, third.handle_id)


async def test_it_refreshes_the_dst_compensation_as_time_passes(
    temporal: TemporalBackend, ctx: AppContext, clock: Clock
) -> None:
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    h = handle(cron="30 2 * * *", timezone="Europe/Paris")
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [h])
    pinned = temporal_spec.read_spec((await describe(temporal, h.handle_id)).schedule.spec).pinned
    # 2027-03-28 02:30 is skipped (fires at 03:00), 2027-10-31 02:30 is repeated
    assert pinned == {
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC),
    }
    assert await temporal.refresh_compensation() == 0  # nothing new to pin
    clock.set(datetime(2027, 4, 1, tzinfo=UTC))  # March 2028 comes into the horizon
    assert await temporal.refresh_compensation() == 1
    pinned = temporal_spec.read_spec((await describe(temporal, h.handle_id)).schedule.spec).pinned
    assert datetime(2028, 3, 26, 1, 0, tzinfo=UTC) in pinned
    assert datetime(2027, 3, 28, 1, 0, tzinfo=UTC) not in pinned  # past ones are dropped
    assert await temporal.refresh_compensation() == 0


async def test_reconcile_finds_and_repairs_missing_and_orphan_schedules(
    temporal: TemporalBackend,
    ctx: AppContext,
    client: httpx.AsyncClient,
    admin: Actor,
    sched: Any,
) -> None:
    s = await sched()
    wanted = f"extsched:acme:{s['install_id']}:{s['id']}"
    orphan = handle()
    async with ctx.db.connection() as conn:
        await temporal.put_handles(conn, [orphan])
    await (await temporal.client()).get_schedule_handle(wanted).delete()

    async def report(repair: bool = False) -> dict[str, Any]:
        r = await client.post(
            "/api/v1/admin/reconcile", params={"repair": str(repair).lower()}, headers=admin.headers
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    found = await eventually(
        report,
        lambda b: b["missing_handles"] == [wanted] and b["orphan_handles"] == [orphan.handle_id],
    )
    assert found["repaired"] == 0
    assert (await report(repair=True))["repaired"] == 2
    assert await exists(temporal, wanted) and not await exists(temporal, orphan.handle_id)
    clean = await eventually(report, lambda b: not b["missing_handles"] and not b["orphan_handles"])
    assert clean["stale_handles"] == []
