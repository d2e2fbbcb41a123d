"""Shared benchmark plumbing: a throw-away database, a fast Runner stub, bulk schedules."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

from extsched.config import Settings
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.jobs.backend import handle_id
from extsched.runtime import open_context
from extsched.services import installs, registry
from extsched.services.installs import InstallSettings

ROOT = Path(__file__).resolve().parent.parent


def server_url() -> str:
    """The PostgreSQL server to benchmark on: EXTSCHED_BENCH_DATABASE_URL or the local one."""
    return os.environ.get(
        "EXTSCHED_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new migrated database, dropped afterwards."""
    from extsched.db import migrate

    base = server_url()
    name = f"extsched_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_db(base, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def runner_stub(out_file: Path, call_ms: float = 0) -> Iterator[str]:
    """Start bench/runner_stub.py in its own process; yields its URL. Arrivals go to out_file;
    each call is answered after ``call_ms``."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "runner_stub.py"),
            str(port),
            str(out_file),
            str(call_ms),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def read_arrivals(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for key, value in rows:
        shown = (
            f"{value:,.3f}"
            if isinstance(value, float)
            else f"{value:,}"
            if isinstance(value, int)
            else str(value)
        )
        print(f"{key.ljust(width)}  {shown:>20}")


def machine_speed() -> float:
    """Seconds one core takes for ten million Python additions: the machines these benchmarks
    ran on differ, and a result is comparable only with this figure beside it (1.27 s on the
    2-core VM of 2026-12-01, about half the speed of a current desktop core)."""
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - start


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


KEY = base64.urlsafe_b64encode(b"b" * 32).decode()


async def seed(
    url: str, n: int, tenants: int, home: Path, per_tenant: list[int] | None = None
) -> None:
    """Publish one extension, install it for each tenant, and bulk-insert N schedules spread
    evenly over the tenants, or ``per_tenant[t]`` schedules for tenant t."""
    if per_tenant is not None:
        tenants, n = len(per_tenant), sum(per_tenant)
    settings = Settings(database_url=url, home=home, secret_key=KEY)
    async with open_context(settings, url) as ctx:
        published = await registry.publish(
            ctx.db,
            {
                "name": "com.example.bench",
                "publisher": "bench",
                "version": "1.0.0",
                "capabilities": [],
                "api": {"endpoints": [{"method": "POST", "path": "/sync", "handler": "h"}]},
            },
        )
        endpoint = published.endpoints[0]
        install_ids = []
        for t in range(tenants):
            async with ctx.db.connection() as conn:
                await conn.execute("INSERT INTO tenant (tenant_id) VALUES (%s)", (f"t{t:02d}",))
            inst = await installs.install(
                ctx,
                Actor.system("bench"),
                f"t{t:02d}",
                published.extension_id,
                published.version_id,
                InstallSettings(),
            )
            install_ids.append(inst.id)
    owners = (
        [t for t, count in enumerate(per_tenant) for _ in range(count)]
        if per_tenant is not None
        else [i % tenants for i in range(n)]
    )
    rows = [(f"t{t:02d}", uuid7(), install_ids[t]) for t in owners]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY tenant_extension_schedule (tenant_id, id, install_id, extension_id, name, "
            "endpoint_id, endpoint_method, endpoint_path, cron, timezone, payload) FROM STDIN"
        ) as copy:
            for tenant, sid, iid in rows:
                copy.write_row(
                    (
                        tenant,
                        sid,
                        iid,
                        published.extension_id,
                        None,
                        endpoint.id,
                        "POST",
                        "/sync",
                        "*/5 * * * *",
                        "UTC",
                        '{"bench": true}',
                    )
                )
        with cur.copy(
            "COPY job_handle (tenant_id, schedule_id, handle_id, install_id, cron, timezone, "
            "paused, next_fire_at) FROM STDIN"
        ) as copy:
            far = utc(time.time() + 86400)
            for tenant, sid, iid in rows:
                copy.write_row(
                    (
                        tenant,
                        sid,
                        handle_id(tenant, iid, sid),
                        iid,
                        "*/5 * * * *",
                        "UTC",
                        False,
                        far,
                    )
                )
        # Statistics as on tables that have existed for a while (autovacuum would have analysed
        # them long before a real herd): the planner picks its plans from them.
        conn.execute("ANALYZE tenant_extension_schedule")
        conn.execute("ANALYZE job_handle")


def process_group(proc: psutil.Process) -> str | None:
    """Which part of a bench a process is, for CpuMeter (None: not counted)."""
    try:
        if proc.name().startswith("postgres"):
            return "postgres"
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return None
    if "temporal" in line and "start-dev" in line:
        return "dev_server"
    if "runner_stub" in line:
        return "runner_stub"
    if "extsched.cli" in line or "--worker" in line:
        return "worker"
    return None


class CpuMeter:
    """CPU seconds (user + system) per process group used between ``start()`` and ``read()``,
    over the bench's own child processes and the PostgreSQL backends ``extra()`` names; a
    process that appears after ``start()`` counts from its beginning."""

    def __init__(self, extra: Callable[[], Iterable[int]] = lambda: ()) -> None:
        self._extra = extra
        self._start: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}

    def _sample(self) -> dict[int, tuple[str, float]]:
        procs = psutil.Process().children(recursive=True)
        for pid in self._extra():
            with suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        seen: dict[int, tuple[str, float]] = {}
        for proc in procs:
            group = process_group(proc)
            if group is None:
                continue
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            seen[proc.pid] = (group, t.user + t.system)
        return seen

    def start(self) -> None:
        self._start = {pid: cpu for pid, (_, cpu) in self._sample().items()}
        self._last = {}

    def update(self) -> None:
        """Sample again (processes that exit before ``read()`` keep their last sample)."""
        self._last.update(self._sample())

    def read(self) -> dict[str, float]:
        self.update()
        used: dict[str, float] = {}
        for pid, (group, cpu) in self._last.items():
            used[group] = used.get(group, 0.0) + cpu - self._start.get(pid, 0.0)
        return {f"cpu_{group}_s": round(v, 2) for group, v in sorted(used.items())}


def database_backends(url: str) -> Callable[[], list[int]]:
    """The pids of the PostgreSQL backends connected to ``url``'s database (local server)."""

    def pids() -> list[int]:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
        return [r[0] for r in rows]

    return pids
