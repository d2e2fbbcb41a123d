"""Retention benchmark: a fleet of 5-minute schedules with a long run history, pruned.

Inserts the history directly (one INSERT ... generate_series per tenant), then runs the
retention pass the worker runs (``services.retention``, batch by batch, timing each batch)
and reports table sizes and prune cost as a table and as JSON.

    python -m bench.retention                          # 100 schedules x 365 days (10.5M runs)
    python -m bench.retention --schedules 1000 --days 30 --run-retention-days 7

``bench/burst.py --prune-backlog-days D`` uses ``insert_history`` and ``prune_loop`` from here
to measure fire lag while a prune runs beside the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import KEY, fresh_database, percentile, seed
from extsched.config import Settings
from extsched.domain.ids import uuid7_floor
from extsched.runtime import open_context

# A UUIDv7 for instant ``ts`` (48-bit milliseconds, version 7, variant, random bits), so the
# ids of inserted history sort by time exactly as the service's own ids do.
_UUID7_SQL = (
    "(lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' "
    "|| substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid"
)


def insert_history(
    url: str, *, newest_days_ago: float, days: float, audit_per_day: int = 24
) -> int:
    """Give every schedule a finished run every 5 minutes over ``days`` days ending
    ``newest_days_ago`` days ago, and each tenant ``audit_per_day`` audit entries a day over
    the same span; returns the runs inserted."""
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        tenants = [r[0] for r in conn.execute("SELECT tenant_id FROM tenant ORDER BY 1")]
        for tenant in tenants:
            cur = conn.execute(
                f"""
                INSERT INTO extension_schedule_run
                    (tenant_id, id, schedule_id, install_id, trigger, scheduled_for, status,
                     attempts, started_at, finished_at, duration_ms, http_status,
                     response_preview, created_at)
                SELECT s.tenant_id, {_UUID7_SQL}, s.id, s.install_id, 'schedule', ts,
                       'succeeded', 1, ts + interval '40 ms', ts + interval '240 ms', 200, 200,
                       '{{"synced": 42, "status": "ok"}}', ts
                FROM tenant_extension_schedule s,
                     generate_series(
                         date_trunc('minute', now()) - make_interval(secs => %(end)s + %(span)s),
                         date_trunc('minute', now()) - make_interval(secs => %(end)s),
                         interval '5 minutes') AS ts
                WHERE s.tenant_id = %(tenant)s
                """,
                {"tenant": tenant, "end": newest_days_ago * 86400, "span": days * 86400},
            )
            total += cur.rowcount
            conn.execute(
                f"""
                INSERT INTO extension_audit_log
                    (tenant_id, id, at, actor_type, actor_id, action, target_type, target_id,
                     changes)
                SELECT %(tenant)s, {_UUID7_SQL}, ts, 'user', 'alice', 'schedule.update',
                       'schedule', gen_random_uuid()::text,
                       '{{"payload": {{"from": {{"a": 1}}, "to": {{"a": 2}}}}}}'
                FROM generate_series(
                         now() - make_interval(secs => %(end)s + %(span)s),
                         now() - make_interval(secs => %(end)s),
                         make_interval(secs => 86400.0 / %(per_day)s)) AS ts
                """,
                {
                    "tenant": tenant,
                    "end": newest_days_ago * 86400,
                    "span": days * 86400,
                    "per_day": audit_per_day,
                },
            )
        conn.execute("ANALYZE extension_schedule_run")
        conn.execute("ANALYZE extension_audit_log")
    return total


def sizes(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM extension_schedule_run),"
            " pg_total_relation_size('extension_schedule_run'),"
            " (SELECT count(*) FROM extension_audit_log),"
            " pg_total_relation_size('extension_audit_log')"
        ).fetchone()
    assert row is not None
    return {"runs": row[0], "runs_mb": row[1] / 1e6, "audit": row[2], "audit_mb": row[3] / 1e6}


async def prune_timed(url: str, settings: Settings) -> dict[str, Any]:
    """The retention pass, batch by batch (the statements and the pause ``services.retention``
    uses), with each batch's latency."""
    latencies: list[float] = []
    deleted = {"runs_prune": 0, "audit_prune": 0}
    now = datetime.now(UTC)
    cutoffs = {
        "runs_prune": uuid7_floor(now - timedelta(days=settings.run_retention_days)),
        "audit_prune": uuid7_floor(now - timedelta(days=settings.audit_retention_days)),
    }
    limit = settings.retention_batch_size
    started = time.perf_counter()
    async with open_context(settings, url) as ctx:
        async with ctx.db.connection() as conn:
            tenants = [r["tenant_id"] for r in await ctx.db.fetch_all(conn, "retention_tenants")]
        for tenant in tenants:
            for query, cutoff in cutoffs.items():
                after: Any = "00000000-0000-0000-0000-000000000000"
                while True:
                    t0 = time.perf_counter()
                    async with ctx.db.connection() as conn:
                        row = await ctx.db.fetch_one(
                            conn,
                            query,
                            {"tenant_id": tenant, "cutoff": cutoff, "after": after, "limit": limit},
                        )
                    latencies.append(time.perf_counter() - t0)
                    assert row is not None
                    deleted[query] += row["deleted"]
                    if row["deleted"] < limit:
                        break
                    after = row["last"]
                    if settings.retention_batch_pause_seconds:
                        await asyncio.sleep(settings.retention_batch_pause_seconds)
    elapsed = time.perf_counter() - started
    return {
        "runs_deleted": deleted["runs_prune"],
        "audit_deleted": deleted["audit_prune"],
        "prune_s": elapsed,
        "rows_per_s": (deleted["runs_prune"] + deleted["audit_prune"]) / max(elapsed, 1e-9),
        "batches": len(latencies),
        "batch_p50_ms": percentile(latencies, 50) * 1000,
        "batch_p99_ms": percentile(latencies, 99) * 1000,
        "batch_max_ms": max(latencies, default=0.0) * 1000,
    }


def prune_loop(url: str, home: Path, run_retention_days: int) -> None:
    """Prune until nothing is left, as the worker does (default batch size and pause);
    ``burst.py`` runs this beside a burst."""
    settings = Settings(
        database_url=url, home=home, secret_key=KEY, run_retention_days=run_retention_days
    )
    print(json.dumps(asyncio.run(prune_timed(url, settings))), flush=True)


def vacuum(url: str, full: bool = False) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("extension_schedule_run", "extension_audit_log"):
            conn.execute(f"VACUUM {'FULL ' if full else ''}ANALYZE {table}")


def run(schedules: int, tenants: int, days: int, run_days: int, audit_days: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database() as url:
        home = Path(tmp) / "home"
        asyncio.run(seed(url, schedules, tenants, home))
        t0 = time.perf_counter()
        inserted = insert_history(url, newest_days_ago=0, days=days)
        insert_s = time.perf_counter() - t0
        before = sizes(url)
        # Unthrottled, to measure what deleting costs (the worker pauses between batches).
        settings = Settings(
            database_url=url,
            home=home,
            secret_key=KEY,
            run_retention_days=run_days,
            audit_retention_days=audit_days,
            retention_batch_pause_seconds=0,
        )
        pruned = asyncio.run(prune_timed(url, settings))
        after_prune = sizes(url)
        vacuum(url)
        after_vacuum = sizes(url)
        again = asyncio.run(prune_timed(url, settings))  # a steady-state pass: nothing to do
        vacuum(url, full=True)
        compacted = sizes(url)
    return {
        "schedules": schedules,
        "tenants": tenants,
        "history_days": days,
        "runs_inserted": inserted,
        "insert_rows_per_s": inserted / insert_s,
        "before": before,
        "prune": pruned,
        "after_prune": after_prune,
        "after_vacuum": after_vacuum,
        "steady_state_pass": again,
        "after_vacuum_full": compacted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=100)
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--run-retention-days", type=int, default=90)
    ap.add_argument("--audit-retention-days", type=int, default=400)
    ap.add_argument("--prune-url", help="only prune this database (used by bench/burst.py)")
    args = ap.parse_args()
    if args.prune_url:
        with tempfile.TemporaryDirectory() as tmp:
            prune_loop(args.prune_url, Path(tmp), args.run_retention_days)
        return
    r = run(
        args.schedules,
        args.tenants,
        args.days,
        args.run_retention_days,
        args.audit_retention_days,
    )
    p, s = r["prune"], r["steady_state_pass"]
    print(
        f"\nretention: {args.schedules} schedules every 5 min over {args.tenants} tenants, "
        f"{args.days} days of history; keep runs {args.run_retention_days} d, "
        f"audit {args.audit_retention_days} d"
    )
    print(f"{'':>28}{'runs':>14}{'runs MB':>10}{'audit':>10}{'audit MB':>10}")
    for label, key in (
        ("before", "before"),
        ("after prune", "after_prune"),
        ("after prune + VACUUM", "after_vacuum"),
        ("after VACUUM FULL", "after_vacuum_full"),
    ):
        z = r[key]
        print(
            f"{label:>28}{z['runs']:>14,}{z['runs_mb']:>10,.0f}{z['audit']:>10,}"
            f"{z['audit_mb']:>10,.1f}"
        )
    print(
        f"\nprune: {p['runs_deleted']:,} runs + {p['audit_deleted']:,} audit entries in "
        f"{p['prune_s']:.1f} s = {p['rows_per_s']:,.0f} rows/s; {p['batches']:,} batches, "
        f"p50 {p['batch_p50_ms']:.1f} ms, p99 {p['batch_p99_ms']:.1f} ms, "
        f"max {p['batch_max_ms']:.1f} ms"
    )
    print(
        f"steady-state pass (nothing old): {s['batches']} batches in {s['prune_s'] * 1000:.0f} ms"
    )
    print(f"history insert: {r['insert_rows_per_s']:,.0f} rows/s")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
