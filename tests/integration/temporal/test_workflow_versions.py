"""The run workflow's attempt is a local activity (workflows.py): one workflow task per fire and
no activity task through the server. Workflows started before that change scheduled a regular
activity; their histories must still replay with today's code (the ``LOCAL_ATTEMPT`` patch),
or a deploy would fail every run in flight. Both on a real dev server with the SDK's replayer.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, Worker

from extsched.jobs.temporal.types import (
    ACTIVITY,
    WORKFLOW,
    AttemptInput,
    AttemptOutcome,
    RunInput,
    fair_share,
)
from extsched.workers.temporal.worker import WORKFLOW_RUNNER
from extsched.workers.temporal.workflows import ACTIVITY_RETRY, RunWorkflow
from tests.temporal_server import TemporalServer

attempts: list[AttemptInput] = []


@activity.defn(name=ACTIVITY)
async def finished_attempt(task: AttemptInput) -> AttemptOutcome:
    """The attempt's name and types, finishing the run at once (no database, no Runner)."""
    attempts.append(task)
    return AttemptOutcome(run_id=task.run_id)


@workflow.defn(name=WORKFLOW)
class RunWorkflowWithRegularActivity:
    """The run workflow as it was before the local activity: one regular activity per attempt."""

    @workflow.run
    async def run(self, request: RunInput) -> None:
        run_id = request.run_id
        while True:
            outcome = await workflow.execute_activity(
                ACTIVITY,
                AttemptInput(request, None, run_id),
                result_type=AttemptOutcome,
                start_to_close_timeout=timedelta(seconds=request.attempt_timeout_seconds),
                retry_policy=ACTIVITY_RETRY,
                priority=fair_share(request.tenant_id),
            )
            if outcome.retry_at is None:
                return
            run_id = outcome.run_id


async def _run_once(client: Client, workflow_class: type) -> WorkflowHistory:
    """One run-now workflow through a worker with ``workflow_class``; its history."""
    queue = f"versions-{uuid.uuid4().hex[:12]}"
    run_id = str(uuid.uuid4())
    request = RunInput(
        tenant_id="acme", install_id=str(uuid.uuid4()), schedule_id="s", run_id=run_id
    )
    async with Worker(
        client,
        task_queue=queue,
        workflows=[workflow_class],
        activities=[finished_attempt],
        workflow_runner=WORKFLOW_RUNNER,
    ):
        handle = await client.start_workflow(WORKFLOW, request, id=run_id, task_queue=queue)
        await handle.result()
    return await handle.fetch_history()


def _events(history: WorkflowHistory, kind: str) -> list[HistoryEvent]:
    return [e for e in history.events if e.HasField(kind)]


async def test_an_attempt_is_a_local_activity_in_one_workflow_task(
    temporal_server: TemporalServer,
) -> None:
    client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
    attempts.clear()
    history = await _run_once(client, RunWorkflow)
    assert len(attempts) == 1 and attempts[0].run_id is not None
    assert _events(history, "activity_task_scheduled_event_attributes") == []
    assert len(_events(history, "workflow_task_completed_event_attributes")) == 1
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in _events(history, "marker_recorded_event_attributes")
    ]
    assert "core_local_activity" in markers
    await Replayer(workflows=[RunWorkflow], workflow_runner=WORKFLOW_RUNNER).replay_workflow(
        history
    )


async def test_a_run_started_with_a_regular_activity_replays_with_todays_workflow(
    temporal_server: TemporalServer,
) -> None:
    client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
    history = await _run_once(client, RunWorkflowWithRegularActivity)
    assert len(_events(history, "activity_task_scheduled_event_attributes")) == 1
    # Today's workflow takes the regular-activity branch for this history: no nondeterminism.
    await Replayer(workflows=[RunWorkflow], workflow_runner=WORKFLOW_RUNNER).replay_workflow(
        history
    )
