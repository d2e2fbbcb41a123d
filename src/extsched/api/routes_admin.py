"""Platform-admin routes: tenants, kill switch, cross-tenant schedules, reconcile, backfill,
tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response

from extsched.api.deps import Admin, Ctx
from extsched.api.openapi import raises
from extsched.api.schemas import (
    AdminScheduleListOut,
    AdminScheduleOut,
    BackfillOut,
    KillSwitchIn,
    KillSwitchOut,
    ReconcileOut,
    ScheduleOut,
    TenantOut,
    TenantPutIn,
    TokenCreatedOut,
    TokenCreateIn,
    TokenListOut,
    TokenOut,
)
from extsched.domain.auth import TENANT_ID_RE
from extsched.errors import NotFound, field_error
from extsched.services import admin, lifecycle, reconcile, registry, schedules, tenants, tokens

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.put("/tenants/{tenant_id}", response_model=TenantOut)
@raises(NotFound)
async def admin_put_tenant(ctx: Ctx, _: Admin, tenant_id: str, body: TenantPutIn) -> TenantOut:
    """Create or update a tenant's default time zone and scheduled-tasks feature flag."""
    tenant = await tenants.put(
        ctx.db,
        tenant_id,
        timezone=body.timezone,
        set_timezone="timezone" in body.model_fields_set,
        scheduled_tasks_enabled=body.scheduled_tasks_enabled,
    )
    return TenantOut.of(tenant)


@router.post("/tenants/{tenant_id}/kill-switch", response_model=KillSwitchOut)
@raises(NotFound)
async def admin_set_kill_switch(
    ctx: Ctx, a: Admin, tenant_id: str, body: KillSwitchIn
) -> KillSwitchOut:
    """On: nothing of the tenant fires or runs now (handles paused); off: restores."""
    tenants.check_tenant_id(tenant_id)
    changed = await lifecycle.set_kill_switch(ctx, a.actor, tenant_id, body.enabled)
    return KillSwitchOut(tenant_id=tenant_id, kill_switch=body.enabled, changed=changed)


@router.get("/schedules", response_model=AdminScheduleListOut)
async def admin_list_schedules(
    ctx: Ctx,
    _: Admin,
    tenant: str | None = Query(default=None, max_length=64),
    extension_id: uuid.UUID | None = None,
    install_id: uuid.UUID | None = None,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> AdminScheduleListOut:
    """Schedules across tenants with their backend handle ids."""
    if tenant is not None and not TENANT_ID_RE.match(tenant):
        raise field_error("tenant", "not a tenant id")
    items = await admin.list_schedules(
        ctx, tenant_id=tenant, extension_id=extension_id, install_id=install_id, limit=limit
    )
    return AdminScheduleListOut(
        items=[
            AdminScheduleOut(
                **ScheduleOut.of(i.schedule).model_dump(),
                tenant_id=i.schedule.tenant_id,
                handle_id=i.handle_id,
                handle_present=i.handle_present,
                handle_paused=i.handle_paused,
                overdue_since=i.overdue_since,
            )
            for i in items
        ]
    )


@router.delete("/tenants/{tenant_id}/schedules/{schedule_id}", status_code=204)
@raises(NotFound)
async def admin_delete_schedule(
    ctx: Ctx, a: Admin, tenant_id: str, schedule_id: uuid.UUID
) -> Response:
    """Delete any tenant's schedule (even with the tenant's feature flag off)."""
    tenants.check_tenant_id(tenant_id)
    await schedules.delete(ctx, a.actor, tenant_id, schedule_id, check_feature=False)
    return Response(status_code=204)


@router.post("/reconcile", response_model=ReconcileOut)
async def admin_reconcile(ctx: Ctx, a: Admin, repair: bool = False) -> ReconcileOut:
    """Compare the database with the job backend; ``repair`` fixes what differs."""
    r = await reconcile.reconcile(ctx, repair=repair, actor=a.actor)
    return ReconcileOut(
        orphan_schedules=r.orphan_schedules,
        orphan_handles=r.orphan_handles,
        missing_handles=r.missing_handles,
        stale_handles=r.stale_handles,
        overdue=r.overdue,
        repaired=r.repaired,
    )


@router.post("/registry/backfill-endpoints", response_model=BackfillOut)
@raises(NotFound)
async def admin_backfill_endpoints(
    ctx: Ctx, _: Admin, version_id: uuid.UUID | None = None
) -> BackfillOut:
    """Write the endpoint rows of every version (or one); idempotent."""
    versions, written = await registry.backfill_endpoints(ctx.db, version_id)
    return BackfillOut(versions=versions, endpoints_written=written)


@router.post("/tokens", response_model=TokenCreatedOut, status_code=201)
async def admin_create_token(ctx: Ctx, a: Admin, body: TokenCreateIn) -> TokenCreatedOut:
    """Create a tenant user's or an admin's token; its value is shown only in this answer."""
    new = await tokens.create_token(
        ctx.db,
        tenant_id=body.tenant_id,
        user_id=body.user,
        permissions=body.perms,
        timezone=body.timezone,
        admin=body.admin,
        expires_at=body.expires_at,
        actor=a.actor,
    )
    return TokenCreatedOut(id=new.id, token=new.token, expires_at=new.expires_at)


@router.get("/tokens", response_model=TokenListOut)
async def admin_list_tokens(
    ctx: Ctx, _: Admin, tenant: str | None = Query(default=None, max_length=64)
) -> TokenListOut:
    """Tokens that are not revoked (expired ones included), oldest first; never their value."""
    if tenant is not None and not TENANT_ID_RE.match(tenant):
        raise field_error("tenant", "not a tenant id")
    records = await tokens.list_tokens(ctx.db, tenant, include_revoked=False)
    return TokenListOut(items=[TokenOut.of(r) for r in records])


@router.delete("/tokens/{token_id}", status_code=204)
@raises(NotFound)
async def admin_revoke_token(ctx: Ctx, a: Admin, token_id: uuid.UUID) -> Response:
    """Revoke a token at once; the UI sessions opened with it end with it."""
    await tokens.revoke_or_404(ctx.db, token_id, a.actor)
    return Response(status_code=204)
