"""SPEC §8 daylight-saving rules, one class per zone or topic, with the transition instants in
a comment. Fixed-time schedules (one minute, one hour) fire once per day: a skipped wall time
moves to the first instant after the jump, a repeated one fires at its first occurrence.
Everything else follows real time: both passes of a repeated hour fire, skipped times don't.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from extsched.domain.cron import (
    iter_fires,
    load_zone,
    min_gap_seconds,
    next_fires,
    parse_cron,
    validate_schedule,
)


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def second(hhmm: str) -> str:
    """The note of a real-time fire in the second pass of a repeated hour."""
    return f"repeated {hhmm}, second pass (DST ends)"


def run(cron: str, zone: str, after: datetime, count: int) -> list[tuple[str, str, str | None]]:
    """(UTC instant, local time, note) of the next fires, as readable strings."""
    return [
        (f.at.strftime("%Y-%m-%d %H:%M"), f.local.isoformat(), f.note)
        for f in next_fires(parse_cron(cron), load_zone(zone), after, count)
    ]


def gap(cron: str, zone: str, start: datetime, days: int = 366 * 5) -> int | None:
    return min_gap_seconds(parse_cron(cron), load_zone(zone), start, days)


class TestEuropeParisSpringForward:
    # 2026-03-29 01:00Z: 02:00 CET (+01:00) -> 03:00 CEST (+02:00); 02:00-02:59 never happens.

    def test_it_moves_a_skipped_fixed_time_to_the_first_instant_after_the_jump(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 3, 28, 12), 2) == [
            (
                "2026-03-29 01:00",
                "2026-03-29T03:00:00+02:00",
                "moved from 02:30 (skipped by DST change)",
            ),
            ("2026-03-30 00:30", "2026-03-30T02:30:00+02:00", None),
        ]

    def test_it_moves_the_start_of_the_gap_too(self) -> None:
        assert run("0 2 * * *", "Europe/Paris", at(2026, 3, 29), 1) == [
            (
                "2026-03-29 01:00",
                "2026-03-29T03:00:00+02:00",
                "moved from 02:00 (skipped by DST change)",
            ),
        ]

    def test_it_fires_the_first_minute_after_the_gap_normally(self) -> None:
        assert run("0 3 * * *", "Europe/Paris", at(2026, 3, 29), 1) == [
            ("2026-03-29 01:00", "2026-03-29T03:00:00+02:00", None),
        ]

    def test_it_moves_only_on_matching_days(self) -> None:
        # The change happens on a Sunday: a weekday schedule is not affected.
        assert run("30 2 * * 1-5", "Europe/Paris", at(2026, 3, 27, 12), 1) == [
            ("2026-03-30 00:30", "2026-03-30T02:30:00+02:00", None),
        ]
        assert run("30 2 * * SUN", "Europe/Paris", at(2026, 3, 27, 12), 1) == [
            (
                "2026-03-29 01:00",
                "2026-03-29T03:00:00+02:00",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]

    def test_it_skips_wall_times_that_do_not_exist_for_real_time_schedules(self) -> None:
        assert run("*/15 * * * *", "Europe/Paris", at(2026, 3, 29, 0, 30), 3) == [
            ("2026-03-29 00:45", "2026-03-29T01:45:00+01:00", None),
            ("2026-03-29 01:00", "2026-03-29T03:00:00+02:00", None),
            ("2026-03-29 01:15", "2026-03-29T03:15:00+02:00", None),
        ]
        # Two hours in the list: the 02:30 of that day simply does not happen.
        assert run("30 2,14 * * *", "Europe/Paris", at(2026, 3, 28, 12), 3) == [
            ("2026-03-28 13:30", "2026-03-28T14:30:00+01:00", None),
            ("2026-03-29 12:30", "2026-03-29T14:30:00+02:00", None),
            ("2026-03-30 00:30", "2026-03-30T02:30:00+02:00", None),
        ]

    def test_it_shortens_the_real_gap_of_a_moved_fire(self) -> None:
        # 28 March 02:30 CET -> 29 March 03:00 CEST is 23 h 30 min of real time.
        assert gap("30 2 * * *", "Europe/Paris", at(2026, 3, 27), 4) == 23 * 3600 + 1800


class TestEuropeParisFallBack:
    # 2026-10-25 01:00Z: 03:00 CEST (+02:00) -> 02:00 CET (+01:00); 02:00-02:59 happens twice.

    def test_it_fires_a_repeated_fixed_time_once_at_its_first_occurrence(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 10, 24, 12), 2) == [
            (
                "2026-10-25 00:30",
                "2026-10-25T02:30:00+02:00",
                "repeated 02:30 fires once (DST ends)",
            ),
            ("2026-10-26 01:30", "2026-10-26T02:30:00+01:00", None),
        ]

    def test_it_does_not_fire_the_second_pass_whenever_it_starts_looking(self) -> None:
        expected = ("2026-10-26 01:30", "2026-10-26T02:30:00+01:00", None)
        # After the first 02:30, before the change, inside the second pass, at its 02:30.
        for after in (at(2026, 10, 25, 0, 45), at(2026, 10, 25, 1, 10), at(2026, 10, 25, 1, 30)):
            assert run("30 2 * * *", "Europe/Paris", after, 1) == [expected], after

    def test_it_still_fires_the_first_pass_when_looking_just_before_it(self) -> None:
        assert run("30 2 * * *", "Europe/Paris", at(2026, 10, 25, 0, 29), 1)[0][0] == (
            "2026-10-25 00:30"
        )

    def test_it_leaves_times_outside_the_overlap_alone(self) -> None:
        assert run("30 1 * * *", "Europe/Paris", at(2026, 10, 24, 12), 1) == [
            ("2026-10-24 23:30", "2026-10-25T01:30:00+02:00", None),
        ]

    def test_it_fires_both_passes_for_real_time_schedules(self) -> None:
        assert run("*/15 * * * *", "Europe/Paris", at(2026, 10, 25, 0, 40), 6) == [
            ("2026-10-25 00:45", "2026-10-25T02:45:00+02:00", None),
            ("2026-10-25 01:00", "2026-10-25T02:00:00+01:00", second("02:00")),
            ("2026-10-25 01:15", "2026-10-25T02:15:00+01:00", second("02:15")),
            ("2026-10-25 01:30", "2026-10-25T02:30:00+01:00", second("02:30")),
            ("2026-10-25 01:45", "2026-10-25T02:45:00+01:00", second("02:45")),
            ("2026-10-25 02:00", "2026-10-25T03:00:00+01:00", None),
        ]

    def test_it_fires_an_hourly_schedule_in_both_passes(self) -> None:
        assert [f[1] for f in run("0 * * * *", "Europe/Paris", at(2026, 10, 24, 23, 30), 3)] == [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]

    def test_it_counts_the_repeated_hour_in_the_minimum_gap(self) -> None:
        # 02:30 and 14:30 are 12 h apart, except 02:30 CEST -> 02:30 CET: one hour.
        assert gap("30 2,14 * * *", "Europe/Paris", at(2026, 1, 1)) == 3600
        # The fixed-time variant fires once, so that day's real gap is 25 h.
        assert gap("30 2 * * *", "Europe/Paris", at(2026, 10, 24), 3) == 86400
        assert gap("*/15 * * * *", "Europe/Paris", at(2026, 1, 1)) == 900


class TestAmericaNewYork:
    # 2026-03-08 07:00Z: 02:00 EST (-05:00) -> 03:00 EDT (-04:00)
    # 2026-11-01 06:00Z: 02:00 EDT (-04:00) -> 01:00 EST (-05:00); 01:00-01:59 twice.

    def test_it_moves_the_skipped_half_hour(self) -> None:
        assert run("30 2 * * *", "America/New_York", at(2026, 3, 8), 1) == [
            (
                "2026-03-08 07:00",
                "2026-03-08T03:00:00-04:00",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]

    def test_it_fires_the_repeated_half_hour_once(self) -> None:
        assert run("30 1 * * *", "America/New_York", at(2026, 11, 1), 2) == [
            (
                "2026-11-01 05:30",
                "2026-11-01T01:30:00-04:00",
                "repeated 01:30 fires once (DST ends)",
            ),
            ("2026-11-02 06:30", "2026-11-02T01:30:00-05:00", None),
        ]
        assert run("30 1 * * *", "America/New_York", at(2026, 11, 1, 6, 10), 1)[0][0] == (
            "2026-11-02 06:30"
        )

    def test_it_repeats_a_list_of_minutes_in_the_repeated_hour(self) -> None:
        assert [f[0] for f in run("0,30 1 * * *", "America/New_York", at(2026, 11, 1), 4)] == [
            "2026-11-01 05:00",
            "2026-11-01 05:30",
            "2026-11-01 06:00",
            "2026-11-01 06:30",
        ]


class TestAustraliaLordHowe:
    # A 30-minute DST shift.
    # 2026-04-04 15:00Z: 02:00 +11:00 -> 01:30 +10:30; 01:30-01:59 happens twice.
    # 2026-10-03 15:30Z: 02:00 +10:30 -> 02:30 +11:00; 02:00-02:29 never happens.

    def test_it_fires_a_repeated_fixed_time_once(self) -> None:
        assert run("45 1 * * *", "Australia/Lord_Howe", at(2026, 4, 4), 2) == [
            (
                "2026-04-04 14:45",
                "2026-04-05T01:45:00+11:00",
                "repeated 01:45 fires once (DST ends)",
            ),
            ("2026-04-05 15:15", "2026-04-06T01:45:00+10:30", None),
        ]

    def test_it_moves_a_skipped_time_to_half_past(self) -> None:
        assert run("15 2 * * *", "Australia/Lord_Howe", at(2026, 10, 3), 1) == [
            (
                "2026-10-03 15:30",
                "2026-10-04T02:30:00+11:00",
                "moved from 02:15 (skipped by DST change)",
            ),
        ]

    def test_it_repeats_half_an_hour_of_a_real_time_schedule(self) -> None:
        assert run("*/20 * * * *", "Australia/Lord_Howe", at(2026, 4, 4, 14, 30), 4) == [
            ("2026-04-04 14:40", "2026-04-05T01:40:00+11:00", None),
            ("2026-04-04 15:10", "2026-04-05T01:40:00+10:30", second("01:40")),
            ("2026-04-04 15:30", "2026-04-05T02:00:00+10:30", None),
            ("2026-04-04 15:50", "2026-04-05T02:20:00+10:30", None),
        ]

    def test_it_finds_the_half_hour_gap_of_an_hourly_schedule(self) -> None:
        # 01:30 +11:00 (14:30Z) and 01:30 +10:30 (15:00Z).
        assert gap("30 * * * *", "Australia/Lord_Howe", at(2026, 1, 1)) == 1800
        errors = validate_schedule(
            "30 * * * *", "Australia/Lord_Howe", min_interval_seconds=3600, now=at(2026, 1, 1)
        )
        assert errors == {
            "cron": "cron: fires as often as every 1800 s around the DST change on 2026-04-05; "
            "the minimum interval is 3600 s"
        }


class TestAustraliaSydney:
    # Southern hemisphere: DST ends in April and starts in October.
    # 2026-04-04 16:00Z: 03:00 AEDT (+11:00) -> 02:00 AEST (+10:00); 02:00-02:59 twice.
    # 2026-10-03 16:00Z: 02:00 AEST (+10:00) -> 03:00 AEDT (+11:00); 02:00-02:59 skipped.

    def test_it_fires_the_april_repeat_once(self) -> None:
        assert run("30 2 * * *", "Australia/Sydney", at(2026, 4, 4), 2) == [
            (
                "2026-04-04 15:30",
                "2026-04-05T02:30:00+11:00",
                "repeated 02:30 fires once (DST ends)",
            ),
            ("2026-04-05 16:30", "2026-04-06T02:30:00+10:00", None),
        ]

    def test_it_moves_the_october_gap(self) -> None:
        assert run("30 2 * * *", "Australia/Sydney", at(2026, 10, 3), 1) == [
            (
                "2026-10-03 16:00",
                "2026-10-04T03:00:00+11:00",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]


class TestZonesWithoutDst:
    # Asia/Kolkata is +05:30 and Asia/Kathmandu +05:45 all year: no transitions since 1986.

    def test_it_fires_every_day_at_the_same_utc_time(self) -> None:
        for zone, utc in (("Asia/Kolkata", "03:30"), ("Asia/Kathmandu", "03:15")):
            fires = next_fires(parse_cron("0 9 * * *"), load_zone(zone), at(2026, 1, 1), 366)
            assert {f.at.strftime("%H:%M") for f in fires} == {utc}
            assert {f.note for f in fires} == {None}
            assert gap("0 9 * * *", zone, at(2026, 1, 1)) == 86400

    def test_it_keeps_quarter_hours_on_the_local_clock(self) -> None:
        assert [f[1] for f in run("*/15 * * * *", "Asia/Kathmandu", at(2026, 6, 1, 3, 20), 2)] == [
            "2026-06-01T09:15:00+05:45",
            "2026-06-01T09:30:00+05:45",
        ]


class TestAmericaStJohns:
    # -03:30 with DST -02:30.
    # 2026-03-08 05:30Z: 02:00 NST -> 03:00 NDT; 2026-11-01 04:30Z: 02:00 NDT -> 01:00 NST.

    def test_it_moves_and_collapses_on_half_hour_offsets(self) -> None:
        assert run("30 2 * * *", "America/St_Johns", at(2026, 3, 8), 1) == [
            (
                "2026-03-08 05:30",
                "2026-03-08T03:00:00-02:30",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]
        assert run("30 1 * * *", "America/St_Johns", at(2026, 11, 1), 1) == [
            (
                "2026-11-01 04:00",
                "2026-11-01T01:30:00-02:30",
                "repeated 01:30 fires once (DST ends)",
            ),
        ]


class TestPacificChatham:
    # +12:45 with DST +13:45; the changes happen at 02:45 / 03:45 local.
    # 2026-04-04 14:00Z: 03:45 +13:45 -> 02:45 +12:45; 02:45-03:44 twice.
    # 2026-09-26 14:00Z: 02:45 +12:45 -> 03:45 +13:45; 02:45-03:44 skipped.

    def test_it_moves_three_oclock_to_quarter_to_four(self) -> None:
        assert run("0 3 * * *", "Pacific/Chatham", at(2026, 9, 26), 1) == [
            (
                "2026-09-26 14:00",
                "2026-09-27T03:45:00+13:45",
                "moved from 03:00 (skipped by DST change)",
            ),
        ]

    def test_it_fires_three_oclock_once_in_april(self) -> None:
        assert run("0 3 * * *", "Pacific/Chatham", at(2026, 4, 4), 2) == [
            (
                "2026-04-04 13:15",
                "2026-04-05T03:00:00+13:45",
                "repeated 03:00 fires once (DST ends)",
            ),
            ("2026-04-05 14:15", "2026-04-06T03:00:00+12:45", None),
        ]


class TestEuropeDublin:
    # tzdata models Irish time with negative DST (IST +01:00 is "standard", winter GMT is
    # "DST" with -1 h), but the wall clock moves exactly as in London:
    # 2026-03-29 01:00Z: 01:00 GMT -> 02:00 IST; 2026-10-25 01:00Z: 02:00 IST -> 01:00 GMT.

    def test_it_follows_the_wall_clock_not_the_dst_flag(self) -> None:
        assert run("30 1 * * *", "Europe/Dublin", at(2026, 3, 29), 1) == [
            (
                "2026-03-29 01:00",
                "2026-03-29T02:00:00+01:00",
                "moved from 01:30 (skipped by DST change)",
            ),
        ]
        assert run("30 1 * * *", "Europe/Dublin", at(2026, 10, 24, 12), 2) == [
            (
                "2026-10-25 00:30",
                "2026-10-25T01:30:00+01:00",
                "repeated 01:30 fires once (DST ends)",
            ),
            ("2026-10-26 01:30", "2026-10-26T01:30:00+00:00", None),
        ]


class TestAmericaSantiago:
    # Changes at midnight, southern hemisphere.
    # 2026-04-05 03:00Z: Sun 00:00 -03:00 -> Sat 23:00 -04:00; Saturday 23:00-23:59 twice.
    # 2026-09-06 04:00Z: Sun 00:00 -04:00 -> Sun 01:00 -03:00; Sunday 00:00-00:59 skipped.

    def test_it_moves_midnight_to_one_oclock(self) -> None:
        assert run("0 0 * * *", "America/Santiago", at(2026, 9, 5, 12), 1) == [
            (
                "2026-09-06 04:00",
                "2026-09-06T01:00:00-03:00",
                "moved from 00:00 (skipped by DST change)",
            ),
        ]
        assert run("0 0 * * SUN", "America/Santiago", at(2026, 9, 5, 12), 1)[0][0] == (
            "2026-09-06 04:00"
        )

    def test_it_fires_the_repeated_late_evening_once(self) -> None:
        assert run("30 23 * * *", "America/Santiago", at(2026, 4, 4, 12), 2) == [
            (
                "2026-04-05 02:30",
                "2026-04-04T23:30:00-03:00",
                "repeated 23:30 fires once (DST ends)",
            ),
            ("2026-04-06 03:30", "2026-04-05T23:30:00-04:00", None),
        ]

    def test_it_reaches_sunday_midnight_only_after_the_repeat(self) -> None:
        # 00:00 -03:00 is never shown: the clock turns back just before it.
        assert run("0 0 * * *", "America/Santiago", at(2026, 4, 4, 12), 1) == [
            ("2026-04-05 04:00", "2026-04-05T00:00:00-04:00", None),
        ]


class TestAfricaCasablanca:
    # +01:00 all year except during Ramadan (tzdata: negative DST to +00:00).
    # 2026-02-15 02:00Z: 03:00 +01:00 -> 02:00 +00:00; 02:00-02:59 twice.
    # 2026-03-22 02:00Z: 02:00 +00:00 -> 03:00 +01:00; 02:00-02:59 skipped.

    def test_it_handles_both_ramadan_changes(self) -> None:
        assert run("30 2 * * *", "Africa/Casablanca", at(2026, 2, 14, 12), 1) == [
            (
                "2026-02-15 01:30",
                "2026-02-15T02:30:00+01:00",
                "repeated 02:30 fires once (DST ends)",
            ),
        ]
        assert run("30 2 * * *", "Africa/Casablanca", at(2026, 3, 21, 12), 1) == [
            (
                "2026-03-22 02:00",
                "2026-03-22T03:00:00+01:00",
                "moved from 02:30 (skipped by DST change)",
            ),
        ]


class TestAntarcticaTroll:
    # A 2-hour DST shift.
    # 2026-03-29 01:00Z: 01:00 +00:00 -> 03:00 +02:00; 01:00-02:59 skipped.
    # 2026-10-25 01:00Z: 03:00 +02:00 -> 01:00 +00:00; 01:00-02:59 twice.

    def test_it_moves_every_time_of_the_two_skipped_hours_to_three(self) -> None:
        for cron in ("0 1 * * *", "30 1 * * *", "59 2 * * *"):
            assert run(cron, "Antarctica/Troll", at(2026, 3, 29), 1)[0][:2] == (
                "2026-03-29 01:00",
                "2026-03-29T03:00:00+02:00",
            )

    def test_it_repeats_two_hours_for_real_time_schedules(self) -> None:
        got = run("0 * * * *", "Antarctica/Troll", at(2026, 10, 24, 22, 30), 5)
        assert [(f[1], f[2] is not None) for f in got] == [
            ("2026-10-25T01:00:00+02:00", False),
            ("2026-10-25T02:00:00+02:00", False),
            ("2026-10-25T01:00:00+00:00", True),
            ("2026-10-25T02:00:00+00:00", True),
            ("2026-10-25T03:00:00+00:00", False),
        ]

    def test_it_measures_a_23_hour_day(self) -> None:
        assert gap("0 2 * * *", "Antarctica/Troll", at(2026, 1, 1)) == 23 * 3600


class TestAmericaNuuk:
    # The changes happen at 23:00 on Saturday, local: the gap and the overlap cross midnight.
    # 2026-03-29 01:00Z: Sat 23:00 -02:00 -> Sun 00:00 -01:00; Saturday 23:00-23:59 skipped.
    # 2026-10-25 01:00Z: Sun 00:00 -01:00 -> Sat 23:00 -02:00; Saturday 23:00-23:59 twice.

    def test_it_moves_a_saturday_schedule_into_sunday(self) -> None:
        assert run("30 23 * * SAT", "America/Nuuk", at(2026, 3, 28), 1) == [
            (
                "2026-03-29 01:00",
                "2026-03-29T00:00:00-01:00",
                "moved from 23:30 (skipped by DST change)",
            ),
        ]

    def test_it_fires_the_repeated_saturday_evening_once(self) -> None:
        assert run("30 23 * * SAT", "America/Nuuk", at(2026, 10, 24), 2) == [
            (
                "2026-10-25 00:30",
                "2026-10-24T23:30:00-01:00",
                "repeated 23:30 fires once (DST ends)",
            ),
            ("2026-11-01 01:30", "2026-10-31T23:30:00-02:00", None),
        ]


class TestHistoricalChanges:
    # Pacific/Apia skipped Friday 30 December 2011:
    # 2011-12-30 10:00Z: Thu 23:59:59 -10:00 -> Sat 2011-12-31 00:00 +14:00.
    # America/Asuncion kept -03:00 all year after 2024-10-06 03:00Z (-04:00 -> -03:00).

    def test_it_moves_fires_of_a_skipped_day_to_the_next_day(self) -> None:
        assert run("0 12 * * *", "Pacific/Apia", at(2011, 12, 29), 3) == [
            ("2011-12-29 22:00", "2011-12-29T12:00:00-10:00", None),
            (
                "2011-12-30 10:00",
                "2011-12-31T00:00:00+14:00",
                "moved from 12:00 (skipped by DST change)",
            ),
            ("2011-12-30 22:00", "2011-12-31T12:00:00+14:00", None),
        ]
        assert run("0 12 * * FRI", "Pacific/Apia", at(2011, 12, 29), 1)[0][1] == (
            "2011-12-31T00:00:00+14:00"
        )

    def test_it_follows_a_zone_that_dropped_dst(self) -> None:
        fires = next_fires(
            parse_cron("30 0 * * *"), load_zone("America/Asuncion"), at(2025, 1, 1), 730
        )
        assert {f.at.strftime("%H:%M") for f in fires} == {"03:30"}
        assert {f.note for f in fires} == {None}


def test_it_keeps_fires_strictly_increasing_across_a_year_of_changes() -> None:
    for zone in ("Europe/Paris", "Australia/Lord_Howe", "Antarctica/Troll", "America/Nuuk"):
        for cron in ("15 * * * *", "30 2 * * *", "0 0,1,2,3 * * *"):
            start = at(2026, 1, 1)
            previous = start
            for fire in iter_fires(parse_cron(cron), load_zone(zone), start):
                if fire.at > start + timedelta(days=366):
                    break
                assert fire.at > previous
                previous = fire.at
