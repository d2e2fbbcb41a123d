"""Real worker processes (`extsched worker`) on one database: exactly-once firing with two
schedulers and two workers, lease recovery after kill -9, graceful SIGTERM, the live loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from extsched.runner.client import RunnerClient
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.workers.postgres import PostgresWorker
from tests.conftest import TEST_KEY, TEST_RUNNER_TOKEN, Actor, Clock, endpoint_id
from tests.fake_runner import fake_runner
from tests.helpers.http_server import free_port
from tests.integration.test_execution import Harness


def _env(db_url: str, home: Path, runner_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTSCHED_")}
    env.update(
        {
            "EXTSCHED_DATABASE_URL": db_url,
            "EXTSCHED_HOME": str(home),
            "EXTSCHED_SECRET_KEY": TEST_KEY,
            "EXTSCHED_RUNNER_TOKEN": TEST_RUNNER_TOKEN,
            "EXTSCHED_RUNNER_URL": runner_url,
            "EXTSCHED_RECONCILE_INTERVAL_SECONDS": "0",
            "EXTSCHED_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


@contextmanager
def workers(n: int, env: dict[str, str], log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    logs = []
    for i in range(n):
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"worker{i}.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "extsched.cli", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        for log in logs:
            log.close()


def _sql(db_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


async def _poll(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _create(
    client: httpx.AsyncClient, alice: Actor, p: dict[str, Any], n: int, path: str = "/sync"
) -> list[str]:
    ids = []
    for i in range(n):
        r = await client.post(
            f"/api/v1/extensions/{p['extension_id']}/schedules",
            headers=alice.headers,
            json={
                "endpoint_id": endpoint_id(p, "POST", path),
                "cron": "0 0 1 1 *",  # fires only when a test makes it due
                "timezone": "UTC",
                "name": f"s{i}",
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


@pytest.mark.settings(max_schedules_per_install=600, max_schedules_per_tenant=600)
async def test_it_fires_500_due_schedules_exactly_once_with_two_workers(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    db_url: str,
    tmp_path: Path,
) -> None:
    ids = await _create(client, alice, published, 500)
    with fake_runner() as runner:
        # everything due now, as after a pause: both processes race for the same handles
        _sql(db_url, "UPDATE job_handle SET next_fire_at = now() - interval '1 second'")
        env = _env(db_url, tmp_path / "home", runner.url)
        with workers(2, env, tmp_path):
            await _poll(
                lambda: (
                    len(runner.calls) >= 500
                    and _sql(
                        db_url,
                        "SELECT count(*) FROM extension_schedule_run WHERE status = 'succeeded'",
                    )[0][0]
                    >= 500
                ),
                90,
                "500 runs",
            )
            called = [c.envelope["context"]["schedule_id"] for c in runner.calls]
    assert sorted(called) == sorted(ids)  # each exactly once
    rows = _sql(
        db_url,
        "SELECT schedule_id, count(*) FROM extension_schedule_run "
        "GROUP BY schedule_id HAVING count(*) <> 1",
    )
    assert rows == []


async def test_it_recovers_a_run_after_kill_9_of_its_worker(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    db_url: str,
    tmp_path: Path,
    ctx: AppContext,
    clock: Clock,
) -> None:
    [sid] = await _create(client, alice, published, 1, path="/hang")
    with fake_runner() as runner:
        runner.behaviour = {"/hang": "hang"}
        _sql(db_url, "UPDATE job_handle SET next_fire_at = now() - interval '1 second'")
        env = _env(
            db_url,
            tmp_path / "home",
            runner.url,
            EXTSCHED_RUNNER_TIMEOUT_MS="60000",
            EXTSCHED_LEASE_GRACE_SECONDS="1",
        )
        with workers(1, env, tmp_path) as [proc]:
            await _poll(lambda: len(runner.calls) == 1, 30, "the first call")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        [(status, owner)] = _sql(db_url, "SELECT status, lease_owner FROM extension_schedule_run")
        assert status == "running" and owner  # stranded with the dead worker's lease
        runner.behaviour = {}
        h = Harness(ctx, clock, runner)
        clock.set(datetime.now(UTC) + timedelta(seconds=62))  # past timeout + grace
        assert await h.reaper.sweep() == 1
        await h.drain()
        await h.client.aclose()
        assert len(runner.calls_to("/hang")) == 2
    runs = (await client.get(f"/api/v1/schedules/{sid}/runs", headers=alice.headers)).json()
    assert [(r["status"], r["attempts"]) for r in runs["items"]] == [("succeeded", 2)]


async def test_it_hands_runs_back_on_sigterm(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    db_url: str,
    tmp_path: Path,
) -> None:
    await _create(client, alice, published, 1, path="/hang")
    with fake_runner() as runner:
        runner.behaviour = {"/hang": "hang"}
        _sql(db_url, "UPDATE job_handle SET next_fire_at = now() - interval '1 second'")
        env = _env(
            db_url,
            tmp_path / "home",
            runner.url,
            EXTSCHED_RUNNER_TIMEOUT_MS="60000",
            EXTSCHED_WORKER_STOP_GRACE_SECONDS="0.5",
        )
        with workers(1, env, tmp_path) as [proc]:
            await _poll(lambda: len(runner.calls) == 1, 30, "the first call")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    assert "extsched worker stopped" in (tmp_path / "worker0.log").read_text()
    [(status, attempts, owner)] = _sql(
        db_url, "SELECT status, attempts, lease_owner FROM extension_schedule_run"
    )
    assert (status, attempts, owner) == ("queued", 0, None)  # back in the queue, not lost


async def test_it_fires_through_the_live_loop_promptly(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    ctx: AppContext,
    clock: Clock,
) -> None:
    [sid] = await _create(client, alice, published, 1)
    with fake_runner() as runner:
        rc = RunnerClient(runner.url, 5000, 262144, token=TEST_RUNNER_TOKEN)
        worker = PostgresWorker(ctx, InvocationHandler(ctx, rc))
        task = asyncio.create_task(worker.run())
        try:
            async with ctx.db.connection() as conn:
                cur = await conn.execute("SELECT next_fire_at FROM job_handle")
                row = await cur.fetchone()
            assert row is not None
            clock.set(row["next_fire_at"] + timedelta(milliseconds=300))
            async with ctx.db.connection() as conn:
                await conn.execute("NOTIFY extsched_handles")
            await _poll(lambda: len(runner.calls) == 1, 10, "the scheduled call")
        finally:
            worker.stop()
            await task
            await rc.aclose()
    await _poll_status(client, alice, sid)


async def _poll_status(client: httpx.AsyncClient, alice: Actor, sid: str) -> None:
    for _ in range(100):
        runs = (await client.get(f"/api/v1/schedules/{sid}/runs", headers=alice.headers)).json()
        if runs["items"] and runs["items"][0]["status"] == "succeeded":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("run did not succeed")


async def test_it_serves_the_api_from_several_processes(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    db_url: str,
    tmp_path: Path,
) -> None:
    [sid] = await _create(client, alice, published, 1)
    port = free_port()
    env = _env(db_url, tmp_path / "home", "http://127.0.0.1:9", EXTSCHED_API_WORKERS="2")
    with (tmp_path / "api.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting the server under test
            [sys.executable, "-m", "extsched.cli", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, headers=alice.headers) as api:

                async def answers() -> bool:
                    try:
                        return (await api.get("/healthz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                deadline = time.monotonic() + 60
                while not await answers():
                    assert time.monotonic() < deadline, "API did not start"
                    await asyncio.sleep(0.1)
                children = psutil.Process(proc.pid).children(recursive=True)
                assert len(children) >= 2  # the API processes
                replies = [await api.get(f"/api/v1/schedules/{sid}") for _ in range(10)]
                assert {r.status_code for r in replies} == {200}
                # Clients connecting at once are spread over the processes (each has its own
                # SO_REUSEPORT socket; with one shared socket one process took all of them).
                clients = [
                    httpx.AsyncClient(base_url=base, headers=alice.headers) for _ in range(16)
                ]
                try:
                    await asyncio.gather(*(c.get("/healthz") for c in clients))
                    served = [
                        sum(
                            1
                            for c in child.net_connections("tcp")
                            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                        )
                        for child in _api_processes(proc.pid)
                    ]
                finally:
                    for c in clients:
                        await c.aclose()
                assert len(served) == 2 and sum(served) >= 16 and min(served) >= 1, served
                # A process that dies is replaced.
                victim = _api_processes(proc.pid)[0]
                victim.kill()
                victim.wait(timeout=10)
                while len(_api_processes(proc.pid)) < 2 or not await answers():
                    assert time.monotonic() < deadline + 60, "no replacement API process"
                    await asyncio.sleep(0.1)
                assert victim.pid not in {p.pid for p in _api_processes(proc.pid)}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    # A shutdown says so (uvicorn itself runs at log level "warning").
    assert (
        f"extsched stopped listening on http://127.0.0.1:{port}"
        in (tmp_path / "api.log").read_text()
    )


def test_it_says_in_one_line_when_its_port_is_taken(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(db_url, tmp_path / "home", "http://127.0.0.1:9")
        done = subprocess.run(
            [sys.executable, "-m", "extsched.cli", "api", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and "token" not in done.stdout


def _api_processes(pid: int) -> list[psutil.Process]:
    """The live API processes of an `api --workers N` process."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() != "zombie" and "resource_tracker" not in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _postgres_serving(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(pgdata) in part for part in cmdline):
            found.append(proc)
    return found


def _executors_of(pid: int) -> list[psutil.Process]:
    """The live executor processes of a `serve` process."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if "--executor-only" in child.cmdline() and child.status() != "zombie":
                found.append(child)
        except psutil.Error:  # exited meanwhile
            pass
    return found


def test_sigterm_stops_the_embedded_postgres_too(tmp_path: Path) -> None:
    """`docker stop` or systemd send SIGTERM: the service stops and takes its executor
    processes and its embedded PostgreSQL with it, instead of leaving them running."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTSCHED_")}
    env.update({"EXTSCHED_HOME": str(home), "EXTSCHED_SECRET_KEY": TEST_KEY})
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "extsched.cli",
                "serve",
                "--port",
                str(port),
                "--executors",
                "2",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.2)  # polling for readiness
            assert _postgres_serving(home)
            executors = _executors_of(proc.pid)
            assert len(executors) == 2
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 128 + signal.SIGTERM
            assert not any(e.is_running() for e in executors)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "extsched stopped listening" in (tmp_path / "serve.log").read_text()
    deadline = time.monotonic() + 30
    while _postgres_serving(home):
        assert time.monotonic() < deadline, "the embedded PostgreSQL was left running"
        time.sleep(0.2)  # polling until the embedded server is gone


def test_serve_restarts_a_dead_executor_and_executors_outlive_no_parent(
    db_url: str, tmp_path: Path
) -> None:
    """An executor process that dies is replaced; when the parent itself is killed (no
    chance to stop them), its executors notice and stop."""
    env = _env(db_url, tmp_path / "home", "http://127.0.0.1:9")
    del env["EXTSCHED_RUNNER_URL"]  # serve's own reference Runner
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "extsched.cli",
                "serve",
                "--port",
                str(port),
                "--executors",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while len(_executors_of(proc.pid)) != 1:
                assert proc.poll() is None and time.monotonic() < deadline, "no executor"
                time.sleep(0.2)  # polling for the child
            [first] = _executors_of(proc.pid)
            first.kill()
            while [e.pid for e in _executors_of(proc.pid)] in ([], [first.pid]):
                assert time.monotonic() < deadline + 30, "the executor was not restarted"
                time.sleep(0.2)  # polling for the replacement
            [second] = _executors_of(proc.pid)
            proc.kill()  # no graceful stop: the executor must notice by itself
            proc.wait(timeout=30)
            second.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
