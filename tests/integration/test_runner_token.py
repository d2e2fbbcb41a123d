"""The Runner token (SPEC §4 "Runner authentication"): where it comes from, and that the real
processes (`extsched demo`, `extsched worker` + `extsched runner`) share it with no extra
configuration while nobody else can make their reference Runner sign a call."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from extsched.config import ConfigError, Settings, load_settings
from extsched.services import demo as demo_setup
from extsched.services.context import AppContext
from tests.conftest import TEST_KEY
from tests.helpers.http_server import free_port

ENV_NAMES = ("EXTSCHED_RUNNER_TOKEN", "EXTSCHED_RUNNER_TOKEN_FILE", "EXTSCHED_HOME")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment without EXTSCHED_* variables; whatever load_settings sets is undone."""
    for name in [n for n in os.environ if n.startswith("EXTSCHED_")]:
        monkeypatch.delenv(name)
    for name in ENV_NAMES:
        # Recorded as absent, so a value load_settings writes (the _FILE variant) is removed.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


class TestTokenSetting:
    def test_it_generates_the_token_once_with_mode_0600(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        token = Settings(home=home).runner_token_value
        path = home / "runner.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == token
        assert len(token) >= 32
        assert Settings(home=home).runner_token_value == token
        assert path.read_text() == token
        assert Settings(home=tmp_path / "elsewhere").runner_token_value != token

    def test_processes_starting_together_agree_on_one_token(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        barrier = threading.Barrier(8)
        seen: list[str] = []

        def start() -> None:
            settings = Settings(home=home)
            barrier.wait()
            seen.append(settings.runner_token_value)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and len(set(seen)) == 1
        assert sorted(p.name for p in home.iterdir()) == ["runner.token"]  # no leftovers

    def test_the_variable_wins_and_nothing_is_written(
        self, env: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        env.setenv("EXTSCHED_HOME", str(tmp_path / "home"))
        env.setenv("EXTSCHED_RUNNER_TOKEN", "shared-across-hosts-0123456789")
        assert load_settings().runner_token_value == "shared-across-hosts-0123456789"
        assert not (tmp_path / "home" / "runner.token").exists()

    def test_it_reads_the_file_variant(self, env: pytest.MonkeyPatch, tmp_path: Path) -> None:
        secret = tmp_path / "runner-token.secret"
        secret.write_text("from-a-container-secret-0123456789\n")
        env.setenv("EXTSCHED_HOME", str(tmp_path / "home"))
        env.setenv("EXTSCHED_RUNNER_TOKEN_FILE", str(secret))
        assert load_settings().runner_token_value == "from-a-container-secret-0123456789"
        assert not (tmp_path / "home" / "runner.token").exists()

    def test_it_names_an_unreadable_file_variant(
        self, env: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        env.setenv("EXTSCHED_RUNNER_TOKEN_FILE", str(tmp_path / "missing"))
        with pytest.raises(ConfigError, match=r"^EXTSCHED_RUNNER_TOKEN_FILE: cannot read"):
            load_settings()

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("changeme", "is a placeholder"),
            ("CHANGETHIS", "is a placeholder"),
            ("short-token", "at least 16 characters"),
            ("a token with spaces in it", "printable ASCII without spaces"),
            ("line-break-token-0123\r\nx-evil: 1", "printable ASCII without spaces"),
        ],
    )
    def test_it_refuses_bad_tokens_without_echoing_them(
        self, env: pytest.MonkeyPatch, value: str, reason: str
    ) -> None:
        env.setenv("EXTSCHED_RUNNER_TOKEN", value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        message = str(caught.value)
        assert message.startswith("EXTSCHED_RUNNER_TOKEN: ") and reason in message
        assert value not in message and "\n" not in message

    def test_it_refuses_a_damaged_token_file(self, tmp_path: Path) -> None:
        (tmp_path / "runner.token").write_text("")
        with pytest.raises(ConfigError, match=r"runner\.token: must be at least 16"):
            _ = Settings(home=tmp_path).runner_token_value

    def test_it_keeps_the_token_out_of_the_settings_repr(self, tmp_path: Path) -> None:
        settings = Settings(home=tmp_path, runner_token="never-printed-0123456789")
        assert "never-printed" not in repr(settings) and "never-printed" not in str(settings)


# ----------------------------------------------------------------------------- real processes
def _process_env(db_url: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTSCHED_")}
    env.update(
        {
            "EXTSCHED_DATABASE_URL": db_url,
            "EXTSCHED_HOME": str(home),
            "EXTSCHED_SECRET_KEY": TEST_KEY,
            "EXTSCHED_RECONCILE_INTERVAL_SECONDS": "0",
            "EXTSCHED_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "extsched.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_until(predicate: Any, seconds: float, what: str, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        assert proc.poll() is None, f"the process exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling for the outcome, not waiting a fixed time


def _ready(base: str) -> bool:
    return httpx.get(f"{base}/healthz", timeout=5).status_code == 200


def _finished_run(
    api: httpx.Client, schedule_id: str, trigger: str, headers: dict[str, str]
) -> dict[str, Any] | None:
    r = api.get(f"/api/v1/schedules/{schedule_id}/runs", headers=headers)
    assert r.status_code == 200, r.text
    for run in r.json()["items"]:
        if run["trigger"] == trigger and run["status"] not in ("queued", "running"):
            return dict(run)
    return None


@pytest.mark.slow
def test_demo_runs_scheduled_calls_through_its_mounted_runner_and_nobody_else_can(
    db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    with _process(["demo", "--port", str(port)], _process_env(db_url, home), log) as proc:
        _wait_until(lambda: _ready(base), 120, "the service", proc)
        found = _wait_until(
            lambda: re.search(r"/api/v1/schedules/([0-9a-f-]{36})/runs", log.read_text()),
            30,
            "the demo schedule",
            proc,
        )
        schedule_id = found.group(1)
        user = {"Authorization": f"Bearer {(home / 'demo-user.token').read_text().strip()}"}
        runner_token = (home / "runner.token").read_text()
        assert stat.S_IMODE((home / "runner.token").stat().st_mode) == 0o600

        with httpx.Client(base_url=base, timeout=30) as api:
            # A scheduled fire: the demo schedule's next fire made due now.
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("UPDATE job_handle SET next_fire_at = date_trunc('second', now())")
                conn.execute("NOTIFY extsched_handles")
            scheduled = _wait_until(
                lambda: _finished_run(api, schedule_id, "schedule", user), 60, "the fire", proc
            )
            assert (scheduled["status"], scheduled["http_status"]) == ("succeeded", 200)
            assert '"signed":true' in scheduled["response_preview"].replace(" ", "")

            r = api.post(f"/api/v1/schedules/{schedule_id}/run-now", headers=user)
            assert r.status_code == 202, r.text
            now = _wait_until(
                lambda: _finished_run(api, schedule_id, "run_now", user), 60, "run-now", proc
            )
            assert (now["status"], now["http_status"]) == ("succeeded", 200)

            # The same Runner, called from outside without (or with a wrong) token.
            envelope = {
                "context": {"content_hash": "sha256:any", "install_id": "any"},
                "http": {"method": "POST", "path": "/sync", "headers": {}},
                "limits": {"timeout_ms": 1000},
            }
            for headers in ({}, {"authorization": "Bearer not-the-runner-token-0123"}):
                r = api.post("/runner/v1/execute", json=envelope, headers=headers)
                assert r.status_code == 401, r.text
            assert api.get("/runner/healthz").status_code == 200
    assert runner_token not in log.read_text()  # never printed


@pytest.mark.slow
async def test_worker_and_runner_on_one_host_share_the_token_with_no_configuration(
    ctx: AppContext, client: httpx.AsyncClient, db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "host"  # one EXTSCHED_HOME for both processes, no token variable
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    info = await demo_setup.setup(ctx, base)  # the demo extension, upstream on the runner
    user = {"Authorization": f"Bearer {info.token}"}
    runner_env = _process_env(db_url, home)
    worker_env = _process_env(db_url, home, EXTSCHED_RUNNER_URL=base)
    with (
        _process(["runner", "--port", str(port)], runner_env, tmp_path / "runner.log") as runner,
        _process(["worker"], worker_env, tmp_path / "worker.log") as worker,
    ):
        await asyncio.to_thread(_wait_until, lambda: _ready(base), 60, "the runner", runner)
        r = await client.post(f"/api/v1/schedules/{info.schedule_id}/run-now", headers=user)
        assert r.status_code == 202, r.text

        async def finished() -> dict[str, Any]:
            deadline = time.monotonic() + 60
            while True:
                r = await client.get(f"/api/v1/schedules/{info.schedule_id}/runs", headers=user)
                items = r.json()["items"]
                if items and items[0]["status"] not in ("queued", "running"):
                    return dict(items[0])
                assert worker.poll() is None and runner.poll() is None
                assert time.monotonic() < deadline, "the run did not finish"
                await asyncio.sleep(0.1)  # polling for the outcome

        run = await finished()
    assert (run["status"], run["http_status"], run["error"]) == ("succeeded", 200, None)
    assert stat.S_IMODE((home / "runner.token").stat().st_mode) == 0o600
