"""Fault isolation (SPEC §9): a schedule that cannot be evaluated or executed costs one item.

Wherever a batch evaluates schedules (the postgres scheduler's tick, the reconciler creating
handles, the Temporal activity checking a fire), a failure on one item lands here instead of
failing the batch: the schedule is disabled with ``disabled_reason: "invalid"``, audited and
counted, and its handle stops firing, so the same row cannot fail every pass from then on.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from extsched import metrics
from extsched.db.pool import Conn
from extsched.domain import cron
from extsched.domain.auth import Actor
from extsched.domain.notify import EventType
from extsched.domain.runs import DisabledReason
from extsched.services import audit, handles, notifications
from extsched.services.context import AppContext

log = logging.getLogger("extsched.jobs")


def describe(exc: BaseException) -> str:
    """A one-line reason for the audit entry and the log (no traceback, bounded)."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:300]


def evaluable(row: dict[str, Any]) -> bool:
    """Whether a handle can be built from this schedule row (its cron and zone load)."""
    try:
        cron.compile_schedule(row["cron"], row["timezone"])
    except Exception:
        return False
    return True


async def disable_invalid(
    ctx: AppContext,
    conn: Conn,
    *,
    tenant_id: str,
    install_id: uuid.UUID,
    schedule_id: uuid.UUID,
    error: BaseException,
) -> None:
    """Take one failing schedule out of rotation, on ``conn`` (the caller's transaction).

    An enabled schedule is disabled as ``invalid`` and audited. Its handle is paused when one
    can still be built from the row, and removed otherwise (enabling the schedule after a fix
    creates it again); a handle with no schedule behind it is removed.
    """
    db = ctx.db
    reason = describe(error)
    row = await db.fetch_one(
        conn,
        "schedule_auto_disable",
        {"tenant_id": tenant_id, "schedule_id": schedule_id, "reason": DisabledReason.INVALID},
    )
    current = row or await db.fetch_one(
        conn, "schedule_get", {"tenant_id": tenant_id, "id": schedule_id}
    )
    if current is not None and evaluable(current):
        await handles.sync_schedules(ctx, conn, tenant_id, current["install_id"], [current])
    else:
        owner = install_id if current is None else current["install_id"]
        await ctx.backend.delete_handles(conn, tenant_id, [(owner, schedule_id)])
    if row is not None:
        await audit.record(
            db,
            conn,
            Actor.system(),
            audit.AuditAction.SCHEDULE_AUTO_DISABLE,
            audit.Target.schedule(row),
            {
                "enabled": {"from": True, "to": False},
                "disabled_reason": DisabledReason.INVALID.value,
                "error": reason,
            },
        )
        await notifications.enqueue(
            db,
            conn,
            tenant_id,
            EventType.SCHEDULE_DISABLED,
            ctx.clock(),
            notifications.schedule_facts(row, disabled_reason=DisabledReason.INVALID.value),
        )
    metrics.SCHEDULES_INVALID.inc()
    log.error(
        "schedule disabled: it cannot be evaluated",
        exc_info=error,
        extra={"tenant_id": tenant_id, "schedule_id": schedule_id, "error": reason},
    )
