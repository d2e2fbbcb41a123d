"""Keeps backend handles in line with what should fire.

A schedule's handle is active exactly when the schedule is enabled, its install is enabled
and the tenant's kill switch is off; otherwise it is paused with a note saying why. Every
service that changes one of those three facts calls into here, inside its transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from extsched.db.pool import Conn
from extsched.jobs.backend import HandleSpec
from extsched.services.context import AppContext

log = logging.getLogger(__name__)


def pause_note(schedule_enabled: bool, install_enabled: bool, kill_switch: bool) -> str | None:
    """Why a handle is paused, or None when it should fire."""
    if kill_switch:
        return "tenant kill switch is on"
    if not install_enabled:
        return "extension install is disabled"
    if not schedule_enabled:
        return "schedule is disabled"
    return None


def spec_for(row: dict[str, Any], *, install_enabled: bool, kill_switch: bool) -> HandleSpec:
    note = pause_note(row["enabled"], install_enabled, kill_switch)
    return HandleSpec(
        tenant_id=row["tenant_id"],
        install_id=row["install_id"],
        schedule_id=row["id"],
        cron=row["cron"],
        timezone=row["timezone"],
        paused=note is not None,
        note=note,
        dst_gap=row.get("dst_gap") or "shift",
        dst_repeat=row.get("dst_repeat") or "first",
        starts_at=row.get("starts_at"),
        ends_at=row.get("ends_at"),
        paused_until=row.get("paused_until"),
        jitter_seconds=row.get("jitter_seconds") or 0,
    )


async def install_state(
    ctx: AppContext, conn: Conn, tenant_id: str, install_id: uuid.UUID
) -> tuple[bool, bool]:
    """(install enabled, tenant kill switch on)."""
    row = await ctx.db.fetch_one(
        conn, "install_state", {"tenant_id": tenant_id, "install_id": install_id}
    )
    if row is None:
        return False, False
    return bool(row["install_enabled"]), bool(row["kill_switch"])


async def sync_schedules(
    ctx: AppContext,
    conn: Conn,
    tenant_id: str,
    install_id: uuid.UUID,
    rows: Sequence[dict[str, Any]],
    *,
    state: tuple[bool, bool] | None = None,
) -> None:
    """Put the handles of these schedule rows (all of one install) into their desired state.
    ``state`` is (install enabled, tenant kill switch on) when the caller has just read it in
    this transaction after everything that could have changed it; otherwise it is read here."""
    if not rows:
        return
    if state is None:
        state = await install_state(ctx, conn, tenant_id, install_id)
    install_enabled, kill_switch = state
    await ctx.backend.put_handles(
        conn,
        [spec_for(r, install_enabled=install_enabled, kill_switch=kill_switch) for r in rows],
    )


async def sync_install(ctx: AppContext, conn: Conn, tenant_id: str, install_id: uuid.UUID) -> None:
    """Re-derive every handle of an install (after enable/disable, update, kill switch)."""
    rows = await ctx.db.fetch_all(
        conn, "schedules_for_install", {"tenant_id": tenant_id, "install_id": install_id}
    )
    await sync_schedules(ctx, conn, tenant_id, install_id, rows)


async def change_atomically(
    ctx: AppContext,
    conn: Conn,
    tenant_id: str,
    install_id: uuid.UUID,
    *,
    put: Sequence[dict[str, Any]],
    previous: Sequence[dict[str, Any]],
    delete: Sequence[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    """Put the handles of ``put`` rows and delete ``delete`` ones as one change: if the
    deletes fail after the puts went through, the puts are undone (``previous`` holds the
    rows as they were before, for the schedules of ``put`` that existed) and the error is
    raised, so the caller's transaction rolls back with the backend as before. The postgres
    backend writes on ``conn`` and needs no undo; a remote one does."""
    await sync_schedules(ctx, conn, tenant_id, install_id, put)
    try:
        await ctx.backend.delete_handles(conn, tenant_id, delete)
    except Exception:
        existed = {r["id"] for r in previous}
        new = [(r["install_id"], r["id"]) for r in put if r["id"] not in existed]
        try:
            await sync_schedules(ctx, conn, tenant_id, install_id, previous)
            await ctx.backend.delete_handles(conn, tenant_id, new)
        except Exception:  # best effort: reconcile repairs what an undo could not
            log.warning("could not undo handle changes after a failed delete", exc_info=True)
        raise
