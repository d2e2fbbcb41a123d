"""DST compensation for Temporal Schedules (SPEC §8). Pure: no I/O, no clock.

Temporal evaluates a schedule's calendar in its time zone with rules of its own that differ
from ours around offset changes: it drops wall times a forward jump skips, may fire the
second occurrence of a repeated time instead of the first (or both), and for zones whose
change is not one hour (Lord Howe, Chatham) it can shift fires by the difference. Our time
engine (``extsched.domain.cron``) is the single source of truth, so the temporal backend
compensates in both directions:

* every fire the engine produces close to an offset change is added to the Temporal
  schedule as an explicit one-off entry, so whatever Temporal's own evaluation does there,
  the fire happens (Temporal takes the union of all entries; one instant fires once);
* a delivered fire the engine does not produce is recorded as skipped (``dst_repeat``)
  without calling the Runner (:func:`is_engine_fire`, used by the activity).

Both directions use the engine *with the schedule's DST choice* (SPEC §8), so each choice
is compensated the same way: ``dst_gap: skip`` pins nothing for the dropped day and any
fire Temporal makes there is skipped; ``dst_repeat: last`` pins the second occurrence and
skips a first one Temporal delivers; ``both`` pins both occurrences.

Adding every nearby fire instead of predicting exactly which ones Temporal drops keeps us
independent of Temporal's internals: a redundant entry costs nothing. Far from an offset
change both evaluators agree, since both then match the local wall clock minute by minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from extsched.domain import cron

# How far ahead put_handles and refresh_compensation pin fires: more than a year, so every
# offset change of the coming year is covered even if a refresh is missed for weeks.
HORIZON = timedelta(days=400)
# Around an offset change of size D, fires within MARGIN + D of it are pinned. Temporal's
# deviations stay within an hour (plus D) of the change; the rest is safety.
MARGIN = timedelta(hours=3)
_SAMPLE = timedelta(hours=6)  # no zone changes its offset twice within 6 hours
_US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OffsetChange:
    at: datetime  # the UTC instant from which ``after`` applies
    before: timedelta
    after: timedelta

    @property
    def size(self) -> timedelta:
        return abs(self.after - self.before)


@dataclass(frozen=True, order=True)
class PinnedFire:
    """An engine fire pinned explicitly on the Temporal schedule."""

    at: datetime  # aware UTC
    wall: datetime  # naive local wall time in the schedule's zone
    by_calendar: bool  # True: a calendar entry reproduces ``at`` exactly (see exact_by_calendar)


def _offset(zone: ZoneInfo, at: datetime) -> timedelta:
    return at.astimezone(zone).utcoffset() or timedelta(0)


def offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[OffsetChange]:
    """The zone's UTC offset changes in (start, end], to the second."""
    # Whole hours as the cache key: callers pass "now", which changes every call.
    changes = _offset_changes(zone, _floor_hour(start), _floor_hour(end) + timedelta(hours=1))
    return [c for c in changes if start < c.at <= end]


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@lru_cache(maxsize=4096)
def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> tuple[OffsetChange, ...]:
    found: list[OffsetChange] = []
    previous_at, previous = start, _offset(zone, start)
    at = start
    while at < end:
        at = min(at + _SAMPLE, end)
        current = _offset(zone, at)
        if current != previous:
            lo, hi = previous_at, at  # offset(lo) == previous, offset(hi) == current
            while hi - lo > timedelta(seconds=1):
                mid = (lo + (hi - lo) / 2).replace(microsecond=0)
                if _offset(zone, mid) == previous:
                    lo = mid
                else:
                    hi = mid
            found.append(OffsetChange(hi, previous, current))
            previous = current
        previous_at = at
    return tuple(found)


def exact_by_calendar(zone: ZoneInfo, wall: datetime) -> bool:
    """Whether a one-off calendar entry for naive local ``wall`` fires exactly once, at the
    instant that wall time denotes: true when every minute of its hour exists exactly once.

    Temporal resolves a calendar wall time in a repeated hour to one occurrence of its own
    choosing and adjusts times in and next to it; only a 'clean' hour is safe. Fires in
    other hours are pinned as single-occurrence interval entries instead (absolute time).
    """
    return _clean_hour(zone, wall.replace(minute=0, second=0, microsecond=0))


@lru_cache(maxsize=4096)
def _clean_hour(zone: ZoneInfo, hour: datetime) -> bool:
    for minute in range(60):
        local = hour + timedelta(minutes=minute)
        first = local.replace(tzinfo=zone, fold=0).utcoffset()
        second = local.replace(tzinfo=zone, fold=1).utcoffset()
        if first != second:  # in a gap or in a repeated range
            return False
    return True


def pinned_fires(
    expr: cron.CronExpr,
    zone: ZoneInfo,
    start: datetime,
    end: datetime | None = None,
    *,
    dst: cron.DstChoice = cron.DEFAULT_DST,
) -> list[PinnedFire]:
    """The engine's fires (with the DST choice) in (start, end] that lie near an offset
    change; ``end`` defaults to ``start + HORIZON``."""
    end = start + HORIZON if end is None else end
    fires: dict[datetime, PinnedFire] = {}
    for change in offset_changes(zone, start - MARGIN - timedelta(hours=2), end):
        half = MARGIN + change.size
        lo, hi = max(start, change.at - half), min(end, change.at + half)
        if lo >= hi:
            continue
        for fire in cron.iter_fires(expr, zone, lo, dst=dst):
            if fire.at > hi:
                break
            wall = fire.local.replace(tzinfo=None)
            fires[fire.at] = PinnedFire(fire.at, wall, exact_by_calendar(zone, wall))
    return sorted(fires.values())


def is_engine_fire(
    expr: cron.CronExpr, zone: ZoneInfo, at: datetime, dst: cron.DstChoice = cron.DEFAULT_DST
) -> bool:
    """Whether the engine fires at ``at`` (Temporal delivers whole seconds)."""
    fire = next(cron.iter_fires(expr, zone, at - _US, dst=dst), None)
    return fire is not None and fire.at == at


def next_engine_fire(
    expr: cron.CronExpr, zone: ZoneInfo, after: datetime, dst: cron.DstChoice = cron.DEFAULT_DST
) -> datetime | None:
    fire = next(cron.iter_fires(expr, zone, after, dst=dst), None)
    return None if fire is None else fire.at
