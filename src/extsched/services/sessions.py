"""UI sessions kept on the server: signing out, revoking the token or its expiry ends them.

The browser's cookie names a session row; every UI request reads it back (joined with its
token), so a captured cookie is worthless once the session has ended.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from extsched.domain.auth import Permission, Principal
from extsched.domain.ids import uuid7
from extsched.services.context import AppContext

SESSION_LIFETIME = timedelta(hours=12)


async def start(ctx: AppContext, principal: Principal) -> uuid.UUID:
    """Open a session for a tenant user; returns its id (for the signed cookie)."""
    assert principal.tenant_id is not None and principal.user_id is not None
    session_id = uuid7()
    async with ctx.db.transaction() as conn:
        await ctx.db.execute(conn, "ui_session_prune")
        await ctx.db.execute(
            conn,
            "ui_session_insert",
            {
                "id": session_id,
                "token_id": principal.token_id,
                "tenant_id": principal.tenant_id,
                "user_id": principal.user_id,
                "user_timezone": principal.user_timezone,
                "permissions": sorted(p.value for p in principal.permissions),
                "expires_at": ctx.clock() + SESSION_LIFETIME,
            },
        )
    return session_id


async def principal(ctx: AppContext, session_id: uuid.UUID) -> Principal | None:
    """The principal of a live session, else None (ended, expired, token revoked/expired)."""
    async with ctx.db.connection() as conn:
        row = await ctx.db.fetch_one(conn, "ui_session_get", {"id": session_id})
    if row is None:
        return None
    return Principal(
        token_id=row["token_id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        user_timezone=row["user_timezone"],
        is_admin=False,
        permissions=frozenset(Permission(p) for p in row["permissions"]),
    )


async def end(ctx: AppContext, session_id: uuid.UUID) -> None:
    async with ctx.db.connection() as conn:
        await ctx.db.execute(conn, "ui_session_end", {"id": session_id})


async def claim_sso_jti(ctx: AppContext, jti: str, expires_at: datetime) -> bool:
    """Record a JWT id used for browser sign-in; False if it was used before."""
    async with ctx.db.transaction() as conn:
        await ctx.db.execute(conn, "sso_jti_prune")
        row = await ctx.db.fetch_one(conn, "sso_jti_claim", {"jti": jti, "expires_at": expires_at})
    return row is not None
