"""Run statuses shared by the worker, the Runner client and the API."""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """Lifecycle of a run; the last four are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        """True once the run will not change status again."""
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)
