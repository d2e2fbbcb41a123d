"""Reconciliation: compares schedules in the database with the job backend's handles.

Finds schedules whose install or endpoint no longer exists, handles with no schedule,
enabled schedules with no handle and handles in the wrong paused state; ``repair`` fixes
them. It never changes a disabled schedule's configuration.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from extsched import metrics
from extsched.db.pool import Conn
from extsched.domain import notify
from extsched.domain.auth import Actor
from extsched.domain.notify import EventType
from extsched.domain.runs import DisabledReason
from extsched.errors import BackendUnavailable
from extsched.jobs.backend import HandleSpec
from extsched.services import audit, faults, handles, notifications
from extsched.services.context import AppContext

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    orphan_schedules: list[dict[str, Any]] = field(default_factory=list)
    orphan_handles: list[str] = field(default_factory=list)
    missing_handles: list[str] = field(default_factory=list)
    stale_handles: list[str] = field(default_factory=list)
    overdue: list[dict[str, Any]] = field(default_factory=list)
    # Handles that could not be built (the schedule was disabled as invalid instead).
    invalid: list[str] = field(default_factory=list)
    repaired: int = 0

    @property
    def clean(self) -> bool:
        return not (
            self.orphan_schedules
            or self.orphan_handles
            or self.missing_handles
            or self.stale_handles
        )


async def reconcile(
    ctx: AppContext, *, repair: bool, actor: Actor | None = None
) -> ReconcileReport:
    actor = actor or Actor.system("reconcile")
    db = ctx.db
    report = ReconcileReport()
    async with db.connection() as conn:
        rows = await db.fetch_all(conn, "reconcile_schedules")
        existing = {h.handle_id: h for h in await ctx.backend.list_handles(conn, None)}
    wanted: dict[str, HandleSpec] = {}
    to_delete: list[dict[str, Any]] = []
    to_disable: list[dict[str, Any]] = []
    for r in rows:
        if not r["install_exists"]:
            report.orphan_schedules.append(
                {
                    "tenant_id": r["tenant_id"],
                    "schedule_id": str(r["id"]),
                    "reason": "install_missing",
                }
            )
            to_delete.append(r)
            continue
        if not r["endpoint_current"] and r["enabled"]:
            report.orphan_schedules.append(
                {
                    "tenant_id": r["tenant_id"],
                    "schedule_id": str(r["id"]),
                    "reason": "endpoint_missing",
                }
            )
            to_disable.append(r)
        spec = handles.spec_for(
            r, install_enabled=r["install_enabled"], kill_switch=r["kill_switch"]
        )
        wanted[spec.handle_id] = spec
    for hid, spec in wanted.items():
        have = existing.get(hid)
        if have is None:
            if not spec.paused:
                report.missing_handles.append(hid)
        elif have.paused != spec.paused or have.cron != spec.cron or have.timezone != spec.timezone:
            report.stale_handles.append(hid)
    # Handles of orphan schedules go with their schedule; the rest have no schedule at all.
    known = set(wanted) | {
        handles.spec_for(r, install_enabled=False, kill_switch=False).handle_id for r in to_delete
    }
    orphan_handle_infos = [h for hid, h in existing.items() if hid not in known]
    report.orphan_handles = [h.handle_id for h in orphan_handle_infos]
    await _flag_overdue(ctx, actor, wanted, existing, report)
    if repair:
        # Backends that compensate for DST (temporal) re-pin the coming fires here.
        refresh = getattr(ctx.backend, "refresh_compensation", None)
        if refresh is not None:
            await refresh()
    if not repair or report.clean:
        return report

    async with db.transaction() as conn:
        for r in to_delete:
            key = {"tenant_id": r["tenant_id"], "schedule_id": r["id"]}
            await ctx.backend.delete_handles(conn, r["tenant_id"], [(r["install_id"], r["id"])])
            await db.execute(conn, "runs_delete_for_schedule", key)
            await db.execute(conn, "schedule_delete", {"tenant_id": r["tenant_id"], "id": r["id"]})
            await audit.record(
                db,
                conn,
                actor,
                audit.AuditAction.RECONCILE_DELETE_ORPHAN_SCHEDULE,
                audit.Target.schedule(r),
                {"reason": "install_missing"},
            )
            report.repaired += 1
        for r in to_disable:
            row = await db.fetch_one(
                conn,
                "schedule_auto_disable",
                {
                    "tenant_id": r["tenant_id"],
                    "schedule_id": r["id"],
                    "reason": DisabledReason.ENDPOINT_MISSING,
                },
            )
            if row is not None:
                spec = handles.spec_for(
                    row, install_enabled=r["install_enabled"], kill_switch=r["kill_switch"]
                )
                wanted[spec.handle_id] = spec
                if spec.handle_id in existing and spec.handle_id not in report.stale_handles:
                    report.stale_handles.append(spec.handle_id)
                await audit.record(
                    db,
                    conn,
                    actor,
                    audit.AuditAction.RECONCILE_DISABLE_SCHEDULE,
                    audit.Target.schedule(r),
                    {
                        "enabled": {"from": True, "to": False},
                        "disabled_reason": DisabledReason.ENDPOINT_MISSING,
                    },
                )
                await notifications.enqueue(
                    db,
                    conn,
                    r["tenant_id"],
                    EventType.SCHEDULE_DISABLED,
                    ctx.clock(),
                    notifications.schedule_facts(
                        row, disabled_reason=DisabledReason.ENDPOINT_MISSING.value
                    ),
                )
                report.repaired += 1
        fix = [wanted[h] for h in report.missing_handles + report.stale_handles]
        if fix:
            report.repaired += await _put_isolated(ctx, conn, fix, report)
        by_tenant: dict[str, list[tuple[uuid.UUID, uuid.UUID]]] = {}
        for h in orphan_handle_infos:
            by_tenant.setdefault(h.tenant_id, []).append((h.install_id, h.schedule_id))
        for tenant_id, keys in by_tenant.items():
            await ctx.backend.delete_handles(conn, tenant_id, keys)
            report.repaired += len(keys)
    log.info("reconcile repaired", extra={"repaired": report.repaired})
    return report


async def _put_isolated(
    ctx: AppContext, conn: Conn, specs: list[HandleSpec], report: ReconcileReport
) -> int:
    """Put handles; one the backend cannot build (a zone that no longer loads, a cron that no
    longer compiles) disables its schedule as invalid instead of failing the repair (SPEC §9).
    Returns how many handles were put."""
    try:
        async with conn.transaction():
            await ctx.backend.put_handles(conn, specs)
        return len(specs)
    except BackendUnavailable:
        raise
    except Exception:
        pass  # find the culprit(s): one at a time
    put = 0
    for spec in specs:
        try:
            async with conn.transaction():
                await ctx.backend.put_handles(conn, [spec])
            put += 1
        except BackendUnavailable:
            raise
        except Exception as exc:
            async with conn.transaction():
                await faults.disable_invalid(
                    ctx,
                    conn,
                    tenant_id=spec.tenant_id,
                    install_id=spec.install_id,
                    schedule_id=spec.schedule_id,
                    error=exc,
                )
            report.invalid.append(spec.handle_id)
    return put


async def _flag_overdue(
    ctx: AppContext,
    actor: Actor,
    wanted: dict[str, HandleSpec],
    existing: dict[str, Any],
    report: ReconcileReport,
) -> None:
    """Flag active schedules whose handle's next fire is past by more than the grace period:
    a silent stop (metric, audit entry once, and ``overdue_since`` in the admin listing)."""
    now = ctx.clock()
    cutoff = now - timedelta(seconds=ctx.settings.overdue_grace_seconds)
    overdue = [
        h
        for hid, h in existing.items()
        if hid in wanted
        and not wanted[hid].paused
        and h.next_fire_at is not None
        and h.next_fire_at < cutoff
    ]
    report.overdue = [
        {
            "tenant_id": h.tenant_id,
            "schedule_id": str(h.schedule_id),
            "expected_at": h.next_fire_at.isoformat(),
        }
        for h in overdue
    ]
    metrics.SCHEDULES_OVERDUE.set(len(overdue))
    db = ctx.db
    async with db.transaction() as conn:
        newly = await db.fetch_all(
            conn,
            "schedules_mark_overdue",
            {
                "now": now,
                "tenant_ids": [h.tenant_id for h in overdue],
                "schedule_ids": [h.schedule_id for h in overdue],
            },
        )
        for r in newly:
            await audit.record(
                db,
                conn,
                actor,
                audit.AuditAction.SCHEDULE_OVERDUE,
                audit.Target.schedule(r),
                {"grace_seconds": ctx.settings.overdue_grace_seconds},
            )
            await notifications.enqueue(
                db,
                conn,
                r["tenant_id"],
                EventType.SCHEDULE_OVERDUE,
                now,
                notifications.schedule_facts(r, overdue_since=notify.rfc3339(now)),
            )
    if overdue:
        log.warning("overdue schedules", extra={"count": len(overdue)})
