"""Installs: one per tenant and extension; configuration, secrets, providers, lifecycle."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extsched.crypto import SecretsUnreadable, install_aad
from extsched.db.pool import Conn
from extsched.domain import inputs
from extsched.domain.auth import Actor
from extsched.domain.ids import uuid7
from extsched.errors import NotFound, NotInstalled, ValidationFailed
from extsched.services import audit, handles, signing
from extsched.services.context import AppContext


@dataclass(frozen=True)
class Install:
    tenant_id: str
    id: uuid.UUID
    extension_id: uuid.UUID
    name: str
    version_id: uuid.UUID
    version: str
    content_hash: str
    manifest: dict[str, Any]
    enabled: bool
    config: dict[str, str]
    secret_names: list[str]
    secrets_encrypted: bytes | None
    providers: list[str]
    created_at: datetime
    updated_at: datetime
    signing_secrets_encrypted: bytes | None = None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Install:
        return cls(
            tenant_id=r["tenant_id"],
            id=r["id"],
            extension_id=r["extension_id"],
            name=r["name"],
            version_id=r["version_id"],
            version=r["version"],
            content_hash=r["content_hash"],
            manifest=r["manifest"],
            enabled=r["enabled"],
            config=dict(r["config"]),
            secret_names=sorted(r["secret_names"]),
            secrets_encrypted=r["secrets_encrypted"],
            providers=list(r["providers"]),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            signing_secrets_encrypted=r.get("signing_secrets_encrypted"),
        )

    @property
    def capabilities(self) -> list[str]:
        return list(self.manifest.get("capabilities") or [])


@dataclass(frozen=True)
class InstallSettings:
    """Requested changes; ``None`` means unchanged. A ``None`` secret value deletes it."""

    config: dict[str, str] | None = None
    secrets: dict[str, str | None] | None = None
    providers: list[str] | None = None


async def get(ctx: AppContext, conn: Conn, tenant_id: str, extension_id: uuid.UUID) -> Install:
    row = await ctx.db.fetch_one(
        conn, "install_get", {"tenant_id": tenant_id, "extension_id": extension_id}
    )
    if row is None:
        raise NotInstalled()
    return Install.from_row(row)


async def get_for_update(
    ctx: AppContext, conn: Conn, tenant_id: str, extension_id: uuid.UUID
) -> Install:
    row = await ctx.db.fetch_one(
        conn, "install_get_for_update", {"tenant_id": tenant_id, "extension_id": extension_id}
    )
    if row is None:
        raise NotInstalled()
    return Install.from_row(row)


async def list_installs(ctx: AppContext, tenant_id: str) -> list[Install]:
    async with ctx.db.connection() as conn:
        rows = await ctx.db.fetch_all(conn, "install_list", {"tenant_id": tenant_id})
    return [Install.from_row(r) for r in rows]


async def get_install(ctx: AppContext, tenant_id: str, extension_id: uuid.UUID) -> Install:
    async with ctx.db.connection() as conn:
        return await get(ctx, conn, tenant_id, extension_id)


def _check_providers(providers: list[str], capabilities: list[str]) -> None:
    undeclared = [p for p in providers if p not in capabilities]
    if undeclared:
        raise ValidationFailed(
            "providers must be capabilities the manifest declares",
            field_errors={"providers": f"not declared by the manifest: {', '.join(undeclared)}"},
        )


def _check_settings(settings: InstallSettings) -> None:
    """Config keys and secret names are names people read: the name rule of SPEC §4 applies;
    values may hold anything that can be stored."""
    errors: dict[str, str] = {}
    for field, values in (("config", settings.config), ("secrets", settings.secrets)):
        label = "key" if field == "config" else "name"
        for key, value in (values or {}).items():
            problem = inputs.name_problem(key)
            if problem is not None:
                errors[field] = f"a {label} {problem}"
                break
            problem = None if value is None else inputs.text_problem(value)
            if problem is not None:
                errors[field] = f"a value {problem}"
                break
    if errors:
        raise ValidationFailed(next(iter(errors.values())), field_errors=errors)


def _encrypt_secrets(
    ctx: AppContext, tenant_id: str, install_id: uuid.UUID, secrets: dict[str, str]
) -> bytes | None:
    if not secrets:
        return None
    return ctx.secrets.encrypt(secrets, aad=install_aad(tenant_id, str(install_id)))


def decrypt_secrets(ctx: AppContext, install: Install) -> dict[str, str]:
    """The install's secrets; raises SecretsUnreadable if they cannot be decrypted."""
    if install.secrets_encrypted is None:
        return {}
    return ctx.secrets.decrypt(
        install.secrets_encrypted, aad=install_aad(install.tenant_id, str(install.id))
    )


async def install(
    ctx: AppContext,
    actor: Actor,
    tenant_id: str,
    extension_id: uuid.UUID,
    version_id: uuid.UUID,
    settings: InstallSettings,
) -> Install:
    """Install an extension version for a tenant (ALREADY_INSTALLED if it is)."""
    async with ctx.db.transaction() as conn:
        return await install_on(ctx, conn, actor, tenant_id, extension_id, version_id, settings)


async def install_on(
    ctx: AppContext,
    conn: Conn,
    actor: Actor,
    tenant_id: str,
    extension_id: uuid.UUID,
    version_id: uuid.UUID,
    settings: InstallSettings,
) -> Install:
    """``install`` inside the caller's transaction (so more can be done atomically with it)."""
    _check_settings(settings)
    db = ctx.db
    if await db.fetch_one(conn, "extension_get", {"id": extension_id}) is None:
        raise NotFound("unknown extension")
    await db.execute(conn, "tenant_ensure", {"tenant_id": tenant_id})
    version = await db.fetch_one(conn, "version_get", {"id": version_id})
    if version is None or version["extension_id"] != extension_id:
        raise ValidationFailed(
            "unknown version",
            field_errors={"version_id": "not a published version of this extension"},
        )
    await db.fetch_one(conn, "version_lock_shared", {"id": version_id})
    capabilities = list(version["manifest"].get("capabilities") or [])
    providers = capabilities if settings.providers is None else settings.providers
    _check_providers(providers, capabilities)
    install_id = uuid7()
    secrets = {k: v for k, v in (settings.secrets or {}).items() if v is not None}
    # ALREADY_INSTALLED comes from the unique constraint (db.pool.UNIQUE_VIOLATIONS).
    await db.execute(
        conn,
        "install_insert",
        {
            "tenant_id": tenant_id,
            "id": install_id,
            "extension_id": extension_id,
            "version_id": version_id,
            "config": json.dumps(settings.config or {}),
            "secret_names": sorted(secrets),
            "secrets_encrypted": _encrypt_secrets(ctx, tenant_id, install_id, secrets),
            "providers": list(dict.fromkeys(providers)),
            "signing_secrets_encrypted": signing.initial(ctx, tenant_id, install_id),
        },
    )
    await audit.record(
        db,
        conn,
        actor,
        audit.AuditAction.INSTALL_CREATE,
        audit.Target.install(tenant_id, extension_id, install_id, version["name"]),
        {
            "version": version["version"],
            "version_id": str(version_id),
            "config_keys": sorted(settings.config or {}),
            "secret_names": sorted(secrets),
            "providers": providers,
        },
    )
    return await get(ctx, conn, tenant_id, extension_id)


async def update_settings(
    ctx: AppContext,
    actor: Actor,
    tenant_id: str,
    extension_id: uuid.UUID,
    settings: InstallSettings,
) -> Install:
    """Change config (replaced whole), secrets (merged; null deletes) and providers."""
    _check_settings(settings)
    db = ctx.db
    async with db.transaction() as conn:
        current = await get_for_update(ctx, conn, tenant_id, extension_id)
        config = current.config if settings.config is None else settings.config
        providers = current.providers if settings.providers is None else settings.providers
        _check_providers(providers, current.capabilities)
        blob = current.secrets_encrypted
        names = current.secret_names
        if settings.secrets:
            try:
                secrets = decrypt_secrets(ctx, current)
            except SecretsUnreadable:
                # Unreadable old secrets cannot be merged; the new set replaces them.
                secrets = {}
            for key, value in settings.secrets.items():
                if value is None:
                    secrets.pop(key, None)
                else:
                    secrets[key] = value
            blob = _encrypt_secrets(ctx, tenant_id, current.id, secrets)
            names = sorted(secrets)
        await db.execute(
            conn,
            "install_update_settings",
            {
                "tenant_id": tenant_id,
                "id": current.id,
                "config": json.dumps(config),
                "secret_names": names,
                "secrets_encrypted": blob,
                "providers": list(dict.fromkeys(providers)),
            },
        )
        changes: dict[str, Any] = {}
        if config != current.config:
            changes["config_keys"] = {"from": sorted(current.config), "to": sorted(config)}
        if settings.secrets:
            changes["secrets_changed"] = sorted(settings.secrets)
        if providers != current.providers:
            changes["providers"] = {"from": current.providers, "to": providers}
        await audit.record(
            db,
            conn,
            actor,
            audit.AuditAction.INSTALL_UPDATE_SETTINGS,
            audit.Target.install(tenant_id, extension_id, current.id, current.name),
            changes,
        )
        return await get(ctx, conn, tenant_id, extension_id)


async def set_enabled(
    ctx: AppContext, actor: Actor, tenant_id: str, extension_id: uuid.UUID, enabled: bool
) -> Install:
    """Disable stops every schedule of the install from firing; enable restores exactly the
    schedules that were enabled (their own ``enabled`` flag is never touched). Idempotent."""
    db = ctx.db
    async with db.transaction() as conn:
        current = await get_for_update(ctx, conn, tenant_id, extension_id)
        changed = await db.execute(
            conn,
            "install_set_enabled",
            {"tenant_id": tenant_id, "id": current.id, "enabled": enabled},
        )
        if changed:
            await handles.sync_install(ctx, conn, tenant_id, current.id)
            await audit.record(
                db,
                conn,
                actor,
                audit.AuditAction.INSTALL_ENABLE if enabled else audit.AuditAction.INSTALL_DISABLE,
                audit.Target.install(tenant_id, extension_id, current.id, current.name),
                {"enabled": {"from": not enabled, "to": enabled}},
            )
        return await get(ctx, conn, tenant_id, extension_id)


async def uninstall(ctx: AppContext, actor: Actor, tenant_id: str, extension_id: uuid.UUID) -> None:
    """Delete, in order: backend handles, schedules, runs, then the install (no cascades)."""
    db = ctx.db
    async with db.transaction() as conn:
        current = await get_for_update(ctx, conn, tenant_id, extension_id)
        schedules = await db.fetch_all(
            conn,
            "schedules_for_install_for_update",
            {"tenant_id": tenant_id, "install_id": current.id},
        )
        await ctx.backend.delete_handles(
            conn, tenant_id, [(current.id, s["id"]) for s in schedules]
        )
        params = {"tenant_id": tenant_id, "install_id": current.id}
        await db.execute(conn, "schedules_delete_for_install", params)
        await db.execute(conn, "runs_delete_for_install", params)
        await db.execute(conn, "install_delete", {"tenant_id": tenant_id, "id": current.id})
        await audit.record(
            db,
            conn,
            actor,
            audit.AuditAction.INSTALL_DELETE,
            audit.Target.install(tenant_id, extension_id, current.id, current.name),
            {
                "version": current.version,
                "schedules": [
                    {
                        "id": str(s["id"]),
                        "name": s["name"],
                        "cron": s["cron"],
                        "method": s["endpoint_method"],
                        "path": s["endpoint_path"],
                    }
                    for s in schedules
                ],
            },
        )
