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


class Trigger(enum.StrEnum):
    """What made a run: its schedule firing, a user's run-now, or a replay of an earlier run."""

    SCHEDULE = "schedule"
    RUN_NOW = "run_now"
    REPLAY = "replay"


class SkipReason(enum.StrEnum):
    """Why a run was recorded as ``skipped`` without calling the Runner."""

    OVERLAP = "overlap"
    MISSED = "missed"
    SCHEDULE_DISABLED = "schedule_disabled"
    INSTALL_DISABLED = "install_disabled"
    KILL_SWITCH = "kill_switch"
    DST_REPEAT = "dst_repeat"


class DisabledReason(enum.StrEnum):
    """Why the system (not a user) disabled a schedule."""

    ENDPOINT_MISSING = "endpoint_missing"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    INVALID = "invalid"
