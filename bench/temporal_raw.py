"""Raw-Temporal baseline for the burst bench: what the same dev server does with bare workflows.

N Temporal Schedules (one per schedule, the same daily calendar entry extsched's temporal backend
writes) start a bare workflow at the same instant; the workflow runs one no-op activity that
records when it ran. No database, no Runner call, no extsched code: the rate this reaches is the
ceiling of the dev server and the SDK on this machine, and extsched's temporal path is judged
against it (issue 19: >= 90 % of this rate, in the same bench run).

    python -m bench.temporal_raw --n 1000 --workers 2        # the baseline alone
    python -m bench.burst --n 1000 --backend temporal --baseline   # both, side by side

Workers are separate processes (``--worker``), configured like extsched's temporal worker
(autoscaling pollers up to 32, ``--concurrency`` activity slots, the sandbox passing modules
through), so the comparison measures what extsched adds and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.common import Priority, SearchAttributeKey
from temporalio.worker import PollerBehaviorAutoscaling, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.common import CpuMeter, percentile
from bench.temporal_dev import temporal_dev_server, temporal_dev_server_config

TASK_QUEUE = "raw-baseline"
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
MAX_POLLERS = 32  # as extsched.workers.temporal.worker
_arrivals: list[str] = []


@activity.defn(name="raw_noop")
async def raw_noop(schedule_id: str, scheduled_for: str) -> None:
    _arrivals.append(
        json.dumps({"t": time.time(), "schedule_id": schedule_id, "scheduled_for": scheduled_for})
    )


@workflow.defn(name="RawBaseline")
class RawBaseline:
    @workflow.run
    async def run(self, schedule_id: str) -> None:
        at = workflow.info().typed_search_attributes.get(SCHEDULED_START)
        await workflow.execute_activity(
            "raw_noop",
            args=[schedule_id, at.isoformat() if at else ""],
            start_to_close_timeout=timedelta(seconds=60),
        )


async def worker_main(address: str, out_path: str, concurrency: int) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[RawBaseline],
        activities=[raw_noop],
        max_concurrent_activities=concurrency,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
        ),
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(maximum=MAX_POLLERS),
        activity_task_poller_behavior=PollerBehaviorAutoscaling(
            maximum=min(MAX_POLLERS, concurrency)
        ),
    )
    with open(out_path, "a") as out:  # noqa: ASYNC230 - one file for the process's life

        async def flush_loop() -> None:
            while True:
                await asyncio.sleep(0.2)
                flush()

        def flush() -> None:
            if _arrivals:
                out.write("\n".join(_arrivals) + "\n")
                out.flush()
                _arrivals.clear()

        running = asyncio.create_task(worker.run())
        flusher = asyncio.create_task(flush_loop())
        await stop.wait()
        await worker.shutdown()
        flusher.cancel()
        await asyncio.gather(running, flusher, return_exceptions=True)
        flush()


def _calendar(at: datetime) -> ScheduleCalendarSpec:
    one = lambda v: (ScheduleRange(v, v, 1),)  # noqa: E731
    return ScheduleCalendarSpec(
        second=one(0),
        minute=one(at.minute),
        hour=one(at.hour),
        day_of_month=(ScheduleRange(1, 31, 1),),
        month=(ScheduleRange(1, 12, 1),),
        year=(),
        day_of_week=(ScheduleRange(0, 6, 1),),
    )


async def arm(address: str, n: int, fire_at: datetime, fairness_tenants: int = 0) -> None:
    """N schedules; with ``fairness_tenants`` T each carries a fairness key of one of T tenants
    (as extsched's do; the activity inherits it), to measure what the keys cost the server."""
    client = await Client.connect(address)
    spec = ScheduleSpec(calendars=[_calendar(fire_at)], time_zone_name="UTC")
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        sid = f"raw-{i:06d}"
        async with gate:
            await client.create_schedule(
                sid,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        "RawBaseline",
                        sid,
                        id=f"{sid}-wf",
                        task_queue=TASK_QUEUE,
                        priority=Priority(fairness_key=f"t{i % fairness_tenants:02d}")
                        if fairness_tenants
                        else Priority.default,
                    ),
                    spec=spec,
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
                ),
            )

    await asyncio.gather(*(one(i) for i in range(n)))


# Where a fire's time goes, from each workflow's history: event type -> name in the result.
_STAGES = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED": "wf_started",
    "EVENT_TYPE_WORKFLOW_TASK_STARTED": "wft1_started",
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED": "act_scheduled",
    "EVENT_TYPE_ACTIVITY_TASK_STARTED": "act_started",
    "EVENT_TYPE_ACTIVITY_TASK_COMPLETED": "act_completed",
    "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED": "wf_completed",
}


async def history_stages(address: str, fire_ts: float, limit: int = 300) -> dict[str, float]:
    """The median time (s after the fire) each stage of a workflow was reached, over up to
    ``limit`` workflows (pass N: the listing gives the newest first): when Temporal started
    it, its first workflow task, its activity scheduled/started/completed, its completion."""
    from temporalio.api.enums.v1 import EventType

    client = await Client.connect(address)
    seen: dict[str, list[float]] = {}
    handles = []
    async for wf in client.list_workflows(limit=limit):
        handles.append(client.get_workflow_handle(wf.id, run_id=wf.run_id))
    gate = asyncio.Semaphore(16)

    async def one(handle: Any) -> None:
        async with gate:
            history = await handle.fetch_history()
        first: dict[str, float] = {}
        for event in history.events:
            name = _STAGES.get(EventType.Name(event.event_type))
            if name is not None and name not in first:
                first[name] = event.event_time.ToDatetime(tzinfo=UTC).timestamp() - fire_ts
        for name, t in first.items():
            seen.setdefault(name, []).append(t)

    await asyncio.gather(*(one(h) for h in handles))
    return {
        f"{name}_p50_s": round(percentile(seen[name], 50), 3)
        for name in _STAGES.values()
        if name in seen
    }


def run_raw(
    n: int,
    workers: int,
    concurrency: int,
    lead: float,
    address: str | None = None,
    fairness_tenants: int = 0,
) -> dict[str, Any]:
    """One baseline burst; starts its own dev server unless ``address`` is given."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if address is None:
            address = stack.enter_context(temporal_dev_server(Path(tmp)))
        out = Path(tmp) / "arrivals.jsonl"
        # the next whole minute at least `lead` seconds (plus arming time) away, as bench.burst
        ahead = datetime.fromtimestamp(time.time() + lead + n / 50, UTC)
        fire_at = (ahead + timedelta(minutes=1)).replace(second=0, microsecond=0)
        asyncio.run(arm(address, n, fire_at, fairness_tenants))
        env = dict(os.environ)
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.temporal_raw",
                    "--worker",
                    address,
                    str(out),
                    "--concurrency",
                    str(concurrency),
                ],
                env=env,
            )
            for _ in range(workers)
        ]
        arrivals: list[dict[str, Any]] = []
        meter = CpuMeter()  # as bench.burst: from the fire on, per process group
        metering = False
        cpu: dict[str, float] = {}
        try:
            deadline = fire_at.timestamp() + 300
            while time.time() < deadline:
                time.sleep(0.2)
                if not metering and time.time() >= fire_at.timestamp() - 1:
                    meter.start()
                    metering = True
                elif metering:
                    meter.update()
                if out.exists():
                    lines = out.read_text().splitlines()
                    if len(lines) >= n:
                        break
            cpu = meter.read() if metering else {}
            cpu.update(asyncio.run(history_stages(address, fire_at.timestamp(), n)))
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
        if out.exists():
            arrivals = [json.loads(line) for line in out.read_text().splitlines() if line]
    scheduled = fire_at.timestamp()
    lags = [a["t"] - scheduled for a in arrivals]
    keys = [(a["schedule_id"], a["scheduled_for"]) for a in arrivals]
    first = min((a["t"] for a in arrivals), default=scheduled)
    last = max((a["t"] for a in arrivals), default=scheduled)
    per_second = Counter(int(a["t"] - scheduled) for a in arrivals)
    return {
        "backend": "raw-temporal",
        "n": n,
        "workers": workers,
        "concurrency": concurrency,
        "fairness_tenants": fairness_tenants,
        "delivered": len(set(keys)),
        "calls": len(arrivals),
        "duplicates": len(keys) - len(set(keys)),
        "lag_first_s": min(lags, default=float("nan")),
        "lag_p50_s": percentile(lags, 50),
        "lag_p95_s": percentile(lags, 95),
        "lag_p99_s": percentile(lags, 99),
        "lag_max_s": max(lags, default=float("nan")),
        "peak_calls_1s": max(per_second.values(), default=0),
        "drain_s": last - scheduled,
        "calls_per_s": len(arrivals) / max(1e-9, last - first),
        **cpu,
        "temporal_dev_server": temporal_dev_server_config(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("ADDRESS", "OUT_FILE"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--lead", type=float, default=5.0)
    ap.add_argument(
        "--fairness-tenants",
        type=int,
        default=0,
        metavar="T",
        help="give the schedules fairness keys of T tenants (extsched's bench uses 20)",
    )
    args = ap.parse_args()
    if args.worker:
        # The sandbox validates workflows by importing their module: use the importable copy,
        # not ``__main__``.
        from bench import temporal_raw

        asyncio.run(temporal_raw.worker_main(args.worker[0], args.worker[1], args.concurrency))
        return
    result = run_raw(
        args.n, args.workers, args.concurrency, args.lead, fairness_tenants=args.fairness_tenants
    )
    for key, value in result.items():
        if not isinstance(value, dict):
            print(f"{key:>16} {value:,.3f}" if isinstance(value, float) else f"{key:>16} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
