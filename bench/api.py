"""API benchmark: p50/p95 latency of list (50 schedules), get, create, patch and run-now under 8
concurrent clients against an `extsched api` process, plus each route's query count (which must
not grow with the list size) and the CPU each request costs the API process(es) and PostgreSQL
(less sensitive to other load on the machine than latency).

    python -m bench.api --requests 200
    python -m bench.api --requests 200 --tenants 8   # one client per tenant
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
import psycopg

from bench.common import free_port, fresh_database, machine_speed, percentile, print_table
from extsched.config import Settings
from extsched.runtime import open_context
from extsched.server import create_app
from extsched.services import tokens

Lat = dict[str, list[float]]
ROUTES = ("list (50)", "get", "create", "patch", "run-now")
Cpu = dict[str, tuple[float, float]]
KEY = base64.urlsafe_b64encode(b"a" * 32).decode()
MANIFEST = {
    "name": "com.example.apibench",
    "publisher": "bench",
    "version": "1.0.0",
    "capabilities": [],
    "api": {"endpoints": [{"method": "POST", "path": "/sync", "handler": "h"}]},
}


async def make_tokens(settings: Settings, url: str, tenants: int) -> tuple[str, list[str]]:
    async with open_context(settings, url) as ctx:
        _, admin = await tokens.create(ctx.db, admin=True)
        users = [
            (
                await tokens.create(
                    ctx.db, tenant_id=f"bench{t}", user_id="u", timezone="Europe/Paris"
                )
            )[1]
            for t in range(tenants)
        ]
    return admin, users


@dataclass
class TenantSetup:
    """One tenant's token, installed extension, endpoint and 50 schedules."""

    token: str
    ext: str
    endpoint: str
    sids: list[str]


async def query_counts(
    settings: Settings, url: str, user: str, ext: str, sid: str, endpoint: str
) -> dict[str, int]:
    """Queries per request, measured in-process on the same database."""
    async with open_context(settings, url) as ctx:
        app = create_app(ctx)
        h = {"Authorization": f"Bearer {user}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://x"
        ) as c:
            calls = {
                "list (50)": ("GET", f"/api/v1/extensions/{ext}/schedules", None),
                "get": ("GET", f"/api/v1/schedules/{sid}", None),
                "create": (
                    "POST",
                    f"/api/v1/extensions/{ext}/schedules",
                    {"endpoint_id": endpoint, "cron": "0 9 * * 1-5"},
                ),
                "patch": ("PATCH", f"/api/v1/schedules/{sid}", {"name": "q-count"}),
                "run-now": ("POST", f"/api/v1/schedules/{sid}/run-now", None),
            }
            out = {}
            for name, (method, path, body) in calls.items():
                before = ctx.db.query_count
                r = await c.request(method, path, json=body, headers=h)
                assert r.status_code < 300, r.text
                out[name] = ctx.db.query_count - before
            return out


class CpuMeter:
    """CPU seconds spent so far by the API process tree and by the database's server
    processes serving the bench database (psutil; needs PostgreSQL on this machine)."""

    def __init__(self, api_pid: int, url: str) -> None:
        self.api = psutil.Process(api_pid)
        self.url = url

    @staticmethod
    def _cpu(procs: list[psutil.Process]) -> float:
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def _pg_pids(self) -> list[int]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        return [r[0] for r in rows]

    def snapshot(self) -> dict[int | str, float]:
        """CPU seconds per PostgreSQL backend pid, and the API tree's under "api"."""
        out: dict[int | str, float] = {}
        for pid in self._pg_pids():
            with contextlib.suppress(psutil.Error):
                out[pid] = self._cpu([psutil.Process(pid)])
        out["api"] = self._cpu([self.api, *self.api.children(recursive=True)])
        return out

    @staticmethod
    def spent(before: dict[int | str, float], after: dict[int | str, float]) -> tuple[float, float]:
        """(API, PostgreSQL) CPU seconds between two snapshots."""
        api = after["api"] - before["api"]
        pg = sum(v - before.get(k, 0.0) for k, v in after.items() if k != "api")
        return api, pg


async def load(
    base: str,
    setups: list[TenantSetup],
    requests: int,
    clients: int,
    meter: CpuMeter | None = None,
    routes: list[str] | None = None,
) -> tuple[Lat, Cpu]:
    """``clients`` concurrent keep-alive clients per operation, client k acting for tenant
    k mod len(setups). aiohttp, not httpx: on two cores shared with the server the client's
    own CPU must stay small (httpx costs ~3x more)."""
    lat: Lat = {k: [] for k in routes or ROUTES}
    cpu: Cpu = {}
    created: list[tuple[int, str]] = []  # (client, schedule id) of each create
    sessions = [
        aiohttp.ClientSession(
            base,
            headers={"Authorization": f"Bearer {setups[k % len(setups)].token}"},
            connector=aiohttp.TCPConnector(limit=1),
        )
        for k in range(clients)
    ]
    try:

        async def one(k: int, name: str, i: int) -> None:
            c, t = sessions[k], setups[k % len(setups)]
            sid = t.sids[i % len(t.sids)]
            body: Any = None
            if name == "list (50)":
                method, path = "GET", f"/api/v1/extensions/{t.ext}/schedules"
            elif name == "get":
                method, path = "GET", f"/api/v1/schedules/{sid}"
            elif name == "create":
                method, path = "POST", f"/api/v1/extensions/{t.ext}/schedules"
                body = {"endpoint_id": t.endpoint, "cron": "30 9 * * *"}
            elif name == "patch":
                method, path, body = "PATCH", f"/api/v1/schedules/{sid}", {"payload": {"i": i}}
            else:
                method, path = "POST", f"/api/v1/schedules/{sid}/run-now"
            started = time.perf_counter()
            async with c.request(method, path, json=body) as r:
                text = await r.read()
            lat[name].append(time.perf_counter() - started)
            assert r.status < 300, (name, r.status, text)
            if name == "create":
                created.append((k, json.loads(text)["id"]))

        for name in lat:
            queue = list(range(requests))

            async def worker(k: int, name: str = name, queue: list[int] = queue) -> None:
                while queue:
                    await one(k, name, queue.pop())

            before = meter.snapshot() if meter else None
            await asyncio.gather(*(worker(k) for k in range(clients)))
            if meter and before:
                api, pg = CpuMeter.spent(before, meter.snapshot())
                cpu[name] = (api / requests, pg / requests)

        async def delete(k: int) -> None:
            while created:
                owner, sid = created.pop()
                async with sessions[owner].delete(f"/api/v1/schedules/{sid}") as r:
                    assert r.status == 204, (r.status, await r.read())

        # Leave the install as found (50 schedules), so a repeated run lists the same page.
        await asyncio.gather(*(delete(k) for k in range(clients)))
    finally:
        for session in sessions:
            await session.close()
    return lat, cpu


def _py_spy() -> str:
    """py-spy from this interpreter's environment (the dev extra), else from the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


def setup_tenant(base: str, admin: str, user: str, pub: dict[str, Any]) -> TenantSetup:
    uh = {"Authorization": f"Bearer {user}"}
    ext, endpoint = pub["extension_id"], pub["endpoints"][0]["id"]
    httpx.post(
        f"{base}/api/v1/extensions/{ext}/install",
        json={"version_id": pub["version_id"]},
        headers=uh,
    ).raise_for_status()
    sids = []
    for i in range(50):
        r = httpx.post(
            f"{base}/api/v1/extensions/{ext}/schedules",
            headers=uh,
            json={"endpoint_id": endpoint, "cron": f"{i} 9 * * *", "name": f"s{i}"},
        )
        sids.append(r.json()["id"])
    return TenantSetup(user, ext, endpoint, sids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="per operation")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--api-workers", type=int, default=1, help="`extsched api --workers`")
    ap.add_argument(
        "--tenants", type=int, default=1, help="spread the clients over this many tenants"
    )
    ap.add_argument(
        "--routes", nargs="+", choices=ROUTES, default=list(ROUTES), help="measure only these"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure every route this many times on the same server; report the median and "
        "the range of each figure (a shared two-core machine varies by a third from run to run)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_database() as url:
        home = Path(tmp)
        settings = Settings(
            database_url=url,
            home=home,
            secret_key=KEY,
            max_schedules_per_install=100_000,
            max_schedules_per_tenant=100_000,
            run_now_per_schedule=100_000,
            run_now_per_tenant=100_000,
        )
        admin, users = asyncio.run(make_tokens(settings, url, args.tenants))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXTSCHED_")}
        env.update(
            {
                "EXTSCHED_DATABASE_URL": url,
                "EXTSCHED_HOME": str(home),
                "EXTSCHED_SECRET_KEY": KEY,
                "EXTSCHED_LOG_LEVEL": "WARNING",
                "EXTSCHED_MAX_SCHEDULES_PER_INSTALL": "100000",
                "EXTSCHED_MAX_SCHEDULES_PER_TENANT": "100000",
                "EXTSCHED_RUN_NOW_PER_SCHEDULE": "100000",
                "EXTSCHED_RUN_NOW_PER_TENANT": "100000",
            }
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "extsched.cli",
                "api",
                "--port",
                str(port),
                "--workers",
                str(args.api_workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        spy = None
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            ah = {"Authorization": f"Bearer {admin}"}
            pub = httpx.post(f"{base}/api/v1/registry/versions", json=MANIFEST, headers=ah).json()
            setups = [setup_tenant(base, admin, user, pub) for user in users]
            first = setups[0]
            counts_50 = asyncio.run(
                query_counts(settings, url, first.token, first.ext, first.sids[0], first.endpoint)
            )
            profile = os.environ.get("EXTSCHED_BENCH_PROFILE")  # py-spy raw profile path
            if profile:
                spy = subprocess.Popen(
                    [
                        *(_py_spy(), "record", "--pid", str(proc.pid), "--subprocesses"),
                        *("-o", f"{profile}.api.txt", "-f", "raw", "-r", "200"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            meter = CpuMeter(proc.pid, url)
            runs = [
                asyncio.run(load(base, setups, args.requests, args.clients, meter, args.routes))
                for _ in range(args.repeat)
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if spy is not None:
                spy.wait(timeout=60)
    rows: list[tuple[str, Any]] = []
    result = {}
    nan = (float("nan"), float("nan"))
    for name in runs[0][0]:
        p50s = [percentile(lat[name], 50) * 1000 for lat, _ in runs]
        p95s = [percentile(lat[name], 95) * 1000 for lat, _ in runs]
        api_ms = statistics.median(cpu.get(name, nan)[0] * 1000 for _, cpu in runs)
        pg_ms = statistics.median(cpu.get(name, nan)[1] * 1000 for _, cpu in runs)
        p50, p95 = statistics.median(p50s), statistics.median(p95s)
        rows.append((f"{name}: p50 / p95 ms", f"{p50:.1f} / {p95:.1f}"))
        if len(runs) > 1:
            rows.append((f"{name}: p95 range ms", f"{min(p95s):.1f} - {max(p95s):.1f}"))
        rows.append((f"{name}: queries", counts_50[name]))
        rows.append((f"{name}: CPU ms/request API / PG", f"{api_ms:.2f} / {pg_ms:.2f}"))
        result[name] = {
            "p50_ms": p50,
            "p95_ms": p95,
            "p95_ms_runs": p95s,
            "queries": counts_50[name],
            "api_cpu_ms": api_ms,
            "pg_cpu_ms": pg_ms,
        }
    if len(runs) > 1:
        rows.insert(0, ("figures", f"median of {len(runs)} runs"))
    print_table(
        f"API under {args.clients} concurrent clients of {args.tenants} tenant(s) "
        f"({args.requests} requests each, {args.api_workers} API process(es))",
        rows,
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"machine speed (10M Python additions on one core): {machine_speed():.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
