"""Burst benchmark: N schedules over T tenants all due at the same instant.

Starts its own database, a fast Runner stub (bench/runner_stub.py) and `extsched worker`
processes, then reports fires delivered, duplicates, fire lag percentiles (Runner arrival minus
scheduled_for), drain rate and the workers' peak RSS, as a table and as JSON.

    python -m bench.burst --n 1000
    python -m bench.burst --n 10000 --workers 2
    python -m bench.burst --n 1000 --backend both   # postgres and temporal side by side
    python -m bench.burst --n 1000 --workers 2 --backlog-days 3 [--prune]   # old history, pruned
    python -m bench.burst --n 1000 --jitter 0 30 60 --repeat 2 --call-ms 200   # jitter's effect
    python -m bench.burst --n 1000 --backend temporal --repeat 3 --baseline   # vs raw Temporal
    python -m bench.burst --mode single --n 2000 --serve-executors 2   # one tenant, via serve
    python -m bench.burst --mode big-small --n 5000 --serve-executors 2   # + 20 small tenants
    python -m bench.burst --mode herd --n 100000 --tenants 200 --workers 2   # Zipf-sized tenants

With ``--jitter J`` every schedule gets ``jitter_seconds = J`` (SPEC §8): each fire's run waits
its fixed offset in [0, J] s. ``--call-ms`` makes the stub Runner answer after that long, like a
real extension, so calls overlap; the table then shows the peak of calls in flight at the
Runner, the busiest second, and the lag behind each run's jittered start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.common import (
    KEY,
    CpuMeter,
    database_backends,
    free_port,
    fresh_database,
    machine_speed,
    percentile,
    read_arrivals,
    runner_stub,
    seed,
    utc,
)
from bench.retention import insert_history, vacuum
from bench.temporal_dev import temporal_dev_server, temporal_dev_server_config
from bench.temporal_raw import history_stages, run_raw
from extsched.config import JobBackendKind, Settings
from extsched.domain.timing import jitter_offset
from extsched.jobs.backend import HandleSpec
from extsched.runtime import open_context


async def arm_temporal(
    url: str, home: Path, address: str, fire_at: datetime, jitter: int = 0
) -> None:
    """Give every schedule a Temporal Schedule firing at ``fire_at`` (a fixed daily time)."""
    cron_expr = f"{fire_at.minute} {fire_at.hour} * * *"
    settings = Settings(
        database_url=url,
        home=home,
        secret_key=KEY,
        job_backend=JobBackendKind.TEMPORAL,
        temporal_address=address,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE tenant_extension_schedule SET cron = %s", (cron_expr,))
        rows = conn.execute(
            "SELECT tenant_id, install_id, id FROM tenant_extension_schedule"
        ).fetchall()
        conn.execute("DELETE FROM job_handle")
    async with open_context(settings, url) as ctx:
        specs = [
            HandleSpec(t, i, s, cron_expr, "UTC", paused=False, jitter_seconds=jitter)
            for t, i, s in rows
        ]
        async with ctx.db.connection() as conn:
            for k in range(0, len(specs), 100):
                await ctx.backend.put_handles(conn, specs[k : k + 100])


def start_serve(env: dict[str, str], executors: int) -> subprocess.Popen[bytes]:
    """`extsched serve` on a free port with the bench's database and stub Runner."""
    port = free_port()
    env["EXTSCHED_PORT"] = str(port)
    return subprocess.Popen(
        [sys.executable, "-m", "extsched.cli", "serve", "--executors", str(executors)],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def wait_ready(proc: subprocess.Popen[bytes], env: dict[str, str], executors: int) -> None:
    """Until `serve` answers /readyz and its executor processes have connected."""
    import httpx

    url = f"http://127.0.0.1:{env['EXTSCHED_PORT']}/readyz"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("extsched serve exited")
        try:
            if httpx.get(url).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    # The executors start after the parent; each LISTENs once its loops run.
    with psycopg.connect(env["EXTSCHED_DATABASE_URL"], autocommit=True) as conn:
        while time.time() < deadline:
            listeners = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN%%'"
            ).fetchone()[0]  # type: ignore[index]
            children = [
                c for c in psutil.Process(proc.pid).children() if "--executor-only" in c.cmdline()
            ]
            if len(children) == executors and listeners >= executors + 1:
                return
            time.sleep(0.2)
    raise RuntimeError("extsched serve's executors did not start")


def tree_rss(procs: list[subprocess.Popen[bytes]]) -> int:
    """The resident memory of the processes and their children."""
    total = 0
    for p in procs:
        try:
            root = psutil.Process(p.pid)
            total += sum(q.memory_info().rss for q in [root, *root.children(recursive=True)])
        except psutil.Error:
            pass
    return total


class ArrivalCounter:
    """How many lines the stub Runner has written so far, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            # Only whole lines (the stub flushes whole lines, but a read may race a write).
            end = chunk.rfind(b"\n") + 1
            self.lines += chunk.count(b"\n", 0, end)
            self.offset += end
        return self.lines


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU time of the processes and their children, so far."""
    total = 0.0
    for p in procs:
        try:
            root = psutil.Process(p.pid)
            for q in [root, *root.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def server_cpu_seconds() -> float:
    """User + system CPU time of the local PostgreSQL server's processes, so far (its backends
    that live through the burst: the workers' pooled connections)."""
    total = 0.0
    for q in psutil.process_iter(["name"]):
        if q.info["name"] in ("postgres", "postmaster"):
            try:
                t = q.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


def zipf_sizes(n: int, tenants: int) -> list[int]:
    """``n`` schedules over ``tenants`` tenants sized like a real herd: tenant k (from 1) gets
    a share proportional to 1/k (Zipf), at least one each; the sizes sum to ``n``."""
    weights = [1 / k for k in range(1, tenants + 1)]
    total = sum(weights)
    sizes = [max(1, int(n * w / total)) for w in weights]
    sizes[0] += n - sum(sizes)
    return sizes


def herd_shares(
    arrivals: list[dict[str, Any]], scheduled: float, per_tenant: list[int]
) -> dict[str, Any]:
    """Fairness under a herd: when the smallest tenant's (and the ten smallest tenants')
    first and last runs reached the Runner, relative to the fire."""
    by_tenant: dict[str, list[float]] = {}
    for a in arrivals:
        by_tenant.setdefault(a.get("tenant_id") or "?", []).append(a["t"] - scheduled)
    order = sorted(range(len(per_tenant)), key=lambda t: (per_tenant[t], -t))
    smallest = f"t{order[0]:02d}"
    ten = [f"t{t:02d}" for t in order[:10]]
    nan = float("nan")
    return {
        "largest_tenant_n": max(per_tenant),
        "smallest_tenant_n": per_tenant[order[0]],
        "smallest_first_s": min(by_tenant.get(smallest, [nan])),
        "smallest_last_s": max(by_tenant.get(smallest, [nan])),
        "small10_first_max_s": max(min(by_tenant.get(t, [nan])) for t in ten),
        "small10_last_max_s": max(max(by_tenant.get(t, [nan])) for t in ten),
        "tenants_first_max_s": max((min(v) for v in by_tenant.values()), default=nan),
    }


def tenant_shares(arrivals: list[dict[str, Any]], scheduled: float) -> dict[str, Any]:
    """The big tenant (t00) and the small ones: when each small tenant's first and last run
    reached the Runner, and the big tenant's drain rate."""
    by_tenant: dict[str, list[float]] = {}
    for a in arrivals:
        by_tenant.setdefault(a.get("tenant_id") or "?", []).append(a["t"] - scheduled)
    big = sorted(by_tenant.pop("t00", []))
    firsts = [min(ts) for ts in by_tenant.values()]
    lasts = [max(ts) for ts in by_tenant.values()]
    return {
        "small_tenants": len(by_tenant),
        "small_first_max_s": max(firsts, default=float("nan")),
        "small_last_max_s": max(lasts, default=float("nan")),
        "big_calls_per_s": len(big) / max(1e-9, big[-1] - big[0]) if big else float("nan"),
    }


def run_burst(
    n: int,
    tenants: int,
    workers: int,
    concurrency: int,
    lead: float,
    backend: str = "postgres",
    backlog_days: float = 0,
    prune: bool = False,
    jitter: int = 0,
    call_ms: float = 0,
    per_tenant: list[int] | None = None,
    serve_executors: int | None = None,
    herd: bool = False,
) -> dict[str, Any]:
    """One burst. ``per_tenant`` gives each tenant's schedule count (tenant t00 first)
    instead of N spread over the tenants; ``serve_executors`` runs `extsched serve
    --executors E` (the single-node default) instead of ``workers`` `extsched worker`s."""
    if per_tenant is not None:
        n, tenants = sum(per_tenant), len(per_tenant)
    with tempfile.TemporaryDirectory() as tmp, fresh_database() as url, ExitStack() as stack:
        home = Path(tmp) / "home"
        arrivals_file = Path(tmp) / "arrivals.jsonl"
        asyncio.run(seed(url, n, tenants, home, per_tenant))
        backlog = 0
        if backlog_days:
            # Every schedule's history of that many days, just past the 90-day retention; with
            # ``prune`` a retention pass (bench/retention.py) deletes it while the burst fires.
            backlog = insert_history(url, newest_days_ago=91, days=backlog_days)
            vacuum(url)
        with psycopg.connect(url, autocommit=True) as conn:
            # Daily at an hour twelve hours away: after the burst's fire the next one is far off,
            # so a long (jittered) burst never runs into the seeded schedules' next regular fire.
            daily = f"0 {utc(time.time() + 12 * 3600).hour} * * *"
            for table in ("tenant_extension_schedule", "job_handle"):
                conn.execute(
                    f"UPDATE {table} SET cron = %s, jitter_seconds = %s",
                    (daily, jitter),
                )
                # The schedules have existed for a while before a real herd: autovacuum has
                # removed the old versions this bulk edit leaves and set their rows' hint bits
                # (without it, every run's first look at its schedule paid for both).
                conn.execute(f"VACUUM ANALYZE {table}")
        extra_env: dict[str, str] = {}
        processes = workers if serve_executors is None else serve_executors + 1
        fire_at = None
        if backend == "temporal":
            address = stack.enter_context(temporal_dev_server(Path(tmp)))
            # the next whole minute at least `lead` seconds (plus arming time) away
            ahead = utc(time.time() + lead + n / 50)
            fire_at = (ahead + timedelta(minutes=1)).replace(second=0, microsecond=0)
            asyncio.run(arm_temporal(url, home, address, fire_at, jitter))
            extra_env = {"EXTSCHED_JOB_BACKEND": "temporal", "EXTSCHED_TEMPORAL_ADDRESS": address}
        with runner_stub(arrivals_file, call_ms) as runner_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("EXTSCHED_")}
            env.update(
                {
                    "EXTSCHED_DATABASE_URL": url,
                    "EXTSCHED_HOME": str(home),
                    "EXTSCHED_SECRET_KEY": KEY,
                    "EXTSCHED_RUNNER_URL": runner_url,
                    "EXTSCHED_WORKER_CONCURRENCY": str(concurrency),
                    "EXTSCHED_RECONCILE_INTERVAL_SECONDS": "0",
                    "EXTSCHED_LOG_LEVEL": "WARNING",
                    "EXTSCHED_DB_POOL_MAX": str(min(90 // processes, concurrency + 10)),
                    **extra_env,
                }
            )
            if serve_executors is None:
                procs = [
                    subprocess.Popen([sys.executable, "-m", "extsched.cli", "worker"], env=env)
                    for _ in range(workers)
                ]
            else:
                procs = [start_serve(env, serve_executors)]
            profile = os.environ.get("EXTSCHED_BENCH_PROFILE")  # py-spy flamegraph path prefix
            # Temporal fires at the next whole minute: profile until well after it.
            profile_s = lead + 12 if fire_at is None else fire_at.timestamp() - time.time() + 60
            spies = (
                [
                    subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "--pid",
                            str(p.pid),
                            "-o",
                            f"{profile}.{i}.txt",
                            "-f",
                            "raw",
                            "-r",
                            "100",
                            "-d",
                            str(int(profile_s)),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for i, p in enumerate(procs)
                ]
                if profile
                else []
            )
            pruner = None
            try:
                if fire_at is None:
                    if serve_executors is not None:
                        wait_ready(
                            procs[0], env, serve_executors
                        )  # the parent and its executor processes
                    fire_at = utc(time.time() + lead).replace(microsecond=0)
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute("UPDATE job_handle SET next_fire_at = %s", (fire_at,))
                load_before = os.getloadavg()
                # Taken again one second before the fire (below): the workers' start-up (imports,
                # pools; ~1-2 s of CPU each) is not a cost of the burst. Counted from here it
                # doubled the 10k burst's worker CPU per run (100k: +5 %).
                cpu_before, db_cpu_before = cpu_seconds(procs), server_cpu_seconds()
                if prune:
                    pruner = subprocess.Popen(
                        [sys.executable, "-m", "bench.retention", "--prune-url", url],
                        stdout=subprocess.DEVNULL,
                    )
                peak_rss = 0
                deadline = fire_at.timestamp() + 300 + jitter
                done = 0
                arrived = ArrivalCounter(arrivals_file)
                # CPU per process group from the fire on (dev server, workers, stub Runner,
                # the database's backends): what each fire costs where.
                meter = CpuMeter(database_backends(url))
                metering = False
                while time.time() < deadline:
                    peak_rss = max(peak_rss, tree_rss(procs))
                    if not metering and time.time() >= fire_at.timestamp() - 1:
                        meter.start()
                        cpu_before, db_cpu_before = cpu_seconds(procs), server_cpu_seconds()
                        metering = True
                    elif metering:
                        meter.update()
                    # Count the Runner's arrivals first (the stub's file, read incrementally):
                    # counting finished runs in the database every 0.2 s scanned the whole
                    # burst each time, a load of its own at N = 100,000.
                    if arrived.count() >= n:
                        with psycopg.connect(url, autocommit=True) as conn:
                            done = conn.execute(
                                "SELECT count(*) FROM extension_schedule_run WHERE finished_at "
                                "IS NOT NULL AND scheduled_for >= %s",
                                (fire_at,),
                            ).fetchone()[0]  # type: ignore[index]
                        if done >= n:
                            break
                    time.sleep(0.2)
                # CPU spent from one second before the fire until every run finished: the
                # workers' (scheduler tick, claims, attempts) and the database server's.
                cpu_used = cpu_seconds(procs) - cpu_before
                db_cpu_used = server_cpu_seconds() - db_cpu_before
                cpu = meter.read() if metering else {}
                if backend == "temporal":
                    cpu.update(asyncio.run(history_stages(address, fire_at.timestamp(), n)))
                # Where the lag goes: when each run row was created (its uuid7 carries the
                # millisecond) and when a worker claimed it, relative to the fire instant.
                with psycopg.connect(url, autocommit=True) as conn:
                    stages = conn.execute(
                        "SELECT id, started_at FROM extension_schedule_run "
                        "WHERE trigger = 'schedule' AND scheduled_for >= %s",
                        (fire_at,),
                    ).fetchall()
                with psycopg.connect(url, autocommit=True) as conn:
                    left = conn.execute(
                        "SELECT count(*) FROM extension_schedule_run "
                        "WHERE scheduled_for < now() - interval '90 days'"
                    ).fetchone()[0]  # type: ignore[index]
            finally:
                if pruner is not None:
                    pruner.terminate()
                    pruner.wait(timeout=60)
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(timeout=60)
                for spy in spies:
                    spy.wait(timeout=60)
        arrivals = read_arrivals(arrivals_file)
    speed = machine_speed()
    scheduled = fire_at.timestamp()
    lags = [a["t"] - scheduled for a in arrivals]
    queued = [int(r[0].hex[:12], 16) / 1000 - scheduled for r in stages]
    claimed = [r[1].timestamp() - scheduled for r in stages if r[1] is not None]
    keys = [(a["schedule_id"], a["scheduled_for"]) for a in arrivals]
    first = min((a["t"] for a in arrivals), default=scheduled)
    last = max((a["t"] for a in arrivals), default=scheduled)
    # Each run's own start under jitter: the fire plus its fixed offset.
    late = [
        a["t"]
        - scheduled
        - jitter_offset(
            uuid.UUID(a["schedule_id"]), datetime.fromisoformat(a["scheduled_for"]), jitter
        ).total_seconds()
        for a in arrivals
    ]
    per_second = Counter(int(a["t"] - scheduled) for a in arrivals)
    result = {
        "runs_through": "worker" if serve_executors is None else f"serve -E {serve_executors}",
        "backend": backend,
        "jitter_s": jitter,
        "call_ms": call_ms,
        "n": n,
        "tenants": tenants,
        "workers": workers,
        "concurrency": concurrency,
        "delivered": len(set(keys)),
        "calls": len(arrivals),
        "duplicates": len(keys) - len(set(keys)),
        "losses": n - len(set(keys)),
        "finished_runs": done,
        "lag_first_s": min(lags, default=float("nan")),
        "queued_p50_s": percentile(queued, 50),
        "queued_max_s": max(queued, default=float("nan")),
        "claimed_p50_s": percentile(claimed, 50),
        "claimed_max_s": max(claimed, default=float("nan")),
        "lag_p50_s": percentile(lags, 50),
        "lag_p95_s": percentile(lags, 95),
        "lag_p99_s": percentile(lags, 99),
        "lag_max_s": max(lags, default=float("nan")),
        "late_p50_s": percentile(late, 50),
        "late_p99_s": percentile(late, 99),
        "late_max_s": max(late, default=float("nan")),
        "peak_in_flight": max((a.get("in_flight", 1) for a in arrivals), default=0),
        "peak_calls_1s": max(per_second.values(), default=0),
        "drain_s": last - scheduled,
        "calls_per_s": len(arrivals) / max(1e-9, last - first),
        "peak_rss_mb": peak_rss / 1e6,
        "worker_cpu_ms_per_run": cpu_used * 1000 / max(1, done),
        "db_cpu_ms_per_run": db_cpu_used * 1000 / max(1, done),
        "load_1m_before": load_before[0],
        "machine_speed_s": speed,
        "load_1m_after": os.getloadavg()[0],
        **cpu,
    }
    if per_tenant is not None and len(per_tenant) > 1:
        if herd:
            result.update(herd_shares(arrivals, scheduled, per_tenant))
        else:
            result.update(tenant_shares(arrivals, scheduled))
    if backlog:
        result["backlog_runs"] = backlog
        result["pruned_by_drain"] = backlog - left
    if backend == "temporal":
        result["temporal_dev_server"] = temporal_dev_server_config()
    return result


def shapes(args: argparse.Namespace) -> list[tuple[str, list[int] | None]]:
    """The bursts a mode runs: (label, schedules per tenant, or None for N spread)."""
    if args.mode == "single":
        return [("1 tenant", [args.n])]
    if args.mode == "herd":
        return [(f"herd {args.tenants}", zipf_sizes(args.n, args.tenants))]
    if args.mode == "big-small":
        small = [args.small_n] * args.small_tenants
        return [("big alone", [args.n]), (f"big+{args.small_tenants}", [args.n, *small])]
    return [(f"{args.tenants} tenants", None)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--tenants", type=int, default=20)
    ap.add_argument(
        "--mode",
        choices=["spread", "single", "big-small", "herd"],
        default="spread",
        help="spread: N over --tenants; single: N of one tenant; big-small: N of one tenant "
        "alone, then with --small-tenants tenants of --small-n schedules each; herd: N over "
        "--tenants tenants sized by Zipf (tenant k gets a share ~ 1/k), with the smallest "
        "tenants' first and last start",
    )
    ap.add_argument("--small-tenants", type=int, default=20)
    ap.add_argument("--small-n", type=int, default=10)
    ap.add_argument(
        "--serve-executors",
        type=int,
        default=None,
        metavar="E",
        help="run `extsched serve --executors E` instead of --workers `extsched worker`s",
    )
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--lead", type=float, default=5.0, help="seconds between seeding and fire")
    ap.add_argument("--backend", choices=["postgres", "temporal", "both"], default="postgres")
    ap.add_argument(
        "--backlog-days",
        type=float,
        default=0,
        help="seed this many days of history per schedule, past the 90-day run retention",
    )
    ap.add_argument("--prune", action="store_true", help="prune the backlog during the burst")
    ap.add_argument(
        "--jitter",
        type=int,
        nargs="+",
        default=[0],
        help="jitter_seconds for every schedule; several values run one burst each",
    )
    ap.add_argument("--repeat", type=int, default=1, help="bursts per backend and jitter")
    ap.add_argument(
        "--call-ms", type=float, default=0, help="the stub Runner answers after this long"
    )
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="with temporal: also run the raw-Temporal baseline (bench/temporal_raw.py) each "
        "repeat, interleaved, with the same n, workers and concurrency",
    )
    args = ap.parse_args()
    backends = ["postgres", "temporal"] if args.backend == "both" else [args.backend]
    # Repeats interleave the jitter values and shapes, so drifting background load hits each
    # alike.
    cases = [
        (b, j, k, shape)
        for b in backends
        for k in range(args.repeat)
        for j in args.jitter
        for shape in shapes(args)
    ]
    if args.baseline and "temporal" in backends:
        # interleaved with extsched's temporal runs, so drifting load hits both alike
        raw = [("raw-temporal", 0, k, ("raw", None)) for k in range(args.repeat)]
        rest = [c for c in cases if c[0] != "temporal"]
        ours = [c for c in cases if c[0] == "temporal"]
        cases = rest + [c for pair in zip(raw, ours, strict=False) for c in pair] + ours[len(raw) :]
    results = [
        run_raw(args.n, args.workers, args.concurrency, args.lead)
        if b == "raw-temporal"
        else run_burst(
            args.n,
            args.tenants,
            args.workers,
            args.concurrency,
            args.lead,
            b,
            args.backlog_days,
            args.prune,
            j,
            args.call_ms,
            per_tenant=shape[1],
            serve_executors=args.serve_executors,
            herd=args.mode == "herd",
        )
        for b, j, _, shape in cases
    ]
    labels = [
        f"{shape[0]} {b[:8]} J={j}" + (f" #{k + 1}" if args.repeat > 1 else "")
        for b, j, k, shape in cases
    ]
    width = max(16, *(len(label) + 2 for label in labels))
    print(f"\nburst: {args.mode}, N = {args.n}, due at the same instant")
    print(f"{'':>18}" + "".join(f"{label:>{width}}" for label in labels))
    keys = list(dict.fromkeys(k for r in results for k in r))
    for key in keys:
        if any(isinstance(r.get(key), dict) for r in results):
            continue
        cells = [
            "-" if key not in r else f"{r[key]:,.3f}" if isinstance(r[key], float) else str(r[key])
            for r in results
        ]
        print(f"{key:>18}" + "".join(f"{c:>{width}}" for c in cells))
    raw_rates = [r["calls_per_s"] for r in results if r["backend"] == "raw-temporal"]
    our_rates = [r["calls_per_s"] for r in results if r["backend"] == "temporal"]
    if raw_rates and our_rates:
        ratio = percentile(our_rates, 50) / max(1e-9, percentile(raw_rates, 50))
        print(f"extsched temporal / raw Temporal drain rate (medians): {ratio:.0%}")
    for result in results:
        if "temporal_dev_server" in result:
            print(f"temporal dev server configured with {result['temporal_dev_server']}")
            break
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
