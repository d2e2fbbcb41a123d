"""The outbox's cost on the hot path: ``runs_complete`` (which now also queues run_failed and
schedule_recovered notifications) against the statement of an older revision, in ms per batch
of 64 completions, interleaved rounds, for succeeded and failed runs, with no tenant subscribed
and with every tenant subscribed (each failed run then writes an outbox row).

    python -m bench.outbox_cost [--before main]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.common import fresh_database, seed
from extsched.db.queries import QUERIES, load
from extsched.domain.ids import uuid7

NEW = QUERIES["runs_complete"]


def params(rows: list[Any], status: str, with_ids: bool) -> dict[str, Any]:
    now, n, failed = datetime.now(UTC), len(rows), status == "failed"
    p: dict[str, Any] = {
        "tenant_ids": [r[0] for r in rows],
        "run_ids": [r[1] for r in rows],
        "owners": ["o"] * n,
        "statuses": [status] * n,
        "skip_reasons": [None] * n,
        "finished_ats": [now] * n,
        "duration_ms": [5] * n,
        "http_statuses": [500 if failed else 200] * n,
        "errors": ["boom" if failed else None] * n,
        "response_previews": [None] * n,
        "last_errors": [None] * n,
        "tenants": sorted({r[0] for r in rows}),
    }
    if with_ids:
        p["notify_ids"] = [uuid7() for _ in rows]
    return p


def old_statement(rev: str) -> str:
    text = subprocess.run(
        ["git", "show", f"{rev}:src/extsched/db/queries.sql"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(text)
    return load(Path(f.name))["runs_complete"]


SEED_RUNS = """
INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id, trigger,
    scheduled_for, status, lease_owner, lease_expires_at, started_at, attempts)
SELECT tenant_id, gen_random_uuid(), id, install_id, 'run_now', now(), 'running', 'o',
       now() + interval '1 hour', now(), 1
FROM tenant_extension_schedule"""
SUBSCRIBE = """
INSERT INTO tenant_notification (tenant_id, webhook_url, events, enabled)
SELECT tenant_id, 'https://hooks.example', '{run_failed,schedule_recovered}', true FROM tenant
ON CONFLICT DO NOTHING"""


def measure(url: str, old: str, rounds: int) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(SEED_RUNS)
        runs = c.execute("SELECT tenant_id, id FROM extension_schedule_run ORDER BY id").fetchall()
        batches = [runs[i : i + 64] for i in range(0, len(runs), 64)]

        def reset() -> None:
            c.execute("UPDATE extension_schedule_run SET status = 'running', lease_owner = 'o'")
            c.execute("DELETE FROM notification_delivery")
            for table in ("extension_schedule_run", "tenant_extension_schedule"):
                c.execute(f"VACUUM ANALYZE {table}")

        print("| tenants subscribed | runs | before: median / p95 ms | after: median / p95 ms |")
        print("|---|---|---|---|")
        for label, subscribe in (("none", False), ("all", True)):
            if subscribe:
                c.execute(SUBSCRIBE)
            for status in ("succeeded", "failed"):
                times: dict[str, list[float]] = {"before": [], "after": []}
                for rnd in range(rounds):
                    order = [("before", old, False), ("after", NEW, True)]
                    for name, sql, ids in order if rnd % 2 else order[::-1]:
                        reset()
                        for batch in batches:
                            started = time.perf_counter()
                            c.execute(sql, params(batch, status, ids)).fetchall()
                            times[name].append((time.perf_counter() - started) * 1000)
                cells = [
                    f"{statistics.median(t):.1f} / {statistics.quantiles(t, n=20)[18]:.1f}"
                    for t in (times["before"], times["after"])
                ]
                print(f"| {label} | {status} | {cells[0]} | {cells[1]} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="main", help="git revision to compare with")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    old = old_statement(args.before)
    with fresh_database() as url:
        asyncio.run(seed(url, 1024, 20, Path(tempfile.mkdtemp())))
        measure(url, old, args.rounds)


if __name__ == "__main__":
    main()
