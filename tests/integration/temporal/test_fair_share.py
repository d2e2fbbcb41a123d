"""The fair share on the temporal backend (fairness keys per tenant on a real dev server):
a tenant alone uses every slot of the worker; a small tenant's runs are not stuck behind a
big tenant's backlog."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingWorkflowTaskState

from extsched.jobs.backend import RunRequest
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.server import running_worker
from extsched.services.context import AppContext
from tests.conftest import Actor
from tests.fake_runner import FakeRunner
from tests.helpers.polling import eventually
from tests.integration.test_fairness import _seed_due_runs


@pytest.fixture
async def worker(temporal: TemporalBackend, ctx: AppContext) -> AsyncIterator[None]:
    async with running_worker(ctx):
        yield


async def _targets(install: Any, *actors: Actor) -> dict[str, dict[str, Any]]:
    targets = {}
    for actor in actors:  # the same extension installed by each tenant
        published, inst = await install(actor)
        endpoint = next(e for e in published["endpoints"] if e["path"] == "/sync")
        targets[actor.tenant_id] = {**inst, "endpoint": endpoint}
    return targets


async def _start(
    ctx: AppContext, tenant: str, target: dict[str, Any], runs: list[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """Start each queued run's workflow (as run-now does)."""
    install_id = uuid.UUID(str(target["install_id"]))

    async def start(schedule_id: uuid.UUID, run_id: uuid.UUID) -> None:
        async with ctx.db.connection() as conn:
            await ctx.backend.start_run(conn, RunRequest(tenant, install_id, schedule_id, run_id))

    await asyncio.gather(*(start(s, r) for s, r in runs))


async def _calls(runner: FakeRunner) -> list[str]:
    with runner.lock:
        return [c.envelope["context"]["tenant_id"] for c in runner.calls]


@pytest.mark.settings(worker_concurrency=16, runner_timeout_ms=60_000)
async def test_a_tenant_alone_uses_every_slot_of_the_worker(
    worker: None, ctx: AppContext, alice: Actor, install: Any, runner: FakeRunner, db_url: str
) -> None:
    targets = await _targets(install, alice)
    runner.behaviour["/sync"] = "hang"  # every call stays in flight until released
    runs = _seed_due_runs(db_url, "acme", targets["acme"], 40)
    await _start(ctx, "acme", targets["acme"], runs)
    await eventually(lambda: _calls(runner), lambda calls: len(calls) == 16, within=30)
    runner.release.set()
    calls = await eventually(lambda: _calls(runner), lambda calls: len(calls) > 16, within=60)
    assert calls.count("acme") == len(calls)


@pytest.mark.settings(worker_concurrency=4, runner_timeout_ms=60_000)
async def test_a_small_tenant_is_not_stuck_behind_a_big_backlog(
    worker: None,
    temporal: TemporalBackend,
    ctx: AppContext,
    alice: Actor,
    charlie: Actor,
    install: Any,
    runner: FakeRunner,
    db_url: str,
) -> None:
    targets = await _targets(install, alice, charlie)
    runner.behaviour["/sync"] = "hang"  # calls stay in flight until released
    big = _seed_due_runs(db_url, "acme", targets["acme"], 80)
    small = _seed_due_runs(db_url, "globex", targets["globex"], 4)
    await _start(ctx, "acme", targets["acme"], big)
    # The worker's 4 slots hold acme calls; the other 76 wait in the task queue (their first
    # workflow task, which runs the attempt as a local activity).
    await eventually(lambda: _calls(runner), lambda calls: len(calls) == 4, within=30)
    await _start(ctx, "globex", targets["globex"], small)
    client = await temporal.client()
    for _, run_id in small:  # globex's workflow tasks (each runs its attempt) wait behind acme's
        await eventually(
            lambda run_id=run_id: client.get_workflow_handle(str(run_id)).describe(),
            lambda d: (
                d.raw_description.pending_workflow_task.state
                == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
            ),
            within=30,
        )
    runner.release.set()
    calls = await eventually(
        lambda: _calls(runner), lambda calls: calls.count("globex") == 4, within=60
    )
    # First in, first out would run all 80 of acme's first. Fair dispatch serves globex next,
    # alternating with acme (the test server has one partition per task queue; a production
    # queue's 4 partitions are each ordered so, docs/temporal.md).
    at = [i for i, tenant in enumerate(calls) if tenant == "globex"]
    assert at[0] < 4 + 2
    assert at[-1] < 4 + 2 * 4 + 2
