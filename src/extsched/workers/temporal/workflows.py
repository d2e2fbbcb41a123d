"""The Temporal workflow: deliver one run, retrying durably within the same run (SPEC §9).

Each attempt is one activity call (``activities.py``); a retryable failure comes back with
a time to retry at, and the workflow sleeps until then on Temporal's durable timer, so a
worker restart neither loses nor repeats the retry.

The attempt runs as a *local* activity: in the worker that holds the workflow task, with no
activity task through the server. A fire then costs the server one workflow task instead of
two workflow tasks and an activity task (scheduled, started, completed), which is most of the
server's work per fire (docs/temporal.md, "Execution"). The workflow task
carries the tenant's fairness key (set on the start), so the fair share holds as before; a
worker that dies mid-attempt loses the workflow task, and the next worker runs the attempt
again after the workflow task timeout (the run's lease and state make that safe, as with a
lost activity). Workflows whose history already scheduled a regular activity replay with one
(the ``LOCAL_ATTEMPT`` patch).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from extsched.jobs.temporal.types import (
        ACTIVITY,
        WORKFLOW,
        AttemptInput,
        AttemptOutcome,
        RunInput,
        fair_share,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
LOCAL_ATTEMPT = "local-attempt"

# Activities fail only on infrastructure trouble (database down, worker lost): retry until it
# passes, backing off to a minute. Runner failures are outcomes, not activity failures.
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)


@workflow.defn(name=WORKFLOW)
class RunWorkflow:
    @workflow.run
    async def run(self, request: RunInput) -> None:
        scheduled_for = None
        if request.run_id is None:
            # Started by the schedule: the fire time is the nominal scheduled start.
            scheduled_for = workflow.info().typed_search_attributes.get(SCHEDULED_START)
            if scheduled_for is None:
                workflow.logger.warning("started without a scheduled time; nothing to run")
                return
        run_id = request.run_id
        while True:
            attempt = AttemptInput(request, scheduled_for, run_id)
            timeout = timedelta(seconds=request.attempt_timeout_seconds)
            if workflow.patched(LOCAL_ATTEMPT):
                outcome = await workflow.execute_local_activity(
                    ACTIVITY,
                    attempt,
                    result_type=AttemptOutcome,
                    start_to_close_timeout=timeout,
                    retry_policy=ACTIVITY_RETRY,
                )
            else:
                outcome = await workflow.execute_activity(
                    ACTIVITY,
                    attempt,
                    result_type=AttemptOutcome,
                    start_to_close_timeout=timeout,
                    retry_policy=ACTIVITY_RETRY,
                    # Set on the activity too: workflows started before the key existed have none.
                    priority=fair_share(request.tenant_id),
                )
            if outcome.retry_at is None:
                return
            run_id = outcome.run_id
            delay = outcome.retry_at - workflow.now()
            if delay > timedelta(0):
                await workflow.sleep(delay)
