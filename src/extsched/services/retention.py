"""Retention (SPEC §10): runs older than ``EXTSCHED_RUN_RETENTION_DAYS``, audit entries
older than ``EXTSCHED_AUDIT_RETENTION_DAYS`` and finished notification deliveries older than
``EXTSCHED_NOTIFY_RETENTION_DAYS`` are deleted, and run-now rate-limit windows once they are
an hour old, so storage stays flat.

Deletion goes tenant by tenant in small batches, each its own short transaction whose
statements all filter by ``tenant_id`` (one shard on Citus), with a short pause between full
batches so a large backlog does not compete with fires. Ids are UUIDv7, so "created
before the cutoff" is a primary-key range and needs no extra index. A schedule's newest run
is always kept, and runs still queued or running are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from extsched import metrics
from extsched.domain.ids import uuid7_floor
from extsched.services.context import AppContext

log = logging.getLogger("extsched.jobs")

_START = uuid.UUID(int=0)


@dataclass
class RetentionReport:
    tenants: int = 0
    runs_deleted: int = 0
    audit_deleted: int = 0
    deliveries_deleted: int = 0
    rate_windows_deleted: int = 0
    batches: int = 0


# Run-now rate limits count hits in one-minute windows (services/runs.py); an hour-old window
# can no longer matter.
RATE_WINDOW_KEEP = timedelta(hours=1)


async def prune(ctx: AppContext, *, now: datetime | None = None) -> RetentionReport:
    """Delete what is past retention for every tenant; returns what went."""
    now = now or ctx.clock()
    async with ctx.db.connection() as conn:
        tenants = [r["tenant_id"] for r in await ctx.db.fetch_all(conn, "retention_tenants")]
    report = RetentionReport()
    for tenant_id in tenants:
        one = await prune_tenant(ctx, tenant_id, now)
        report.tenants += 1
        report.runs_deleted += one.runs_deleted
        report.audit_deleted += one.audit_deleted
        report.deliveries_deleted += one.deliveries_deleted
        report.rate_windows_deleted += one.rate_windows_deleted
        report.batches += one.batches
    if report.runs_deleted or report.audit_deleted or report.deliveries_deleted:
        log.info(
            "retention pass",
            extra={
                "tenants": report.tenants,
                "runs_deleted": report.runs_deleted,
                "audit_deleted": report.audit_deleted,
                "deliveries_deleted": report.deliveries_deleted,
                "batches": report.batches,
            },
        )
    return report


async def prune_tenant(ctx: AppContext, tenant_id: str, now: datetime) -> RetentionReport:
    """One tenant's share of a pass: its old runs, audit entries, deliveries and run-now
    rate-limit windows."""
    s = ctx.settings
    report = RetentionReport(tenants=1)
    run_cutoff = uuid7_floor(now - timedelta(days=s.run_retention_days))
    audit_cutoff = uuid7_floor(now - timedelta(days=s.audit_retention_days))
    report.runs_deleted = await _prune_table(ctx, "runs_prune", tenant_id, run_cutoff, report)
    report.audit_deleted = await _prune_table(ctx, "audit_prune", tenant_id, audit_cutoff, report)
    notify_cutoff = uuid7_floor(now - timedelta(days=s.notify_retention_days))
    report.deliveries_deleted = await _prune_table(
        ctx, "notifications_prune", tenant_id, notify_cutoff, report
    )
    async with ctx.db.connection() as conn:
        report.rate_windows_deleted = int(
            await ctx.db.fetch_val(
                conn, "rate_limit_prune", {"tenant_id": tenant_id, "cutoff": now - RATE_WINDOW_KEEP}
            )
            or 0
        )
    metrics.RETENTION_DELETED.labels(table="runs").inc(report.runs_deleted)
    metrics.RETENTION_DELETED.labels(table="audit").inc(report.audit_deleted)
    metrics.RETENTION_DELETED.labels(table="notification_delivery").inc(report.deliveries_deleted)
    metrics.RETENTION_DELETED.labels(table="rate_limit_counter").inc(report.rate_windows_deleted)
    return report


async def _prune_table(
    ctx: AppContext, query: str, tenant_id: str, cutoff: uuid.UUID, report: RetentionReport
) -> int:
    """Batches of ``query`` for one tenant until one comes back short; returns rows deleted."""
    limit = ctx.settings.retention_batch_size
    pause = ctx.settings.retention_batch_pause_seconds
    after, total = _START, 0
    while True:
        async with ctx.db.connection() as conn:
            row = await ctx.db.fetch_one(
                conn,
                query,
                {"tenant_id": tenant_id, "cutoff": cutoff, "after": after, "limit": limit},
            )
        report.batches += 1
        deleted = int(row["deleted"]) if row else 0
        total += deleted
        if deleted < limit or row is None or row["last"] is None:
            return total
        after = row["last"]
        if pause:
            await asyncio.sleep(pause)  # throttle: retention is never urgent, fires are
