"""Names and payloads shared by the backend, the workflow and the activity.

Kept free of heavy imports: the workflow sandbox loads this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio.common import Priority

WORKFLOW = "extsched.run"
ACTIVITY = "extsched.attempt"


def fair_share(tenant_id: str) -> Priority:
    """The fair share on Temporal: one fairness key per tenant, so the matching service
    dispatches the task queue's backlog round-robin across tenants with waiting tasks (one
    tenant alone gets every poll), as the postgres claim does (``runs_claim``). Needs
    ``matching.enableFairness`` on the server (docs/temporal.md); without it the key is
    ignored and tasks go first in, first out."""
    return Priority(fairness_key=tenant_id)


@dataclass(frozen=True)
class RunInput:
    """The workflow's argument.

    A schedule's action carries everything but ``run_id`` (the fire time is Temporal's
    scheduled start time); run-now passes the id of the run row it already queued. ``cron``,
    ``timezone`` and the DST choice (empty: the default) are the spec that delivered the
    fire, for the DST check.
    """

    tenant_id: str
    install_id: str
    schedule_id: str
    cron: str = ""
    timezone: str = ""
    run_id: str | None = None
    # Longer than an attempt's lease (Runner timeout + grace), so a retried activity finds
    # the lost attempt's lease lapsed.
    attempt_timeout_seconds: float = 120.0
    # The schedule's jitter (SPEC §8): the run waits this fire's fixed offset before it starts.
    jitter_seconds: int = 0
    dst_gap: str = ""
    dst_repeat: str = ""


@dataclass(frozen=True)
class AttemptInput:
    request: RunInput
    scheduled_for: datetime | None  # the fire time (scheduled runs); None for run-now
    run_id: str | None  # set once the run row exists (run-now, or after a retry)


@dataclass(frozen=True)
class AttemptOutcome:
    """``retry_at`` set: the run is queued again; the workflow sleeps and calls back."""

    run_id: str | None
    retry_at: datetime | None = None
