"""A brute-force reference for the cron engine: slow, literal and obviously right.

It walks real time minute by minute in UTC, converts each instant to the local wall clock
and applies SPEC §8 word for word, DST choices included (``gap``: ``shift``/``skip``,
``repeat``: ``first``/``last``/``both``, as plain strings). It shares nothing with
``extsched.domain.cron`` except the parsed field sets, so the property tests compare two
independent implementations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from extsched.domain.cron_parse import CronExpr

MINUTE = timedelta(minutes=1)
# Long enough to see the first pass of any repeated hour (at most 2 hours since 1970)
# before a window starts, so fixed-time fires there are not counted twice; the walk goes
# as far past its end, so a repeated wall time's last occurrence is known.
WARM_UP = timedelta(hours=3)
CHOICES = [(gap, repeat) for gap in ("shift", "skip") for repeat in ("first", "last", "both")]


@dataclass(frozen=True)
class Walk:
    """Every whole UTC minute (POSIX seconds) from ``start`` to ``stop`` (each widened by the
    warm-up) with its naive local wall-clock time, indexed by wall-clock minute and by
    forward jumps."""

    steps: list[tuple[int, datetime]]
    by_minute: dict[int, list[int]]  # wall-clock minute -> step indexes
    jumps: list[int]  # indexes where the wall clock moved by more than one minute


def walk(zone: ZoneInfo, start: datetime, stop: datetime) -> Walk:
    first = int((start - WARM_UP).timestamp()) // 60 * 60
    steps = [
        (ts, datetime.fromtimestamp(ts, zone).replace(tzinfo=None))
        for ts in range(first, int((stop + WARM_UP).timestamp()) + 1, 60)
    ]
    by_minute: dict[int, list[int]] = {}
    jumps = []
    for i, (_, wall) in enumerate(steps):
        by_minute.setdefault(wall.minute, []).append(i)
        if i and wall - steps[i - 1][1] > MINUTE:
            jumps.append(i)
    return Walk(steps, by_minute, jumps)


def day_matches(expr: CronExpr, day: date) -> bool:
    # Our dialect never restricts both day fields, so "and" is the only rule needed.
    return (
        day.month in expr.months and day.day in expr.days and day.isoweekday() % 7 in expr.weekdays
    )


def wall_matches(expr: CronExpr, wall: datetime) -> bool:
    return wall.minute in expr.minutes and wall.hour in expr.hours and day_matches(expr, wall)


def fires_on_walk(
    expr: CronExpr, w: Walk, gap: str = "shift", repeat: str = "first"
) -> list[datetime]:
    """The SPEC §8 fires over the walk (including the warm-ups), in order."""
    # Only steps at a matching wall-clock minute or right after a jump can fire.
    candidates = sorted(i for m in expr.minutes for i in w.by_minute.get(m, ()))
    if not expr.fixed_time:
        # Real time: every instant whose wall-clock minute matches, both passes included.
        return [_utc(w.steps[i][0]) for i in candidates if wall_matches(expr, w.steps[i][1])]
    (hour,) = expr.hours
    (minute,) = expr.minutes
    shown: dict[date, list[int]] = {}  # local date -> steps whose wall clock shows the time
    jumped: dict[date, int] = {}  # local date -> the jump that skipped its time
    for i in sorted(set(candidates) | set(w.jumps)):
        wall = w.steps[i][1]
        if i in w.jumps:
            # The clock jumped forward: targets strictly inside the jump never show.
            previous = w.steps[i - 1][1]
            day = previous.date()
            while day <= wall.date():
                target = datetime.combine(day, time(hour, minute))
                if previous < target < wall and day_matches(expr, day):
                    jumped.setdefault(day, i)
                day += timedelta(days=1)
        if wall_matches(expr, wall):
            shown.setdefault(wall.date(), []).append(i)
    chosen: set[int] = set()
    for day in shown.keys() | jumped.keys():
        steps = shown.get(day)
        if steps is None:
            if gap == "shift":  # the first instant after the jump
                chosen.add(jumped[day])
        elif repeat == "first" or len(steps) == 1:
            chosen.add(steps[0])
        elif repeat == "last":
            chosen.add(steps[-1])
        else:
            chosen.update(steps)
    # A day-long jump can make two days' fires meet at one instant: it fires once.
    return [_utc(w.steps[i][0]) for i in sorted(chosen)]


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def reference_fires(
    expr: CronExpr,
    zone: ZoneInfo,
    after: datetime,
    until: datetime,
    gap: str = "shift",
    repeat: str = "first",
) -> list[datetime]:
    """Fires in (after, until] as aware UTC datetimes."""
    return between(fires_on_walk(expr, walk(zone, after, until), gap, repeat), after, until)


def between(fires: list[datetime], after: datetime, until: datetime) -> list[datetime]:
    return [t for t in fires if after < t <= until]


def min_gap(fires: Iterable[datetime]) -> int | None:
    """The smallest difference in seconds between consecutive fires, None for fewer than 2."""
    ordered = list(fires)
    gaps = [int((b - a).total_seconds()) for a, b in pairwise(ordered)]
    return min(gaps) if gaps else None


def transitions(zone: ZoneInfo, start: datetime, stop: datetime) -> list[datetime]:
    """UTC instants in [start, stop) where the zone's offset changes (a 6-hourly scan, then
    bisection to the second), independent of the engine's own table. Since 1970 no zone
    has changed twice within a week, so the scan cannot step over a change and its reversal."""
    found = []
    t = start.astimezone(UTC)
    offset = t.astimezone(zone).utcoffset()
    step = timedelta(hours=6)
    while t < stop:
        nxt = t + step
        if nxt.astimezone(zone).utcoffset() != offset:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid.astimezone(zone).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
            offset = nxt.astimezone(zone).utcoffset()
        t = nxt
    return found
