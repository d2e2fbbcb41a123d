"""Chaos: restart PostgreSQL under a running API and worker. The service reconnects by itself,
/readyz reflects the outage, changes are refused with 503 meanwhile, and a fire that fell due
during the outage follows the catch-up rule (it runs once, recorded once).

Uses its own embedded PostgreSQL (pgserver), so the shared test server is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from extsched.config import Settings
from extsched.db import migrate
from extsched.domain.auth import Actor as AuditActor
from extsched.runtime import open_context
from extsched.services import installs, registry, schedules, tokens
from extsched.services.installs import InstallSettings
from extsched.services.schedules import ScheduleInput
from tests.conftest import TEST_KEY
from tests.fake_runner import fake_runner
from tests.helpers.http_server import free_port
from tests.integration.test_worker_processes import _env, _sql


class EmbeddedPostgres:
    """A pgserver instance we may stop and start at will."""

    def __init__(self, pgdata: Path) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver import postgres_server

        self.pgdata = pgdata
        self._ps = postgres_server
        self.server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        self.url: str = self.server.get_uri()
        self._as = {"user": "pgserver"} if os.geteuid() == 0 else {}

    def stop(self) -> None:
        self._ps.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.pgdata, **self._as)

    def start(self) -> None:
        self._ps.pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.pgdata}",
                "-l",
                str(self.pgdata / "log"),
                "start",
            ],
            pgdata=self.pgdata,
            **self._as,
        )


@pytest.fixture
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop()


async def _seed(url: str, home: Path) -> dict[str, Any]:
    settings = Settings(database_url=url, home=home, secret_key=TEST_KEY)
    async with open_context(settings, url) as ctx:
        _, token = await tokens.create(ctx.db, tenant_id="acme", user_id="alice")
        principal = await tokens.authenticate(ctx.db, token)
        assert principal is not None
        pub = await registry.publish(
            ctx.db,
            {
                "name": "com.example.pg",
                "publisher": "x",
                "version": "1.0.0",
                "api": {"endpoints": [{"method": "POST", "path": "/sync", "handler": "h"}]},
            },
        )
        await installs.install(
            ctx,
            AuditActor.system("test"),
            "acme",
            pub.extension_id,
            pub.version_id,
            InstallSettings(),
        )
        s = await schedules.create(
            ctx,
            principal,
            pub.extension_id,
            ScheduleInput(endpoint_id=pub.endpoints[0].id, cron="0 0 1 1 *", timezone="UTC"),
        )
    return {"token": token, "schedule_id": str(s.id)}


@pytest.mark.slow
def test_it_rides_out_a_postgres_restart(embedded_pg: EmbeddedPostgres, tmp_path: Path) -> None:
    url = embedded_pg.url
    migrate.upgrade(url)
    seeded = asyncio.run(_seed(url, tmp_path / "home"))
    h = {"Authorization": f"Bearer {seeded['token']}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fake_runner() as runner:
        env = _env(
            url,
            tmp_path / "home",
            runner.url,
            EXTSCHED_DB_POOL_MIN="1",
            EXTSCHED_RUNNER_TIMEOUT_MS="5000",
            EXTSCHED_LEASE_GRACE_SECONDS="2",
        )
        logs = (tmp_path / "api.log").open("wb"), (tmp_path / "worker.log").open("wb")
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "extsched.cli", "api", "--port", str(port)],
                env=env,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "extsched.cli", "worker"],
                env=env,
                stdout=logs[1],
                stderr=subprocess.STDOUT,
            ),
        ]
        try:
            _wait(lambda: _ready(base) == 200, 60, "API ready")
            # the worker is up once its listener connection has issued LISTEN
            _wait(
                lambda: (
                    _sql(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'")[
                        0
                    ][0]
                    > 0
                ),
                60,
                "worker ready",
            )
            # the next fire falls due while the database is down
            due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
            _sql(url, "UPDATE job_handle SET next_fire_at = %s", due)
            embedded_pg.stop()
            _wait(lambda: _ready(base) == 503, 30, "/readyz to report the outage")
            r = httpx.post(
                f"{base}/api/v1/schedules/{seeded['schedule_id']}/run-now", headers=h, timeout=30
            )
            assert r.status_code == 503 and r.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
            while datetime.now(UTC) < due + timedelta(seconds=2):
                time.sleep(0.2)  # the outage spans the due instant (real time is the subject)
            embedded_pg.start()
            _wait(lambda: _ready(base) == 200, 60, "/readyz to recover")
            _wait(lambda: len(runner.calls) == 1, 60, "the missed fire to run")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
            for f in logs:
                f.close()
    [call] = runner.calls
    assert call.envelope["context"]["scheduled_for"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = _sql(url, "SELECT status, scheduled_for FROM extension_schedule_run")
    assert [r[0] for r in rows] == ["succeeded"]


def _ready(base: str) -> int:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _wait(predicate: Any, seconds: float, what: str) -> None:
    """Poll ``predicate`` until true, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
