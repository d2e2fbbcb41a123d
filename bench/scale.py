"""Scale benchmark: the cost of one scheduler tick (claim due handles, create runs, advance)
with 1,000 due among 10k, 100k and 1M stored schedules. The claim must be O(due). Each size
measures both claims: the usual one (index order) and the one a herd uses after a full tick
(handles_claim_due_fair, interleaving the tenants).

    python -m bench.scale                 # 10k, 100k, 1M
    python -m bench.scale --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.common import fresh_database, print_table
from extsched.config import Settings
from extsched.runtime import open_context
from extsched.workers.postgres import Scheduler

KEY = base64.urlsafe_b64encode(b"s" * 32).decode()
NOW = datetime(2027, 1, 4, 9, 0, 30, tzinfo=UTC)


def seed(url: str, total: int, due: int) -> None:
    """``total`` handles over 20 tenants; ``due`` of them due at NOW, the rest next week."""
    install = uuid.uuid4()
    later = NOW + timedelta(days=7)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY job_handle (tenant_id, schedule_id, handle_id, install_id, cron, timezone, "
            "paused, next_fire_at) FROM STDIN"
        ) as copy:
            for i in range(total):
                tenant = f"t{i % 20:02d}"
                sid = uuid.uuid4()
                copy.write_row(
                    (
                        tenant,
                        sid,
                        f"extsched:{tenant}:{install}:{sid}",
                        install,
                        "0 9 * * *",
                        "Europe/Paris",
                        False,
                        NOW - timedelta(seconds=30) if i < due else later,
                    )
                )
        conn.execute("ANALYZE job_handle")


async def tick_cost(
    url: str, home: Path, due: int, repeats: int, herd: bool = False
) -> list[float]:
    """Seconds per tick that fires ``due`` handles (re-arming them between repeats); with
    ``herd``, through the fair claim a tick uses after a full one."""
    settings = Settings(database_url=url, home=home, secret_key=KEY, scheduler_batch_size=due)
    times = []
    async with open_context(settings, url) as ctx:
        scheduler = Scheduler(ctx)
        for _ in range(repeats):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM extension_schedule_run")
                conn.execute(
                    "UPDATE job_handle SET next_fire_at = %s WHERE next_fire_at < %s",
                    (NOW - timedelta(seconds=30), NOW + timedelta(days=6)),
                )
            scheduler.herd = herd
            start = time.perf_counter()
            result = await scheduler.tick(NOW)
            times.append(time.perf_counter() - start)
            assert result.handles == due and result.runs_queued == due, result
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--due", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp, fresh_database() as url:
            t0 = time.perf_counter()
            seed(url, size, args.due)
            seeded = time.perf_counter() - t0
            times = asyncio.run(tick_cost(url, Path(tmp), args.due, args.repeats))
            fair = asyncio.run(tick_cost(url, Path(tmp), args.due, args.repeats, herd=True))
        results.append(
            {
                "stored": size,
                "due": args.due,
                "tick_median_ms": statistics.median(times) * 1000,
                "tick_min_ms": min(times) * 1000,
                "fair_tick_median_ms": statistics.median(fair) * 1000,
                "fair_tick_min_ms": min(fair) * 1000,
                "seed_s": seeded,
            }
        )
    rows = []
    for r in results:
        rows.append((f"{r['stored']:>9,} stored: median tick (ms)", r["tick_median_ms"]))
        rows.append((f"{r['stored']:>9,} stored: best tick (ms)", r["tick_min_ms"]))
        rows.append((f"{r['stored']:>9,} stored: median herd tick (ms)", r["fair_tick_median_ms"]))
        rows.append((f"{r['stored']:>9,} stored: best herd tick (ms)", r["fair_tick_min_ms"]))
    if len(results) > 1:
        for key, label in (("tick_median_ms", "tick"), ("fair_tick_median_ms", "herd tick")):
            ratio = results[-1][key] / results[0][key]
            rows.append(
                (f"{label} ratio {results[-1]['stored']:,} / {results[0]['stored']:,}", ratio)
            )
    print_table(f"scheduler tick with {args.due} due handles (postgres backend)", rows)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
