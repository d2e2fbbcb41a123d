"""Platform-admin routes."""

from __future__ import annotations

from fastapi import APIRouter

from extsched.api.deps import Admin, Ctx
from extsched.api.schemas import TenantOut, TenantPutIn
from extsched.services import tenants

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.put("/tenants/{tenant_id}", response_model=TenantOut)
async def put_tenant(ctx: Ctx, _: Admin, tenant_id: str, body: TenantPutIn) -> TenantOut:
    """Create or update a tenant's default time zone and scheduled-tasks feature flag."""
    tenant = await tenants.put(
        ctx.db,
        tenant_id,
        timezone=body.timezone,
        set_timezone="timezone" in body.model_fields_set,
        scheduled_tasks_enabled=body.scheduled_tasks_enabled,
    )
    return TenantOut.of(tenant)
