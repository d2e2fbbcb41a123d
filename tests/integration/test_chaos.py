"""Chaos: worker processes killed repeatedly mid-run, and a Runner that answers 2 MB bodies.
Each test is bounded in time and checks that nothing is lost, doubled or left running."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import Actor
from tests.fake_runner import fake_runner
from tests.integration.test_worker_processes import _create, _env, _poll, _sql, workers


@pytest.mark.slow
@pytest.mark.settings(max_schedules_per_install=100, max_schedules_per_tenant=100)
async def test_it_loses_and_doubles_nothing_when_workers_are_killed_repeatedly(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    db_url: str,
    tmp_path: Path,
) -> None:
    await _create(client, alice, published, 60, path="/slow")
    with fake_runner() as runner:
        runner.behaviour = {"/slow": "slow"}
        _sql(db_url, "UPDATE job_handle SET next_fire_at = now() - interval '1 second'")
        env = _env(
            db_url,
            tmp_path / "home",
            runner.url,
            EXTSCHED_RUNNER_TIMEOUT_MS="2000",
            EXTSCHED_LEASE_GRACE_SECONDS="1",
            EXTSCHED_MAX_ATTEMPTS="5",
            EXTSCHED_RETRY_BASE_SECONDS="0.2",
            EXTSCHED_WORKER_CONCURRENCY="8",
        )
        for round_ in range(3):  # start a worker, let it get busy, kill -9 it mid-run
            seen = len(runner.calls)
            with workers(1, env, tmp_path / f"r{round_}") as [proc]:
                await _poll(lambda seen=seen: len(runner.calls) >= seen + 5, 30, "calls")
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        with workers(1, env, tmp_path / "final"):  # a healthy worker recovers everything
            await _poll(
                lambda: (
                    _sql(
                        db_url,
                        "SELECT count(*) FROM extension_schedule_run WHERE status IN "
                        "('queued', 'running')",
                    )[0][0]
                    == 0
                ),
                60,
                "every run to end",
            )
    rows = _sql(db_url, "SELECT status, count(*) FROM extension_schedule_run GROUP BY status")
    statuses = dict(rows)
    assert sum(statuses.values()) == 60  # one run per fire, none lost, none doubled
    assert statuses.get("succeeded", 0) == 60, statuses
    attempts = _sql(db_url, "SELECT max(attempts) FROM extension_schedule_run")[0][0]
    assert attempts >= 2  # some runs really were interrupted and retried


@pytest.mark.slow
@pytest.mark.settings(max_schedules_per_install=100, max_schedules_per_tenant=100)
async def test_it_keeps_memory_flat_against_huge_runner_bodies(
    client: httpx.AsyncClient,
    alice: Actor,
    published: dict[str, Any],
    db_url: str,
    tmp_path: Path,
) -> None:
    await _create(client, alice, published, 80, path="/huge")
    with fake_runner() as runner:
        runner.behaviour = {"/huge": "huge"}  # 2 MB bodies; the cap is 256 KiB
        env = _env(db_url, tmp_path / "home", runner.url, EXTSCHED_WORKER_CONCURRENCY="16")
        with workers(1, env, tmp_path) as [proc]:
            ps = psutil.Process(proc.pid)
            await _poll(
                lambda: _sql(db_url, "SELECT count(*) FROM job_handle")[0][0] == 80, 10, "handles"
            )
            # warm up with the first 10, then measure the other 70
            _sql(
                db_url,
                "UPDATE job_handle SET next_fire_at = now() WHERE schedule_id IN "
                "(SELECT schedule_id FROM job_handle ORDER BY schedule_id LIMIT 10)",
            )
            await _poll(lambda: _finished(db_url) == 10, 30, "warm-up runs")
            base = ps.memory_info().rss
            _sql(
                db_url,
                "UPDATE job_handle SET next_fire_at = now() WHERE schedule_id NOT IN "
                "(SELECT schedule_id FROM job_handle ORDER BY schedule_id LIMIT 10)",
            )
            peak = base
            deadline = time.monotonic() + 60
            while _finished(db_url) < 80 and time.monotonic() < deadline:
                peak = max(peak, ps.memory_info().rss)
                await asyncio.sleep(0.05)
    errors = _sql(db_url, "SELECT DISTINCT status, error FROM extension_schedule_run")
    assert errors == [("failed", "runner response exceeds 262144 bytes")]
    # 70 responses of 2 MB went by; the worker never held one whole.
    assert peak - base < 40 * 1024 * 1024, (base, peak)


def _finished(db_url: str) -> int:
    return int(
        _sql(db_url, "SELECT count(*) FROM extension_schedule_run WHERE finished_at IS NOT NULL")[
            0
        ][0]
    )
