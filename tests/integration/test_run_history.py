"""Run history (SPEC §5): the per-schedule and tenant-wide listings filtered by status, trigger
and a scheduled_for window, paged by keyset, as JSON and as streamed CSV; tenant isolation;
field errors for bad filters; and EXPLAIN on a seeded table: each filter combination reads an
index, never the whole table.

Alice (acme) has crm-sync (Nightly sync, Hourly pull) and newsletter (Weekly send); charlie
(globex) has crm-sync too (Globex sync). Their runs are inserted directly with known values, so
each listing is checked against the same filter applied in Python.
"""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from bench.history import seed_runs, seed_tenant

from extsched.db.queries import QUERIES
from extsched.domain.ids import uuid7
from extsched.services import runs as runs_service
from extsched.services.context import AppContext
from tests.conftest import Actor, endpoint_id

BASE = datetime(2026, 11, 1, tzinfo=UTC)
STATUSES = ["succeeded", "failed", "succeeded", "timed_out", "skipped", "succeeded"]


@dataclass(frozen=True)
class SeededRun:
    id: str
    schedule_id: str
    schedule_name: str
    extension_id: str
    trigger: str
    scheduled_for: datetime
    status: str
    error: str | None


@dataclass
class History:
    runs: list[SeededRun]  # alice's
    other: list[SeededRun]  # charlie's
    schedules: dict[str, dict[str, Any]]  # by name
    crm_id: str
    newsletter_id: str

    def expect(self, **f: Any) -> list[str]:
        """Ids of alice's runs matching the filter, in listing order (newest first)."""
        out = [
            r
            for r in self.runs
            if (f.get("status") is None or r.status in f["status"].split(","))
            and (f.get("trigger") is None or r.trigger in f["trigger"].split(","))
            and (f.get("since") is None or r.scheduled_for >= f["since"])
            and (f.get("until") is None or r.scheduled_for < f["until"])
            and (f.get("schedule_id") is None or r.schedule_id == f["schedule_id"])
            and (f.get("extension_id") is None or r.extension_id == f["extension_id"])
        ]
        out.sort(key=lambda r: (r.scheduled_for, r.id), reverse=True)
        return [r.id for r in out]


async def _insert(
    ctx: AppContext, tenant: str, schedule: dict[str, Any], runs: list[SeededRun]
) -> None:
    async with ctx.db.connection() as conn:
        for r in runs:
            await conn.execute(
                "INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id,"
                " trigger, scheduled_for, status, attempts, finished_at, duration_ms, error)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s, 120, %s)",
                (
                    tenant,
                    r.id,
                    r.schedule_id,
                    schedule["install_id"],
                    r.trigger,
                    r.scheduled_for,
                    r.status,
                    r.scheduled_for + timedelta(seconds=1),
                    r.error,
                ),
            )


def _runs_for(schedule: dict[str, Any], offset: int, n: int) -> list[SeededRun]:
    out = []
    for i in range(n):
        at = BASE + timedelta(hours=offset + 3 * i)
        status = STATUSES[(i + offset) % len(STATUSES)]
        trigger = "run_now" if i % 7 == 3 else "schedule"
        error = None
        if status == "failed":
            error = '=HYPERLINK("http://evil")' if i == 1 else "extension answered HTTP 500"
        out.append(
            SeededRun(
                str(uuid7(int(at.timestamp() * 1000))),
                schedule["id"],
                schedule["name"],
                schedule["extension_id"],
                trigger,
                at,
                status,
                error,
            )
        )
    return out


@pytest.fixture
async def history(
    ctx: AppContext, client: httpx.AsyncClient, install: Any, alice: Actor, charlie: Actor
) -> History:
    crm, _ = await install(alice)
    newsletter, _ = await install(alice, name="com.example.newsletter")
    await client.post(
        f"/api/v1/extensions/{crm['extension_id']}/install",
        json={"version_id": crm["version_id"]},
        headers=charlie.headers,
    )
    schedules: dict[str, dict[str, Any]] = {}
    for actor, published, name in (
        (alice, crm, "Nightly sync"),
        (alice, crm, "Hourly pull"),
        (alice, newsletter, "Weekly send"),
        (charlie, crm, "Globex sync"),
    ):
        r = await client.post(
            f"/api/v1/extensions/{published['extension_id']}/schedules",
            json={
                "name": name,
                "endpoint_id": endpoint_id(published, "POST", "/sync"),
                "cron": "0 9 * * *",
                "timezone": "UTC",
                "enabled": False,  # nothing fires while the test reads
            },
            headers=actor.headers,
        )
        assert r.status_code == 201, r.text
        schedules[name] = r.json()
    runs: list[SeededRun] = []
    for offset, name in enumerate(("Nightly sync", "Hourly pull", "Weekly send")):
        batch = _runs_for(schedules[name], offset, 20)
        await _insert(ctx, "acme", schedules[name], batch)
        runs += batch
    # A replay made today of the first failed run: an old scheduled_for, a new id.
    failed = next(r for r in runs if r.status == "failed")
    replay = SeededRun(
        str(uuid7()),
        failed.schedule_id,
        failed.schedule_name,
        failed.extension_id,
        "replay",
        failed.scheduled_for,
        "succeeded",
        None,
    )
    await _insert(ctx, "acme", schedules[failed.schedule_name], [replay])
    runs.append(replay)
    other = _runs_for(schedules["Globex sync"], 0, 10)
    await _insert(ctx, "globex", schedules["Globex sync"], other)
    return History(
        runs, other, schedules, str(crm["extension_id"]), str(newsletter["extension_id"])
    )


async def _all_pages(
    client: httpx.AsyncClient, actor: Actor, path: str, params: dict[str, Any], limit: int = 7
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get(path, params=q, headers=actor.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "failed"},
    {"status": "failed,timed_out"},
    {"trigger": "run_now"},
    {"trigger": "schedule,replay"},
    {"since": BASE + timedelta(days=2)},
    {"until": BASE + timedelta(days=1)},
    {"since": BASE + timedelta(hours=10), "until": BASE + timedelta(hours=40)},
    {"status": "succeeded", "trigger": "replay"},
    {"status": "failed,skipped", "since": BASE + timedelta(hours=5), "trigger": "schedule"},
]


def _query(f: dict[str, Any]) -> dict[str, str]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in f.items()}


# ----------------------------------------------------------------------------- JSON listings
@pytest.mark.parametrize("f", FILTERS, ids=lambda f: ",".join(f) or "none")
async def test_it_filters_the_tenants_runs_and_pages_through_them(
    client: httpx.AsyncClient, alice: Actor, history: History, f: dict[str, Any]
) -> None:
    items = await _all_pages(client, alice, "/api/v1/runs", _query(f))
    assert [r["id"] for r in items] == history.expect(**f)
    for r in items:
        seeded = next(s for s in history.runs if s.id == r["id"])
        assert r["schedule_name"] == seeded.schedule_name
        assert r["extension_id"] == seeded.extension_id
        assert r["schedule_id"] == seeded.schedule_id


@pytest.mark.parametrize("f", FILTERS[:6], ids=lambda f: ",".join(f) or "none")
async def test_it_filters_one_schedules_runs(
    client: httpx.AsyncClient, alice: Actor, history: History, f: dict[str, Any]
) -> None:
    sid = history.schedules["Nightly sync"]["id"]
    items = await _all_pages(client, alice, f"/api/v1/schedules/{sid}/runs", _query(f), limit=4)
    assert [r["id"] for r in items] == history.expect(**f, schedule_id=sid)
    assert "schedule_name" not in items[0]  # the per-schedule listing keeps the SPEC's run shape


async def test_it_narrows_the_tenants_runs_to_an_extension_or_a_schedule(
    client: httpx.AsyncClient, alice: Actor, history: History
) -> None:
    for params in (
        {"extension_id": history.newsletter_id},
        {"extension_id": history.crm_id, "status": "failed"},
        {"schedule_id": history.schedules["Hourly pull"]["id"]},
        {"schedule_id": history.schedules["Hourly pull"]["id"], "extension_id": history.crm_id},
        # A schedule of another extension than the one named: nothing matches both.
        {"schedule_id": history.schedules["Weekly send"]["id"], "extension_id": history.crm_id},
    ):
        items = await _all_pages(client, alice, "/api/v1/runs", params)
        assert [r["id"] for r in items] == history.expect(**params), params


async def test_the_newest_run_comes_first_and_a_replay_sits_with_its_fire(
    client: httpx.AsyncClient, alice: Actor, history: History
) -> None:
    items = (await client.get("/api/v1/runs", headers=alice.headers)).json()["items"]
    times = [r["scheduled_for"] for r in items]
    assert times == sorted(times, reverse=True)
    replay = next(r for r in history.runs if r.trigger == "replay")
    everything = await _all_pages(client, alice, "/api/v1/runs", {}, limit=200)
    at = [r["id"] for r in everything].index(replay.id)
    # Listed by what it ran for (its fire's scheduled_for), just before that fire's own run.
    assert everything[at + 1]["scheduled_for"] == everything[at]["scheduled_for"]


# ----------------------------------------------------------------------------- isolation
async def test_another_tenants_runs_never_appear(
    client: httpx.AsyncClient, alice: Actor, charlie: Actor, history: History
) -> None:
    mine = await _all_pages(client, alice, "/api/v1/runs", {}, limit=200)
    assert {r["id"] for r in mine} == {r.id for r in history.runs}
    theirs = await _all_pages(client, charlie, "/api/v1/runs", {}, limit=200)
    assert {r["id"] for r in theirs} == {r.id for r in history.other}
    # Filtering by another tenant's schedule matches nothing: an empty page, as for any id
    # that is not one of ours (no 404, which would confirm the id exists elsewhere).
    globex = history.schedules["Globex sync"]["id"]
    r = await client.get("/api/v1/runs", params={"schedule_id": globex}, headers=alice.headers)
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
    r = await client.get(
        "/api/v1/runs", params={"schedule_id": str(uuid.uuid4())}, headers=alice.headers
    )
    assert r.status_code == 200 and r.json()["items"] == []
    # The same extension installed by both tenants: each sees only its own install's runs.
    r = await client.get(
        "/api/v1/runs", params={"extension_id": history.crm_id}, headers=charlie.headers
    )
    assert {x["id"] for x in r.json()["items"]} == {x.id for x in history.other}
    # The per-schedule listing names the schedule in its path: another tenant's is a 404.
    r = await client.get(f"/api/v1/schedules/{globex}/runs", headers=alice.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = await client.get(
        f"/api/v1/schedules/{globex}/runs", headers={**alice.headers, "Accept": "text/csv"}
    )
    assert r.status_code == 404
    csv_rows = _csv(
        await client.get("/api/v1/runs", headers={**charlie.headers, "Accept": "text/csv"})
    )
    assert {row["id"] for row in csv_rows} == {x.id for x in history.other}


async def test_reading_runs_needs_the_read_permission(
    client: httpx.AsyncClient, history: History
) -> None:
    assert (await client.get("/api/v1/runs")).status_code == 401
    r = await client.get("/api/v1/runs", headers={"Accept": "text/csv"})
    assert r.status_code == 401


# ----------------------------------------------------------------------------- bad filters
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "broken"}, "status"),
        ({"status": "failed,nope"}, "status"),
        ({"trigger": "cron"}, "trigger"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-01T00:00:00"}, "since"),  # no offset
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"until": "9999-12-31T23:00:00-05:00"}, "until"),  # past the last instant
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"schedule_id": "not-a-uuid"}, "schedule_id"),
        ({"extension_id": "42"}, "extension_id"),
        ({"cursor": "bm90IG91cnM"}, "cursor"),
        ({"cursor": "WyJ4IiwgInkiXQ"}, "cursor"),  # ["x", "y"]: our shape, not our values
        ({"limit": "0"}, "limit"),
    ],
)
async def test_bad_filter_values_are_field_errors(
    client: httpx.AsyncClient, alice: Actor, history: History, params: dict[str, str], field: str
) -> None:
    sid = history.schedules["Nightly sync"]["id"]
    for path in ("/api/v1/runs", f"/api/v1/schedules/{sid}/runs"):
        if field in ("schedule_id", "extension_id") and path != "/api/v1/runs":
            continue
        for accept in ("application/json", "text/csv"):
            r = await client.get(path, params=params, headers={**alice.headers, "Accept": accept})
            assert r.status_code == 422, (path, params, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION_FAILED"
            assert field in error["field_errors"], error


# ----------------------------------------------------------------------------- CSV
def _csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_csv_streams_every_matching_run_in_batches(
    ctx: AppContext,
    client: httpx.AsyncClient,
    alice: Actor,
    history: History,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runs_service, "CSV_BATCH", 4)  # 61 runs: 16 batches, one response
    batches: list[int] = []
    real_fetch = ctx.db.fetch_tuples

    async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        rows = await real_fetch(*args, **kwargs)
        batches.append(len(rows))
        return rows

    monkeypatch.setattr(ctx.db, "fetch_tuples", counting_fetch)
    r = await client.get("/api/v1/runs", headers={**alice.headers, "Accept": "text/csv"})
    rows = _csv(r)
    assert r.text.splitlines()[0] == (
        "id,schedule_id,schedule_name,extension_id,trigger,replay_of,scheduled_for,status,"
        "skip_reason,skipped_count,attempts,started_at,finished_at,duration_ms,http_status,"
        "error,response_preview"
    )
    assert [row["id"] for row in rows] == history.expect()
    assert max(batches) == 4 and len(batches) == len(history.runs) // 4 + 1
    assert r.headers["content-disposition"] == 'attachment; filename="runs.csv"'
    first = next(row for row in rows if row["id"] == history.expect()[0])
    seeded = next(s for s in history.runs if s.id == first["id"])
    assert first["scheduled_for"] == _iso(seeded.scheduled_for)
    assert first["schedule_name"] == seeded.schedule_name
    assert first["extension_id"] == seeded.extension_id
    assert first["duration_ms"] == "120" and first["attempts"] == "1"
    # An error a spreadsheet would run as a formula is defused.
    evil = [row["error"] for row in rows if row["error"].startswith("'=")]
    assert evil and all(e.startswith("'=HYPERLINK") for e in evil)


@pytest.mark.parametrize("f", FILTERS[1:8], ids=lambda f: ",".join(f))
async def test_csv_applies_the_same_filters(
    client: httpx.AsyncClient, alice: Actor, history: History, f: dict[str, Any]
) -> None:
    r = await client.get(
        "/api/v1/runs", params=_query(f), headers={**alice.headers, "Accept": "text/csv"}
    )
    assert [row["id"] for row in _csv(r)] == history.expect(**f)
    sid = history.schedules["Hourly pull"]["id"]
    r = await client.get(
        f"/api/v1/schedules/{sid}/runs",
        params=_query(f),
        headers={**alice.headers, "Accept": "text/csv"},
    )
    assert [row["id"] for row in _csv(r)] == history.expect(**f, schedule_id=sid)


async def test_csv_of_nothing_is_the_header_alone(
    client: httpx.AsyncClient, alice: Actor, history: History
) -> None:
    r = await client.get(
        "/api/v1/runs",
        params={"status": "running"},
        headers={**alice.headers, "Accept": "text/csv"},
    )
    assert _csv(r) == [] and r.text.count("\n") == 1


# ----------------------------------------------------------------------------- EXPLAIN
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")


def _relations(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, index or relation) for every scan of extension_schedule_run in a plan."""
    found = []
    if plan.get("Relation Name") == "extension_schedule_run":
        found.append((plan["Node Type"], plan.get("Index Name", "")))
    for child in plan.get("Plans", []):
        found += _relations(child)
    return found


def test_every_filter_combination_reads_an_index(db_url: str) -> None:
    """With 120,000 runs over ten tenants and fresh statistics, the planner has a real choice;
    each combination of scope, status, trigger, window and cursor must still read an index."""
    end = datetime(2026, 11, 30, tzinfo=UTC)
    with psycopg.connect(db_url, autocommit=True) as conn:
        extensions, endpoints = [], []
        for name in ("com.example.a", "com.example.b"):
            ext, ver, ep = uuid7(), uuid7(), uuid7()
            conn.execute(
                "INSERT INTO extension (id, name, publisher) VALUES (%s, %s, 'x')", (ext, name)
            )
            conn.execute(
                "INSERT INTO extension_version (id, extension_id, version, content_hash, manifest)"
                " VALUES (%s, %s, '1.0.0', %s, '{}')",
                (ver, ext, f"sha256:{ver.hex}"),
            )
            conn.execute(
                "INSERT INTO extension_api_endpoint (id, version_id, method, path, handler)"
                " VALUES (%s, %s, 'POST', '/sync', 'h')",
                (ep, ver),
            )
            extensions.append(ext)
            endpoints.append(ep)
        big = seed_tenant(conn, "big", extensions, endpoints, 20)
        seed_runs(conn, "big", big[extensions[0]] + big[extensions[1]], 75_000, end=end)
        for t in range(9):
            other = seed_tenant(conn, f"small{t}", extensions, endpoints, 3)
            seed_runs(
                conn, f"small{t}", other[extensions[0]] + other[extensions[1]], 5_000, end=end
            )
        conn.execute("ANALYZE extension_schedule_run")
        middle = conn.execute(
            "SELECT scheduled_for, id FROM extension_schedule_run WHERE tenant_id = 'big'"
            " ORDER BY scheduled_for DESC, id DESC OFFSET 30000 LIMIT 1"
        ).fetchone()
        assert middle is not None
        scopes: list[dict[str, Any]] = [
            {},
            {"schedule_id": big[extensions[0]][3][0]},
            {"extension_id": extensions[1]},
        ]
        statuses = [None, ["failed"], ["failed", "timed_out"], ["succeeded"], ["running"]]
        triggers = [None, ["schedule"], ["run_now", "replay"]]
        windows = [
            {},
            {"since": end - timedelta(days=7)},
            {"since": end - timedelta(days=120), "until": end - timedelta(days=113)},
            {"until": end - timedelta(days=200)},
        ]
        cursors = [{}, {"before_at": middle[0], "before_id": middle[1]}]
        checked = 0
        for scope, status, trigger, window, cursor in itertools.product(
            scopes, statuses, triggers, windows, cursors
        ):
            params = {
                "tenant_id": "big",
                "schedule_id": None,
                "extension_id": None,
                "statuses": status,
                "triggers": trigger,
                "since": None,
                "until": None,
                "before_at": None,
                "before_id": None,
                "limit": 51,
                **scope,
                **window,
                **cursor,
            }
            for query in ("runs_list", "runs_csv_batch"):
                # Planned as the service plans it: with its values (prepare=False), not generic.
                row = conn.execute(
                    "EXPLAIN (FORMAT JSON) " + QUERIES[query], params, prepare=False
                ).fetchone()
                assert row is not None
                scans = _relations(row[0][0]["Plan"])
                label = (query, list(scope), status, trigger, list(window), bool(cursor))
                assert scans, label
                assert all(node in INDEX_SCANS for node, _ in scans), (label, scans)
                checked += 1
        assert checked == 2 * 3 * 5 * 3 * 4 * 2
