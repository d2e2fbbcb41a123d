"""Executor processes for ``extsched serve``: the worker's executor (postgres) or Temporal
worker in child processes of their own, so runs use every core while the parent serves the
API, the UI, the reference Runner and (postgres) the scheduler.

Each child is ``extsched worker --executor-only --parent-pid PID`` on the parent's database
(the embedded PostgreSQL is the parent's; children never start their own). The parent
restarts a child that dies (backing off), and stops them all (SIGTERM, in-flight runs handed
back) before it exits; a child whose parent disappears without that (kill -9) stops by
itself. Children run in their own session, so a Ctrl-C in the terminal reaches only the
parent, which then stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping

log = logging.getLogger("extsched.jobs")

RESTART_BACKOFF_MAX = 30.0


class ExecutorProcesses:
    """``count`` supervised children running the executor with ``env``."""

    def __init__(self, count: int, env: Mapping[str, str], stop_grace_seconds: float) -> None:
        self.count = count
        self.env = dict(env)
        self.stop_grace = stop_grace_seconds
        self.children: list[subprocess.Popen[bytes]] = []
        self._stopping = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "extsched.cli",
                "worker",
                "--executor-only",
                "--parent-pid",
                str(os.getpid()),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # logs go to stderr, shared with the parent
            start_new_session=True,
        )

    async def _supervise(self) -> None:
        """Restart children that exit on their own, backing off while they keep failing."""
        backoff = 1.0
        while not self._stopping:
            await asyncio.sleep(0.5)
            for i, child in enumerate(self.children):
                code = child.poll()
                if code is None or self._stopping:
                    continue
                log.warning(
                    "executor process exited; restarting",
                    extra={"pid": child.pid, "exit_code": code, "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(RESTART_BACKOFF_MAX, backoff * 2)
                if not self._stopping:
                    self.children[i] = self._spawn()

    def _stop_all(self) -> None:
        """SIGTERM every child, wait for their graceful stop, then kill what is left."""
        self._stopping = True
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace + 10
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("executor process did not stop; killing it", extra={"pid": child.pid})
                child.kill()
                child.wait(timeout=10)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ExecutorProcesses]:
        """Run the children beside the caller; stopped (and waited for) on exit."""
        self.children = [self._spawn() for _ in range(self.count)]
        log.info("executor processes started", extra={"count": self.count})
        supervisor = asyncio.create_task(self._supervise(), name="executor processes")
        try:
            yield self
        finally:
            self._stopping = True
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            await asyncio.to_thread(self._stop_all)


async def stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``parent_pid`` is no longer this process's parent."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("parent process gone; stopping", extra={"parent_pid": parent_pid})
            stop.set()
            return
        await asyncio.sleep(1.0)
