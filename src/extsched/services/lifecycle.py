"""Install lifecycle across schedules: install with the manifest's default schedules, version
update with remap, the kill switch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from extsched.db.pool import Conn
from extsched.domain.auth import Actor, Principal
from extsched.domain.notify import EventType
from extsched.domain.runs import DisabledReason
from extsched.errors import NotFound, ScheduleRemapFailed, ValidationFailed
from extsched.services import audit, handles, installs, notifications, registry, schedules
from extsched.services.context import AppContext
from extsched.services.installs import Install, InstallSettings


@dataclass(frozen=True)
class Installed:
    install: Install
    schedules_created: list[uuid.UUID]


async def install(
    ctx: AppContext,
    principal: Principal,
    extension_id: uuid.UUID,
    version_id: uuid.UUID,
    settings: InstallSettings,
    *,
    default_schedules: bool = True,
) -> Installed:
    """Install a version and, unless ``default_schedules`` is false, create the manifest's
    default schedules (SPEC §7), all in one transaction: a default that is invalid for this
    tenant (minimum interval, payload size) or over a quota refuses the whole install."""
    assert principal.tenant_id is not None
    async with ctx.db.transaction() as conn:
        created = await installs.install_on(
            ctx, conn, principal.actor, principal.tenant_id, extension_id, version_id, settings
        )
        ids: list[uuid.UUID] = []
        if default_schedules:
            manifest = registry.parse_stored(created.manifest)
            ids = await schedules.create_defaults(ctx, conn, principal, created, manifest.schedules)
        return Installed(created, ids)


@dataclass(frozen=True)
class Remapped:
    schedule_id: uuid.UUID
    from_endpoint_id: uuid.UUID
    to_endpoint_id: uuid.UUID
    name: str | None = None


@dataclass(frozen=True)
class Unmatched:
    schedule_id: uuid.UUID
    name: str | None
    method: str
    path: str
    was_enabled: bool = True


@dataclass(frozen=True)
class UpdateReport:
    install: Install
    remapped: list[Remapped]
    disabled: list[uuid.UUID]
    unmatched: list[Unmatched]

    @property
    def would_block(self) -> bool:
        return bool(self.unmatched)


def _blocked(unmatched: list[Unmatched]) -> ScheduleRemapFailed:
    return ScheduleRemapFailed(
        f"{len(unmatched)} schedule(s) call endpoints the target version does not have; "
        "update them, or pass disable_missing_schedules: true to disable them",
        details={
            "schedules": [
                {
                    "schedule_id": str(u.schedule_id),
                    "name": u.name,
                    "method": u.method,
                    "path": u.path,
                }
                for u in unmatched
            ]
        },
    )


async def _plan(
    ctx: AppContext, conn: Conn, install: Install, version_id: uuid.UUID, lock: bool
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]]]:
    """(target version, [(schedule, new endpoint)], [unmatched schedules])."""
    db = ctx.db
    version = await db.fetch_one(conn, "version_get", {"id": version_id})
    if version is None or version["extension_id"] != install.extension_id:
        raise ValidationFailed(
            "unknown version",
            field_errors={"version_id": "not a published version of this extension"},
        )
    if lock:
        await db.fetch_one(conn, "version_lock_shared", {"id": version_id})
        # Materialize the target's endpoint rows first if they are missing (older registries).
        await registry.write_endpoints(
            db, conn, version_id, registry.parse_stored(version["manifest"])
        )
    endpoints = await registry.endpoints_for_version(db, conn, version_id)
    by_key = {(e.method.upper(), e.path): e for e in endpoints}
    schedules = await db.fetch_all(
        conn,
        "schedules_for_install_for_update" if lock else "schedules_for_install",
        {"tenant_id": install.tenant_id, "install_id": install.id},
    )
    matched: list[tuple[dict[str, Any], dict[str, Any]]] = []
    unmatched: list[dict[str, Any]] = []
    for s in schedules:
        e = by_key.get((s["endpoint_method"].upper(), s["endpoint_path"]))
        if e is None:
            unmatched.append(s)
        else:
            matched.append((s, {"id": e.id, "method": e.method, "path": e.path}))
    return version, matched, unmatched


async def update_version(
    ctx: AppContext,
    actor: Actor,
    tenant_id: str,
    extension_id: uuid.UUID,
    version_id: uuid.UUID,
    *,
    disable_missing: bool,
    preview: bool = False,
) -> UpdateReport:
    """Move an install to another version, remapping schedules by (method, path), in one
    transaction with the backend handles. Preview computes the same report, changing nothing."""
    db = ctx.db
    if preview:
        async with db.connection() as conn:
            install = await installs.get(ctx, conn, tenant_id, extension_id)
            _, matched, unmatched = await _plan(ctx, conn, install, version_id, lock=False)
        unm = [_unmatched(s) for s in unmatched]
        return UpdateReport(
            install=install,
            remapped=[Remapped(s["id"], s["endpoint_id"], e["id"], s["name"]) for s, e in matched],
            disabled=[u.schedule_id for u in unm] if disable_missing else [],
            unmatched=unm,
        )
    async with db.transaction() as conn:
        install = await installs.get_for_update(ctx, conn, tenant_id, extension_id)
        version, matched, unmatched = await _plan(ctx, conn, install, version_id, lock=True)
        unm = [_unmatched(s) for s in unmatched]
        if unm and not disable_missing:
            raise _blocked(unm)
        await db.execute(
            conn,
            "install_set_version",
            {"tenant_id": tenant_id, "id": install.id, "version_id": version_id},
        )
        remapped: list[Remapped] = []
        for s, e in matched:
            if s["endpoint_id"] != e["id"]:
                await db.fetch_one(
                    conn,
                    "schedule_remap",
                    {
                        "tenant_id": tenant_id,
                        "id": s["id"],
                        "endpoint_id": e["id"],
                        "endpoint_method": e["method"],
                        "endpoint_path": e["path"],
                        "enabled": s["enabled"],
                        "disabled_reason": s["disabled_reason"],
                    },
                )
            remapped.append(Remapped(s["id"], s["endpoint_id"], e["id"], s["name"]))
        for s in unmatched:
            # Keep the old endpoint reference for display; the schedule waits for a new one.
            await db.fetch_one(
                conn,
                "schedule_remap",
                {
                    "tenant_id": tenant_id,
                    "id": s["id"],
                    "endpoint_id": s["endpoint_id"],
                    "endpoint_method": s["endpoint_method"],
                    "endpoint_path": s["endpoint_path"],
                    "enabled": False,
                    "disabled_reason": DisabledReason.ENDPOINT_MISSING,
                },
            )
        await handles.sync_install(ctx, conn, tenant_id, install.id)
        await audit.record(
            db,
            conn,
            actor,
            audit.AuditAction.INSTALL_UPDATE,
            audit.Target.install(tenant_id, extension_id, install.id, install.name),
            {
                "version": {"from": install.version, "to": version["version"]},
                "version_id": {"from": str(install.version_id), "to": str(version_id)},
                "remapped": len(remapped),
                "disabled": len(unm),
            },
        )
        for r in remapped:
            if r.from_endpoint_id != r.to_endpoint_id:
                await audit.record(
                    db,
                    conn,
                    actor,
                    audit.AuditAction.SCHEDULE_REMAP,
                    audit.Target(
                        audit.TargetType.SCHEDULE, r.schedule_id, r.name, tenant_id, extension_id
                    ),
                    {
                        "endpoint_id": {
                            "from": str(r.from_endpoint_id),
                            "to": str(r.to_endpoint_id),
                        }
                    },
                )
        for u in unm:
            await audit.record(
                db,
                conn,
                actor,
                audit.AuditAction.SCHEDULE_DISABLE_OVERRIDE,
                audit.Target(
                    audit.TargetType.SCHEDULE, u.schedule_id, u.name, tenant_id, extension_id
                ),
                {
                    "enabled": {"from": True, "to": False},
                    "disabled_reason": DisabledReason.ENDPOINT_MISSING,
                    "missing_endpoint": f"{u.method} {u.path}",
                },
            )
            if u.was_enabled:
                await notifications.enqueue(
                    db,
                    conn,
                    tenant_id,
                    EventType.SCHEDULE_DISABLED,
                    ctx.clock(),
                    notifications.schedule_facts(
                        {"id": u.schedule_id, "name": u.name, "extension_id": extension_id},
                        disabled_reason=DisabledReason.ENDPOINT_MISSING.value,
                    ),
                )
        updated = await installs.get(ctx, conn, tenant_id, extension_id)
    return UpdateReport(updated, remapped, [u.schedule_id for u in unm], unm)


def _unmatched(s: dict[str, Any]) -> Unmatched:
    return Unmatched(
        s["id"], s["name"], s["endpoint_method"], s["endpoint_path"], bool(s["enabled"])
    )


async def set_kill_switch(ctx: AppContext, actor: Actor, tenant_id: str, enabled: bool) -> bool:
    """Pause (on) or restore (off) every schedule of a tenant; returns whether it changed."""
    db = ctx.db
    async with db.transaction() as conn:
        tenant = await db.fetch_one(conn, "tenant_lock", {"tenant_id": tenant_id})
        if tenant is None:
            raise NotFound("unknown tenant")
        changed = await db.execute(
            conn, "tenant_set_kill_switch", {"tenant_id": tenant_id, "enabled": enabled}
        )
        if not changed:
            return False
        for inst in await db.fetch_all(conn, "installs_of_tenant", {"tenant_id": tenant_id}):
            await handles.sync_install(ctx, conn, tenant_id, inst["id"])
            await audit.record(
                db,
                conn,
                actor,
                audit.AuditAction.TENANT_KILL_SWITCH,
                audit.Target(
                    audit.TargetType.TENANT, tenant_id, tenant_id, tenant_id, inst["extension_id"]
                ),
                {"kill_switch": {"from": not enabled, "to": enabled}},
            )
        return True
