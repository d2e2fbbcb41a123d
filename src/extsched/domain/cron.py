"""The time engine (SPEC §8): when a cron expression fires in a time zone. Pure: no I/O.

This module is the single source of truth for fire times; ``next_run_at``, previews and both
job backends use it. Like cronsim, it matches cron fields against the *local* wall clock and
converts back to UTC, with the classic DST rules:

* fixed-time schedules (one minute and one hour) fire once per matching day: a wall time
  skipped by a forward jump fires at the first instant after the jump, a repeated wall time
  fires at its first occurrence only;
* every other schedule follows real time: it fires at every instant whose wall-clock minute
  matches, so both passes of a repeated hour fire and skipped wall times never happen.
"""

from __future__ import annotations

import enum
import re
import zoneinfo
from bisect import bisect_left, bisect_right
from calendar import monthrange
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import islice, pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo

from extsched.domain.cron_parse import CronError, CronExpr, describe, parse_cron

__all__ = [
    "DEFAULT_DST",
    "HORIZON",
    "CronError",
    "CronExpr",
    "DstChoice",
    "DstGap",
    "DstRepeat",
    "Fire",
    "compile_schedule",
    "describe",
    "dst_fires",
    "iter_fires",
    "load_zone",
    "min_gap_seconds",
    "next_fire",
    "next_fires",
    "parse_cron",
    "preview",
    "upcoming",
    "validate_dst",
    "validate_schedule",
]

HORIZON = timedelta(days=366 * 5)  # "the next 5 years" of SPEC §5
MAX_PREVIEW = 100
_MINUTE = timedelta(minutes=1)
_US = timedelta(microseconds=1)
_ZERO = timedelta(0)
_EPOCH = datetime(1970, 1, 1)
# Any satisfiable day/month combination recurs within 8 years (29 February 2096 -> 2104).
_SEARCH_YEARS = 9
_MAX_YEAR = 9997  # keep every intermediate datetime (year + 1, offsets) representable


@dataclass(frozen=True)
class Fire:
    """One fire: ``at`` in UTC, ``local`` in the schedule's zone, ``note`` when DST moved it.

    :func:`dst_fires` also lists fires a clock change *drops* (``dropped``): their wall time
    never shows on the clock, so ``local`` is that wall time as a naive datetime (no offset
    denotes it) and ``at`` is the instant of the jump that skipped it.
    """

    at: datetime
    local: datetime
    note: str | None = None
    dropped: bool = False


class DstGap(enum.StrEnum):
    """A fixed-time schedule's wall time that a clock change skips: fire at the first instant
    after the jump (``shift``, classic cron), or not that day (``skip``)."""

    SHIFT = "shift"
    SKIP = "skip"


class DstRepeat(enum.StrEnum):
    """A fixed-time schedule's wall time that occurs twice: fire at its first occurrence
    (classic cron), its second, or both."""

    FIRST = "first"
    LAST = "last"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class DstChoice:
    """A schedule's DST choice (SPEC §8); only fixed-time schedules may differ from the default."""

    gap: DstGap = DstGap.SHIFT
    repeat: DstRepeat = DstRepeat.FIRST

    @classmethod
    def of(cls, gap: str | None, repeat: str | None) -> DstChoice:
        """From stored or requested values, where None means the default (raises ValueError
        for others). There are six choices: each is made once and shared."""
        try:
            return _DST_CHOICES[gap, repeat]
        except (KeyError, TypeError):
            choice = cls(DstGap(gap or DstGap.SHIFT), DstRepeat(repeat or DstRepeat.FIRST))
        if isinstance(gap, str | None) and isinstance(repeat, str | None):
            _DST_CHOICES[gap, repeat] = choice
        return choice

    @property
    def is_default(self) -> bool:
        return self.gap is DstGap.SHIFT and self.repeat is DstRepeat.FIRST


DEFAULT_DST = DstChoice()
_DST_CHOICES: dict[tuple[str | None, str | None], DstChoice] = {}


# --- time zones -----------------------------------------------------------------------------

_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
# Present in the zoneinfo directory but not zones a user means.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    """Lower-cased name -> exact IANA name, for lookups and 'did you mean' hints."""
    names = zoneinfo.available_timezones() - _NOT_ZONES
    return {name.lower(): name for name in names} | {name: name for name in names}


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone called exactly ``name`` (``UTC`` included); raises :class:`CronError`.

    Only names from the tz database are accepted, so user input never reaches the file
    system as a path (``/etc/passwd``, ``../x``, ``localtime`` are all refused).
    """
    if not isinstance(name, str):
        raise CronError("time zone must be a string", field="timezone")
    names = _zone_names()
    if len(name) <= 64 and _ZONE_NAME.fullmatch(name) and names.get(name) == name:
        try:
            return ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    hint = names.get(name.lower()) if len(name) <= 64 else None
    suggestion = f" (did you mean '{hint}'?)" if hint and hint != name else ""
    shown = name if len(name) <= 64 else name[:61] + "..."
    raise CronError(f"unknown time zone '{shown}'{suggestion}", field="timezone")


@lru_cache(maxsize=16384)
def compile_schedule(expr: str, zone: str) -> tuple[CronExpr, ZoneInfo]:
    """``(parse_cron(expr), load_zone(zone))``, cached: both are immutable, and the scheduler
    and listings evaluate the same few thousand schedules over and over."""
    return parse_cron(expr), load_zone(zone)


class _Transition(NamedTuple):
    at: datetime  # naive UTC instant from which `after` applies
    before: timedelta  # UTC offset just before
    after: timedelta


def _offset_at(zone: ZoneInfo, utc: datetime) -> timedelta:
    return zone.fromutc(utc.replace(tzinfo=zone)).utcoffset() or _ZERO


@lru_cache(maxsize=16384)
def _year_table(
    zone: ZoneInfo, year: int
) -> tuple[timedelta, tuple[datetime, ...], tuple[_Transition, ...]]:
    """The offset at 1 January ``year`` 00:00 UTC and the offset changes in the UTC interval
    (that instant, 1 January ``year + 1``], found by sampling daily and bisecting.

    Daily sampling is enough: since 1970 no tzdata zone has two changes less than ~7 days
    apart, so a change and its reversal never hide between two samples.
    """
    day = 86400
    start = int((datetime(year, 1, 1) - _EPOCH).total_seconds())
    end = int((datetime(year + 1, 1, 1) - _EPOCH).total_seconds())

    def offset(ts: int) -> timedelta:
        return datetime.fromtimestamp(ts, zone).utcoffset() or _ZERO

    first = previous = offset(start)
    found: list[_Transition] = []
    for sample in range(start + day, end + 1, day):
        current = offset(sample)
        if current != previous:
            lo, hi = sample - day, sample  # offset(lo) == previous, offset(hi) == current
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == previous:
                    lo = mid
                else:
                    hi = mid
            found.append(_Transition(_EPOCH + timedelta(seconds=hi), previous, current))
            previous = current
    return first, tuple(t.at for t in found), tuple(found)


def _period(zone: ZoneInfo, utc: datetime) -> tuple[timedelta, datetime, _Transition | None]:
    """At naive-UTC ``utc``: the offset in force, the next instant it may change (a
    transition or a year boundary) and the latest transition at or before ``utc``."""
    first, instants, table = _year_table(zone, utc.year)
    i = bisect_right(instants, utc)
    if i:
        last: _Transition | None = table[i - 1]
        offset = table[i - 1].after
    else:
        offset = first
        earlier = _year_table(zone, utc.year - 1)[2] if utc.year > 1 else ()
        last = earlier[-1] if earlier else None
    end = instants[i] if i < len(instants) else datetime(utc.year + 1, 1, 1)
    return offset, end, last


def _gap_transition(zone: ZoneInfo, wall: datetime) -> _Transition | None:
    """The forward jump whose skipped wall-clock range contains ``wall``."""
    for year in (wall.year - 1, wall.year, wall.year + 1):
        for tr in _year_table(zone, year)[2]:
            if tr.at + tr.before <= wall < tr.at + tr.after:
                return tr
    return None


# --- matching wall-clock minutes ------------------------------------------------------------


def _next_minute(t: datetime) -> datetime:
    """The first whole minute strictly after ``t``."""
    return t.replace(second=0, microsecond=0) + _MINUTE


def _ceil_minute(t: datetime) -> datetime:
    """The first whole minute at or after ``t``."""
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + _MINUTE


_month_shape = lru_cache(maxsize=4096)(monthrange)  # (weekday of the 1st, days in month)


def _day_matches(expr: CronExpr, first_weekday: int, day: int) -> bool:
    # first_weekday is calendar.monthrange's (Monday=0) for day 1; cron counts Sunday=0.
    return bool(expr.day_mask >> day & 1 and expr.weekday_mask >> (first_weekday + day) % 7 & 1)


def _next_match(expr: CronExpr, start: datetime) -> datetime | None:
    """The first naive wall-clock minute at or after ``start`` matching every field, or None
    if there is none within ``_SEARCH_YEARS`` (an impossible date such as 31 February)."""
    months, hours, minutes = expr.sorted_months, expr.sorted_hours, expr.sorted_minutes
    year, month, day, hour, minute = start.year, start.month, start.day, start.hour, start.minute
    limit = min(year + _SEARCH_YEARS, _MAX_YEAR)
    while year <= limit:
        if month not in expr.months:
            i = bisect_left(months, month)
            year, month = (year + 1, months[0]) if i == len(months) else (year, months[i])
            day, hour, minute = 1, 0, 0
            continue
        first_weekday, days_in_month = _month_shape(year, month)
        found = 0
        for candidate in range(day, days_in_month + 1):
            if _day_matches(expr, first_weekday, candidate):
                found = candidate
                break
        if not found:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day, hour, minute = 1, 0, 0
            continue
        if found != day:
            day, hour, minute = found, 0, 0
        i = bisect_left(hours, hour)
        if i == len(hours):
            day, hour, minute = day + 1, 0, 0  # past the month's end: the day scan rolls over
            continue
        if hours[i] != hour:
            hour, minute = hours[i], 0
        j = bisect_left(minutes, minute)
        if j == len(minutes):
            hour, minute = hour + 1, 0
            if hour == 24:
                day, hour = day + 1, 0
            continue
        return datetime(year, month, day, hour, minutes[j])
    return None


# --- fires ----------------------------------------------------------------------------------


def _occurrences(zone: ZoneInfo, wall: datetime) -> tuple[datetime, ...]:
    """The naive-UTC instants at which the local clock shows ``wall``, in order: none
    (skipped by a forward jump), one, or two (repeated by a backward change)."""
    offsets = {wall.replace(tzinfo=zone, fold=fold).utcoffset() or _ZERO for fold in (0, 1)}
    found = (wall - offset for offset in offsets)
    return tuple(sorted(utc for utc in found if utc + _offset_at(zone, utc) == wall))


def _wall_fires(
    zone: ZoneInfo, wall: datetime, dst: DstChoice
) -> list[tuple[datetime, str | None]]:
    """The fires of a fixed-time schedule's matching wall time ``wall`` (SPEC §8, with the
    schedule's DST choice): zero, one or two naive-UTC instants with their notes."""
    hhmm = f"{wall:%H:%M}"
    occurrences = _occurrences(zone, wall)
    if not occurrences:
        if dst.gap is DstGap.SKIP:
            return []
        jump = _gap_transition(zone, wall)
        moved = jump.at if jump is not None else wall - _offset_at(zone, wall)
        return [(moved, f"moved from {hhmm} (skipped by DST change)")]
    if len(occurrences) == 1:
        return [(occurrences[0], None)]
    first, last = occurrences[0], occurrences[-1]
    if dst.repeat is DstRepeat.FIRST:
        return [(first, f"repeated {hhmm} fires once (DST ends)")]
    if dst.repeat is DstRepeat.LAST:
        return [(last, f"repeated {hhmm}, second occurrence (DST ends)")]
    return [
        (first, f"repeated {hhmm}, first occurrence (DST ends)"),
        (last, f"repeated {hhmm}, second occurrence (DST ends)"),
    ]


# A repeated wall time's second occurrence can come after an instant whose wall clock is
# already past it: start matching this far back (no change since 1970 repeated > 3 hours).
_LOOKBACK = timedelta(hours=4)


def _fixed_fires(
    expr: CronExpr, zone: ZoneInfo, after: datetime, dst: DstChoice
) -> Iterator[tuple[datetime, str | None]]:
    """Fires of a fixed-time schedule strictly after naive-UTC ``after``: each matching
    wall time, in order, resolved to its instants by :func:`_wall_fires`."""
    local = after.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    start = _next_minute(local - _LOOKBACK)
    previous = after
    while True:
        wall = _next_match(expr, start)
        if wall is None:
            return
        for utc, note in _wall_fires(zone, wall, dst):
            # Skips fires at or before ``after`` (the look-back), and a second target of a
            # day-long gap, which would share the first one's instant.
            if utc > previous:
                yield utc, note
                previous = utc
        start = wall + _MINUTE


def _real_time_fires(
    expr: CronExpr, zone: ZoneInfo, after: datetime
) -> Iterator[tuple[datetime, str | None]]:
    """Fires of any other schedule strictly after naive-UTC ``after``: every instant whose
    wall-clock minute matches, scanned one constant-offset period at a time."""
    utc, strict = after, True
    while utc.year <= _MAX_YEAR:
        offset, end, last = _period(zone, utc)
        while True:
            wall = utc + offset
            match = _next_match(expr, _next_minute(wall) if strict else _ceil_minute(wall))
            if match is None:
                return
            fire = match - offset
            if fire >= end:
                break
            note = None
            if last is not None and last.after < last.before and match < last.at + last.before:
                note = f"repeated {match:%H:%M}, second pass (DST ends)"
            yield fire, note
            utc, strict = fire, True
        utc, strict = end, False  # a fire exactly at the period boundary is allowed


def _raw_fires(
    expr: CronExpr, zone: ZoneInfo, after: datetime, dst: DstChoice = DEFAULT_DST
) -> Iterator[tuple[datetime, str | None]]:
    """Fires strictly after naive-UTC ``after``; only fixed-time schedules heed ``dst``."""
    if expr.fixed_time:
        return _fixed_fires(expr, zone, after, dst)
    return _real_time_fires(expr, zone, after)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("expected a timezone-aware datetime")
    return moment.astimezone(UTC).replace(tzinfo=None)


def iter_fires(
    expr: CronExpr, zone: ZoneInfo, after: datetime, *, dst: DstChoice = DEFAULT_DST
) -> Iterator[Fire]:
    """Fires strictly after the aware ``after``, in increasing order, with the schedule's
    DST choice (heeded by fixed-time schedules only). Ends only when no fire exists within
    ~9 years (an impossible date) or near year 9999."""
    try:
        for utc, note in _raw_fires(expr, zone, _naive_utc(after), dst):
            at = utc.replace(tzinfo=UTC)
            yield Fire(at=at, local=at.astimezone(zone), note=note)
    except OverflowError:
        return


def next_fires(
    expr: CronExpr, zone: ZoneInfo, after: datetime, count: int, *, dst: DstChoice = DEFAULT_DST
) -> list[Fire]:
    """The first ``count`` fires strictly after ``after`` (fewer if the schedule ends)."""
    return list(islice(iter_fires(expr, zone, after, dst=dst), count))


def next_fire(
    expr: CronExpr, zone: ZoneInfo, after: datetime, *, dst: DstChoice = DEFAULT_DST
) -> Fire | None:
    """The first fire strictly after ``after``, or None if there is none within 5 years."""
    fire = next(iter_fires(expr, zone, after, dst=dst), None)
    if fire is None or fire.at - after > HORIZON:
        return None
    return fire


_UPCOMING: dict[tuple[str, str, DstChoice], tuple[datetime, Fire]] = {}
_UPCOMING_MAX = 16384


def upcoming(
    cron_text: str, timezone: str, after: datetime, *, dst: DstChoice = DEFAULT_DST
) -> Fire | None:
    """``next_fire`` of a stored schedule, memoized exactly: the first fire strictly after
    ``t0`` is also the first strictly after any instant in ``[t0, fire)``, so listings of the
    same schedules reuse it until it passes."""
    key = (cron_text, timezone, dst)
    hit = _UPCOMING.get(key)
    if hit is not None and hit[0] <= after < hit[1].at:
        return hit[1]
    fire = next_fire(*compile_schedule(cron_text, timezone), after, dst=dst)
    if fire is not None:
        if len(_UPCOMING) >= _UPCOMING_MAX:
            _UPCOMING.clear()
        _UPCOMING[key] = (after, fire)
    return fire


_UPCOMING_RUNS: dict[tuple[str, str, DstChoice, int], tuple[datetime, tuple[Fire, ...]]] = {}


def upcoming_runs(
    cron_text: str, timezone: str, after: datetime, count: int, *, dst: DstChoice = DEFAULT_DST
) -> tuple[Fire, ...]:
    """``next_fires`` of a stored schedule, memoized exactly like ``upcoming``: the first
    ``count`` fires strictly after ``t0`` are also the first after any instant in
    ``[t0, first fire)``."""
    key = (cron_text, timezone, dst, count)
    hit = _UPCOMING_RUNS.get(key)
    if hit is not None and hit[0] <= after < hit[1][0].at:
        return hit[1]
    fires = tuple(next_fires(*compile_schedule(cron_text, timezone), after, count, dst=dst))
    if fires:
        if len(_UPCOMING_RUNS) >= _UPCOMING_MAX:
            _UPCOMING_RUNS.clear()
        _UPCOMING_RUNS[key] = (after, fires)
    return fires


# --- minimum gap ----------------------------------------------------------------------------


def _wall_stats(expr: CronExpr, lo: datetime, hi: datetime) -> tuple[int, int, int | None] | None:
    """Matching wall-clock minutes in [lo, hi), as absolute minutes (ordinal * 1440 + minute
    of day): the first, the last and the smallest difference between consecutive ones.

    The first and last day may be cut by ``lo`` and ``hi`` and are taken minute by minute; the
    days between them come from the cached matching days of each month's shape, so five years
    cost a few dozen steps.
    """
    pattern = expr.day_minutes
    if not pattern:
        return None
    diffs = [b - a for a, b in pairwise(pattern)]
    full_day_gap = min(diffs) if diffs else None
    lo_ord, hi_ord = lo.toordinal(), (hi - _US).toordinal()
    if hi_ord < lo_ord:
        return None
    lo_min = -(-(lo - datetime.fromordinal(lo_ord)) // _MINUTE)
    hi_min = -(-(hi - datetime.fromordinal(hi_ord)) // _MINUTE)
    first: int | None = None
    last = 0
    best: int | None = None

    def chain(seg_first: int, seg_last: int, seg_best: int | None) -> None:
        nonlocal first, last, best
        if first is None:
            first = seg_first
        else:
            best = _smaller(best, seg_first - last)
        best = _smaller(best, seg_best)
        last = seg_last

    def edge_day(ordinal: int, first_weekday: int, day: int) -> None:
        """The first or last day, where ``lo`` or ``hi`` may cut the daily pattern."""
        if not _day_matches(expr, first_weekday, day):
            return
        i = bisect_left(pattern, lo_min) if ordinal == lo_ord else 0
        j = bisect_left(pattern, hi_min) if ordinal == hi_ord else len(pattern)
        if i >= j:
            return
        inner = None
        if j - i >= 2:
            inner = full_day_gap if i == 0 and j == len(pattern) else min(diffs[i : j - 1])
        minutes = ordinal * 1440
        chain(minutes + pattern[i], minutes + pattern[j - 1], inner)

    year, month = lo.year, lo.month
    end = date.fromordinal(hi_ord)
    while (year, month) <= (end.year, end.month):
        if month in expr.months:
            first_weekday, days_in_month = _month_shape(year, month)
            base = date(year, month, 1).toordinal() - 1
            from_day = max(1, lo_ord - base)
            to_day = min(days_in_month, hi_ord - base)
            if base + from_day == lo_ord:
                edge_day(lo_ord, first_weekday, from_day)
                from_day += 1
            last_is_edge = base + to_day == hi_ord and hi_ord != lo_ord
            if last_is_edge:
                to_day -= 1
            days, gaps = _month_days(expr, first_weekday, days_in_month)
            i, j = bisect_left(days, from_day), bisect_right(days, to_day)
            if i < j:
                inner = min(gaps[i : j - 1]) if j - i >= 2 else None
                chain(
                    (base + days[i]) * 1440 + pattern[0],
                    (base + days[j - 1]) * 1440 + pattern[-1],
                    _smaller(inner, full_day_gap),
                )
            if last_is_edge:
                edge_day(hi_ord, first_weekday, to_day + 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None if first is None else (first, last, best)


@lru_cache(maxsize=4096)
def _month_days(
    expr: CronExpr, first_weekday: int, days_in_month: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The matching days of a month of this shape (weekday of the 1st, length; there are 28),
    and the gap in minutes from each one's last fire to the next one's first."""
    pattern = expr.day_minutes
    days = tuple(d for d in range(1, days_in_month + 1) if _day_matches(expr, first_weekday, d))
    gaps = tuple((b - a) * 1440 + pattern[0] - pattern[-1] for a, b in pairwise(days))
    return days, gaps


def _smaller(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _from_minutes(absolute: int) -> datetime:
    return datetime.fromordinal(absolute // 1440) + timedelta(minutes=absolute % 1440)


def _min_gap(
    expr: CronExpr, zone: ZoneInfo, start: datetime, end: datetime, dst: DstChoice = DEFAULT_DST
) -> tuple[timedelta, datetime | None] | None:
    """Smallest real-time gap between consecutive fires in naive-UTC [start, end), and the
    later fire of that pair when only a clock change makes it that small (else None).

    Real time splits into short windows around each offset change (where fires move,
    collapse, repeat or drop), enumerated fire by fire, and the stretches between them, where the
    offset is constant so real gaps equal wall-clock gaps and are computed per day.
    """
    windows: list[tuple[datetime, datetime]] = []
    for year in range((start - timedelta(days=1)).year, end.year + 1):
        for tr in _year_table(zone, year)[2]:
            # From the first pass of a repeated range (whose fires depend on the DST
            # choice) to just past the second; a gap's window has the same width.
            width = abs(tr.after - tr.before)
            lo, hi = tr.at - width, tr.at + width + _MINUTE
            if hi > start and lo < end:
                windows.append((max(lo, start), min(hi, end)))
    windows.append((end, end))
    best: timedelta | None = None  # over stretches with a constant offset
    best_dst: tuple[timedelta, datetime] | None = None  # over pairs touching a change
    previous: datetime | None = None
    cursor = start
    for lo, hi in windows:
        if cursor < lo:
            offset = _period(zone, cursor)[0]
            stats = _wall_stats(expr, cursor + offset, lo + offset)
            if stats is not None:
                first = _from_minutes(stats[0]) - offset
                if previous is not None and (best_dst is None or first - previous < best_dst[0]):
                    best_dst = (first - previous, first)
                if stats[2] is not None:
                    gap = timedelta(minutes=stats[2])
                    best = gap if best is None else min(best, gap)
                previous = _from_minutes(stats[1]) - offset
        for fire, _ in _raw_fires(expr, zone, max(lo, cursor) - _US, dst):
            if fire >= hi:
                break
            if previous is not None and (best_dst is None or fire - previous < best_dst[0]):
                best_dst = (fire - previous, fire)
            previous = fire
        cursor = max(cursor, hi)
    if best_dst is not None and (best is None or best_dst[0] < best):
        return best_dst
    return None if best is None else (best, None)


def min_gap_seconds(
    expr: CronExpr,
    zone: ZoneInfo,
    start: datetime,
    horizon_days: int = 366 * 5,
    *,
    dst: DstChoice = DEFAULT_DST,
) -> int | None:
    """The smallest real-time gap in seconds between two consecutive fires within
    [start, start + horizon_days], DST effects (and choice) included; None if there are
    fewer than two."""
    utc = _naive_utc(start)
    found = _min_gap(expr, zone, utc, utc + timedelta(days=horizon_days) + _US, dst)
    return None if found is None else int(found[0].total_seconds())


# --- validation and preview -----------------------------------------------------------------


def validate_dst(expr: CronExpr | None, gap: object, repeat: object) -> dict[str, str]:
    """Field errors for a schedule's ``dst_gap`` and ``dst_repeat`` (SPEC §5; None means the
    default): unknown values, and non-default ones on a schedule that is not fixed-time
    (``expr`` None, an unparsable cron, skips that check)."""
    errors: dict[str, str] = {}
    fields: tuple[tuple[str, object, type[enum.StrEnum], str], ...] = (
        ("dst_gap", gap, DstGap, DstGap.SHIFT),
        ("dst_repeat", repeat, DstRepeat, DstRepeat.FIRST),
    )
    for field, value, kind, default in fields:
        if value is None:
            continue
        allowed = [member.value for member in kind]
        if not isinstance(value, str) or value not in allowed:
            errors[field] = "must be one of " + ", ".join(allowed)
        elif value != default and expr is not None and not expr.fixed_time:
            errors[field] = "only for fixed-time schedules"
    return errors


@lru_cache(maxsize=4096)
def _gap_at_least(expr: CronExpr, zone: ZoneInfo, dst: DstChoice, day: date, seconds: int) -> bool:
    """True when no two consecutive fires in the 5 years from the start of ``day`` (UTC) plus
    one day are closer than ``seconds``. That window holds every window starting on ``day``,
    so True holds for each of them; kept per day, as most schedules share a few crons (a
    manifest's default schedules, one per install). False says only: check exactly."""
    start = datetime.combine(day, datetime.min.time())
    found = _min_gap(expr, zone, start, start + HORIZON + timedelta(days=1), dst)
    return found is None or found[0].total_seconds() >= seconds


def validate_schedule(
    cron: str,
    timezone: str,
    *,
    min_interval_seconds: int,
    now: datetime,
    dst: DstChoice = DEFAULT_DST,
) -> dict[str, str]:
    """Field errors for a schedule's ``cron`` and ``timezone`` (SPEC §5); empty when valid.
    ``dst`` (checked by :func:`validate_dst`) can add or remove fires, so it counts too."""
    errors: dict[str, str] = {}
    expr: CronExpr | None = None
    zone: ZoneInfo | None = None
    if not isinstance(cron, str):
        errors["cron"] = "cron: required" if cron is None else "cron: must be a string"
    else:
        try:
            expr = parse_cron(cron)
        except CronError as exc:
            errors["cron"] = exc.message
    if not isinstance(timezone, str):
        errors["timezone"] = "required" if timezone is None else "must be a string"
    else:
        try:
            zone = load_zone(timezone)
        except CronError as exc:
            errors["timezone"] = exc.message
    if expr is None or zone is None:
        return errors
    if next_fire(expr, zone, now, dst=dst) is None:
        errors["cron"] = "cron: never fires in the next 5 years"
        return errors
    start = _naive_utc(now)
    if _gap_at_least(expr, zone, dst, start.date(), min_interval_seconds):
        return errors
    found = _min_gap(expr, zone, start, start + HORIZON, dst)
    if found is not None and found[0].total_seconds() < min_interval_seconds:
        gap, dst_fire = int(found[0].total_seconds()), found[1]
        where = ""
        if dst_fire is not None:
            day = dst_fire.replace(tzinfo=UTC).astimezone(zone).date()
            where = f" around the DST change on {day.isoformat()}"
        errors["cron"] = (
            f"cron: fires as often as every {gap} s{where}; "
            f"the minimum interval is {min_interval_seconds} s"
        )
    return errors


def preview(
    cron: str, timezone: str, count: int, now: datetime, *, dst: DstChoice = DEFAULT_DST
) -> tuple[str, list[Fire]]:
    """The description and the next ``count`` fires after ``now``; raises :class:`CronError`
    (its ``field`` names the bad input) for what :func:`validate_schedule` would refuse,
    except the minimum interval, which needs the operator's setting."""
    expr = parse_cron(cron)
    zone = load_zone(timezone)
    if not 1 <= count <= MAX_PREVIEW:
        raise CronError(f"count: must be between 1 and {MAX_PREVIEW}", field="count")
    for field, message in validate_dst(expr, dst.gap, dst.repeat).items():
        raise CronError(f"{field}: {message}", field=field)
    fires = next_fires(expr, zone, now, count, dst=dst)
    if not fires or fires[0].at - now > HORIZON:
        raise CronError("cron: never fires in the next 5 years")
    return describe(expr), fires


# --- fires a clock change affects -------------------------------------------------------------

DST_FIRES = 3


def dst_fires(
    expr: CronExpr,
    zone: ZoneInfo,
    after: datetime,
    dst: DstChoice = DEFAULT_DST,
    limit: int = DST_FIRES,
) -> list[Fire]:
    """The next (up to ``limit``, within 5 years) fires strictly after ``after`` that an
    offset change moves, drops or doubles, in order: the fires :func:`iter_fires` notes
    (moved, repeated, second passes) and the ones it cannot list because they do not happen
    (``dropped``; see :class:`Fire`): a fixed-time schedule's with ``dst_gap: skip``, and a
    real-time schedule's wall times inside a forward jump."""
    start = _naive_utc(after)
    end = min(start + HORIZON, datetime(_MAX_YEAR, 1, 1))
    found: list[Fire] = []
    try:
        for year in range(start.year, end.year + 1):
            for tr in _year_table(zone, year)[2]:
                if start < tr.at + abs(tr.after - tr.before) and tr.at <= end:
                    found += _change_fires(expr, zone, tr, start, dst)
            if len(found) >= limit:
                break
    except OverflowError:
        pass
    bound = end.replace(tzinfo=UTC)
    return [f for f in found if f.at <= bound][:limit]


def _change_fires(
    expr: CronExpr, zone: ZoneInfo, tr: _Transition, after: datetime, dst: DstChoice
) -> list[Fire]:
    """The fires after naive-UTC ``after`` that the change ``tr`` moves, drops or doubles.

    They all lie within the change's size of its instant: a repeated wall time's first
    occurrence just before it, a second occurrence or second pass just after it, a moved
    or dropped one at it."""
    width = abs(tr.after - tr.before)
    events: list[tuple[datetime, datetime, Fire]] = []
    for utc, note in _raw_fires(expr, zone, max(after, tr.at - width - _US), dst):
        if utc >= tr.at + width:
            break
        if note is not None:
            at = utc.replace(tzinfo=UTC)
            local = at.astimezone(zone)
            events.append((utc, local.replace(tzinfo=None), Fire(at, local, note)))
    if tr.after > tr.before and tr.at > after and (not expr.fixed_time or dst.gap is DstGap.SKIP):
        gap_end = tr.at + tr.after
        wall = _next_match(expr, _ceil_minute(tr.at + tr.before))
        while wall is not None and wall < gap_end:
            note = f"dropped: {wall:%H:%M} does not exist that day (skipped by DST change)"
            at = tr.at.replace(tzinfo=UTC)
            events.append((tr.at, wall, Fire(at, wall, note, dropped=True)))
            wall = _next_match(expr, wall + _MINUTE)
    return [fire for _, _, fire in sorted(events, key=lambda e: (e[0], e[1]))]
