"""The engine against the brute-force reference (``cron_reference``) in many zones.

Two layers: a sweep over EVERY offset change of 2026-2028 (plus historical rule changes) in
the zones below, each checked in a ±1 day window for a fixed set of expressions and for
fixed times placed inside that change's gap or overlap; then hypothesis for random
(expression, zone, instant) cases. ``EXTSCHED_HYPOTHESIS_EXAMPLES`` raises the example count
for benchmark runs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from extsched.domain.cron import (
    DEFAULT_DST,
    CronExpr,
    DstChoice,
    Fire,
    describe,
    dst_fires,
    iter_fires,
    min_gap_seconds,
    parse_cron,
)
from tests.unit import cron_reference as ref

EXAMPLES = int(os.environ.get("EXTSCHED_HYPOTHESIS_EXAMPLES", "300"))
US = timedelta(microseconds=1)

# 36 zones: 30/45-minute offsets, 30-minute and 2-hour DST shifts, southern hemisphere,
# changes at midnight (gaps and overlaps crossing the date line of the local day), negative
# DST in tzdata (Dublin, Casablanca), Ramadan suspensions and zones whose rules changed.
ZONES = [
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Chisinau",
    "Europe/Moscow",
    "Atlantic/Azores",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Havana",
    "America/Santiago",
    "America/Asuncion",
    "America/Nuuk",
    "America/Scoresbysund",
    "America/Miquelon",
    "America/Mexico_City",
    "America/Caracas",
    "Africa/Casablanca",
    "Africa/Cairo",
    "Asia/Gaza",
    "Asia/Beirut",
    "Asia/Jerusalem",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Pyongyang",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Antarctica/Troll",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Norfolk",
    "Pacific/Apia",
    "Pacific/Kiritimati",
]

# Checked in every window; fixed times chosen to land in common gaps and overlaps.
EXPRESSIONS = [
    "*/15 * * * *",
    "30 * * * *",
    "0 */2 * * *",
    "0-10 1-3 * * *",
    "45 * * * 1-5",
    "*/20 0-4 * * *",
    "*/7 22-23,0-2 * * *",
    "0,30 0-3 * * SAT,SUN",
    "59 * * * *",
    "0 0 * * *",
    "30 0 * * *",
    "30 1 * * *",
    "30 2 * * *",
    "0 3 * * *",
    "15 23 * * *",
    "30 2 * * 0",
    "0 2 1-15 * *",
]

# Years in which zones changed their rules (or skipped a whole day): every offset change
# of these years is swept too.
HISTORICAL = [
    ("Pacific/Apia", 2011),  # skipped 30 December 2011 entirely (-10 -> +14)
    ("Pacific/Apia", 2021),  # last DST end, then no DST
    ("Pacific/Kiritimati", 1994),  # skipped 31 December 1994 (-10 -> +14)
    ("America/Caracas", 2007),  # -04:00 -> -04:30
    ("America/Caracas", 2016),  # -04:30 -> -04:00 (30-minute jump)
    ("Asia/Pyongyang", 2015),  # +09:00 -> +08:30
    ("Asia/Pyongyang", 2018),  # +08:30 -> +09:00
    ("America/Asuncion", 2024),  # last change, then permanent -03
    ("America/Mexico_City", 2022),  # DST abolished
    ("Asia/Tehran", 2022),  # DST abolished
    ("Europe/Moscow", 2011),  # permanent +04
    ("Europe/Moscow", 2014),  # back to +03
    ("Africa/Casablanca", 2018),  # switch to +01 with "negative" Ramadan DST
    ("Australia/Lord_Howe", 1985),  # 1-hour shift in the early 80s, 30 minutes after
    ("America/Nuuk", 2023),  # moved from -03 to -02 standard time
]


def _engine(
    expr: CronExpr,
    zone: ZoneInfo,
    after: datetime,
    until: datetime,
    dst: DstChoice = DEFAULT_DST,
) -> list[Fire]:
    return list(takewhile(lambda f: f.at <= until, iter_fires(expr, zone, after, dst=dst)))


def _at_wall(wall: datetime) -> str:
    return f"{wall.minute} {wall.hour} * * *"


def _expressions_for_change(zone: ZoneInfo, instant: datetime) -> list[str]:
    """Fixed times at the edges and in the middle of this change's gap or overlap, and the
    same wall times as non-fixed expressions (which must fire in both passes)."""
    before = (instant - timedelta(seconds=1)).astimezone(zone).utcoffset()
    after = instant.astimezone(zone).utcoffset()
    assert before is not None and after is not None
    lo = (instant + min(before, after)).replace(tzinfo=None)
    width = abs(after - before)
    walls = [lo, lo + width / 2, lo + width - timedelta(minutes=1), lo + width]
    walls = [w.replace(second=0, microsecond=0) for w in walls]
    texts = [_at_wall(w) for w in walls]
    texts += [f"{w.minute} {w.hour},{(w.hour + 12) % 24} * * *" for w in walls[1:3]]
    weekday = walls[1].isoweekday() % 7
    texts.append(f"{walls[1].minute} {walls[1].hour} * * {weekday}")
    texts.append(f"{walls[1].minute} {walls[1].hour} * * {(weekday + 1) % 7}")
    return texts


def _check_window(
    zone: ZoneInfo,
    instant: datetime,
    texts: list[str],
    choice: tuple[str, str] = ("shift", "first"),
) -> None:
    after, until = instant - timedelta(days=1), instant + timedelta(days=1)
    walk = ref.walk(zone, after, until)
    dst = DstChoice.of(*choice)
    for text in texts:
        expr = parse_cron(text)
        fires = ref.fires_on_walk(expr, walk, *choice)
        got = _engine(expr, zone, after, until, dst)
        where = (zone.key, instant, text, choice)
        assert [f.at for f in got] == ref.between(fires, after, until), where
        closed = ref.between(fires, after - US, until)
        assert min_gap_seconds(expr, zone, after, 2, dst=dst) == ref.min_gap(closed), where


def _changes(zone: ZoneInfo, first_year: int, last_year: int) -> list[datetime]:
    start = datetime(first_year, 1, 1, tzinfo=UTC)
    return ref.transitions(zone, start, datetime(last_year + 1, 1, 1, tzinfo=UTC))


_CHANGES = {name: _changes(ZoneInfo(name), 2026, 2028) for name in ZONES}


@pytest.mark.parametrize("zone_name", ZONES)
def test_it_matches_the_reference_around_every_change_of_2026_to_2028(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    changes = _CHANGES[zone_name]
    if not changes:
        # No DST: still compare a window (weekdays, month ends, the 2028 leap day).
        changes = [datetime(2026, 3, 1, tzinfo=UTC), datetime(2028, 2, 29, 12, tzinfo=UTC)]
    for instant in changes:
        _check_window(zone, instant, EXPRESSIONS + _expressions_for_change(zone, instant))


def _fixed_time_texts(zone: ZoneInfo, instant: datetime) -> list[str]:
    texts = EXPRESSIONS + _expressions_for_change(zone, instant)
    return [t for t in texts if parse_cron(t).fixed_time]


@pytest.mark.parametrize("zone_name", ZONES)
def test_it_matches_the_reference_with_every_dst_choice_around_every_change_of_2026_to_2028(
    zone_name: str,
) -> None:
    zone = ZoneInfo(zone_name)
    for instant in _CHANGES[zone_name] or [datetime(2026, 3, 1, tzinfo=UTC)]:
        for choice in ref.CHOICES:
            _check_window(zone, instant, _fixed_time_texts(zone, instant), choice)


@pytest.mark.parametrize(("zone_name", "year"), HISTORICAL)
def test_it_matches_the_reference_with_every_dst_choice_across_historical_rule_changes(
    zone_name: str, year: int
) -> None:
    zone = ZoneInfo(zone_name)
    for instant in _changes(zone, year, year):
        for choice in ref.CHOICES:
            _check_window(zone, instant, _fixed_time_texts(zone, instant), choice)


@pytest.mark.parametrize("zone_name", ZONES)
def test_it_lists_exactly_the_fires_a_change_affects_around_every_change_of_2026_to_2028(
    zone_name: str,
) -> None:
    """dst_fires against the reference: the moved, repeated and second-pass fires are the
    engine's noted ones, and a fixed-time schedule's dropped fires are exactly those that
    ``shift`` makes and ``skip`` does not (listed at the jump's instant)."""
    zone = ZoneInfo(zone_name)
    for instant in _CHANGES[zone_name]:
        after, until = instant - timedelta(days=1), instant + timedelta(days=1)
        walk = ref.walk(zone, after, until)
        for text in EXPRESSIONS + _expressions_for_change(zone, instant):
            expr = parse_cron(text)
            for gap, repeat in ref.CHOICES if expr.fixed_time else [("shift", "first")]:
                dst = DstChoice.of(gap, repeat)
                listed = [f for f in dst_fires(expr, zone, after, dst, limit=500) if f.at <= until]
                noted = [f for f in _engine(expr, zone, after, until, dst) if f.note]
                where = (zone.key, instant, text, gap, repeat)
                assert [f for f in listed if not f.dropped] == noted, where
                dropped = [f.at for f in listed if f.dropped]
                if expr.fixed_time:
                    shifted = set(
                        ref.between(ref.fires_on_walk(expr, walk, "shift", repeat), after, until)
                    )
                    skipped = set(
                        ref.between(ref.fires_on_walk(expr, walk, "skip", repeat), after, until)
                    )
                    assert dropped == sorted(shifted - skipped if gap == "skip" else ()), where
                for fire in listed:
                    if fire.dropped:
                        assert fire.local.tzinfo is None and fire.note and "dropped" in fire.note
                        assert fire.local.minute in expr.minutes and fire.local.hour in expr.hours


@pytest.mark.parametrize(("zone_name", "year"), HISTORICAL)
def test_it_matches_the_reference_across_historical_rule_changes(zone_name: str, year: int) -> None:
    zone = ZoneInfo(zone_name)
    changes = _changes(zone, year, year)
    assert changes, f"expected an offset change in {zone_name} in {year}"
    for instant in changes:
        _check_window(zone, instant, EXPRESSIONS[:8] + _expressions_for_change(zone, instant))


# --- hypothesis -----------------------------------------------------------------------------


def _field(lo: int, hi: int, steps: int) -> st.SearchStrategy[str]:
    number = st.integers(lo, hi)
    step = st.integers(1, min(steps, 15))
    pair = st.tuples(number, number).map(sorted)
    item = st.one_of(
        number.map(str),
        pair.map(lambda p: f"{p[0]}-{p[1]}"),
        step.map(lambda n: f"*/{n}"),
        st.tuples(pair, step).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        st.tuples(number, step).map(lambda t: f"{t[0]}/{t[1]}"),
    )
    return st.one_of(st.just("*"), item, st.lists(item, min_size=2, max_size=3).map(",".join))


_MINUTE_FIELD, _HOUR_FIELD = _field(0, 59, 60), _field(0, 23, 24)
# Mostly unrestricted days so that a 1-day window usually contains fires.
_DAY_FIELDS = st.one_of(
    st.just(("*", "*", "*")),
    _field(0, 7, 7).map(lambda d: ("*", "*", d)),
    _field(1, 31, 31).map(lambda d: (d, "*", "*")),
    _field(1, 12, 12).map(lambda m: ("*", m, "*")),
)


@st.composite
def _expressions(draw: st.DrawFn) -> CronExpr:
    if draw(st.booleans()):  # fixed-time, where the DST rules differ
        minute, hour = str(draw(st.integers(0, 59))), str(draw(st.integers(0, 23)))
    else:
        minute, hour = draw(_MINUTE_FIELD), draw(_HOUR_FIELD)
    dom, month, dow = draw(_DAY_FIELDS)
    return parse_cron(f"{minute} {hour} {dom} {month} {dow}")


@st.composite
def _cases(draw: st.DrawFn) -> tuple[CronExpr, ZoneInfo, datetime]:
    expr = draw(_expressions())
    name = draw(st.sampled_from(ZONES))
    changes = _CHANGES[name]
    near_a_change = draw(st.booleans())
    if changes and near_a_change:
        base = draw(st.sampled_from(changes))
        offset = draw(st.integers(-36 * 3600, 36 * 3600))
    else:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        offset = draw(st.integers(0, 3 * 366 * 86400))
    micro = draw(st.sampled_from([0, 0, 1, 999_999]))
    instant = base + timedelta(seconds=offset, microseconds=micro)
    return expr, ZoneInfo(name), instant


_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_SETTINGS
@given(_cases())
def test_it_matches_the_reference_for_random_cases(
    case: tuple[CronExpr, ZoneInfo, datetime],
) -> None:
    expr, zone, after = case
    until = after + timedelta(days=1)
    got = _engine(expr, zone, after, until)
    assert [f.at for f in got] == ref.reference_fires(expr, zone, after, until)
    for fire in got:
        assert fire.local == fire.at.astimezone(zone)
        assert fire.local.utcoffset() == fire.at.astimezone(zone).utcoffset()
        if expr.fixed_time:
            (hour,), (minute,) = expr.hours, expr.minutes
            if (fire.local.hour, fire.local.minute) != (hour, minute):
                assert fire.note is not None and fire.note.startswith("moved from")
        else:
            # Real-time schedules note exactly their second-pass fires.
            assert (fire.note is not None) == bool(fire.local.fold)


@_SETTINGS
@given(_cases())
def test_it_computes_the_true_minimum_gap_like_the_reference(
    case: tuple[CronExpr, ZoneInfo, datetime],
) -> None:
    expr, zone, start = case
    until = start + timedelta(days=1)
    expected = ref.min_gap(ref.reference_fires(expr, zone, start - US, until))
    assert min_gap_seconds(expr, zone, start, horizon_days=1) == expected


@_SETTINGS
@given(_cases(), st.sampled_from(ref.CHOICES))
def test_it_matches_the_reference_with_every_dst_choice_for_random_cases(
    case: tuple[CronExpr, ZoneInfo, datetime], choice: tuple[str, str]
) -> None:
    expr, zone, after = case
    until = after + timedelta(days=1)
    dst = DstChoice.of(*choice)
    got = _engine(expr, zone, after, until, dst)
    assert [f.at for f in got] == ref.reference_fires(expr, zone, after, until, *choice)
    if not expr.fixed_time:
        # Real-time schedules follow real time whatever the choice.
        assert got == _engine(expr, zone, after, until)
        return
    (hour,), (minute,) = expr.hours, expr.minutes
    for fire in got:
        assert fire.local == fire.at.astimezone(zone)
        if (fire.local.hour, fire.local.minute) != (hour, minute):
            assert dst.gap == "shift" and fire.note and fire.note.startswith("moved from")
        elif fire.note is not None:
            # Noted only when the wall time shows twice, saying which occurrence fired.
            assert fire.note.startswith(f"repeated {hour:02}:{minute:02}")
            assert ("second occurrence" in fire.note) == bool(fire.local.fold)


@_SETTINGS
@given(_cases(), st.sampled_from(ref.CHOICES))
def test_it_computes_the_true_minimum_gap_with_every_dst_choice(
    case: tuple[CronExpr, ZoneInfo, datetime], choice: tuple[str, str]
) -> None:
    expr, zone, start = case
    until = start + timedelta(days=1)
    fires = ref.reference_fires(expr, zone, start - US, until, *choice)
    assert min_gap_seconds(expr, zone, start, 1, dst=DstChoice.of(*choice)) == ref.min_gap(fires)


@settings(max_examples=min(EXAMPLES, 100), deadline=None)
@given(_expressions())
def test_it_describes_every_expression_it_accepts(expr: CronExpr) -> None:
    text = describe(expr)
    assert text[0].isupper() and "  " not in text


@settings(max_examples=min(EXAMPLES, 40), deadline=None)
@given(_cases())
# The smallest gap lies inside a whole month, or spans two whole months.
@example((parse_cron("0 0 10,11 3 *"), ZoneInfo("UTC"), datetime(2026, 2, 15, tzinfo=UTC)))
@example((parse_cron("0 0 1,28 2,3 *"), ZoneInfo("UTC"), datetime(2026, 1, 31, 23, tzinfo=UTC)))
@example((parse_cron("0 12 * * 1"), ZoneInfo("Europe/Paris"), datetime(2026, 1, 20, tzinfo=UTC)))
def test_it_computes_the_minimum_gap_over_whole_months_like_the_reference(
    case: tuple[CronExpr, ZoneInfo, datetime],
) -> None:
    """Whole months take the per-month-shape path of the gap search; 70 days hold at least
    one whole month, whatever the start."""
    expr, zone, start = case
    until = start + timedelta(days=70)
    expected = ref.min_gap(ref.reference_fires(expr, zone, start - US, until))
    assert min_gap_seconds(expr, zone, start, horizon_days=70) == expected
