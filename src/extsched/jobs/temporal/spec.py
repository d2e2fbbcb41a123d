"""Building and reading the Temporal Schedule of one handle.

The schedule's spec holds, in its time zone (``time_zone_name``):

1. the cron expression as one calendar entry whose comment keeps the expression's text
   (Temporal compiles cron strings into calendars anyway and forgets the text; compiling it
   from the time engine's own parse guarantees both read the expression the same way), and
   the DST choice when it is not the default (``30 2 * * *; dst_gap=skip``), so a refresh
   re-pins with the same choice;
2. the DST compensation (``dst.py``): engine fires near offset changes, pinned as one-off
   calendar entries (comment ``extsched dst: <instant>``) where a calendar entry is exact,
   else as single-occurrence interval entries (every = the instant since the epoch, phase
   0: it fires at the instant, and next ~57 years later, long after a refresh removed it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
)

from extsched.domain import cron
from extsched.domain.cron import DEFAULT_DST, DstChoice
from extsched.jobs.temporal import dst

CRON_COMMENT = "extsched cron: "
DST_COMMENT = "extsched dst: "
_CHOICE_SEP = "; "  # never in a cron expression of our dialect
_ALL_WEEKDAYS = (ScheduleRange(0, 6, 1),)


def _ranges(values: Iterable[int]) -> tuple[ScheduleRange, ...]:
    """Sorted values as runs of consecutive numbers (the form Temporal describes them in)."""
    runs: list[ScheduleRange] = []
    start = previous = None
    for v in sorted(values):
        if previous is not None and v == previous + 1:
            previous = v
            continue
        if start is not None and previous is not None:
            runs.append(ScheduleRange(start, previous, 1))
        start = previous = v
    if start is not None and previous is not None:
        runs.append(ScheduleRange(start, previous, 1))
    return tuple(runs)


def _one(value: int) -> tuple[ScheduleRange, ...]:
    return (ScheduleRange(value, value, 1),)


def cron_comment(text: str, choice: cron.DstChoice) -> str:
    parts = [text]
    if choice.gap is not cron.DstGap.SHIFT:
        parts.append(f"dst_gap={choice.gap.value}")
    if choice.repeat is not cron.DstRepeat.FIRST:
        parts.append(f"dst_repeat={choice.repeat.value}")
    return CRON_COMMENT + _CHOICE_SEP.join(parts)


def _read_cron_comment(comment: str) -> tuple[str, cron.DstChoice]:
    text, *options = comment.removeprefix(CRON_COMMENT).split(_CHOICE_SEP)
    values = dict(option.partition("=")[::2] for option in options)
    try:
        choice = cron.DstChoice.of(values.get("dst_gap"), values.get("dst_repeat"))
    except ValueError:
        choice = cron.DEFAULT_DST
    return text, choice


def cron_calendar(
    text: str, expr: cron.CronExpr, choice: cron.DstChoice = cron.DEFAULT_DST
) -> ScheduleCalendarSpec:
    """The cron expression as a Temporal calendar (fields AND-ed, as our dialect means)."""
    return ScheduleCalendarSpec(
        second=_one(0),
        minute=_ranges(expr.minutes),
        hour=_ranges(expr.hours),
        day_of_month=_ranges(expr.days),
        month=_ranges(expr.months),
        year=(),
        day_of_week=_ranges(expr.weekdays),
        comment=cron_comment(text, choice),
    )


def _z(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pinned_calendar(fire: dst.PinnedFire) -> ScheduleCalendarSpec:
    w = fire.wall
    return ScheduleCalendarSpec(
        second=_one(0),
        minute=_one(w.minute),
        hour=_one(w.hour),
        day_of_month=_one(w.day),
        month=_one(w.month),
        year=_one(w.year),
        day_of_week=_ALL_WEEKDAYS,
        comment=DST_COMMENT + _z(fire.at),
    )


def pinned_interval(at: datetime) -> ScheduleIntervalSpec:
    # Temporal fires an interval at every k * every + phase; with phase 0 and every = the
    # instant since the epoch, the first fire after any earlier time is the instant itself.
    return ScheduleIntervalSpec(every=at - dst.EPOCH, offset=timedelta(0))


def build_spec(
    text: str, timezone: str, now: datetime, choice: cron.DstChoice = cron.DEFAULT_DST
) -> ScheduleSpec:
    """The full spec: the cron calendar, then the compensation for the next dst.HORIZON."""
    expr = cron.parse_cron(text)
    zone = cron.load_zone(timezone)
    pinned = dst.pinned_fires(expr, zone, now, dst=choice)
    return ScheduleSpec(
        calendars=[cron_calendar(text, expr, choice)]
        + [pinned_calendar(p) for p in pinned if p.by_calendar],
        intervals=[pinned_interval(p.at) for p in pinned if not p.by_calendar],
        time_zone_name=timezone,
    )


@dataclass(frozen=True)
class SpecView:
    """What we read back from a Temporal spec (described or listed)."""

    cron: str | None  # None when the spec is not one of ours (or was trimmed in a listing)
    timezone: str | None
    pinned: frozenset[datetime]
    dst: DstChoice = DEFAULT_DST


def read_spec(spec: ScheduleSpec | None) -> SpecView:
    if spec is None:
        return SpecView(None, None, frozenset())
    text = None
    choice = cron.DEFAULT_DST
    pinned: set[datetime] = set()
    for cal in spec.calendars:
        comment = cal.comment or ""
        if comment.startswith(CRON_COMMENT) and text is None:
            text, choice = _read_cron_comment(comment)
        elif comment.startswith(DST_COMMENT):
            pinned.add(_parse_z(comment.removeprefix(DST_COMMENT)))
    for iv in spec.intervals:
        if not iv.offset:
            pinned.add(dst.EPOCH + iv.every)
    return SpecView(text, spec.time_zone_name, frozenset(pinned), choice)


def _parse_z(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def pinned_after(view: SpecView, now: datetime) -> frozenset[datetime]:
    return frozenset(at for at in view.pinned if at > now)


def wanted_pins(
    text: str, timezone: str, now: datetime, choice: cron.DstChoice = cron.DEFAULT_DST
) -> frozenset[datetime]:
    expr = cron.parse_cron(text)
    zone = cron.load_zone(timezone)
    return frozenset(p.at for p in dst.pinned_fires(expr, zone, now, dst=choice))
