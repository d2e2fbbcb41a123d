"""Who is calling: an API token (``exs_...``) or, when configured, a host-platform JWT."""

from __future__ import annotations

from extsched.domain.auth import Principal
from extsched.errors import Unauthenticated
from extsched.services import tokens
from extsched.services.context import AppContext
from extsched.services.platform_jwt import looks_like_jwt


async def authenticate(ctx: AppContext, bearer: str) -> Principal:
    """The principal behind a bearer value; raises Unauthenticated (401) otherwise."""
    if ctx.jwt is not None and looks_like_jwt(bearer):
        claimed = await ctx.jwt.principal(bearer)
        await ensure_tenant(ctx, claimed)
        return claimed
    principal = await tokens.authenticate(ctx.db, bearer)
    if principal is None:
        raise Unauthenticated("the token is unknown, revoked or expired")
    return principal


async def ensure_tenant(ctx: AppContext, principal: Principal) -> None:
    """A tenant comes into being with its first JWT (once per process, then remembered)."""
    tenant_id = principal.tenant_id
    if tenant_id is None or tenant_id in ctx.known_tenants:
        return
    async with ctx.db.connection() as conn:
        await ctx.db.execute(conn, "tenant_ensure", {"tenant_id": tenant_id})
    ctx.known_tenants.add(tenant_id)
