"""Schedules: create, read, change, delete; every rule of SPEC §5 "Validation of schedules"."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from extsched.db.pool import Conn
from extsched.domain import cron, inputs
from extsched.domain.auth import Actor, Principal
from extsched.domain.cron import Fire
from extsched.domain.ids import uuid7
from extsched.errors import (
    FeatureDisabled,
    InstallDisabled,
    NotFound,
    NotInstalled,
    QuotaExceeded,
    RevisionConflict,
    ValidationFailed,
)
from extsched.services import audit, handles, installs, tenants
from extsched.services.context import AppContext

log = logging.getLogger(__name__)

UNSET: Any = object()
"""Marks a field a PATCH did not mention (``None`` means "set to null")."""


@dataclass(frozen=True)
class Schedule:
    tenant_id: str
    id: uuid.UUID
    install_id: uuid.UUID
    extension_id: uuid.UUID
    name: str | None
    endpoint_id: uuid.UUID
    endpoint_method: str
    endpoint_path: str
    cron: str
    timezone: str
    enabled: bool
    disabled_reason: str | None
    payload: Any
    revision: int
    last_run_at: datetime | None
    last_run_status: str | None
    last_error: str | None
    last_success_at: datetime | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = None
    next_runs: list[Fire] | None = field(default=None)

    @classmethod
    def from_row(
        cls, r: dict[str, Any], *, active: bool, now: datetime, with_next_runs: bool = False
    ) -> Schedule:
        """Build from a row; ``active`` says whether it would fire (enabled, install enabled,
        kill switch off). Fire times come from the time engine, the single source of truth."""
        next_run_at = None
        next_runs = None
        dst = cron.DstChoice.of(r.get("dst_gap"), r.get("dst_repeat"))
        if with_next_runs:
            expr, zone = cron.compile_schedule(r["cron"], r["timezone"])
            next_runs = cron.next_fires(expr, zone, now, 5, dst=dst)
            if active and next_runs:
                next_run_at = next_runs[0].at
        elif active:
            fire = cron.upcoming(r["cron"], r["timezone"], now, dst=dst)
            next_run_at = fire.at if fire else None
        return cls(
            tenant_id=r["tenant_id"],
            id=r["id"],
            install_id=r["install_id"],
            extension_id=r["extension_id"],
            name=r["name"],
            endpoint_id=r["endpoint_id"],
            endpoint_method=r["endpoint_method"],
            endpoint_path=r["endpoint_path"],
            cron=r["cron"],
            timezone=r["timezone"],
            enabled=r["enabled"],
            disabled_reason=r["disabled_reason"],
            payload=_served_payload(r),
            revision=r["revision"],
            last_run_at=r["last_run_at"],
            last_run_status=r["last_run_status"],
            last_error=r["last_error"],
            last_success_at=r["last_success_at"],
            consecutive_failures=r["consecutive_failures"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            next_run_at=next_run_at,
            next_runs=next_runs,
        )


def _served_payload(r: dict[str, Any]) -> Any:
    """The stored payload, or None (logged) if no response could encode it: payloads are
    limited at the edge, but a row stored before that limit must not break a listing."""
    payload = r["payload"]
    if payload is not None and inputs.exceeds_depth(payload, inputs.MAX_READABLE_JSON_DEPTH):
        log.warning(
            "schedule %s: payload nested deeper than %d levels is shown as null",
            r["id"],
            inputs.MAX_READABLE_JSON_DEPTH,
        )
        return None
    return payload


@dataclass(frozen=True)
class ScheduleInput:
    """A create request, or a PATCH where absent fields are ``UNSET``."""

    name: Any = UNSET
    endpoint_id: Any = UNSET
    cron: Any = UNSET
    timezone: Any = UNSET
    enabled: Any = UNSET
    payload: Any = UNSET


AUDITED_FIELDS = ("name", "endpoint_id", "cron", "timezone", "enabled", "payload")


def _audit_view(row: dict[str, Any]) -> dict[str, Any]:
    view = {k: row[k] for k in AUDITED_FIELDS}
    view["endpoint"] = f"{row['endpoint_method']} {row['endpoint_path']}"
    return view


def _check_name(value: Any, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    name = str(value).strip()
    if not 1 <= len(name) <= 128:
        errors["name"] = "must be 1-128 characters after trimming spaces"
    elif problem := inputs.name_problem(name):
        errors["name"] = problem
    return name


def _check_payload(ctx: AppContext, value: Any, errors: dict[str, str]) -> None:
    if value is None:
        return
    if not isinstance(value, dict | list):
        errors["payload"] = "must be a JSON object or array"
        return
    # Checked at the API edge already; here for every other way in (UI, run-now, imports).
    if problem := inputs.json_problem(value):
        errors["payload"] = problem.message
        return
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > ctx.settings.max_payload_bytes:
        errors["payload"] = (
            f"is {size} bytes serialized; the limit is {ctx.settings.max_payload_bytes} bytes"
        )


async def _check_endpoint(
    ctx: AppContext,
    conn: Conn,
    install: installs.Install,
    endpoint_id: Any,
    errors: dict[str, str],
) -> dict[str, Any] | None:
    """The endpoint row if it is a schedulable endpoint of the install's current version."""
    try:
        eid = uuid.UUID(str(endpoint_id))
    except ValueError:
        errors["endpoint_id"] = "must be a UUID"
        return None
    row = await ctx.db.fetch_one(conn, "endpoint_get", {"id": eid})
    # Another version's or extension's endpoint reads as unknown: no leak of its details.
    if row is None or row["version_id"] != install.version_id:
        errors["endpoint_id"] = (
            f"not an endpoint of the installed version ({install.name} {install.version})"
        )
        return None
    reason = row["unschedulable_reason"]
    if reason == "method_not_allowed":
        errors["endpoint_id"] = f"{row['method']} endpoints cannot be scheduled; use GET or POST"
        return None
    if reason == "path_params":
        errors["endpoint_id"] = f"{row['path']} has path parameters and cannot be scheduled"
        return None
    return row


def _check_timing(ctx: AppContext, cron_text: Any, tz: Any, errors: dict[str, str]) -> None:
    errors.update(
        cron.validate_schedule(
            cron_text,
            tz,
            min_interval_seconds=ctx.settings.min_interval_seconds,
            now=ctx.clock(),
        )
    )


async def _validated(
    ctx: AppContext,
    conn: Conn,
    install: installs.Install,
    base: dict[str, Any],
    data: ScheduleInput,
    *,
    creating: bool,
) -> dict[str, Any]:
    """``base`` with ``data`` applied, for create (every field checked; a missing time zone or
    ``enabled`` takes its default) and PATCH (the given fields checked, ``null`` refused where
    a value is required). Raises ValidationFailed with one field error per bad field."""
    errors: dict[str, str] = {}
    new = dict(base)
    if data.name is not UNSET:
        new["name"] = _check_name(data.name, errors)
    enabling = data.enabled is not UNSET and bool(data.enabled) and not base["enabled"]
    if creating or data.endpoint_id is not UNSET or enabling:
        wanted = base["endpoint_id"] if data.endpoint_id is UNSET else data.endpoint_id
        if wanted is None:
            errors["endpoint_id"] = "is required"
        else:
            endpoint = await _check_endpoint(ctx, conn, install, wanted, errors)
            if endpoint is not None:
                new["endpoint_id"] = endpoint["id"]
                new["endpoint_method"] = endpoint["method"]
                new["endpoint_path"] = endpoint["path"]
    if data.cron is not UNSET:
        new["cron"] = data.cron
    if data.timezone is not UNSET and not (creating and data.timezone is None):
        new["timezone"] = data.timezone
    if creating or data.cron is not UNSET or data.timezone is not UNSET:
        if new["cron"] is None:
            errors["cron"] = "is required"
        elif new["timezone"] is None:
            errors["timezone"] = "must be an IANA time zone name"
        else:
            _check_timing(ctx, new["cron"], new["timezone"], errors)
    if data.payload is not UNSET:
        _check_payload(ctx, data.payload, errors)
        new["payload"] = data.payload
    if data.enabled is not UNSET and not (creating and data.enabled is None):
        if data.enabled is None:
            errors["enabled"] = "must be true or false"
        else:
            new["enabled"] = bool(data.enabled)
    if errors:
        raise ValidationFailed("the schedule is invalid", field_errors=errors)
    return new


def _active(row: dict[str, Any], install_enabled: bool, kill_switch: bool) -> bool:
    return bool(row["enabled"]) and install_enabled and not kill_switch


async def create(
    ctx: AppContext, principal: Principal, extension_id: uuid.UUID, data: ScheduleInput
) -> Schedule:
    tenant_id = _tenant(principal)
    db = ctx.db
    async with db.transaction() as conn:
        # Everything that needs no lock first (the time engine's checks cost CPU), so the
        # tenant row lock below, which serializes creates per tenant to keep quotas exact, is
        # held only for the count, the insert and the bookkeeping.
        tenant = await tenants.require_feature(db, conn, tenant_id)
        install = await installs.get(ctx, conn, tenant_id, extension_id)
        if not install.enabled:
            raise InstallDisabled()
        default_tz = principal.user_timezone or tenant.timezone or "UTC"
        new = await _validated(
            ctx,
            conn,
            install,
            {
                "name": None,
                "endpoint_id": None,
                "cron": None,
                "timezone": default_tz,
                "enabled": True,
                "payload": None,
            },
            data,
            creating=True,
        )
        tenant_row = await db.fetch_one(conn, "tenant_lock", {"tenant_id": tenant_id})
        if tenant_row is None or not tenant_row["scheduled_tasks_enabled"]:
            await tenants.require_feature(db, conn, tenant_id)  # switched off meanwhile
        assert tenant_row is not None
        counts = await db.fetch_one(
            conn, "schedule_counts", {"tenant_id": tenant_id, "install_id": install.id}
        )
        assert counts is not None
        limits = ctx.settings
        if counts["per_install"] >= limits.max_schedules_per_install:
            raise QuotaExceeded(
                f"this extension already has {counts['per_install']} schedules "
                f"(limit {limits.max_schedules_per_install})",
                details={"limit": limits.max_schedules_per_install, "scope": "install"},
            )
        if counts["per_tenant"] >= limits.max_schedules_per_tenant:
            raise QuotaExceeded(
                f"this tenant already has {counts['per_tenant']} schedules "
                f"(limit {limits.max_schedules_per_tenant})",
                details={"limit": limits.max_schedules_per_tenant, "scope": "tenant"},
            )
        schedule_id = uuid7()
        # A taken name is a field error, by the unique constraint (db.pool.UNIQUE_VIOLATIONS).
        row = await ctx.db.fetch_one(
            conn,
            "schedule_insert",
            {
                "tenant_id": tenant_id,
                "id": schedule_id,
                "install_id": install.id,
                "extension_id": install.extension_id,
                "name": new["name"],
                "endpoint_id": new["endpoint_id"],
                "endpoint_method": new["endpoint_method"],
                "endpoint_path": new["endpoint_path"],
                "cron": new["cron"],
                "timezone": new["timezone"],
                "enabled": new["enabled"],
                "disabled_reason": None,
                "payload": None if new["payload"] is None else json.dumps(new["payload"]),
            },
        )
        assert row is not None
        await handles.sync_schedules(ctx, conn, tenant_id, install.id, [row])
        await audit.record(
            db,
            conn,
            principal.actor,
            audit.AuditAction.SCHEDULE_CREATE,
            audit.Target.schedule(row),
            _audit_view(row),
        )
        return Schedule.from_row(
            row, active=_active(row, install.enabled, tenant_row["kill_switch"]), now=ctx.clock()
        )


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None, "tenant routes require a tenant token"
    return principal.tenant_id


async def _load(
    ctx: AppContext,
    conn: Conn,
    tenant_id: str,
    schedule_id: uuid.UUID,
    extension_id: uuid.UUID | None,
    *,
    for_update: bool = False,
) -> dict[str, Any]:
    row = await ctx.db.fetch_one(
        conn,
        "schedule_get_for_update" if for_update else "schedule_get",
        {"tenant_id": tenant_id, "id": schedule_id},
    )
    if row is None or (extension_id is not None and row["extension_id"] != extension_id):
        raise NotFound("unknown schedule")
    return row


async def get(
    ctx: AppContext,
    principal: Principal,
    schedule_id: uuid.UUID,
    extension_id: uuid.UUID | None = None,
) -> Schedule:
    """One schedule with its next 5 fires (``next_runs``)."""
    tenant_id = _tenant(principal)
    async with ctx.db.connection() as conn:
        row = await ctx.db.fetch_one(
            conn, "schedule_view", {"tenant_id": tenant_id, "id": schedule_id}
        )
    if row is None or not row["t_enabled"]:
        raise FeatureDisabled()
    if row["id"] is None or (extension_id is not None and row["extension_id"] != extension_id):
        raise NotFound("unknown schedule")
    return Schedule.from_row(
        row,
        active=_active(row, row["i_enabled"], row["t_kill_switch"]),
        now=ctx.clock(),
        with_next_runs=True,
    )


async def list_for_extension(
    ctx: AppContext, principal: Principal, extension_id: uuid.UUID
) -> list[Schedule]:
    """All schedules of an install, in two queries whatever their number."""
    tenant_id = _tenant(principal)
    async with ctx.db.connection() as conn:
        view = await ctx.db.fetch_one(
            conn, "install_view", {"tenant_id": tenant_id, "extension_id": extension_id}
        )
        if view is None or not view["t_enabled"]:
            raise FeatureDisabled()
        if view["id"] is None:
            raise NotInstalled()
        rows = await ctx.db.fetch_all(
            conn, "schedules_for_install", {"tenant_id": tenant_id, "install_id": view["id"]}
        )
    now = ctx.clock()
    return [
        Schedule.from_row(r, active=_active(r, view["enabled"], view["t_kill_switch"]), now=now)
        for r in rows
    ]


async def update(
    ctx: AppContext,
    principal: Principal,
    schedule_id: uuid.UUID,
    data: ScheduleInput,
    *,
    revision: int | None,
    extension_id: uuid.UUID | None = None,
) -> Schedule:
    """Apply a partial change with optimistic locking; bumps ``revision`` if anything changed."""
    tenant_id = _tenant(principal)
    db = ctx.db
    async with db.transaction() as conn:
        tenant = await tenants.require_feature(db, conn, tenant_id)
        current = await _load(ctx, conn, tenant_id, schedule_id, extension_id, for_update=True)
        if revision is not None and revision != current["revision"]:
            raise RevisionConflict(
                details={"current_revision": current["revision"], "given_revision": revision}
            )
        install = await installs.get(ctx, conn, tenant_id, current["extension_id"])
        new = await _validated(ctx, conn, install, current, data, creating=False)
        if new["enabled"] and not current["enabled"]:
            new["disabled_reason"] = None
            new["consecutive_failures"] = 0
        elif not new["enabled"] and current["enabled"]:
            new["disabled_reason"] = None
        before, after = _audit_view(current), _audit_view(new)
        changes = audit.diff(before, after)
        if not changes:
            return Schedule.from_row(
                current,
                active=_active(current, install.enabled, tenant.kill_switch),
                now=ctx.clock(),
                with_next_runs=True,
            )
        params = {
            k: new[k]
            for k in (
                "tenant_id",
                "id",
                "name",
                "endpoint_id",
                "endpoint_method",
                "endpoint_path",
                "cron",
                "timezone",
                "enabled",
                "disabled_reason",
                "consecutive_failures",
                "revision",
            )
        }
        params["payload"] = None if new["payload"] is None else json.dumps(new["payload"])
        # A taken name is a field error, by the unique constraint (no savepoint needed).
        row = await db.fetch_one(conn, "schedule_update", params)
        assert row is not None  # the row is locked FOR UPDATE, so the revision still matches
        if {"cron", "timezone", "enabled"} & changes.keys():
            await handles.sync_schedules(ctx, conn, tenant_id, install.id, [row])
        action = audit.AuditAction.SCHEDULE_UPDATE
        if set(changes) == {"enabled"}:
            action = (
                audit.AuditAction.SCHEDULE_ENABLE
                if row["enabled"]
                else audit.AuditAction.SCHEDULE_DISABLE
            )
        await audit.record(
            db,
            conn,
            principal.actor,
            action,
            audit.Target.schedule(row),
            changes,
        )
        return Schedule.from_row(
            row,
            active=_active(row, install.enabled, tenant.kill_switch),
            now=ctx.clock(),
            with_next_runs=True,
        )


async def delete(
    ctx: AppContext,
    actor: Actor,
    tenant_id: str,
    schedule_id: uuid.UUID,
    extension_id: uuid.UUID | None = None,
    *,
    check_feature: bool = True,
) -> None:
    """Delete a schedule: its backend handle, its runs, then the row; audited."""
    db = ctx.db
    async with db.transaction() as conn:
        if check_feature:
            await tenants.require_feature(db, conn, tenant_id)
        row = await _load(ctx, conn, tenant_id, schedule_id, extension_id, for_update=True)
        await ctx.backend.delete_handles(conn, tenant_id, [(row["install_id"], schedule_id)])
        await db.execute(
            conn, "runs_delete_for_schedule", {"tenant_id": tenant_id, "schedule_id": schedule_id}
        )
        await db.execute(conn, "schedule_delete", {"tenant_id": tenant_id, "id": schedule_id})
        await audit.record(
            db,
            conn,
            actor,
            audit.AuditAction.SCHEDULE_DELETE,
            audit.Target.schedule(row),
            _audit_view(row),
        )


async def disable_all(ctx: AppContext, principal: Principal, extension_id: uuid.UUID) -> int:
    """Disable every enabled schedule of an install; returns how many changed. Idempotent."""
    tenant_id = _tenant(principal)
    db = ctx.db
    async with db.transaction() as conn:
        await tenants.require_feature(db, conn, tenant_id)
        install = await installs.get(ctx, conn, tenant_id, extension_id)
        rows = await db.fetch_all(
            conn, "schedules_disable_all", {"tenant_id": tenant_id, "install_id": install.id}
        )
        if rows:
            await handles.sync_schedules(ctx, conn, tenant_id, install.id, rows)
            await audit.record(
                db,
                conn,
                principal.actor,
                audit.AuditAction.SCHEDULE_DISABLE_ALL,
                audit.Target.install(tenant_id, extension_id, install.id, install.name),
                {"disabled": [str(r["id"]) for r in rows]},
            )
        return len(rows)
