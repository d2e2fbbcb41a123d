"""Fires, the minimum gap, zones, validation and preview — everything but DST, which has
its own file (test_cron_dst.py)."""

from __future__ import annotations

import time
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extsched.domain.cron import (
    CronError,
    DstChoice,
    Fire,
    iter_fires,
    load_zone,
    min_gap_seconds,
    next_fire,
    next_fires,
    parse_cron,
    preview,
    upcoming,
    upcoming_runs,
    validate_schedule,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
UTC_ZONE = load_zone("UTC")


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(cron: str, after: datetime, count: int = 5, zone: str = "UTC") -> list[datetime]:
    return [f.at for f in next_fires(parse_cron(cron), load_zone(zone), after, count)]


class TestFires:
    def test_it_fires_strictly_after_the_given_instant(self) -> None:
        assert fires("0 * * * *", at(2026, 1, 1, 10), 2) == [at(2026, 1, 1, 11), at(2026, 1, 1, 12)]
        just_before = at(2026, 1, 1, 10) - timedelta(microseconds=1)
        assert fires("0 * * * *", just_before, 1) == [at(2026, 1, 1, 10)]

    def test_it_returns_aware_utc_and_local_times_without_notes(self) -> None:
        (fire,) = next_fires(parse_cron("30 9 * * *"), load_zone("Europe/Paris"), NOW, 1)
        assert fire == Fire(
            at=at(2026, 1, 1, 8, 30),
            local=datetime(2026, 1, 1, 9, 30, tzinfo=load_zone("Europe/Paris")),
            note=None,
        )
        assert fire.at.tzinfo is UTC
        assert fire.local.isoformat() == "2026-01-01T09:30:00+01:00"

    def test_it_accepts_after_in_any_zone(self) -> None:
        after = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))  # 00:00 UTC
        assert fires("0 * * * *", after, 1) == [at(2026, 1, 1, 1)]

    def test_it_refuses_a_naive_after(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            next_fires(parse_cron("* * * * *"), UTC_ZONE, datetime(2026, 1, 1), 1)

    def test_it_combines_steps_ranges_and_lists(self) -> None:
        assert fires("10-30/10 9,17 * * *", NOW, 7) == [
            at(2026, 1, 1, 9, 10),
            at(2026, 1, 1, 9, 20),
            at(2026, 1, 1, 9, 30),
            at(2026, 1, 1, 17, 10),
            at(2026, 1, 1, 17, 20),
            at(2026, 1, 1, 17, 30),
            at(2026, 1, 2, 9, 10),
        ]

    def test_it_restricts_weekdays_by_number_and_name(self) -> None:
        # 2026-01-01 is a Thursday.
        expected = [at(2026, 1, 1, 9), at(2026, 1, 2, 9), at(2026, 1, 5, 9)]
        assert fires("0 9 * * 1-5", NOW, 3) == expected
        assert fires("0 9 * * MON-FRI", NOW, 3) == expected
        assert fires("0 9 * * 0,7", NOW, 2) == [at(2026, 1, 4, 9), at(2026, 1, 11, 9)]

    def test_it_restricts_months_by_name(self) -> None:
        assert fires("0 0 1 jun,DEC *", NOW, 3) == [
            at(2026, 6, 1),
            at(2026, 12, 1),
            at(2027, 6, 1),
        ]

    def test_it_skips_months_without_the_day(self) -> None:
        assert fires("0 0 31 * *", NOW, 4) == [
            at(2026, 1, 31),
            at(2026, 3, 31),
            at(2026, 5, 31),
            at(2026, 7, 31),
        ]

    def test_it_rolls_over_hours_days_months_and_years(self) -> None:
        after = at(2026, 12, 31, 23, 59, 30)
        assert fires("* * * * *", after, 1) == [at(2027, 1, 1, 0, 0)]
        assert fires("0 0 * * *", at(2026, 2, 28, 0, 0, 1), 1) == [at(2026, 3, 1)]

    def test_it_fires_on_leap_days_only_in_leap_years(self) -> None:
        assert fires("0 0 29 2 *", NOW, 3) == [at(2028, 2, 29), at(2032, 2, 29), at(2036, 2, 29)]

    def test_it_ends_the_iteration_for_impossible_dates(self) -> None:
        for cron in ("0 0 31 2 *", "*/5 * 30 2 *", "0 0 31 4,6,9,11 *"):
            assert list(iter_fires(parse_cron(cron), UTC_ZONE, NOW)) == []
            assert next_fire(parse_cron(cron), UTC_ZONE, NOW) is None

    def test_it_reports_no_next_fire_beyond_five_years(self) -> None:
        # 2100 is not a leap year: after 29 February 2096 the next is 2104.
        expr = parse_cron("0 0 29 2 *")
        after = at(2096, 3, 1)
        assert next_fire(expr, UTC_ZONE, after) is None
        assert [f.at for f in islice(iter_fires(expr, UTC_ZONE, after), 1)] == [at(2104, 2, 29)]
        assert next_fire(expr, UTC_ZONE, at(2027, 1, 1)) == Fire(
            at(2028, 2, 29), at(2028, 2, 29).astimezone(UTC_ZONE), None
        )

    def test_it_counts_fires(self) -> None:
        assert len(next_fires(parse_cron("*/5 * * * *"), UTC_ZONE, NOW, 12)) == 12
        assert next_fires(parse_cron("*/5 * * * *"), UTC_ZONE, NOW, 0) == []

    def test_it_makes_immutable_fires(self) -> None:
        fire = next_fires(parse_cron("0 0 * * *"), UTC_ZONE, NOW, 1)[0]
        with pytest.raises(FrozenInstanceError):
            fire.note = "x"  # type: ignore[misc]

    def test_it_converts_fixed_offsets_of_30_and_45_minutes(self) -> None:
        assert fires("0 9 * * *", NOW, 1, "Asia/Kolkata") == [at(2026, 1, 1, 3, 30)]
        assert fires("0 9 * * *", NOW, 1, "Asia/Kathmandu") == [at(2026, 1, 1, 3, 15)]
        assert fires("0 9 * * *", NOW, 1, "Pacific/Chatham") == [at(2026, 1, 1, 19, 15)]


class TestMinGap:
    @pytest.mark.parametrize(
        "cron",
        ["* * * * *", "0-59 * * * *", "* * * * 1-5", "*/1 * * * *", "0,1 * * * *", "* 3 * * *"],
    )
    def test_it_finds_every_minute_however_it_is_written(self, cron: str) -> None:
        assert min_gap_seconds(parse_cron(cron), UTC_ZONE, NOW) == 60

    @pytest.mark.parametrize(
        ("cron", "gap"),
        [
            ("*/5 * * * *", 300),
            ("*/7 * * * *", 240),  # :56 -> :00
            ("0,45 * * * *", 900),
            ("0 * * * *", 3600),
            ("0 0,23 * * *", 3600),  # 23:00 -> 00:00 the next day
            ("0 9 * * *", 86400),
            ("0 9 * * 1-5", 86400),
            ("0 9 * * 1,4", 3 * 86400),
            ("0 0 1 * *", 28 * 86400),
            ("0 0 1 1 *", 365 * 86400),
        ],
    )
    def test_it_computes_the_smallest_gap_in_utc(self, cron: str, gap: int) -> None:
        assert min_gap_seconds(parse_cron(cron), UTC_ZONE, NOW) == gap

    def test_it_returns_none_for_fewer_than_two_fires(self) -> None:
        assert min_gap_seconds(parse_cron("0 0 31 2 *"), UTC_ZONE, NOW) is None
        assert min_gap_seconds(parse_cron("0 0 29 2 *"), UTC_ZONE, NOW) is None  # 2028 only
        assert min_gap_seconds(parse_cron("0 0 * * *"), UTC_ZONE, NOW, horizon_days=0) is None

    def test_it_includes_both_ends_of_the_horizon(self) -> None:
        assert min_gap_seconds(parse_cron("0 0 * * *"), UTC_ZONE, NOW, horizon_days=1) == 86400

    def test_it_only_looks_inside_the_horizon(self) -> None:
        # The first fires are 31 January 00:00 and 23:00.
        expr = parse_cron("0 0,23 31 * *")
        assert min_gap_seconds(expr, UTC_ZONE, NOW, horizon_days=20) is None
        assert min_gap_seconds(expr, UTC_ZONE, NOW, horizon_days=30) is None  # 00:00 only
        assert min_gap_seconds(expr, UTC_ZONE, NOW, horizon_days=31) == 23 * 3600

    def test_it_is_fast_enough_for_every_api_call(self) -> None:
        expr, zone = parse_cron("* * * * *"), load_zone("Australia/Lord_Howe")
        min_gap_seconds(expr, zone, NOW)  # warm the zone's transition table
        started = time.perf_counter()
        min_gap_seconds(expr, zone, NOW)
        assert time.perf_counter() - started < 0.5  # typically ~10 ms


class TestZones:
    @pytest.mark.parametrize(
        "name",
        ["UTC", "Etc/UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"],
    )
    def test_it_loads_iana_names(self, name: str) -> None:
        assert load_zone(name).key == name

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("", "unknown time zone ''"),
            ("Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
            ("europe/paris", "unknown time zone 'europe/paris' (did you mean 'Europe/Paris'?)"),
            ("utc", "unknown time zone 'utc' (did you mean 'UTC'?)"),
            ("/etc/localtime", "unknown time zone '/etc/localtime'"),
            ("../../etc/passwd", "unknown time zone '../../etc/passwd'"),
            ("Europe/../Europe/Paris", "unknown time zone 'Europe/../Europe/Paris'"),
            ("localtime", "unknown time zone 'localtime'"),
            ("Factory", "unknown time zone 'Factory'"),
            (" UTC", "unknown time zone ' UTC'"),
            ("Europe/Paris\n", "unknown time zone 'Europe/Paris\n'"),
            ("A" * 100, f"unknown time zone '{'A' * 61}...'"),
        ],
    )
    def test_it_refuses_anything_else(self, name: str, message: str) -> None:
        with pytest.raises(CronError) as caught:
            load_zone(name)
        assert str(caught.value) == message
        assert caught.value.field == "timezone"


class TestValidateSchedule:
    def validate(self, cron: object, tz: object = "UTC", minimum: int = 300) -> dict[str, str]:
        return validate_schedule(cron, tz, min_interval_seconds=minimum, now=NOW)  # type: ignore[arg-type]

    def test_it_accepts_a_valid_schedule(self) -> None:
        assert self.validate("30 9 * * 1-5", "Europe/Paris") == {}
        assert self.validate("*/5 * * * *") == {}

    def test_it_reports_cron_and_timezone_errors_together(self) -> None:
        assert self.validate("61 * * * *", "Nowhere/Land") == {
            "cron": "minute: 61 is out of range 0-59",
            "timezone": "unknown time zone 'Nowhere/Land'",
        }

    def test_it_reports_inputs_of_the_wrong_type(self) -> None:
        assert self.validate(None, None) == {"cron": "cron: required", "timezone": "required"}
        assert self.validate(5, ["UTC"]) == {
            "cron": "cron: must be a string",
            "timezone": "must be a string",
        }

    def test_it_refuses_a_schedule_that_never_fires(self) -> None:
        assert self.validate("0 0 31 2 *") == {"cron": "cron: never fires in the next 5 years"}
        late = validate_schedule("0 0 29 2 *", "UTC", min_interval_seconds=300, now=at(2096, 3, 1))
        assert late == {"cron": "cron: never fires in the next 5 years"}

    @pytest.mark.parametrize(
        "cron", ["* * * * *", "0-59 * * * *", "* * * * 1-5", "*/1 * * * *", "0,1 * * * *"]
    )
    def test_it_refuses_every_minute_however_it_is_written(self, cron: str) -> None:
        assert self.validate(cron) == {
            "cron": "cron: fires as often as every 60 s; the minimum interval is 300 s"
        }

    def test_it_compares_the_gap_with_the_configured_minimum(self) -> None:
        assert self.validate("*/4 * * * *") == {
            "cron": "cron: fires as often as every 240 s; the minimum interval is 300 s"
        }
        assert self.validate("*/4 * * * *", minimum=240) == {}
        assert self.validate("0 * * * *", minimum=3601) == {
            "cron": "cron: fires as often as every 3600 s; the minimum interval is 3601 s"
        }

    def test_it_names_the_dst_change_when_only_that_makes_fires_too_close(self) -> None:
        # Twice a day, 12 h apart, except when 02:30 repeats at the end of DST.
        assert self.validate("30 2,14 * * *", "Europe/Paris", minimum=7200) == {
            "cron": "cron: fires as often as every 3600 s around the DST change on 2026-10-25; "
            "the minimum interval is 7200 s"
        }

    def test_it_is_fast_enough_for_keystroke_validation(self) -> None:
        self.validate("*/5 * * * *", "America/New_York")
        started = time.perf_counter()
        for cron in ("*/5 * * * *", "30 9 * * 1-5", "0 0 1 * *", "* * * * *"):
            self.validate(cron, "America/New_York")
        assert time.perf_counter() - started < 1.0  # typically ~15 ms for all four


class TestPreview:
    def test_it_describes_and_lists_the_next_fires(self) -> None:
        description, fires = preview("30 9 * * 1-5", "Europe/Paris", 3, NOW)
        assert description == "At 09:30, Monday through Friday"
        assert [f.local.isoformat() for f in fires] == [
            "2026-01-01T09:30:00+01:00",
            "2026-01-02T09:30:00+01:00",
            "2026-01-05T09:30:00+01:00",
        ]

    def test_it_raises_with_the_field_at_fault(self) -> None:
        cases = [
            ("* * *", "UTC", 5, "cron"),
            ("0 0 31 2 *", "UTC", 5, "cron"),
            ("* * * * *", "Nowhere/Land", 5, "timezone"),
            ("* * * * *", "UTC", 0, "count"),
            ("* * * * *", "UTC", 101, "count"),
        ]
        for cron, tz, count, field in cases:
            with pytest.raises(CronError) as caught:
                preview(cron, tz, count, NOW)
            assert caught.value.field == field, (cron, tz, count)

    def test_it_does_not_apply_the_minimum_interval(self) -> None:
        description, fires = preview("* * * * *", "UTC", 2, NOW)
        assert description == "Every minute"
        assert [f.at for f in fires] == [at(2026, 1, 1, 0, 1), at(2026, 1, 1, 0, 2)]


def test_it_computes_five_fires_in_well_under_a_millisecond() -> None:
    expr, zone = parse_cron("30 9 * * 1-5"), load_zone("Europe/Paris")
    next_fires(expr, zone, NOW, 5)
    started = time.perf_counter()
    for _ in range(200):
        next_fires(expr, zone, NOW, 5)
    assert (time.perf_counter() - started) / 200 < 0.002  # typically ~0.1 ms


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["*/7 * * * *", "30 9 * * 1-5", "0 2 * * *", "30 2 * * 0", "0 0 29 2 *"]),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]),
    st.sampled_from([("shift", "first"), ("skip", "both"), ("shift", "last")]),
    st.lists(st.integers(0, 3 * 366 * 86400 * 10**6), min_size=1, max_size=12),
)
def test_the_memoized_upcoming_fires_equal_a_fresh_computation(
    text: str, zone_name: str, choice: tuple[str, str], offsets_us: list[int]
) -> None:
    # upcoming and upcoming_runs keep the last answer per schedule while it holds; asked in
    # any order (forwards, backwards, within and across fires) they answer like the engine.
    dst = DstChoice.of(*choice)
    expr, zone = parse_cron(text), ZoneInfo(zone_name)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    asked: list[datetime] = []
    for offset in offsets_us:
        after = base + timedelta(microseconds=offset)
        first = next_fire(expr, zone, after, dst=dst)
        # and just before and exactly at the fire the answer was kept until
        edges = [] if first is None else [first.at - timedelta(microseconds=1), first.at]
        asked += [after, *edges]
    for after in asked:
        assert upcoming(text, zone_name, after, dst=dst) == next_fire(expr, zone, after, dst=dst)
        fresh = next_fires(expr, zone, after, 5, dst=dst)
        assert list(upcoming_runs(text, zone_name, after, 5, dst=dst)) == fresh
