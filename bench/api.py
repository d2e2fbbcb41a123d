"""API benchmark: p50/p95 latency of list (50 schedules), get, create, patch and run-now under 8
concurrent clients against an `extsched api` process, plus each route's query count (which must
not grow with the list size).

    python -m bench.api --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common import free_port, fresh_database, percentile, print_table
from extsched.api.app import create_api
from extsched.config import Settings
from extsched.runtime import open_context
from extsched.services import tokens

KEY = base64.urlsafe_b64encode(b"a" * 32).decode()
MANIFEST = {
    "name": "com.example.apibench",
    "publisher": "bench",
    "version": "1.0.0",
    "capabilities": [],
    "api": {"endpoints": [{"method": "POST", "path": "/sync", "handler": "h"}]},
}


async def make_tokens(settings: Settings, url: str) -> tuple[str, str]:
    async with open_context(settings, url) as ctx:
        _, admin = await tokens.create(ctx.db, admin=True)
        _, user = await tokens.create(
            ctx.db, tenant_id="bench", user_id="u", timezone="Europe/Paris"
        )
    return admin, user


async def query_counts(
    settings: Settings, url: str, user: str, ext: str, sid: str, endpoint: str
) -> dict[str, int]:
    """Queries per request, measured in-process on the same database."""
    async with open_context(settings, url) as ctx:
        app = create_api(ctx)
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


async def load(
    base: str, user: str, ext: str, sids: list[str], endpoint: str, requests: int, clients: int
) -> dict[str, list[float]]:
    """``clients`` concurrent keep-alive clients per operation. aiohttp, not httpx: on two
    cores shared with the server the client's own CPU must stay small (httpx costs ~3x more)."""
    h = {"Authorization": f"Bearer {user}"}
    lat: dict[str, list[float]] = {
        k: [] for k in ("list (50)", "get", "create", "patch", "run-now")
    }
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base, headers=h, connector=connector) as c:

        async def one(name: str, i: int) -> None:
            sid = sids[i % len(sids)]
            if name == "list (50)":
                method, path, body = "GET", f"/api/v1/extensions/{ext}/schedules", None
            elif name == "get":
                method, path, body = "GET", f"/api/v1/schedules/{sid}", None
            elif name == "create":
                method, path = "POST", f"/api/v1/extensions/{ext}/schedules"
                body = {"endpoint_id": endpoint, "cron": "30 9 * * *"}
            elif name == "patch":
                method, path, body = "PATCH", f"/api/v1/schedules/{sid}", {"payload": {"i": i}}
            else:
                method, path, body = "POST", f"/api/v1/schedules/{sid}/run-now", None
            t = time.perf_counter()
            async with c.request(method, path, json=body) as r:
                text = await r.read()
            lat[name].append(time.perf_counter() - t)
            assert r.status < 300, (name, r.status, text)

        for name in lat:
            queue = list(range(requests))

            async def worker(name: str = name, queue: list[int] = queue) -> None:
                while queue:
                    await one(name, queue.pop())

            await asyncio.gather(*(worker() for _ in range(clients)))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="per operation")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--api-workers", type=int, default=1, help="`extsched api --workers`")
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
        admin, user = asyncio.run(make_tokens(settings, url))
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
            uh = {"Authorization": f"Bearer {user}"}
            pub = httpx.post(f"{base}/api/v1/registry/versions", json=MANIFEST, headers=ah).json()
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
            counts_50 = asyncio.run(query_counts(settings, url, user, ext, sids[0], endpoint))
            profile = os.environ.get("EXTSCHED_BENCH_PROFILE")  # py-spy raw profile path
            if profile:
                spy = subprocess.Popen(
                    [
                        *("py-spy", "record", "--pid", str(proc.pid), "--subprocesses"),
                        *("-o", f"{profile}.api.txt", "-f", "raw", "-r", "200"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            lat = asyncio.run(load(base, user, ext, sids, endpoint, args.requests, args.clients))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if spy is not None:
                spy.wait(timeout=60)
    rows: list[tuple[str, Any]] = []
    result = {}
    for name, values in lat.items():
        p50, p95 = percentile(values, 50) * 1000, percentile(values, 95) * 1000
        rows.append((f"{name}: p50 / p95 ms", f"{p50:.1f} / {p95:.1f}"))
        rows.append((f"{name}: queries", counts_50[name]))
        result[name] = {"p50_ms": p50, "p95_ms": p95, "queries": counts_50[name]}
    print_table(
        f"API under {args.clients} concurrent clients ({args.requests} requests each, "
        f"{args.api_workers} API process(es))",
        rows,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
