"""Audit log: one row per change, written in the same transaction as the change."""

from __future__ import annotations

import enum
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extsched.db.pool import Conn, Database
from extsched.domain import inputs
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.errors import NotInstalled

log = logging.getLogger(__name__)


class AuditAction(enum.StrEnum):
    """Every action the audit log records (SPEC §9)."""

    INSTALL_CREATE = "install.create"
    INSTALL_UPDATE = "install.update"
    INSTALL_UPDATE_SETTINGS = "install.update_settings"
    INSTALL_ENABLE = "install.enable"
    INSTALL_DISABLE = "install.disable"
    INSTALL_DELETE = "install.delete"
    SIGNING_SECRET_ROTATE = "install.signing_secret_rotate"
    SCHEDULE_CREATE = "schedule.create"
    SCHEDULE_UPDATE = "schedule.update"
    SCHEDULE_ENABLE = "schedule.enable"
    SCHEDULE_DISABLE = "schedule.disable"
    SCHEDULE_DELETE = "schedule.delete"
    SCHEDULE_DISABLE_ALL = "schedule.disable_all"
    SCHEDULE_APPLY = "schedule.apply"
    SCHEDULE_RUN_NOW = "schedule.run_now"
    SCHEDULE_REPLAY = "schedule.replay"
    SCHEDULE_REMAP = "schedule.remap"
    SCHEDULE_DISABLE_OVERRIDE = "schedule.disable_override"
    SCHEDULE_AUTO_DISABLE = "schedule.auto_disable"
    SCHEDULE_OVERDUE = "schedule.overdue"
    RECONCILE_DELETE_ORPHAN_SCHEDULE = "reconcile.delete_orphan_schedule"
    RECONCILE_DISABLE_SCHEDULE = "reconcile.disable_schedule"
    TENANT_KILL_SWITCH = "tenant.kill_switch"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    NOTIFICATIONS_UPDATE = "notifications.update"


class TargetType(enum.StrEnum):
    SCHEDULE = "schedule"
    INSTALL = "install"
    TENANT = "tenant"
    TOKEN = "token"
    NOTIFICATIONS = "notifications"


@dataclass(frozen=True, slots=True)
class Target:
    """What an entry is about: the object with its name, in its tenant (and extension)."""

    type: TargetType
    id: object
    name: str | None
    tenant_id: str
    extension_id: uuid.UUID | None = None

    @classmethod
    def schedule(cls, row: Mapping[str, Any]) -> Target:
        """A schedule from any row with ``tenant_id``, ``extension_id``, ``id``, ``name``."""
        return cls(
            TargetType.SCHEDULE, row["id"], row.get("name"), row["tenant_id"], row["extension_id"]
        )

    @classmethod
    def install(
        cls, tenant_id: str, extension_id: uuid.UUID, install_id: object, name: str | None
    ) -> Target:
        """An install, named by its extension's name."""
        return cls(TargetType.INSTALL, install_id, name, tenant_id, extension_id)


@dataclass(frozen=True)
class AuditEntry:
    id: uuid.UUID
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    target_name: str | None
    changes: dict[str, Any]
    # Whether the schedule or install it names still exists (a UI links only to those).
    target_exists: bool = False


async def record(
    db: Database,
    conn: Conn,
    actor: Actor,
    action: AuditAction,
    target: Target,
    changes: dict[str, Any] | None = None,
) -> None:
    """Append one audit row on ``conn`` (the caller's transaction)."""
    await db.execute(
        conn,
        "audit_insert",
        {
            "tenant_id": target.tenant_id,
            "id": uuid7(),
            "extension_id": target.extension_id,
            "actor_type": actor.type.value,
            "actor_id": actor.id,
            "action": action.value,
            "target_type": target.type.value,
            "target_id": None if target.id is None else str(target.id),
            "target_name": target.name,
            "changes": json.dumps(changes or {}, default=str),
        },
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``{field: {"from": old, "to": new}}`` for the fields that changed."""
    return {
        k: {"from": before.get(k), "to": after.get(k)}
        for k in after
        if before.get(k) != after.get(k)
    }


async def page(
    db: Database,
    conn: Conn,
    *,
    tenant_id: str,
    extension_id: uuid.UUID,
    limit: int,
    before_id: uuid.UUID | None,
) -> list[AuditEntry]:
    rows = await db.fetch_all(
        conn,
        "audit_page",
        {
            "tenant_id": tenant_id,
            "extension_id": extension_id,
            "limit": limit,
            "before_id": before_id,
        },
    )
    return [_entry(r) for r in rows]


async def extension_page(
    db: Database,
    *,
    tenant_id: str,
    extension_id: uuid.UUID,
    limit: int,
    before_id: uuid.UUID | None,
) -> list[AuditEntry]:
    """A page of an extension's audit log. The log outlives an uninstall; an extension this
    tenant never installed (no entries, no install) is NOT_INSTALLED, not an empty log."""
    async with db.connection() as conn:
        entries = await page(
            db,
            conn,
            tenant_id=tenant_id,
            extension_id=extension_id,
            limit=limit,
            before_id=before_id,
        )
        if not entries and before_id is None:
            row = await db.fetch_one(
                conn, "install_get", {"tenant_id": tenant_id, "extension_id": extension_id}
            )
            if row is None:
                raise NotInstalled()
    return entries


def _entry(r: dict[str, Any]) -> AuditEntry:
    if inputs.exceeds_depth(r["changes"], inputs.MAX_READABLE_JSON_DEPTH):
        # Written before payloads had a depth limit; no response could encode it.
        log.warning("audit entry %s: changes nested too deeply are shown as {}", r["id"])
        r = {**r, "changes": {}}
    return AuditEntry(**r)
