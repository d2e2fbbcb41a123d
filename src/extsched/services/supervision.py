"""Supervised worker loops: a loop that keeps failing shows in ``/readyz``, a metric and the
logs, and retries with a capped exponential backoff instead of spinning every second.

Every loop of a worker (scheduler, executor, reaper, reconcile, retention, the Temporal
worker...) runs its passes through :meth:`Supervisor.guard`. The state is per process
(``AppContext.loops``): ``/readyz`` of a process reports the loops that process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from extsched import metrics
from extsched.errors import BackendUnavailable

log = logging.getLogger("extsched.jobs")
T = TypeVar("T")

# Consecutive failed passes after which a loop counts as failing (and the process not ready):
# one failure may be a blip (a deadlock victim, a restarted connection); three is a pattern.
FAILING_AFTER = 3
BACKOFF_BASE_SECONDS = 1.0


@dataclass
class LoopState:
    failures: int = 0  # consecutive failed passes; 0 after a successful one
    total_failures: int = 0
    last_error: str | None = None


class LoopHealth:
    """The supervised loops of this process and how their last passes went."""

    def __init__(self) -> None:
        self._loops: dict[str, LoopState] = {}

    def register(self, name: str) -> None:
        self._loops.setdefault(name, LoopState())

    def succeeded(self, name: str) -> int:
        """Record a good pass; returns how many failures in a row it ends."""
        state = self._loops.setdefault(name, LoopState())
        ended, state.failures = state.failures, 0
        return ended

    def failed(self, name: str, error: BaseException) -> int:
        """Record a failed pass; returns the failures in a row so far."""
        state = self._loops.setdefault(name, LoopState())
        state.failures += 1
        state.total_failures += 1
        state.last_error = f"{error.__class__.__name__}: {error}"[:300]
        return state.failures

    def status(self) -> dict[str, str]:
        """``{loop: "ok" | "failing"}`` for every loop this process runs."""
        return {
            name: "failing" if s.failures >= FAILING_AFTER else "ok"
            for name, s in sorted(self._loops.items())
        }

    def failing(self) -> list[str]:
        return [name for name, status in self.status().items() if status == "failing"]

    def state(self, name: str) -> LoopState | None:
        return self._loops.get(name)


def backoff(failures: int, cap: float) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: 1, 2, 4... up to ``cap``."""
    return float(min(cap, BACKOFF_BASE_SECONDS * 2 ** min(failures - 1, 30)))


class Supervisor:
    """Runs the passes of one process's loops, recording each outcome in ``health``."""

    def __init__(self, health: LoopHealth, stop: asyncio.Event, backoff_cap: float) -> None:
        self.health = health
        self.stop = stop
        self.backoff_cap = backoff_cap

    async def guard(self, loop: str, step: Callable[[], Awaitable[T]]) -> T | None:
        """One pass of ``loop``: its result, or None after a failure (logged, counted, and
        waited out with the loop's backoff; the wait ends early on stop)."""
        self.health.register(loop)
        try:
            result = await step()
        except Exception as exc:
            failures = self.health.failed(loop, exc)
            metrics.WORKER_LOOP_FAILURES.labels(loop=loop).inc()
            delay = backoff(failures, self.backoff_cap)
            extra = {"loop": loop, "failures": failures, "retry_in_s": delay}
            if isinstance(exc, BackendUnavailable):
                log.warning("%s: database unavailable; retrying", loop, extra=extra)
            else:
                log.error("%s failed; retrying", loop, exc_info=True, extra=extra)
            await self.sleep(delay)
            return None
        ended = self.health.succeeded(loop)
        if ended:
            log.info("%s recovered", loop, extra={"loop": loop, "after_failures": ended})
        return result

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the worker is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
