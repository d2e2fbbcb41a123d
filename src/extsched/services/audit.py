"""Audit log: one row per change, written in the same transaction as the change."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extsched.db.pool import Conn, Database
from extsched.domain import inputs
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.errors import NotInstalled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEntry:
    id: uuid.UUID
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    changes: dict[str, Any]


async def record(
    db: Database,
    conn: Conn,
    *,
    tenant_id: str,
    extension_id: uuid.UUID | None,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    changes: dict[str, Any] | None = None,
) -> None:
    """Append one audit row on ``conn`` (the caller's transaction)."""
    await db.execute(
        conn,
        "audit_insert",
        {
            "tenant_id": tenant_id,
            "id": uuid7(),
            "extension_id": extension_id,
            "actor_type": actor.type.value,
            "actor_id": actor.id,
            "action": action,
            "target_type": target_type,
            "target_id": None if target_id is None else str(target_id),
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
