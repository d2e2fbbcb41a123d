"""API tokens: created by the CLI, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from extsched.db.pool import Database
from extsched.domain import cron
from extsched.domain.auth import DEFAULT_USER_PERMISSIONS, TENANT_ID_RE, Permission, Principal
from extsched.domain.ids import uuid7
from extsched.errors import ValidationFailed

TOKEN_PREFIX = "exs_"


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is the right tool (no password stretching).
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    id: uuid.UUID
    tenant_id: str | None
    user_id: str | None
    user_timezone: str | None
    is_admin: bool
    permissions: list[str]
    created_at: datetime
    revoked_at: datetime | None


async def create(
    db: Database,
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
    permissions: list[str] | None = None,
    timezone: str | None = None,
    admin: bool = False,
) -> tuple[uuid.UUID, str]:
    """Create a token (and its tenant on first use); returns (id, plaintext token)."""
    errors: dict[str, str] = {}
    if admin:
        if tenant_id or user_id:
            errors["admin"] = "an admin token has no tenant or user"
        perms = [Permission.ADMIN.value]
    else:
        if not tenant_id or not TENANT_ID_RE.match(tenant_id):
            errors["tenant"] = "must be 1-64 letters, digits, '.', '_' or '-'"
        if not user_id or len(user_id) > 200:
            errors["user"] = "must be 1-200 characters"
        perms = list(dict.fromkeys(permissions or [p.value for p in DEFAULT_USER_PERMISSIONS]))
        valid = {Permission.READ.value, Permission.WRITE.value}
        bad = [p for p in perms if p not in valid]
        if bad:
            errors["perm"] = f"unknown permission {bad[0]!r}; use extension:read or extension:write"
    if timezone is not None:
        try:
            cron.load_zone(timezone)
        except cron.CronError as exc:
            errors["timezone"] = str(exc)
    if errors:
        raise ValidationFailed("invalid token request", field_errors=errors)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = uuid7()
    async with db.transaction() as conn:
        if tenant_id:
            await db.execute(conn, "tenant_ensure", {"tenant_id": tenant_id})
        await db.execute(
            conn,
            "token_insert",
            {
                "id": token_id,
                "token_hash": hash_token(token),
                "tenant_id": tenant_id,
                "user_id": user_id,
                "user_timezone": timezone,
                "is_admin": admin,
                "permissions": perms,
            },
        )
    return token_id, token


async def authenticate(db: Database, token: str) -> Principal | None:
    """The principal for a bearer token, or None if unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    async with db.connection() as conn:
        row = await db.fetch_one(conn, "token_by_hash", {"token_hash": hash_token(token)})
    if row is None:
        return None
    return Principal(
        token_id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        user_timezone=row["user_timezone"],
        is_admin=row["is_admin"],
        permissions=frozenset(Permission(p) for p in row["permissions"]),
    )


async def list_tokens(db: Database, tenant_id: str | None = None) -> list[TokenRecord]:
    async with db.connection() as conn:
        rows = await db.fetch_all(conn, "token_list", {"tenant_id": tenant_id})
    return [TokenRecord(**r) for r in rows]


async def revoke(db: Database, token_id: uuid.UUID) -> bool:
    """Revoke a token; False if it was unknown or already revoked."""
    async with db.connection() as conn:
        return await db.execute(conn, "token_revoke", {"id": token_id}) == 1
