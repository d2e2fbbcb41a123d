"""Parsing and describing our cron dialect (SPEC §5). Pure: no I/O, no clock.

The dialect is deliberately small: 5 fields, numbers, ``*``, ranges, steps, lists and
month/weekday names. Everything whose meaning differs between cron engines (seconds,
``@`` macros, ``L W # ?``, both day fields restricted) is refused with a message that names
the field, because the same expression must mean the same thing to our evaluator, the
Postgres backend and Temporal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

__all__ = ["CronError", "CronExpr", "describe", "parse_cron"]

MAX_EXPRESSION_LENGTH = 256

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_WORDS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_DOW_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²" and "٣"


class CronError(ValueError):
    """A cron expression or time zone that we refuse; ``str(exc)`` is shown to users.

    ``field`` is the request field the message belongs to (``cron``, ``timezone``, ``count``).
    """

    def __init__(self, message: str, *, field: str = "cron") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class _Field(NamedTuple):
    name: str
    lo: int
    hi: int  # the largest value a user may write (7 for day-of-week: Sunday again)
    names: tuple[str, ...] | None
    name_base: int  # the value of names[0]
    kind: str  # how to describe a bad token: "number", "number or month name (JAN-DEC)", ...


_FIELDS = (
    _Field("minute", 0, 59, None, 0, "number"),
    _Field("hour", 0, 23, None, 0, "number"),
    _Field("day-of-month", 1, 31, None, 1, "number"),
    _Field("month", 1, 12, _MONTH_NAMES, 1, "number or month name (JAN-DEC)"),
    _Field("day-of-week", 0, 7, _DOW_NAMES, 0, "number or weekday name (SUN-SAT)"),
)
_UNSUPPORTED = {
    "?": "'?' is not supported; use '*'",
    "#": "'#' (nth weekday of the month) is not supported",
    "L": "'L' (last day of the month) is not supported",
    "L-dow": "'L' (last given weekday of the month) is not supported",
    "W": "'W' (nearest weekday) is not supported",
    "LW": "'LW' (last weekday of the month) is not supported",
}


@dataclass(frozen=True)
class CronExpr:
    """A parsed, validated 5-field expression. Weekdays are 0=Sunday..6=Saturday."""

    source: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_restricted: bool
    dow_restricted: bool
    # Derived lookup tables for the evaluator, computed once per expression.
    sorted_minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    sorted_hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    sorted_months: tuple[int, ...] = field(init=False, repr=False, compare=False)
    day_mask: int = field(init=False, repr=False, compare=False)  # bit d set: day d matches
    weekday_mask: int = field(init=False, repr=False, compare=False)  # bit w set: weekday w
    day_minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)  # minute-of-day

    def __post_init__(self) -> None:
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        derived = {
            "sorted_minutes": tuple(minutes),
            "sorted_hours": tuple(hours),
            "sorted_months": tuple(sorted(self.months)),
            "day_mask": sum(1 << d for d in self.days),
            "weekday_mask": sum(1 << w for w in self.weekdays),
            "day_minutes": tuple(h * 60 + m for h in hours for m in minutes),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def fixed_time(self) -> bool:
        """True for one minute and one hour: the SPEC §8 rules for skipped/repeated times apply."""
        return len(self.minutes) == 1 and len(self.hours) == 1


def parse_cron(expr: str) -> CronExpr:
    """Parse ``expr`` into a :class:`CronExpr`; raises :class:`CronError` naming the field.
    Parsed expressions are kept (they are immutable): schedules share a few common crons."""
    return _parse_cached(expr) if isinstance(expr, str) else _parse(expr)


def _parse(expr: str) -> CronExpr:
    text = expr.strip()
    if not text:
        raise CronError("cron: must not be empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CronError(f"cron: too long (at most {MAX_EXPRESSION_LENGTH} characters)")
    if text.startswith("@"):
        macro = text.split()[0]
        raise CronError(
            f"cron: macros such as '{macro}' are not supported; "
            "write the 5 fields, e.g. '0 0 * * *' for daily at midnight"
        )
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            "cron: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}"
        )
    sets = [_parse_field(spec, part) for spec, part in zip(_FIELDS, parts, strict=True)]
    # Vixie cron and robfig treat a field starting with '*' as "unrestricted" and AND the two
    # day fields, otherwise OR them; other engines always AND. Only '*' and '*/1' mean the
    # same everywhere, so anything else in both fields is ambiguous and refused.
    dom_restricted = parts[2] not in ("*", "*/1")
    dow_restricted = parts[4] not in ("*", "*/1")
    if dom_restricted and dow_restricted:
        raise CronError(
            "cron: day-of-month and day-of-week cannot both be restricted (cron engines "
            "disagree on whether that means 'and' or 'or'); use '*' in one of them"
        )
    return CronExpr(
        source=expr,
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=frozenset(0 if d == 7 else d for d in sets[4]),
        dom_restricted=dom_restricted,
        dow_restricted=dow_restricted,
    )


def _parse_field(spec: _Field, text: str) -> frozenset[int]:
    for char in "?#":
        if char in text:
            raise CronError(f"{spec.name}: {_UNSUPPORTED[char]}")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{spec.name}: empty item in the list '{text}'")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _parse_step(spec, item, step_text)
        if base == "*":
            # '*' in day-of-week covers 0-6; 7 is only an alias of Sunday.
            lo, hi = spec.lo, 6 if spec.names is _DOW_NAMES else spec.hi
        elif not base:
            raise CronError(f"{spec.name}: '{item}' needs a start, e.g. '*/{step_text}'")
        elif "-" in base:
            start, _, end = base.partition("-")
            if not start or not end or "-" in end:
                raise CronError(f"{spec.name}: '{base}' is not a valid range")
            lo, hi = _parse_value(spec, start), _parse_value(spec, end)
            if lo > hi:
                hint = ""
                if spec.names is _DOW_NAMES and hi == 0:
                    hint = f"; Sunday can also be written 7, e.g. '{start}-7'"
                raise CronError(
                    f"{spec.name}: range '{base}' is backwards "
                    f"(the start must not exceed the end){hint}"
                )
        else:
            lo = _parse_value(spec, base)
            hi = spec.hi if slash else lo  # 'a/n' runs from a to the end of the field
        values.update(range(lo, hi + 1, step))
    return frozenset(values)


def _parse_step(spec: _Field, item: str, text: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise CronError(f"{spec.name}: the step in '{item}' must be a number")
    step = int(text) if len(text) <= 6 else 10**6
    if step < 1:
        raise CronError(f"{spec.name}: step must be at least 1")
    span = spec.hi - spec.lo + 1 if spec.names is not _DOW_NAMES else 7
    if step > span:
        raise CronError(f"{spec.name}: step {text} is larger than the field's {span} values")
    return step


def _parse_value(spec: _Field, token: str) -> int:
    if _DIGITS.fullmatch(token):
        value = int(token) if len(token) <= 6 else 10**6  # avoid int() on megabyte inputs
        if not spec.lo <= value <= spec.hi:
            raise CronError(f"{spec.name}: {token} is out of range {spec.lo}-{spec.hi}")
        return value
    upper = token.upper()
    if spec.names is not None and upper in spec.names:
        return spec.names.index(upper) + spec.name_base
    letters = upper.strip("0123456789")
    if letters in ("L", "W", "LW") and spec.name in ("day-of-month", "day-of-week"):
        key = "L-dow" if letters == "L" and spec.name == "day-of-week" else letters
        raise CronError(f"{spec.name}: {_UNSUPPORTED[key]}")
    raise CronError(f"{spec.name}: '{token}' is not a {spec.kind}")


# --- describe -------------------------------------------------------------------------------


def describe(expr: CronExpr) -> str:
    """Plain-English description, e.g. ``At 09:30, Monday through Friday``."""
    return _describe_time(expr) + _describe_days(expr)


def _describe_time(expr: CronExpr) -> str:
    minutes, hours = expr.sorted_minutes, expr.sorted_hours
    if len(minutes) * len(hours) <= 6 and len(hours) < 24:
        return "At " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    every, lead = _minute_lead(minutes)
    if len(hours) == 24:
        return lead if every else f"{lead} past every hour"
    shape = _shape(hours, 0, 23)
    if every:
        if shape[0] == "range" or len(hours) == 1:
            return f"{lead}, between {hours[0]:02d}:00 and {hours[-1]:02d}:59"
        return f"{lead} during {_hours_words(hours, shape)}"
    if len(hours) == 1:
        return f"{lead} past hour {hours[0]}"
    return f"{lead} past {_hours_words(hours, shape)}"


def _minute_lead(minutes: tuple[int, ...]) -> tuple[bool, str]:
    """(whether the phrase already covers every hour's span, the leading phrase)."""
    if len(minutes) == 60:
        return True, "Every minute"
    kind, step = _shape(minutes, 0, 59)
    if kind == "star-step" and 60 % step == 0:
        return True, f"Every {step} minutes"
    if len(minutes) == 1:
        return False, f"At minute {minutes[0]}"
    if kind == "range":
        return False, f"At minutes {minutes[0]} through {minutes[-1]}"
    if kind == "star-step":
        return True, f"At every {_ordinal(step)} minute"
    if kind == "step":
        return False, (f"At every {_ordinal(step)} minute from {minutes[0]} through {minutes[-1]}")
    return False, "At minutes " + _join([str(m) for m in minutes])


def _hours_words(hours: tuple[int, ...], shape: tuple[str, int]) -> str:
    kind, step = shape
    if kind == "range":
        return f"every hour from {hours[0]} through {hours[-1]}"
    if kind == "star-step":
        return f"every {_ordinal(step)} hour"
    if kind == "step":
        return f"every {_ordinal(step)} hour from {hours[0]} through {hours[-1]}"
    return "hours " + _join([str(h) for h in hours])


def _describe_days(expr: CronExpr) -> str:
    text = ""
    if expr.dom_restricted and len(expr.days) < 31:
        days = tuple(sorted(expr.days))
        kind, step = _shape(days, 1, 31)
        if len(days) == 1:
            text += f" on day {days[0]} of the month"
        elif kind == "range":
            text += f" on days {days[0]} through {days[-1]} of the month"
        elif kind == "star-step":
            text += f" on every {_ordinal(step)} day of the month"
        else:
            text += " on days " + _join([str(d) for d in days]) + " of the month"
    if expr.dow_restricted and len(expr.weekdays) < 7:
        # Monday-first order reads naturally: "Saturday and Sunday", "Friday through Sunday".
        order = sorted(expr.weekdays, key=lambda d: (d + 6) % 7)
        positions = [(d + 6) % 7 for d in order]
        if len(order) >= 3 and positions == list(range(positions[0], positions[-1] + 1)):
            text += f", {_DOW_WORDS[order[0]]} through {_DOW_WORDS[order[-1]]}"
        else:
            text += " on " + _join([_DOW_WORDS[d] for d in order])
    if len(expr.months) < 12:
        months = expr.sorted_months
        if len(months) >= 3 and _shape(months, 1, 12)[0] == "range":
            text += f", {_MONTH_WORDS[months[0] - 1]} through {_MONTH_WORDS[months[-1] - 1]}"
        else:
            text += " in " + _join([_MONTH_WORDS[m - 1] for m in months])
    return text


def _shape(values: tuple[int, ...], lo: int, hi: int) -> tuple[str, int]:
    """Classify sorted values: ("range", 1), ("star-step", n) for lo,lo+n,.. up to the end,
    ("step", n) for another arithmetic run of 3+ values, else ("list", 0)."""
    if len(values) >= 2:
        step = values[1] - values[0]
        if all(b - a == step for a, b in pairwise(values)):
            if step == 1:
                return "range", 1
            # Two values only read as "every n" when n divides the field (0,30 minutes).
            whole = len(values) >= 3 or (hi - lo + 1) % step == 0
            if values[0] == lo and values[-1] + step > hi and whole:
                return "star-step", step
            if len(values) >= 3:
                return "step", step
    return "list", 0


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


_parse_cached = lru_cache(maxsize=4096)(_parse)  # errors are raised, not kept
