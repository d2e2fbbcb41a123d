"""Run statuses shared by the worker, the Runner client and the API."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from extsched.errors import ValidationFailed

E = TypeVar("E", bound=enum.StrEnum)


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


@dataclass(frozen=True)
class RunFilter:
    """What a run listing keeps (SPEC §5): any of the statuses and triggers, ``scheduled_for``
    in ``[since, until)``, one schedule or one extension. ``None`` keeps everything."""

    statuses: tuple[RunStatus, ...] | None = None
    triggers: tuple[Trigger, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    schedule_id: uuid.UUID | None = None
    extension_id: uuid.UUID | None = None

    @classmethod
    def parse(
        cls,
        *,
        status: str | None = None,
        trigger: str | None = None,
        since: str | None = None,
        until: str | None = None,
        schedule_id: str | uuid.UUID | None = None,
        extension_id: str | uuid.UUID | None = None,
    ) -> RunFilter:
        """The filter of a listing's query string; every bad value is a field error (422)."""
        errors: dict[str, str] = {}
        statuses = _enum_list(RunStatus, "status", status, errors)
        triggers = _enum_list(Trigger, "trigger", trigger, errors)
        lower = _instant("since", since, errors)
        upper = _instant("until", until, errors)
        if lower is not None and upper is not None and upper <= lower:
            errors["until"] = "must be later than since"
        ids = {
            name: _uuid(name, value, errors)
            for name, value in (("schedule_id", schedule_id), ("extension_id", extension_id))
        }
        if errors:
            first = next(iter(errors.items()))
            raise ValidationFailed(f"{first[0]}: {first[1]}", field_errors=errors)
        return cls(statuses, triggers, lower, upper, ids["schedule_id"], ids["extension_id"])

    @property
    def is_empty(self) -> bool:
        return self == RunFilter()


def _enum_list(
    kind: type[E], field: str, raw: str | None, errors: dict[str, str]
) -> tuple[E, ...] | None:
    """Comma-separated enum values, deduplicated in the order given; empty means no filter."""
    if raw is None or not raw.strip():
        return None
    values: list[E] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue  # "failed," and "failed,,skipped" mean what they obviously mean
        try:
            value = kind(part)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            errors[field] = f"unknown value {part[:40]!r}; use comma-separated values of: {allowed}"
            return None
        if value not in values:
            values.append(value)
    return tuple(values) or None


# RFC 3339 date-time (seconds and fraction optional, as people type them); datetime.fromisoformat
# alone also takes week dates, missing separators and stray characters.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


def _instant(field: str, raw: str | None, errors: dict[str, str]) -> datetime | None:
    """An RFC 3339 instant with its offset (``Z`` or ``+hh:mm``), as UTC."""
    if raw is None or not raw.strip():
        return None
    if not _RFC3339.fullmatch(raw.strip()):
        errors[field] = "must be an RFC 3339 time such as 2026-11-30T00:00:00Z"
        return None
    try:
        value = datetime.fromisoformat(raw.strip().upper())  # RFC 3339 allows "t" and "z"
    except ValueError:
        errors[field] = "must be an RFC 3339 time such as 2026-11-30T00:00:00Z"
        return None
    if value.tzinfo is None:
        errors[field] = "must include a UTC offset (Z or +hh:mm)"
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the last representable instant
        errors[field] = "is out of range"
        return None


def _uuid(field: str, raw: str | uuid.UUID | None, errors: dict[str, str]) -> uuid.UUID | None:
    if raw is None or isinstance(raw, uuid.UUID):
        return raw
    if not raw.strip():
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        errors[field] = "must be a UUID"
        return None
