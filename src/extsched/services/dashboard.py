"""The tenant's dashboard (the UI's landing page): every schedule across extensions with its
last result and next run, failing ones first; the runs due in the next 24 h; the failures of the
last 24 h; and each schedule's last 50 runs for a small chart. Four queries, whatever the
number of extensions, schedules or runs (no N+1). Read-only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from extsched.domain import cron, timing
from extsched.domain.auth import Principal
from extsched.domain.runs import RunFilter, RunStatus
from extsched.services import runs, tenants
from extsched.services.context import AppContext
from extsched.services.runs import ListedRun
from extsched.services.schedules import Schedule

CHART_RUNS = 50
HORIZON = timedelta(hours=24)
MAX_FIRES_PER_SCHEDULE = 96  # a 5-minute schedule's day is drawn as its first 8 hours of ticks
MAX_FAILURES = 50
FAILING = frozenset({RunStatus.FAILED.value, RunStatus.TIMED_OUT.value})


@dataclass(frozen=True)
class RecentRun:
    id: uuid.UUID
    status: str
    trigger: str
    scheduled_for: datetime
    duration_ms: int | None


@dataclass(frozen=True)
class ScheduleCard:
    schedule: Schedule
    extension_name: str
    install_enabled: bool
    recent: list[RecentRun]  # oldest first, at most CHART_RUNS
    upcoming: list[datetime]  # fires in the next 24 h

    @property
    def failing(self) -> bool:
        """Its last run failed or timed out, or it was disabled after repeated failures."""
        s = self.schedule
        return s.last_run_status in FAILING or s.disabled_reason == "consecutive_failures"

    @property
    def label(self) -> str:
        return (
            self.schedule.name or f"{self.schedule.endpoint_method} {self.schedule.endpoint_path}"
        )


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    cards: list[ScheduleCard]  # failing first, then by next run
    failures: list[ListedRun]  # last 24 h, newest first
    kill_switch: bool
    feature_enabled: bool

    @property
    def horizon_end(self) -> datetime:
        return self.now + HORIZON

    @property
    def upcoming(self) -> list[ScheduleCard]:
        """Schedules with a fire in the next 24 h, the soonest first."""
        return sorted((c for c in self.cards if c.upcoming), key=lambda c: c.upcoming[0])

    @property
    def failing_count(self) -> int:
        return sum(1 for c in self.cards if c.failing)


def _fires(schedule: Schedule, now: datetime, active: bool) -> list[datetime]:
    if not active:
        return []
    end = now + HORIZON
    try:
        expr, zone = cron.compile_schedule(schedule.cron, schedule.timezone)
        start = timing.window_start(now, schedule.policies.not_before)
        fires = timing.in_window(
            cron.iter_fires(expr, zone, start, dst=schedule.policies.dst),
            schedule.policies.ends_at,
        )
        out = []
        for fire in islice(fires, MAX_FIRES_PER_SCHEDULE):
            if fire.at >= end:
                break
            out.append(fire.at)
        return out
    except (cron.CronError, ValueError):
        return []  # a schedule that no longer evaluates shows no fires (SPEC §9)


def _order(card: ScheduleCard) -> tuple[Any, ...]:
    s = card.schedule
    far = datetime.max.replace(tzinfo=card.schedule.created_at.tzinfo)
    return (
        not card.failing,
        -s.consecutive_failures,
        s.next_run_at or far,
        card.extension_name,
        card.label.lower(),
    )


async def load(ctx: AppContext, principal: Principal) -> Dashboard:
    """The dashboard of the principal's tenant, as of now."""
    assert principal.tenant_id is not None
    tenant_id = principal.tenant_id
    now = ctx.clock()
    db = ctx.db
    async with db.connection() as conn:
        tenant = await tenants.get(db, conn, tenant_id)
        rows = await db.fetch_all(conn, "dashboard_schedules", {"tenant_id": tenant_id})
        recent_rows = await db.fetch_all(
            conn, "dashboard_recent_runs", {"tenant_id": tenant_id, "per_schedule": CHART_RUNS}
        )
        failures = await runs.list_filtered(
            ctx,
            conn,
            tenant_id,
            RunFilter(statuses=(RunStatus.FAILED, RunStatus.TIMED_OUT), since=now - HORIZON),
            MAX_FAILURES,
        )
    kill_switch = bool(tenant and tenant.kill_switch)
    recent: dict[uuid.UUID, list[RecentRun]] = {}
    for r in recent_rows:
        recent.setdefault(r["schedule_id"], []).append(
            RecentRun(r["id"], r["status"], r["trigger"], r["scheduled_for"], r["duration_ms"])
        )
    cards = []
    for row in rows:
        active = bool(row["enabled"]) and bool(row["install_enabled"]) and not kill_switch
        schedule = Schedule.from_row(row, active=active, now=now)
        cards.append(
            ScheduleCard(
                schedule=schedule,
                extension_name=row["extension_name"],
                install_enabled=row["install_enabled"],
                recent=list(reversed(recent.get(schedule.id, []))),
                upcoming=_fires(schedule, now, active),
            )
        )
    cards.sort(key=_order)
    return Dashboard(
        now=now,
        cards=cards,
        failures=failures,
        kill_switch=kill_switch,
        feature_enabled=tenant is None or tenant.scheduled_tasks_enabled,
    )
