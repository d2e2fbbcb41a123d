"""Pure timing rules for firing and retrying (SPEC §8 catch-up, §9 backoff)."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from extsched.domain import cron

MAX_ENUMERATED_FIRES = 100_000


@dataclass(frozen=True)
class FirePlan:
    """What to record for a handle that is due: at most one run, at most one "missed" skip."""

    run_at: datetime | None  # the fire to run now, if recent enough
    missed_first: datetime | None  # the earliest fire that is skipped as missed
    missed_last: datetime | None
    missed_count: int
    next_fire_at: datetime | None  # the handle's next fire after ``now``
    last_due: datetime  # the latest fire that was due


def plan_due_fires(
    expr: cron.CronExpr,
    zone: ZoneInfo,
    first_due: datetime,
    now: datetime,
    catchup_window_seconds: int,
    *,
    ends_at: datetime | None = None,
    dst: cron.DstChoice = cron.DEFAULT_DST,
) -> FirePlan:
    """Fires ``first_due`` .. ``now``: the most recent runs if within the catch-up window,
    older ones collapse into one missed record (fires are never replayed in bulk). Fires at or
    after ``ends_at`` (the schedule's window end) are not made."""
    due = [first_due]
    upcoming: datetime | None = None
    for fire in cron.iter_fires(expr, zone, first_due, dst=dst):
        if ends_at is not None and fire.at >= ends_at:
            break
        if fire.at > now:
            upcoming = fire.at
            break
        if len(due) >= MAX_ENUMERATED_FIRES:
            # A very long outage: stop counting and continue from now.
            nxt = cron.next_fire(expr, zone, now, dst=dst)
            upcoming = nxt.at if nxt and (ends_at is None or nxt.at < ends_at) else None
            break
        due.append(fire.at)
    last = due[-1]
    window = timedelta(seconds=catchup_window_seconds)
    if now - last <= window:
        run_at: datetime | None = last
        missed = due[:-1]
    else:
        run_at = None
        missed = due
    return FirePlan(
        run_at=run_at,
        missed_first=missed[0] if missed else None,
        missed_last=missed[-1] if missed else None,
        missed_count=len(missed),
        next_fire_at=upcoming,
        last_due=last,
    )


def backoff_seconds(
    attempt: int, base: float = 10.0, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """Delay before retry number ``attempt`` (1 = first retry): base·2^(n-1), capped, ±20 %."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    r = rng or random
    return float(delay * r.uniform(0.8, 1.2))


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` or ``45s`` as a timedelta; ValueError otherwise."""
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if (
        unit not in _DURATION_UNITS
        or not (number.isascii() and number.isdigit())
        or int(number) <= 0
    ):
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m or 2w")
    return timedelta(seconds=int(number) * _DURATION_UNITS[unit])


def utc_now() -> datetime:
    """The real clock (services take an injectable clock defaulting to this)."""
    return datetime.now(UTC)


_US = timedelta(microseconds=1)


def window_start(after: datetime, not_before: datetime | None) -> datetime:
    """Where to look for the next fire: strictly after ``after``, but none before
    ``not_before`` (a schedule's ``starts_at`` or ``paused_until``)."""
    if not_before is not None and not_before - _US > after:
        return not_before - _US
    return after


def in_window(fires: Iterable[cron.Fire], ends_at: datetime | None) -> Iterator[cron.Fire]:
    """The fires before ``ends_at`` (a schedule's window end; fires at or after it are not
    made)."""
    for fire in fires:
        if ends_at is not None and fire.at >= ends_at:
            return
        yield fire


def jitter_offset(
    schedule_id: uuid.UUID, scheduled_for: datetime, jitter_seconds: int
) -> timedelta:
    """The delay of one fire under ``jitter_seconds`` (SPEC §8): a fixed function of the
    schedule and the nominal fire time, uniform over whole seconds in ``[0, J]``, so every
    backend, retry and replay agrees on it."""
    if jitter_seconds <= 0:
        return timedelta(0)
    key = f"{schedule_id}|{scheduled_for.astimezone(UTC):%Y-%m-%dT%H:%M:%S}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return timedelta(seconds=draw % (jitter_seconds + 1))
