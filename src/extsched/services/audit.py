"""Audit log: one row per change, written in the same transaction as the change."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extsched.db.pool import Conn, Database
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7


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
    return [AuditEntry(**r) for r in rows]
