"""Endpoints of a tenant's installed version, with schedulability, search and paging."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from extsched.domain.pagination import decode_cursor, encode_cursor
from extsched.services import installs
from extsched.services.context import AppContext
from extsched.services.registry import Endpoint


@dataclass(frozen=True)
class EndpointPage:
    version_id: uuid.UUID
    version: str
    items: list[Endpoint]
    next_cursor: str | None


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_page(
    ctx: AppContext,
    tenant_id: str,
    extension_id: uuid.UUID,
    *,
    schedulable_only: bool,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> EndpointPage:
    after_path = after_method = None
    if cursor:
        after_path, after_method = decode_cursor(cursor, 2)
    async with ctx.db.connection() as conn:
        install = await installs.get(ctx, conn, tenant_id, extension_id)
        rows = await ctx.db.fetch_all(
            conn,
            "endpoints_page",
            {
                "version_id": install.version_id,
                "q": _like_pattern(q) if q else None,
                "after_path": after_path,
                "after_method": after_method,
                "schedulable_only": schedulable_only,
                "limit": limit + 1,
            },
        )
    items = [Endpoint(**r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last.path, last.method])
    return EndpointPage(install.version_id, install.version, items, next_cursor)
