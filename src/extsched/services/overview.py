"""Read-only views the web UI needs beyond the API's use cases: the session's principal,
install summaries, runs in flight, the versions of one extension and audit pages.

Nothing here changes data; every rule stays in the other service modules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from extsched.domain.auth import Principal
from extsched.domain.pagination import before_id, encode_cursor
from extsched.services import audit, installs, tenants
from extsched.services.audit import AuditEntry
from extsched.services.context import AppContext
from extsched.services.installs import Install
from extsched.services.registry import RegistryVersion


@dataclass(frozen=True)
class InstallSummary:
    install: Install
    schedules: int
    last_failure_at: datetime | None
    last_failure_status: str | None
    last_failure_error: str | None
    last_failure_schedule_id: uuid.UUID | None


async def viewer_timezone(ctx: AppContext, principal: Principal) -> str:
    """The zone to show times in: the user's, else the tenant's default, else UTC."""
    if principal.user_timezone:
        return principal.user_timezone
    if principal.tenant_id is None:
        return "UTC"
    async with ctx.db.connection() as conn:
        tenant = await tenants.get(ctx.db, conn, principal.tenant_id)
    return (tenant.timezone if tenant else None) or "UTC"


async def install_summaries(ctx: AppContext, tenant_id: str) -> list[InstallSummary]:
    """Every install of the tenant with its schedule count and latest failed run (2 queries)."""
    async with ctx.db.connection() as conn:
        rows = await ctx.db.fetch_all(conn, "install_list", {"tenant_id": tenant_id})
        stats = await ctx.db.fetch_all(conn, "ui_install_summaries", {"tenant_id": tenant_id})
    by_extension = {s["extension_id"]: s for s in stats}
    out: list[InstallSummary] = []
    for row in rows:
        install = Install.from_row(row)
        s = by_extension.get(install.extension_id, {})
        out.append(
            InstallSummary(
                install=install,
                schedules=int(s.get("schedules") or 0),
                last_failure_at=s.get("last_failure_at"),
                last_failure_status=s.get("last_failure_status"),
                last_failure_error=s.get("last_failure_error"),
                last_failure_schedule_id=s.get("last_failure_schedule_id"),
            )
        )
    return out


async def active_run_schedules(
    ctx: AppContext, tenant_id: str, install_id: uuid.UUID
) -> set[uuid.UUID]:
    """Ids of the install's schedules that have a queued or running run."""
    async with ctx.db.connection() as conn:
        rows = await ctx.db.fetch_all(
            conn, "ui_active_run_schedules", {"tenant_id": tenant_id, "install_id": install_id}
        )
    return {r["schedule_id"] for r in rows}


async def extension_versions(
    ctx: AppContext, tenant_id: str, extension_id: uuid.UUID
) -> tuple[Install, list[RegistryVersion]]:
    """The tenant's install of an extension and every published version of it, oldest first."""
    async with ctx.db.connection() as conn:
        install = await installs.get(ctx, conn, tenant_id, extension_id)
        rows = await ctx.db.fetch_all(conn, "ui_extension_versions", {"extension_id": extension_id})
    return install, [RegistryVersion(r["version_id"], r["version"]) for r in rows]


async def audit_page(
    ctx: AppContext, tenant_id: str, extension_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[AuditEntry], str | None]:
    """One page of an extension's audit log, newest first, with the cursor of the next page."""
    before = before_id(cursor)
    async with ctx.db.connection() as conn:
        entries = await audit.page(
            ctx.db,
            conn,
            tenant_id=tenant_id,
            extension_id=extension_id,
            limit=limit + 1,
            before_id=before,
        )
    next_cursor = encode_cursor([str(entries[limit - 1].id)]) if len(entries) > limit else None
    return entries[:limit], next_cursor


async def tenant_state(ctx: AppContext, tenant_id: str) -> tenants.Tenant | None:
    """The tenant's row (default zone, feature flag, kill switch), if it exists."""
    async with ctx.db.connection() as conn:
        return await tenants.get(ctx.db, conn, tenant_id)
