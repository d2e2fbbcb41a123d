"""Standard Webhooks signing secrets of installs (SPEC §5 "signing-secret", §6).

Each install has a current secret (``whsec_`` + base64 of 24 random bytes) and, for 24 h after
a rotation, the previous one: the reference Runner signs every upstream call with each active
secret, so an upstream can switch secrets without dropping a call. The secrets are sealed
with the service key (AES-GCM, bound to the install) in ``signing_secrets_encrypted``; they are
shown only by ``GET .../signing-secret`` and the UI, never logged, and audited without value.
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from extsched.crypto import SecretsUnreadable, signing_aad
from extsched.domain.auth import Principal
from extsched.errors import NotInstalled
from extsched.services import audit
from extsched.services.context import AppContext

ROTATION_OVERLAP = timedelta(hours=24)
SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 24


@dataclass(frozen=True)
class SigningSecret:
    """One secret; ``expires_at`` is None for the current one."""

    secret: str
    created_at: datetime
    expires_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SigningSecret:
        expires = data.get("expires_at")
        return cls(
            secret=str(data["secret"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            expires_at=None if expires is None else datetime.fromisoformat(expires),
        )


def new_secret() -> str:
    """A fresh ``whsec_...`` secret, as Standard Webhooks libraries expect it."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(_SECRET_BYTES)).decode("ascii")


def seal(
    ctx: AppContext, tenant_id: str, install_id: uuid.UUID, secrets: list[SigningSecret]
) -> bytes:
    return ctx.secrets.encrypt_json(
        [s.to_json() for s in secrets], aad=signing_aad(tenant_id, str(install_id))
    )


def initial(ctx: AppContext, tenant_id: str, install_id: uuid.UUID) -> bytes:
    """The sealed secrets of a new install: one current secret."""
    return seal(ctx, tenant_id, install_id, [SigningSecret(new_secret(), ctx.clock(), None)])


def _open(
    ctx: AppContext, tenant_id: str, install_id: uuid.UUID, blob: bytes
) -> list[SigningSecret]:
    data = ctx.secrets.decrypt_json(blob, aad=signing_aad(tenant_id, str(install_id)))
    try:
        return [SigningSecret.from_json(item) for item in data]
    except (TypeError, KeyError, ValueError) as exc:
        raise SecretsUnreadable("signing secrets cannot be read") from exc


async def _stored(
    ctx: AppContext, tenant_id: str, install_id: uuid.UUID, blob: bytes | None
) -> list[SigningSecret]:
    """The install's secrets, giving an install older than signing secrets its first one."""
    if blob is None:
        async with ctx.db.transaction() as conn:
            row = await ctx.db.fetch_one(
                conn,
                "install_signing_secrets_init",
                {
                    "tenant_id": tenant_id,
                    "id": install_id,
                    "blob": initial(ctx, tenant_id, install_id),
                },
            )
        if row is None:
            return []
        blob = row["signing_secrets_encrypted"]
        assert blob is not None
    return _open(ctx, tenant_id, install_id, blob)


def _newest_first(secrets: list[SigningSecret], now: datetime) -> list[SigningSecret]:
    """Active secrets, the current one first, then by creation, newest first."""
    return sorted(
        (s for s in secrets if s.active(now)),
        key=lambda s: (s.expires_at is None, s.created_at),
        reverse=True,
    )


async def list_secrets(
    ctx: AppContext, principal: Principal, extension_id: uuid.UUID
) -> list[SigningSecret]:
    """The install's active signing secrets, newest first (404 ``NOT_INSTALLED``)."""
    assert principal.tenant_id is not None
    async with ctx.db.connection() as conn:
        install = await ctx.db.fetch_one(
            conn, "install_get", {"tenant_id": principal.tenant_id, "extension_id": extension_id}
        )
    if install is None:
        raise NotInstalled()
    secrets = await _stored(
        ctx, principal.tenant_id, install["id"], install["signing_secrets_encrypted"]
    )
    return _newest_first(secrets, ctx.clock())


async def rotate(
    ctx: AppContext, principal: Principal, extension_id: uuid.UUID
) -> list[SigningSecret]:
    """A new current secret; the previous one keeps signing for 24 h. Audited without
    values. Older, already expiring secrets are dropped (at most two stay active)."""
    assert principal.tenant_id is not None
    tenant_id = principal.tenant_id
    db = ctx.db
    now = ctx.clock()
    async with db.transaction() as conn:
        install = await db.fetch_one(
            conn, "install_get_for_update", {"tenant_id": tenant_id, "extension_id": extension_id}
        )
        if install is None:
            raise NotInstalled()
        install_id: uuid.UUID = install["id"]
        current: list[SigningSecret] = []
        if install["signing_secrets_encrypted"] is not None:
            try:
                current = _open(ctx, tenant_id, install_id, install["signing_secrets_encrypted"])
            except SecretsUnreadable:
                current = []  # unreadable (e.g. a changed service key): start afresh
        previous = [s for s in current if s.expires_at is None]
        kept = [SigningSecret(s.secret, s.created_at, now + ROTATION_OVERLAP) for s in previous]
        secrets = [SigningSecret(new_secret(), now, None), *kept]
        await db.execute(
            conn,
            "install_signing_secrets_set",
            {
                "tenant_id": tenant_id,
                "id": install_id,
                "blob": seal(ctx, tenant_id, install_id, secrets),
            },
        )
        await audit.record(
            db,
            conn,
            principal.actor,
            audit.AuditAction.SIGNING_SECRET_ROTATE,
            audit.Target.install(tenant_id, extension_id, install_id, install["name"]),
            {"previous_expires_at": (now + ROTATION_OVERLAP).isoformat() if kept else None},
        )
    return _newest_first(secrets, now)


async def active_for_signing(ctx: AppContext, tenant_id: str, install_id: uuid.UUID) -> list[str]:
    """The secret values the reference Runner signs a call with (newest first); empty when
    the install does not exist. Raises SecretsUnreadable when they cannot be decrypted."""
    async with ctx.db.connection() as conn:
        row = await ctx.db.fetch_one(
            conn, "install_signing_secrets_get", {"tenant_id": tenant_id, "id": install_id}
        )
    if row is None:
        return []
    secrets = await _stored(ctx, tenant_id, install_id, row["signing_secrets_encrypted"])
    return [s.secret for s in _newest_first(secrets, ctx.clock())]
