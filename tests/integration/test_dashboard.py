"""The dashboard's data (services.dashboard): a constant number of queries whatever the number
of extensions, schedules and runs; failing schedules first; each schedule's last 50 runs; the
next 24 h's fires; the last 24 h's failures; only the tenant's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from extsched.domain.ids import uuid7
from extsched.services import dashboard, identity
from extsched.services.context import AppContext
from tests.conftest import Actor, Clock, endpoint_id

NOW = datetime(2026, 12, 1, 11, 59, tzinfo=UTC)


async def _schedules(
    client: httpx.AsyncClient, actor: Actor, published: dict[str, Any], n: int, prefix: str
) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        r = await client.post(
            f"/api/v1/extensions/{published['extension_id']}/schedules",
            json={
                "name": f"{prefix} {i}",
                "endpoint_id": endpoint_id(published, "POST", "/sync"),
                "cron": f"{i % 60} */6 * * *",
                "timezone": "UTC",
            },
            headers=actor.headers,
        )
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


async def _runs(ctx: AppContext, tenant: str, s: dict[str, Any], statuses: list[str]) -> None:
    async with ctx.db.connection() as conn:
        for i, status in enumerate(statuses):
            at = NOW - timedelta(hours=len(statuses) - i)
            await conn.execute(
                "INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id,"
                " trigger, scheduled_for, status, duration_ms, finished_at, error)"
                " VALUES (%s, %s, %s, %s, 'schedule', %s, %s, 100, %s, %s)",
                (
                    tenant,
                    uuid7(int(at.timestamp() * 1000)),
                    s["id"],
                    s["install_id"],
                    at,
                    status,
                    at,
                    "boom" if status == "failed" else None,
                ),
            )
        await conn.execute(
            "UPDATE tenant_extension_schedule SET last_run_status = %s, last_run_at = %s,"
            " consecutive_failures = %s WHERE tenant_id = %s AND id = %s",
            (statuses[-1], NOW, 2 if statuses[-1] == "failed" else 0, tenant, s["id"]),
        )


async def test_the_dashboard_costs_the_same_queries_for_1_or_12_schedules(
    ctx: AppContext,
    client: httpx.AsyncClient,
    install: Any,
    alice: Actor,
    charlie: Actor,
    clock: Clock,
) -> None:
    clock.set(NOW)
    principal = await identity.authenticate(ctx, alice.token)
    crm, _ = await install(alice)
    first = await _schedules(client, alice, crm, 1, "Sync")
    await _runs(ctx, "acme", first[0], ["succeeded"] * 3)
    before = ctx.db.query_count
    small = await dashboard.load(ctx, principal)
    small_cost = ctx.db.query_count - before

    newsletter, _ = await install(alice, name="com.example.newsletter")
    more = await _schedules(client, alice, crm, 5, "Pull") + await _schedules(
        client, alice, newsletter, 6, "Send"
    )
    for i, s in enumerate(more):
        await _runs(ctx, "acme", s, ["succeeded"] * 60 + (["failed"] if i == 7 else []))
    # Another tenant's schedules and failures never show.
    globex, _ = await install(charlie, name="com.example.globex")
    theirs = await _schedules(client, charlie, globex, 2, "Globex")
    await _runs(ctx, "globex", theirs[0], ["failed"] * 5)

    before = ctx.db.query_count
    board = await dashboard.load(ctx, principal)
    assert ctx.db.query_count - before == small_cost == 4
    assert len(small.cards) == 1 and len(board.cards) == 12
    assert {c.schedule.name for c in board.cards} == {
        f"{p} {i}" for p, n in (("Sync", 1), ("Pull", 5), ("Send", 6)) for i in range(n)
    }
    # The failing one first; every chart holds the last 50 runs, oldest first.
    assert board.cards[0].schedule.name == more[7]["name"] and board.cards[0].failing
    assert not any(c.failing for c in board.cards[1:])
    chart = board.cards[0].recent
    assert len(chart) == dashboard.CHART_RUNS
    assert chart[-1].status == "failed"
    assert [r.scheduled_for for r in chart] == sorted(r.scheduled_for for r in chart)
    assert len(next(c for c in board.cards if c.schedule.name == "Sync 0").recent) == 3
    # Fires in the next 24 h: every 6 hours, 4 of them, within [now, now + 24 h).
    for c in board.cards:
        assert len(c.upcoming) == 4
        assert all(NOW < at < NOW + timedelta(hours=24) for at in c.upcoming)
    # The last 24 h's failures: only alice's one.
    assert [f.run.status for f in board.failures] == ["failed"]
    assert board.failures[0].schedule_name == more[7]["name"]


async def test_the_dashboard_page_renders_for_a_reader(
    ctx: AppContext, client: httpx.AsyncClient, install: Any, alice: Actor, rita: Actor
) -> None:
    crm, _ = await install(alice)
    schedules = await _schedules(client, alice, crm, 2, "Sync")
    await _runs(ctx, "acme", schedules[0], ["succeeded", "failed", "skipped", "failed"])
    r = await client.get(f"/ui/login?token={rita.token}", follow_redirects=True)
    assert r.status_code == 200
    page = (await client.get("/ui")).text
    assert "Last 4 runs of Sync 0: 1 succeeded, 2 failed, 1 skipped; median 100 ms" in page
    assert 'data-schedule="Sync 0" class="is-failing"' in page
