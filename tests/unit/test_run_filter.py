"""RunFilter.parse: the run listings' query string (SPEC §5) into a filter, or field errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from extsched.domain.runs import RunFilter, RunStatus, Trigger
from extsched.errors import ValidationFailed


def test_it_reads_comma_separated_values_in_order_once() -> None:
    f = RunFilter.parse(status="failed, timed_out,failed,", trigger="replay,,run_now")
    assert f.statuses == (RunStatus.FAILED, RunStatus.TIMED_OUT)
    assert f.triggers == (Trigger.REPLAY, Trigger.RUN_NOW)


def test_empty_values_are_no_filter() -> None:
    assert RunFilter.parse(status="", trigger=",", since=" ", schedule_id="").is_empty


@pytest.mark.parametrize(
    ("raw", "utc"),
    [
        ("2026-11-30T09:00:00Z", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30T10:00:00+01:00", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30 09:00Z", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30t09:00:00.250z", datetime(2026, 11, 30, 9, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times_are_rfc3339_instants_read_as_utc(raw: str, utc: datetime) -> None:
    assert RunFilter.parse(since=raw).since == utc


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"status": "done"}, "status", "unknown value 'done'"),
        ({"trigger": "cron"}, "trigger", "schedule, run_now, replay"),
        ({"since": "2026-11-30T09:00:00"}, "since", "UTC offset"),
        ({"since": "2026-11-30"}, "since", "RFC 3339"),
        ({"since": "2026-W48-1T09:00Z"}, "since", "RFC 3339"),
        ({"since": "2026-11-30T09:00:00\x00Z"}, "since", "RFC 3339"),
        ({"until": "2026-02-30T09:00:00Z"}, "until", "RFC 3339"),
        ({"until": "9999-12-31T23:00:00-05:00"}, "until", "out of range"),
        ({"since": "2026-12-01T00:00Z", "until": "2026-12-01T00:00Z"}, "until", "later than"),
        ({"schedule_id": "nope"}, "schedule_id", "UUID"),
    ],
)
def test_bad_values_are_field_errors(kwargs: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        RunFilter.parse(**kwargs)
    assert message in (caught.value.field_errors or {})[field]


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        RunFilter.parse(status="x", trigger="y", since="z", extension_id="w")
    assert set(caught.value.field_errors or {}) == {"status", "trigger", "since", "extension_id"}


def test_ids_are_kept() -> None:
    sid = uuid.uuid4()
    assert RunFilter.parse(schedule_id=str(sid), extension_id=sid).schedule_id == sid
