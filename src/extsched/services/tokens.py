"""API tokens: created by the CLI or the admin API, shown once, stored as SHA-256 hashes.

A token may expire (``expires_at``); after it, or once revoked, it authenticates nothing and
ends every UI session opened with it. ``last_used_at`` is written at most once a minute per
token, off the request's path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from extsched.db.pool import Database
from extsched.domain import cron
from extsched.domain.auth import (
    DEFAULT_USER_PERMISSIONS,
    TENANT_ID_RE,
    Actor,
    Permission,
    Principal,
)
from extsched.domain.ids import uuid7
from extsched.errors import NotFound, ValidationFailed
from extsched.services import audit

TOKEN_PREFIX = "exs_"
TOUCH_EVERY = timedelta(seconds=60)
MAX_LIFETIME = timedelta(days=3660)

log = logging.getLogger("extsched.tokens")


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
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewToken:
    id: uuid.UUID
    token: str
    expires_at: datetime | None


def _check_request(
    *,
    tenant_id: str | None,
    user_id: str | None,
    permissions: list[str] | None,
    timezone: str | None,
    admin: bool,
    expires_at: datetime | None,
    now: datetime,
) -> list[str]:
    """The permissions to store; raises ValidationFailed naming each bad field."""
    errors: dict[str, str] = {}
    if admin:
        if tenant_id or user_id:
            errors["admin"] = "an admin token has no tenant or user"
        perms = [Permission.ADMIN.value]
    else:
        if not tenant_id or not TENANT_ID_RE.match(tenant_id):
            errors["tenant_id"] = "must be 1-64 letters, digits, '.', '_' or '-'"
        if not user_id or len(user_id) > 200 or not user_id.isprintable():
            errors["user"] = "must be 1-200 printable characters"
        perms = list(dict.fromkeys(permissions or [p.value for p in DEFAULT_USER_PERMISSIONS]))
        valid = {Permission.READ.value, Permission.WRITE.value}
        bad = [p for p in perms if p not in valid]
        if bad:
            errors["perms"] = (
                f"unknown permission {bad[0]!r}; use extension:read or extension:write"
            )
    if timezone is not None:
        try:
            cron.load_zone(timezone)
        except cron.CronError as exc:
            errors["timezone"] = str(exc)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            errors["expires_at"] = "must carry a time zone offset (RFC 3339)"
        elif expires_at <= now:
            errors["expires_at"] = "must be in the future"
        elif expires_at > now + MAX_LIFETIME:
            errors["expires_at"] = "must be within 10 years"
    if errors:
        raise ValidationFailed("invalid token request", field_errors=errors)
    return perms


async def create(
    db: Database,
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
    permissions: list[str] | None = None,
    timezone: str | None = None,
    admin: bool = False,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[uuid.UUID, str]:
    """Create a token (and its tenant on first use); returns (id, plaintext token).

    A tenant token's creation is audited in the tenant's log, without the token's value.
    """
    new = await create_token(
        db,
        tenant_id=tenant_id,
        user_id=user_id,
        permissions=permissions,
        timezone=timezone,
        admin=admin,
        expires_at=expires_at,
        actor=actor,
    )
    return new.id, new.token


async def create_token(
    db: Database,
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
    permissions: list[str] | None = None,
    timezone: str | None = None,
    admin: bool = False,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> NewToken:
    """Create a token; the plaintext is in the result and nowhere else."""
    perms = _check_request(
        tenant_id=tenant_id,
        user_id=user_id,
        permissions=permissions,
        timezone=timezone,
        admin=admin,
        expires_at=expires_at,
        now=datetime.now(UTC),
    )
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
                "expires_at": expires_at,
            },
        )
        if tenant_id:
            await audit.record(
                db,
                conn,
                actor or Actor.system("cli"),
                audit.AuditAction.TOKEN_CREATE,
                audit.Target(audit.TargetType.TOKEN, token_id, user_id, tenant_id),
                {"user": user_id, "perms": perms, "expires_at": expires_at},
            )
    if admin:
        log.info(
            "admin token created",
            extra={"token_id": str(token_id), "actor": actor.id if actor else "cli"},
        )
    return NewToken(token_id, token, expires_at)


class _Toucher:
    """Writes ``last_used_at`` in the background, at most once a minute per token."""

    def __init__(self) -> None:
        self._pending: set[uuid.UUID] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def touch(self, db: Database, token_id: uuid.UUID, last_used_at: datetime | None) -> None:
        if last_used_at is not None and datetime.now(UTC) - last_used_at < TOUCH_EVERY:
            return
        if token_id in self._pending:
            return
        self._pending.add(token_id)
        task = asyncio.get_running_loop().create_task(self._write(db, token_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, db: Database, token_id: uuid.UUID) -> None:
        try:
            async with db.connection() as conn:
                await db.execute(conn, "token_touch", {"id": token_id})
        except Exception:  # a lost last_used_at write must never fail or slow a request
            log.warning("could not record a token's last use", exc_info=True)
        finally:
            self._pending.discard(token_id)


_toucher = _Toucher()


async def authenticate(db: Database, token: str, *, record_use: bool = True) -> Principal | None:
    """The principal for a bearer token, or None if unknown, revoked or expired. A request
    records the token's use (``last_used_at``, in the background); a process checking a token
    it keeps (``record_use=False``) does not, as it may close its pool right after."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    async with db.connection() as conn:
        row = await db.fetch_one(conn, "token_by_hash", {"token_hash": hash_token(token)})
    if row is None:
        return None
    if record_use:
        _toucher.touch(db, row["id"], row["last_used_at"])
    return Principal(
        token_id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        user_timezone=row["user_timezone"],
        is_admin=row["is_admin"],
        permissions=frozenset(Permission(p) for p in row["permissions"]),
    )


async def list_tokens(
    db: Database, tenant_id: str | None = None, *, include_revoked: bool = True
) -> list[TokenRecord]:
    async with db.connection() as conn:
        rows = await db.fetch_all(
            conn, "token_list", {"tenant_id": tenant_id, "include_revoked": include_revoked}
        )
    return [TokenRecord(**r) for r in rows]


async def revoke(db: Database, token_id: uuid.UUID, actor: Actor | None = None) -> bool:
    """Revoke a token (its UI sessions end with it); False if unknown or already revoked."""
    async with db.transaction() as conn:
        row = await db.fetch_one(conn, "token_revoke", {"id": token_id})
        if row is None:
            return False
        if row["tenant_id"]:
            await audit.record(
                db,
                conn,
                actor or Actor.system("cli"),
                audit.AuditAction.TOKEN_REVOKE,
                audit.Target(audit.TargetType.TOKEN, token_id, row["user_id"], row["tenant_id"]),
                {"user": row["user_id"]},
            )
    if row["is_admin"]:
        log.info(
            "admin token revoked",
            extra={"token_id": str(token_id), "actor": actor.id if actor else "cli"},
        )
    return True


async def revoke_or_404(db: Database, token_id: uuid.UUID, actor: Actor) -> None:
    if not await revoke(db, token_id, actor):
        raise NotFound("no active token with this id")
