"""A schedule's policies (SPEC §5) in plain words, and the form's choices for them."""

from __future__ import annotations

from extsched.config import Settings
from extsched.services.schedules import Policies
from extsched.web.render import Formatter

# The form's choices: the empty value is the default (a stored ``null``).
OVERLAP_CHOICES = (
    ("", "Skip the fire (default)"),
    ("buffer_one", "Queue one and run it next"),
    ("allow", "Run side by side"),
)
DST_GAP_CHOICES = (
    ("", "Run just after the jump (default)"),
    ("skip", "Skip that day's run"),
)
DST_REPEAT_CHOICES = (
    ("", "Run at the first occurrence (default)"),
    ("last", "Run at the second occurrence"),
    ("both", "Run at both occurrences"),
)
# Stored values that mean the same as the default; shown as the default's choice.
DEFAULT_VALUES = {"overlap": "skip", "dst_gap": "shift", "dst_repeat": "first"}

_OVERLAP_WORDS = {
    "buffer_one": "Overlap: a fire during a run waits and runs right after it (one at most)",
    "allow": "Overlap: runs may run side by side",
}
_GAP_WORDS = {"skip": "skipped on the day clocks jump past it"}
_REPEAT_WORDS = {
    "last": "at the second occurrence when clocks go back",
    "both": "at both occurrences when clocks go back",
}


def describe(p: Policies, settings: Settings, fmt: Formatter) -> list[str]:
    """One line per policy that differs from its default, e.g. ``Retries: up to 5 attempts``.
    The pause is shown on its own (it comes and goes), not here."""
    lines: list[str] = []
    if p.overlap in _OVERLAP_WORDS:
        lines.append(_OVERLAP_WORDS[p.overlap])
    if p.max_attempts is not None and p.max_attempts != settings.max_attempts:
        lines.append(
            "Retries: none (1 attempt)"
            if p.max_attempts == 1
            else f"Retries: up to {p.max_attempts} attempts"
        )
    if p.timeout_ms is not None and p.timeout_ms != settings.runner_timeout_ms:
        seconds = p.timeout_ms / 1000
        text = fmt.seconds(int(seconds)) if seconds.is_integer() else f"{seconds:g} s"
        lines.append(f"Timeout: {text} per attempt")
    if p.jitter_seconds:
        lines.append(f"Jitter: up to {fmt.seconds(p.jitter_seconds)}")
    if p.starts_at and p.ends_at:
        lines.append(f"Active from {fmt.local(p.starts_at)} until {fmt.local(p.ends_at)}")
    elif p.starts_at:
        lines.append(f"Active from {fmt.local(p.starts_at)}")
    elif p.ends_at:
        lines.append(f"Active until {fmt.local(p.ends_at)}")
    dst = []
    if p.dst_gap in _GAP_WORDS:
        dst.append("a run whose time does not exist is " + _GAP_WORDS[p.dst_gap])
    if p.dst_repeat in _REPEAT_WORDS:
        dst.append("a repeated time runs " + _REPEAT_WORDS[p.dst_repeat])
    if dst:
        lines.append("Daylight saving time: " + "; ".join(dst))
    return lines
