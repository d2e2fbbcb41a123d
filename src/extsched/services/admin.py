"""Cross-tenant views for platform admins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from extsched.jobs.backend import handle_id
from extsched.services.context import AppContext
from extsched.services.schedules import Schedule


@dataclass(frozen=True)
class AdminSchedule:
    schedule: Schedule
    handle_id: str
    handle_present: bool
    handle_paused: bool | None
    overdue_since: datetime | None


async def list_schedules(
    ctx: AppContext,
    *,
    tenant_id: str | None,
    extension_id: uuid.UUID | None,
    install_id: uuid.UUID | None,
    limit: int,
) -> list[AdminSchedule]:
    """Schedules of all (or one) tenants with the backend's view of their handles."""
    db = ctx.db
    async with db.connection() as conn:
        rows = await db.fetch_all(
            conn,
            "admin_schedules",
            {
                "tenant_id": tenant_id,
                "extension_id": extension_id,
                "install_id": install_id,
                "limit": limit,
            },
        )
        backend_handles = {h.handle_id: h for h in await ctx.backend.list_handles(conn, tenant_id)}
    now = ctx.clock()
    out = []
    for r in rows:
        active = bool(r["enabled"] and r["install_enabled"] and not r["kill_switch"])
        hid = handle_id(r["tenant_id"], r["install_id"], r["id"])
        h = backend_handles.get(hid)
        out.append(
            AdminSchedule(
                schedule=Schedule.from_row(r, active=active, now=now),
                handle_id=hid,
                handle_present=h is not None,
                handle_paused=None if h is None else h.paused,
                overdue_since=r["overdue_since"],
            )
        )
    return out
