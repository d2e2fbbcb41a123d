"""Run-history benchmark: the run listings (SPEC §5) with 1M runs in the table.

Seeds a realistic history directly (one INSERT ... generate_series per tenant: mostly
successful scheduled fires, a few percent failures and time-outs, rare run-nows and replays,
a year of scheduled_for), then times ``GET /api/v1/runs`` and the per-schedule listing through
the whole app (ASGI, no network) for each filter combination, first page and a deep page,
plus the CSV export's throughput. Prints a table and JSON.

    python -m bench.history                         # 1,000,000 runs, 200 requests per case
    python -m bench.history --runs 200000 --requests 50

``seed_runs`` is also what tests/integration/test_run_history.py seeds its EXPLAIN checks with,
so the planner there sees the distribution measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import KEY, fresh_database, percentile
from extsched.config import Settings
from extsched.domain.ids import uuid7
from extsched.runtime import open_context
from extsched.server import create_app
from extsched.services import tokens

# A UUIDv7 for instant ``created`` (48-bit milliseconds, version 7, variant, random bits), so
# inserted ids sort by creation time exactly as the service's own ids do.
_UUID7 = (
    "(lpad(to_hex((extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7' "
    "|| substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid"
)

# Shares of the seeded history (also what the EXPLAIN test's planner sees).
SHARE_FAILED = 0.05
SHARE_TIMED_OUT = 0.01
SHARE_SKIPPED = 0.02
SHARE_RUN_NOW = 0.01
SHARE_REPLAY = 0.002


def seed_runs(
    conn: psycopg.Connection[Any],
    tenant_id: str,
    schedules: list[tuple[uuid.UUID, uuid.UUID]],
    n: int,
    *,
    end: datetime,
    days: float = 365,
) -> int:
    """Insert ``n`` finished runs of ``schedules`` ((schedule_id, install_id) pairs, in turn)
    spread evenly over ``days`` days ending at ``end``; returns the rows inserted."""
    sids = [s for s, _ in schedules]
    iids = [i for _, i in schedules]
    cur = conn.execute(
        f"""
        INSERT INTO extension_schedule_run
            (tenant_id, id, schedule_id, install_id, trigger, replay_of, scheduled_for, status,
             skip_reason, attempts, started_at, finished_at, duration_ms, http_status, error,
             created_at)
        SELECT %(tenant)s, {_UUID7}, (%(sids)s::uuid[])[k], (%(iids)s::uuid[])[k], trig,
               CASE WHEN trig = 'replay' THEN gen_random_uuid() END,
               CASE WHEN trig = 'replay' THEN created - interval '3 days' ELSE created END,
               st, CASE WHEN st = 'skipped' THEN 'overlap' END, 1,
               created + interval '20 ms', created + make_interval(secs => dur / 1000.0),
               dur, CASE WHEN st = 'failed' THEN 500 WHEN st = 'succeeded' THEN 200 END,
               CASE WHEN st = 'failed' THEN 'extension answered HTTP 500'
                    WHEN st = 'timed_out' THEN 'timed out after 30000 ms' END,
               created
        FROM (
            SELECT 1 + g %% %(k)s AS k,
                   %(end)s - make_interval(secs => (%(n)s - g) * %(step)s) AS created,
                   CASE WHEN r1 < %(f)s THEN 'failed'
                        WHEN r1 < %(f)s + %(t)s THEN 'timed_out'
                        WHEN r1 < %(f)s + %(t)s + %(s)s THEN 'skipped'
                        ELSE 'succeeded' END AS st,
                   CASE WHEN r2 < %(rn)s THEN 'run_now'
                        WHEN r2 < %(rn)s + %(rp)s THEN 'replay'
                        ELSE 'schedule' END AS trig,
                   (50 + r1 * 2000)::int AS dur
            FROM (SELECT g, random() AS r1, random() AS r2
                  FROM generate_series(0, %(n)s - 1) AS g) AS raw
        ) AS x
        """,
        {
            "tenant": tenant_id,
            "sids": sids,
            "iids": iids,
            "k": len(schedules),
            "n": n,
            "end": end,
            "step": days * 86400 / max(n, 1),
            "f": SHARE_FAILED,
            "t": SHARE_TIMED_OUT,
            "s": SHARE_SKIPPED,
            "rn": SHARE_RUN_NOW,
            "rp": SHARE_REPLAY,
        },
    )
    return cur.rowcount


def seed_tenant(
    conn: psycopg.Connection[Any],
    tenant_id: str,
    extension_ids: list[uuid.UUID],
    endpoint_ids: list[uuid.UUID],
    schedules_per_install: int,
) -> dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]]:
    """A tenant with an install of each extension and named schedules under each; returns
    each extension's (schedule_id, install_id) pairs."""
    conn.execute("INSERT INTO tenant (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (tenant_id,))
    out: dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]] = {}
    for extension_id, endpoint_id in zip(extension_ids, endpoint_ids, strict=True):
        version_id = conn.execute(
            "SELECT version_id FROM extension_api_endpoint WHERE id = %s", (endpoint_id,)
        ).fetchone()
        assert version_id is not None
        install_id = uuid7()
        conn.execute(
            "INSERT INTO tenant_extension_install (tenant_id, id, extension_id, version_id) "
            "VALUES (%s, %s, %s, %s)",
            (tenant_id, install_id, extension_id, version_id[0]),
        )
        pairs = []
        for i in range(schedules_per_install):
            sid = uuid7()
            conn.execute(
                "INSERT INTO tenant_extension_schedule (tenant_id, id, install_id, extension_id,"
                " name, endpoint_id, endpoint_method, endpoint_path, cron, timezone)"
                " VALUES (%s, %s, %s, %s, %s, %s, 'POST', '/sync', '0 * * * *', 'UTC')",
                (tenant_id, sid, install_id, extension_id, f"Sync {i + 1}", endpoint_id),
            )
            pairs.append((sid, install_id))
        out[extension_id] = pairs
    return out


async def _publish(url: str, home: Path) -> tuple[list[uuid.UUID], list[uuid.UUID], str]:
    settings = Settings(database_url=url, home=home, secret_key=KEY)
    from extsched.services import registry

    async with open_context(settings, url) as ctx:
        ext, eps = [], []
        for name in ("com.example.crm-sync", "com.example.newsletter"):
            published = await registry.publish(
                ctx.db,
                {
                    "name": name,
                    "publisher": "bench",
                    "version": "1.0.0",
                    "capabilities": [],
                    "api": {"endpoints": [{"method": "POST", "path": "/sync", "handler": "h"}]},
                },
            )
            ext.append(published.extension_id)
            eps.append(published.endpoints[0].id)
        _, token = await tokens.create(ctx.db, tenant_id="t00", user_id="u")
    return ext, eps, token


CASES: list[tuple[str, dict[str, str]]] = [
    ("no filter", {}),
    ("status=failed", {"status": "failed"}),
    ("status=failed,timed_out", {"status": "failed,timed_out"}),
    ("trigger=run_now,replay", {"trigger": "run_now,replay"}),
    ("extension_id", {"extension_id": "{ext}"}),
    ("schedule_id", {"schedule_id": "{sched}"}),
    ("last 7 days", {"since": "{d7}"}),
    ("a past week", {"since": "{w_from}", "until": "{w_to}"}),
    (
        "extension + failed + past month",
        {"extension_id": "{ext}", "status": "failed", "since": "{m_from}", "until": "{m_to}"},
    ),
    ("schedule + failed,timed_out", {"schedule_id": "{sched}", "status": "failed,timed_out"}),
]


async def _time_case(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str], requests: int
) -> tuple[list[float], list[float], int]:
    """Latencies (ms) of the first page and of a page 20 pages deep, and the first page's size."""
    first: list[float] = []
    deep: list[float] = []
    size = 0
    cursor = None
    # Walk 20 pages once to find a deep cursor (if there are that many).
    page_params = dict(params, limit="50")
    for _ in range(20):
        r = await client.get("/api/v1/runs", params=page_params, headers=headers)
        r.raise_for_status()
        body = r.json()
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
        page_params = dict(params, limit="50", cursor=cursor)
    for i in range(requests):
        t0 = time.perf_counter()
        r = await client.get("/api/v1/runs", params=dict(params, limit="50"), headers=headers)
        first.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        if i == 0:
            size = len(r.json()["items"])
        if cursor is not None:
            t0 = time.perf_counter()
            r = await client.get(
                "/api/v1/runs", params=dict(params, limit="50", cursor=cursor), headers=headers
            )
            deep.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
    return first, deep, size


async def _bench(url: str, home: Path, runs: int, requests: int) -> dict[str, Any]:
    ext, eps, token = await _publish(url, home)
    end = datetime.now(UTC).replace(microsecond=0)
    t0 = time.perf_counter()
    big_share = 0.8  # of the runs belong to the measured tenant; the rest to 9 others
    with psycopg.connect(url, autocommit=True) as conn:
        big = seed_tenant(conn, "t00", ext, eps, 25)
        pairs = big[ext[0]] + big[ext[1]]
        seed_runs(conn, "t00", pairs, int(runs * big_share), end=end)
        for t in range(1, 10):
            other = seed_tenant(conn, f"t{t:02d}", ext, eps, 5)
            seed_runs(
                conn,
                f"t{t:02d}",
                other[ext[0]] + other[ext[1]],
                int(runs * (1 - big_share) / 9),
                end=end,
            )
        conn.execute("VACUUM ANALYZE extension_schedule_run")
        total = conn.execute("SELECT count(*) FROM extension_schedule_run").fetchone()
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('extension_schedule_run'))"
        ).fetchone()
    seeded_s = time.perf_counter() - t0
    values = {
        "ext": str(ext[0]),
        "sched": str(pairs[0][0]),
        "d7": (end - timedelta(days=7)).isoformat(),
        "w_from": (end - timedelta(days=120)).isoformat(),
        "w_to": (end - timedelta(days=113)).isoformat(),
        "m_from": (end - timedelta(days=200)).isoformat(),
        "m_to": (end - timedelta(days=170)).isoformat(),
    }
    settings = Settings(database_url=url, home=home, secret_key=KEY)
    results: dict[str, Any] = {
        "runs_in_table": total[0] if total else 0,
        "table_size": size[0] if size else "",
        "seed_seconds": round(seeded_s, 1),
        "cases": [],
    }
    headers = {"Authorization": f"Bearer {token}"}
    async with open_context(settings, url) as ctx:
        app = create_app(ctx)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, raw in CASES:
                params = {k: v.format(**values) for k, v in raw.items()}
                first, deep, size_ = await _time_case(client, headers, params, requests)
                results["cases"].append(
                    {
                        "case": name,
                        "page_size": size_,
                        "p50_ms": round(percentile(first, 50), 2),
                        "p95_ms": round(percentile(first, 95), 2),
                        "deep_p95_ms": round(percentile(deep, 95), 2) if deep else None,
                    }
                )
            for name, raw in (("CSV, status=failed", {"status": "failed"}), ("CSV, all", {})):
                t0 = time.perf_counter()
                rows = 0
                nbytes = 0
                async with client.stream(
                    "GET", "/api/v1/runs", params=raw, headers={**headers, "Accept": "text/csv"}
                ) as r:
                    r.raise_for_status()
                    async for chunk in r.aiter_bytes():
                        nbytes += len(chunk)
                        rows += chunk.count(b"\n")
                elapsed = time.perf_counter() - t0
                results["cases"].append(
                    {
                        "case": name,
                        "csv_rows": rows - 1,
                        "csv_mb": round(nbytes / 1e6, 1),
                        "seconds": round(elapsed, 2),
                        "rows_per_s": round((rows - 1) / elapsed),
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, fresh_database() as url:
        results = asyncio.run(_bench(url, Path(home), args.runs, args.requests))
    print(f"\nruns listing, {results['runs_in_table']:,} runs ({results['table_size']})")
    print(f"{'case':<36} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8} {'deep p95':>9}")
    for c in results["cases"]:
        if "p95_ms" in c:
            deep = "-" if c["deep_p95_ms"] is None else f"{c['deep_p95_ms']:.1f}"
            print(
                f"{c['case']:<36} {c['page_size']:>5} {c['p50_ms']:>8.1f} "
                f"{c['p95_ms']:>8.1f} {deep:>9}"
            )
        else:
            print(
                f"{c['case']:<36} {c['csv_rows']:>9,} rows {c['csv_mb']:>6} MB "
                f"{c['seconds']:>6}s {c['rows_per_s']:>8,} rows/s"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
