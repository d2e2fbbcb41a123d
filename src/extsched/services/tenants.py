"""Tenant settings: default time zone, the scheduled-tasks feature flag, the kill switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from extsched.db.pool import Conn, Database
from extsched.domain import cron
from extsched.domain.auth import TENANT_ID_RE
from extsched.errors import FeatureDisabled, NotFound, field_error


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    timezone: str | None
    scheduled_tasks_enabled: bool
    kill_switch: bool
    created_at: datetime
    updated_at: datetime


def check_tenant_id(tenant_id: str) -> None:
    if not TENANT_ID_RE.match(tenant_id):
        raise NotFound("unknown tenant")


async def get(db: Database, conn: Conn, tenant_id: str) -> Tenant | None:
    row = await db.fetch_one(conn, "tenant_get", {"tenant_id": tenant_id})
    return None if row is None else Tenant(**row)


async def require_feature(db: Database, conn: Conn, tenant_id: str) -> Tenant:
    """The tenant, or FEATURE_DISABLED when its scheduled tasks are switched off."""
    tenant = await get(db, conn, tenant_id)
    if tenant is None:
        # Tokens create their tenant; a missing row means it was never set up.
        raise FeatureDisabled()
    if not tenant.scheduled_tasks_enabled:
        raise FeatureDisabled()
    return tenant


async def put(
    db: Database,
    tenant_id: str,
    *,
    timezone: str | None,
    set_timezone: bool,
    scheduled_tasks_enabled: bool | None,
) -> Tenant:
    """Create or update a tenant's defaults (admin)."""
    check_tenant_id(tenant_id)
    if set_timezone and timezone is not None:
        try:
            cron.load_zone(timezone)
        except cron.CronError as exc:
            raise field_error("timezone", str(exc)) from None
    async with db.transaction() as conn:
        row = await db.fetch_one(
            conn,
            "tenant_upsert",
            {
                "tenant_id": tenant_id,
                "timezone": timezone,
                "set_timezone": set_timezone,
                "scheduled_tasks_enabled": scheduled_tasks_enabled,
            },
        )
    assert row is not None
    return Tenant(**row)
