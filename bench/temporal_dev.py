"""The Temporal dev server as the burst benches run it (bench.burst, bench.temporal_raw): a
throw-away `temporal server start-dev` on a free port, tuned as below."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.common import free_port

# How the benchmark configures the dev server (reported with the results, docs/performance.md).
# Its defaults are sized for a laptop, not for hundreds of schedules firing in the same second:
# - its SQLite file, in the default rollback-journal mode with an fsync per commit, serialises
#   every write of the single history shard; persistence calls then time out ("context deadline
#   exceeded") and are retried. A real cluster persists to PostgreSQL/MySQL/Cassandra, so the
#   bench runs the file in WAL mode without fsync (the file is thrown away afterwards);
# - schedule actions are started by the server's per-namespace worker, which polls with the
#   SDK default of 2 workflow-task pollers (~40 starts/s at best here); the documented knobs are
#   its worker options and the per-namespace start rate limit (default 30/s).
TEMPORAL_DEV_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=off")
TEMPORAL_DEV_DYNAMIC_CONFIG = {
    # the per-tenant fair share (fairness keys, docs/temporal.md)
    "matching.enableFairness": "true",
    "worker.schedulerNamespaceStartWorkflowRPS": "500",
    "worker.perNamespaceWorkerOptions": json.dumps(
        {"MaxConcurrentWorkflowTaskPollers": 16, "MaxConcurrentActivityTaskPollers": 4},
        separators=(",", ":"),
    ),
}


def temporal_dev_server_config() -> dict[str, Any]:
    return {
        "sqlite_pragmas": list(TEMPORAL_DEV_SQLITE_PRAGMAS),
        "dynamic_config": dict(TEMPORAL_DEV_DYNAMIC_CONFIG),
    }


@contextmanager
def temporal_dev_server(folder: Path) -> Iterator[str]:
    """`temporal server start-dev` on a free port with a throw-away database and the tuning
    above; yields its address."""
    port = free_port()
    tuning = [a for p in TEMPORAL_DEV_SQLITE_PRAGMAS for a in ("--sqlite-pragma", p)]
    for key, value in TEMPORAL_DEV_DYNAMIC_CONFIG.items():
        tuning += ["--dynamic-config-value", f"{key}={value}"]
    binary = Path(sys.executable).parent / "temporal"
    proc = subprocess.Popen(
        [
            str(binary if binary.exists() else "temporal"),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--db-filename",
            str(folder / "t.db"),
            "--log-level",
            "error",
            *tuning,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            await Client.connect(address)
            return True
        except Exception:
            return False

    deadline = time.time() + 90
    while not asyncio.run(ready()):
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError("temporal dev server did not start")
        time.sleep(0.3)
    try:
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
