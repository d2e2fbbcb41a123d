"""The temporal backend's worker: executes the workflows Temporal Schedules and run-now start.

``run_temporal_worker(ctx)`` runs beside the caller (``serve`` and ``extsched worker``) until
the caller exits. It keeps trying to reach Temporal, so a process started while Temporal is
down begins working once it is back; runs in flight at shutdown are cancelled and Temporal
hands their activities to another worker (their lease lapses first, so none runs twice).
It also re-pins the DST compensation periodically (``TemporalBackend.refresh_compensation``)
and runs the maintenance loops every worker runs (``services.maintenance``: reconcile with
repair and overdue detection, retention). Every loop is supervised (``services.supervision``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio.worker import PollerBehaviorAutoscaling, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from extsched.config import ConfigError
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.runner.client import RunnerClient
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler, new_owner
from extsched.services.maintenance import Maintenance
from extsched.services.supervision import Supervisor
from extsched.workers.temporal.activities import Activities
from extsched.workers.temporal.workflows import RunWorkflow

log = logging.getLogger("extsched.jobs")

REFRESH_SECONDS = 6 * 3600.0  # DST compensation; changes at most every few months
SHUTDOWN_GRACE = timedelta(seconds=10)
# Pollers per task queue kind. The SDK default is a fixed 5 workflow-task pollers, which caps
# a burst (hundreds of schedules firing at once) at a few dozen new workflows a second per
# worker; autoscaling lets the server ask for more pollers while a backlog builds.
MAX_POLLERS = 32
# The workflow is tiny and only imports ``types``; letting the sandbox pass every module through
# (instead of re-importing the workflow module for each run) saves ~5 ms of CPU per run. The
# sandbox's restrictions on non-deterministic calls still apply.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)


def _activity_pollers(concurrency: int) -> PollerBehaviorAutoscaling:
    """No more activity pollers than slots (the SDK's initial 5 is refused above a smaller
    maximum, e.g. ``EXTSCHED_WORKER_CONCURRENCY=4``)."""
    maximum = min(MAX_POLLERS, concurrency)
    return PollerBehaviorAutoscaling(maximum=maximum, initial=min(5, maximum))


class TemporalWorker:
    """Polls the task queue with the one workflow and the one activity, until ``stop()``."""

    def __init__(self, ctx: AppContext, backend: TemporalBackend, handler: InvocationHandler):
        self.ctx = ctx
        self.backend = backend
        self.activities = Activities(ctx, handler, new_owner("temporal"))
        self.worker: Worker | None = None
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self.supervisor = Supervisor(ctx.loops, self._stop, ctx.settings.loop_backoff_max_seconds)
        self.maintenance = Maintenance(ctx, self.supervisor)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        # Self-healing and retention run here as on the postgres backend (services.maintenance).
        side = [
            asyncio.create_task(loop) for loop in [self._refresh_loop(), *self.maintenance.loops()]
        ]
        try:
            while not self._stop.is_set():
                if await self.supervisor.guard("temporal_worker", self._serve_once):
                    break
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)

    async def _serve_once(self) -> bool:
        """Connect and poll until stopped (True); raises when Temporal is unreachable or the
        SDK worker fails, so the supervisor logs, counts and backs off."""
        client = await self.backend.client()
        s = self.ctx.settings
        self.worker = Worker(
            client,
            task_queue=s.temporal_task_queue,
            workflows=[RunWorkflow],
            activities=[self.activities.attempt],
            # The attempt is a local activity (workflows.py), and a workflow task holds its
            # slot while its local activity runs: as many workflow task slots as attempts, so
            # the worker polls a new fire only when it can run it at once, and the fairness
            # keys order the server's backlog instead of a queue inside the worker. Regular
            # activity slots serve workflows started before the change (a regular activity).
            max_concurrent_workflow_tasks=s.worker_concurrency,
            max_concurrent_local_activities=s.worker_concurrency,
            max_concurrent_activities=s.worker_concurrency,
            workflow_runner=WORKFLOW_RUNNER,
            workflow_task_poller_behavior=PollerBehaviorAutoscaling(maximum=MAX_POLLERS),
            activity_task_poller_behavior=_activity_pollers(s.worker_concurrency),
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
        )
        try:
            await self._run_until_stopped(self.worker)
        except Exception:
            await self.backend.close()  # reconnect: the connection may be the cause
            raise
        return True

    async def _run_until_stopped(self, worker: Worker) -> None:
        """Run ``worker`` until stopped on request; raises if it fails by itself."""
        running = asyncio.create_task(worker.run(), name="temporal worker")
        stopping = asyncio.create_task(self._stop.wait())
        self.started.set()
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            # Stop polling. An attempt in flight (a local activity) runs to its outcome: the
            # stop waits for it, up to its Runner timeout; a regular activity of a workflow
            # started before the local attempt gets SHUTDOWN_GRACE, then is cancelled.
            await worker.shutdown()
        stopping.cancel()
        try:
            await running
        except Exception:
            if not self._stop.is_set():
                raise
        if not self._stop.is_set():
            raise RuntimeError("the temporal worker stopped by itself")

    async def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            done = await self.supervisor.guard(
                "dst_compensation", self.backend.refresh_compensation
            )
            if done is not None:
                await self.supervisor.sleep(REFRESH_SECONDS)


@contextlib.asynccontextmanager
async def run_temporal_worker(ctx: AppContext) -> AsyncIterator[TemporalWorker]:
    """Run the Temporal worker beside the caller until it exits."""
    s = ctx.settings
    if s.runner_url is None:
        raise ConfigError("EXTSCHED_RUNNER_URL: required for the temporal worker")
    backend = ctx.backend
    if not isinstance(backend, TemporalBackend):
        backend = TemporalBackend(s, ctx.db, ctx.clock)
    client = RunnerClient.for_settings(s)
    worker = TemporalWorker(ctx, backend, InvocationHandler(ctx, client))
    task = asyncio.create_task(worker.run(), name="extsched temporal worker")
    try:
        yield worker
    finally:
        worker.stop()
        await task
        await client.aclose()
