"""SPEC §8 DST choices of fixed-time schedules, one class per zone, with the transition
instants in a comment: ``dst_gap`` (``shift``: fire at the first instant after the jump;
``skip``: not that day) and ``dst_repeat`` (``first``, ``last`` or ``both`` occurrences of a
repeated wall time). Other schedules follow real time whatever the choice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from extsched.domain.cron import (
    DEFAULT_DST,
    CronError,
    DstChoice,
    dst_fires,
    load_zone,
    min_gap_seconds,
    next_fire,
    next_fires,
    parse_cron,
    preview,
    upcoming,
    validate_dst,
    validate_schedule,
)

Row = tuple[str, str, str | None]


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def run(cron: str, zone: str, after: datetime, count: int, gap: str, repeat: str) -> list[Row]:
    """(UTC instant, local time, note) of the next fires with a DST choice."""
    fires = next_fires(
        parse_cron(cron), load_zone(zone), after, count, dst=DstChoice.of(gap, repeat)
    )
    return [(f.at.strftime("%Y-%m-%d %H:%M"), f.local.isoformat(), f.note) for f in fires]


def affected(cron: str, zone: str, after: datetime, gap: str, repeat: str) -> list[Row]:
    """``dst_fires`` as readable rows (a dropped fire's local time has no offset)."""
    fires = dst_fires(parse_cron(cron), load_zone(zone), after, DstChoice.of(gap, repeat))
    return [(f.at.strftime("%Y-%m-%d %H:%M"), f.local.isoformat(), f.note) for f in fires]


def first(hhmm: str) -> str:
    return f"repeated {hhmm}, first occurrence (DST ends)"


def second(hhmm: str) -> str:
    return f"repeated {hhmm}, second occurrence (DST ends)"


def dropped(hhmm: str) -> str:
    return f"dropped: {hhmm} does not exist that day (skipped by DST change)"


class TestEuropeParis:
    # 2026-03-29 01:00Z: 02:00 CET (+01:00) -> 03:00 CEST (+02:00); 02:00-02:59 never happens.
    # 2026-10-25 01:00Z: 03:00 CEST (+02:00) -> 02:00 CET (+01:00); 02:00-02:59 happens twice.

    def test_it_skips_the_day_whose_wall_time_does_not_exist(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 3, 28, 12), 2, "skip", "first") == [
            ("2026-03-30 00:30", "2026-03-30T02:30:00+02:00", None),
            ("2026-03-31 00:30", "2026-03-31T02:30:00+02:00", None),
        ]

    def test_it_still_shifts_by_default(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 3, 28, 12), 1, "shift", "first") == [
            (
                "2026-03-29 01:00",
                "2026-03-29T03:00:00+02:00",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]

    def test_it_fires_the_second_occurrence_only(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 10, 24, 12), 2, "shift", "last") == [
            ("2026-10-25 01:30", "2026-10-25T02:30:00+01:00", second("02:30")),
            ("2026-10-26 01:30", "2026-10-26T02:30:00+01:00", None),
        ]

    def test_it_fires_both_occurrences(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 10, 24, 12), 3, "shift", "both") == [
            ("2026-10-25 00:30", "2026-10-25T02:30:00+02:00", first("02:30")),
            ("2026-10-25 01:30", "2026-10-25T02:30:00+01:00", second("02:30")),
            ("2026-10-26 01:30", "2026-10-26T02:30:00+01:00", None),
        ]

    def test_it_finds_the_second_occurrence_whenever_it_starts_looking(self) -> None:
        # After the first 02:30 (wall clock already past it), before the change, inside the
        # second pass before its 02:30: the second occurrence is still ahead.
        for after in (at(2026, 10, 25, 0, 30), at(2026, 10, 25, 0, 59), at(2026, 10, 25, 1, 10)):
            got = run("30 2 * * *", "Europe/Paris", after, 1, "shift", "last")
            assert got[0][0] == "2026-10-25 01:30", after
            got = run("30 2 * * *", "Europe/Paris", after, 1, "skip", "both")
            assert got[0][0] == "2026-10-25 01:30", after
        # At the second occurrence itself: the next day.
        got = run("30 2 * * *", "Europe/Paris", at(2026, 10, 25, 1, 30), 1, "shift", "both")
        assert got[0][0] == "2026-10-26 01:30"

    def test_it_ignores_the_choice_for_real_time_schedules(self) -> None:
        for cron in ("*/30 2 * * *", "30 1-3 * * *", "0 * * * *"):
            for gap, repeat in (("skip", "last"), ("shift", "both")):
                got = run(cron, "Europe/Paris", at(2026, 10, 24, 20), 8, gap, repeat)
                assert got == run(cron, "Europe/Paris", at(2026, 10, 24, 20), 8, "shift", "first")

    def test_it_counts_both_occurrences_in_the_minimum_gap(self) -> None:
        expr, zone = parse_cron("30 2 * * *"), load_zone("Europe/Paris")
        both = DstChoice.of("shift", "both")
        assert min_gap_seconds(expr, zone, at(2026, 10, 20), 10, dst=both) == 3600
        assert min_gap_seconds(expr, zone, at(2026, 10, 20), 10) == 86400
        # Skipping the moved fire of March leaves whole days.
        skip = DstChoice.of("skip", "first")
        assert min_gap_seconds(expr, zone, at(2026, 3, 25), 10, dst=skip) == 86400

    def test_it_lists_the_fires_dst_moves_drops_or_doubles(self) -> None:
        assert affected("30 2 * * *", "Europe/Paris", at(2026, 1, 1), "skip", "both") == [
            ("2026-03-29 01:00", "2026-03-29T02:30:00", dropped("02:30")),
            ("2026-10-25 00:30", "2026-10-25T02:30:00+02:00", first("02:30")),
            ("2026-10-25 01:30", "2026-10-25T02:30:00+01:00", second("02:30")),
        ]
        assert affected("30 2 * * *", "Europe/Paris", at(2026, 1, 1), "shift", "last") == [
            (
                "2026-03-29 01:00",
                "2026-03-29T03:00:00+02:00",
                "moved from 02:30 (skipped by DST change)",
            ),
            ("2026-10-25 01:30", "2026-10-25T02:30:00+01:00", second("02:30")),
            (
                "2027-03-28 01:00",
                "2027-03-28T03:00:00+02:00",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]

    def test_it_lists_dropped_and_second_pass_fires_of_real_time_schedules(self) -> None:
        assert affected("0 * * * *", "Europe/Paris", at(2026, 1, 1), "shift", "first") == [
            ("2026-03-29 01:00", "2026-03-29T02:00:00", dropped("02:00")),
            (
                "2026-10-25 01:00",
                "2026-10-25T02:00:00+01:00",
                "repeated 02:00, second pass (DST ends)",
            ),
            ("2027-03-28 01:00", "2027-03-28T02:00:00", dropped("02:00")),
        ]


class TestAmericaNewYork:
    # 2026-03-08 07:00Z: 02:00 EST (-05:00) -> 03:00 EDT (-04:00); 02:00-02:59 skipped.
    # 2026-11-01 06:00Z: 02:00 EDT (-04:00) -> 01:00 EST (-05:00); 01:00-01:59 twice.

    def test_it_skips_the_half_hour_that_does_not_exist(self) -> None:
        assert run("30 2 * * *", "America/New_York", at(2026, 3, 7, 12), 1, "skip", "first") == [
            ("2026-03-09 06:30", "2026-03-09T02:30:00-04:00", None),
        ]

    def test_it_fires_the_repeated_half_hour_at_the_chosen_occurrences(self) -> None:
        after = at(2026, 10, 31, 12)
        assert run("30 1 * * *", "America/New_York", after, 1, "shift", "last") == [
            ("2026-11-01 06:30", "2026-11-01T01:30:00-05:00", second("01:30")),
        ]
        assert run("30 1 * * *", "America/New_York", after, 3, "skip", "both") == [
            ("2026-11-01 05:30", "2026-11-01T01:30:00-04:00", first("01:30")),
            ("2026-11-01 06:30", "2026-11-01T01:30:00-05:00", second("01:30")),
            ("2026-11-02 06:30", "2026-11-02T01:30:00-05:00", None),
        ]


class TestAustraliaLordHowe:
    # A 30-minute DST shift.
    # 2026-04-04 15:00Z: 02:00 +11:00 -> 01:30 +10:30; 01:30-01:59 twice.
    # 2026-10-03 15:30Z: 02:00 +10:30 -> 02:30 +11:00; 02:00-02:29 skipped.

    def test_it_fires_the_repeated_quarter_at_the_chosen_occurrences(self) -> None:
        after = at(2026, 4, 4)
        assert run("45 1 * * *", "Australia/Lord_Howe", after, 1, "shift", "last") == [
            ("2026-04-04 15:15", "2026-04-05T01:45:00+10:30", second("01:45")),
        ]
        assert run("45 1 * * *", "Australia/Lord_Howe", after, 2, "shift", "both") == [
            ("2026-04-04 14:45", "2026-04-05T01:45:00+11:00", first("01:45")),
            ("2026-04-04 15:15", "2026-04-05T01:45:00+10:30", second("01:45")),
        ]

    def test_it_skips_a_time_in_the_half_hour_gap(self) -> None:
        assert run("15 2 * * *", "Australia/Lord_Howe", at(2026, 10, 3), 1, "skip", "first") == [
            ("2026-10-04 15:15", "2026-10-05T02:15:00+11:00", None),
        ]
        # 02:30 exists: not affected.
        assert run("30 2 * * *", "Australia/Lord_Howe", at(2026, 10, 3), 1, "skip", "first") == [
            ("2026-10-03 15:30", "2026-10-04T02:30:00+11:00", None),
        ]


class TestEuropeDublin:
    # Negative DST in tzdata, but the wall clock moves as in London:
    # 2026-03-29 01:00Z: 01:00 GMT -> 02:00 IST; 2026-10-25 01:00Z: 02:00 IST -> 01:00 GMT.

    def test_it_follows_the_wall_clock_for_every_choice(self) -> None:
        assert run("30 1 * * *", "Europe/Dublin", at(2026, 3, 28, 12), 1, "skip", "first") == [
            ("2026-03-30 00:30", "2026-03-30T01:30:00+01:00", None),
        ]
        assert run("30 1 * * *", "Europe/Dublin", at(2026, 10, 24, 12), 2, "skip", "both") == [
            ("2026-10-25 00:30", "2026-10-25T01:30:00+01:00", first("01:30")),
            ("2026-10-25 01:30", "2026-10-25T01:30:00+00:00", second("01:30")),
        ]


class TestAfricaCasablanca:
    # Ramadan (tzdata: negative DST from +01:00 to +00:00).
    # 2026-02-15 02:00Z: 03:00 +01:00 -> 02:00 +00:00; 02:00-02:59 twice.
    # 2026-03-22 02:00Z: 02:00 +00:00 -> 03:00 +01:00; 02:00-02:59 skipped.

    def test_it_applies_the_choices_to_both_ramadan_changes(self) -> None:
        assert run("30 2 * * *", "Africa/Casablanca", at(2026, 2, 14, 12), 1, "shift", "last") == [
            ("2026-02-15 02:30", "2026-02-15T02:30:00+00:00", second("02:30")),
        ]
        assert run("30 2 * * *", "Africa/Casablanca", at(2026, 3, 21, 12), 1, "skip", "last") == [
            ("2026-03-23 01:30", "2026-03-23T02:30:00+01:00", None),
        ]


class TestPacificApia:
    # Skipped Friday 30 December 2011: 2011-12-30 10:00Z: Thu 23:59:59 -10:00 -> Sat 00:00 +14:00.

    def test_it_drops_the_fire_of_a_skipped_day(self) -> None:
        assert run("0 12 * * *", "Pacific/Apia", at(2011, 12, 29), 2, "skip", "first") == [
            ("2011-12-29 22:00", "2011-12-29T12:00:00-10:00", None),
            ("2011-12-30 22:00", "2011-12-31T12:00:00+14:00", None),
        ]
        assert affected("0 12 * * *", "Pacific/Apia", at(2011, 12, 1), "skip", "first") == [
            ("2011-12-30 10:00", "2011-12-30T12:00:00", dropped("12:00")),
        ]


class TestChoicesAcrossTheApi:
    def test_it_refuses_choices_for_schedules_that_are_not_fixed_time(self) -> None:
        hourly = parse_cron("0 * * * *")
        assert validate_dst(hourly, "skip", "both") == {
            "dst_gap": "only for fixed-time schedules",
            "dst_repeat": "only for fixed-time schedules",
        }
        # The defaults, given explicitly, are always fine.
        assert validate_dst(hourly, "shift", "first") == {}
        assert validate_dst(parse_cron("0-0 2 * * *"), "skip", "last") == {}

    def test_it_refuses_unknown_values(self) -> None:
        assert validate_dst(parse_cron("30 2 * * *"), "later", 3) == {
            "dst_gap": "must be one of shift, skip",
            "dst_repeat": "must be one of first, last, both",
        }
        assert validate_dst(None, "SKIP", None) == {"dst_gap": "must be one of shift, skip"}

    def test_it_previews_with_the_choice(self) -> None:
        _, fires = preview(
            "30 2 * * *", "Europe/Paris", 2, at(2026, 3, 28, 12), dst=DstChoice.of("skip", None)
        )
        assert [f.at for f in fires] == [at(2026, 3, 30, 0, 30), at(2026, 3, 31, 0, 30)]
        with pytest.raises(CronError) as caught:
            preview("0 * * * *", "UTC", 2, at(2026, 1, 1), dst=DstChoice.of(None, "both"))
        assert caught.value.field == "dst_repeat"

    def test_it_memoizes_next_fires_per_choice(self) -> None:
        after = at(2026, 10, 24, 12)
        default = upcoming("30 2 * * *", "Europe/Paris", after)
        last = upcoming("30 2 * * *", "Europe/Paris", after, dst=DstChoice.of("shift", "last"))
        assert default is not None and default.at == at(2026, 10, 25, 0, 30)
        assert last is not None and last.at == at(2026, 10, 25, 1, 30)

    def test_it_validates_the_minimum_interval_with_the_choice(self) -> None:
        both = DstChoice.of("shift", "both")
        errors = validate_schedule(
            "30 2 * * *", "Europe/Paris", min_interval_seconds=7200, now=at(2026, 10, 1), dst=both
        )
        assert errors == {
            "cron": "cron: fires as often as every 3600 s around the DST change on "
            "2026-10-25; the minimum interval is 7200 s"
        }
        assert DstChoice.of(None, None) == DEFAULT_DST

    def test_it_skips_a_yearly_fire_to_the_next_year_where_it_exists(self) -> None:
        # 29 March 02:30 in Paris: exists in years without a change that day.
        expr, zone = parse_cron("30 2 29 3 *"), load_zone("Europe/Paris")
        skip = DstChoice.of("skip", None)
        fire = next_fire(expr, zone, at(2026, 1, 1), dst=skip)
        assert fire is not None and fire.at == at(2027, 3, 29, 0, 30)
        assert next_fire(expr, zone, at(2026, 1, 1)) == next_fires(expr, zone, at(2026, 1, 1), 1)[0]
        assert fire.at - at(2026, 1, 1) < timedelta(days=366 * 2)
