"""Server-rendered SVG for the dashboard: a schedule's last runs and its next 24 h.

No script and no chart library: small inline SVG styled by ui.css (the page's CSP allows no
inline style). Status is never told by colour alone: a success is a bar rising from the
baseline (its height the run's duration), a failure or time-out a bar hanging below it, a skip
a dot on the line, a run in flight a hollow box; each mark has a ``<title>`` and the chart an
``aria-label`` summary, and the page repeats the counts in words next to it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from statistics import median

from markupsafe import Markup, escape

from extsched.services.dashboard import CHART_RUNS, HORIZON, RecentRun
from extsched.web.render import RUN_STATUS_LABELS, TRIGGER_LABELS, Formatter

SLOT = 4.0  # width of one run's slot in the 200-unit-wide chart
BASE = 30.0  # the baseline's y
UP = 26.0  # tallest success bar
DOWN = 14.0  # deepest failure bar
FAILED = ("failed", "timed_out")


def run_summary(runs: list[RecentRun]) -> str:
    """``48 succeeded, 2 failed; median 1.2 s`` (the chart's text alternative)."""
    if not runs:
        return "No runs yet"
    counts = Counter(r.status for r in runs)
    parts = [f"{counts[s]} {RUN_STATUS_LABELS[s].lower()}" for s in RUN_STATUS_LABELS if counts[s]]
    text = ", ".join(parts)
    durations = [r.duration_ms for r in runs if r.duration_ms is not None]
    if durations:
        text += f"; median {Formatter.duration(int(median(durations)))}"
    return text


def run_chart(runs: list[RecentRun], fmt: Formatter, label: str) -> Markup:
    """The last runs (oldest left) as marks whose shape says the outcome."""
    longest = max((r.duration_ms or 0 for r in runs), default=0) or 1
    marks: list[str] = [
        f'<line class="chart-base" x1="0" y1="{BASE}" x2="{SLOT * CHART_RUNS}" y2="{BASE}"/>'
    ]
    offset = SLOT * (CHART_RUNS - len(runs))  # the newest run always at the right edge
    for i, r in enumerate(runs):
        x = offset + i * SLOT + 0.5
        share = (r.duration_ms or 0) / longest
        title = escape(
            f"{RUN_STATUS_LABELS.get(r.status, r.status)} · {fmt.short(r.scheduled_for)}"
            f" · {Formatter.duration(r.duration_ms)}"
            + (f" · {TRIGGER_LABELS[r.trigger]}" if r.trigger != "schedule" else "")
        )
        cls = f"mark st-{escape(r.status)}"
        if r.status == "succeeded":
            h = 2 + (UP - 2) * share
            tag, attrs = "rect", f'x="{x:.1f}" y="{BASE - h:.1f}" width="3" height="{h:.1f}"'
        elif r.status in FAILED:
            h = 4 + (DOWN - 4) * share
            tag, attrs = "rect", f'x="{x:.1f}" y="{BASE + 1:.1f}" width="3" height="{h:.1f}"'
        elif r.status == "skipped":
            tag, attrs = "circle", f'cx="{x + 1.5:.1f}" cy="{BASE:.1f}" r="1.5"'
        else:  # queued or running
            tag, attrs = "rect", f'x="{x:.1f}" y="{BASE - 8:.1f}" width="3" height="8"'
        marks.append(f'<{tag} class="{cls}" {attrs}><title>{title}</title></{tag}>')
    summary = escape(f"Last {len(runs)} runs of {label}: {run_summary(runs)}")
    return Markup(
        f'<svg class="run-chart" viewBox="0 0 {SLOT * CHART_RUNS:.0f} 46" role="img" '
        f'aria-label="{summary}" focusable="false">{"".join(marks)}</svg>'
    )


def timeline(fires: list[datetime], now: datetime, fmt: Formatter, label: str) -> Markup:
    """The next 24 h as a lane with a tick per fire (6-hour grid lines)."""
    span = HORIZON.total_seconds()
    grid = "".join(
        f'<line class="lane-grid" x1="{240 * h / 24:.1f}" y1="0" x2="{240 * h / 24:.1f}" y2="14"/>'
        for h in (6, 12, 18)
    )
    ticks = "".join(
        f'<line class="lane-tick" x1="{x:.2f}" y1="2" x2="{x:.2f}" y2="12">'
        f"<title>{escape(fmt.short(at))}</title></line>"
        for at in fires
        for x in (240 * (at - now).total_seconds() / span,)
    )
    when = ", ".join(fmt.short(at) for at in fires[:3]) + ("…" if len(fires) > 3 else "")
    runs = "1 run" if len(fires) == 1 else f"{len(fires)} runs"
    summary = escape(f"{label}: {runs} in the next 24 hours ({when})")
    return Markup(
        '<svg class="lane" viewBox="0 0 240 14" preserveAspectRatio="none" role="img" '
        f'aria-label="{summary}" focusable="false">'
        f'<rect class="lane-bg" x="0" y="0" width="240" height="14"/>{grid}{ticks}</svg>'
    )
