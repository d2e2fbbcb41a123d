"""Schedules as code (SPEC §5): export an install's schedules as a document, and apply a
document back, all or nothing.

A document entry names its endpoint as ``"METHOD /path"`` (stable across versions, unlike
endpoint ids) and carries only the policies that differ from the default. Apply matches
entries to schedules by name, case-insensitively; it validates every entry first (each error
keyed ``schedules[i].field``), then writes the deletes, updates and creates, their audit rows
and the job-backend changes in one transaction, so a refused document changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from extsched.db.pool import Conn
from extsched.domain.auth import Principal
from extsched.domain.ids import uuid7
from extsched.errors import InstallDisabled, QuotaExceeded, ValidationFailed
from extsched.services import audit, handles, installs, tenants
from extsched.services.context import AppContext
from extsched.services.schedules import (
    POLICY_FIELDS,
    UNSET,
    UPDATE_COLUMNS,
    InstallRef,
    ScheduleInput,
    _audit_view,
    _tenant,
    _validated,
    delete_row,
    insert_params,
)

ENTRY_FIELDS = ("cron", "timezone", "enabled", "payload", *POLICY_FIELDS)


@dataclass(frozen=True)
class Entry:
    """One schedule of a document: its name, ``"METHOD /path"`` and the fields to set
    (absent policies and payload mean the default; an absent time zone keeps the schedule's,
    or takes the default zone for a new one)."""

    name: str
    endpoint: str
    values: dict[str, Any]


@dataclass(frozen=True)
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Per updated name: {field: {"from": old, "to": new}} (what the CLI's plan prints).
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


def exported_name(row: dict[str, Any]) -> str:
    """The schedule's name, or a generated one that is stable for an unnamed schedule."""
    return str(row["name"]) if row["name"] else f"unnamed-{row['id']}"


def _defaults(ctx: AppContext) -> dict[str, Any]:
    """What ``null`` means for each policy (SPEC §5), so a stored explicit default and an
    absent value compare equal."""
    return {
        "overlap": "skip",
        "max_attempts": ctx.settings.max_attempts,
        "timeout_ms": ctx.settings.runner_timeout_ms,
        "jitter_seconds": 0,
        "dst_gap": "shift",
        "dst_repeat": "first",
    }


def _entry_of(ctx: AppContext, row: dict[str, Any]) -> dict[str, Any]:
    defaults = _defaults(ctx)
    doc: dict[str, Any] = {
        "name": exported_name(row),
        "endpoint": f"{row['endpoint_method']} {row['endpoint_path']}",
        "cron": row["cron"],
        "timezone": row["timezone"],
        "enabled": row["enabled"],
        "payload": row["payload"],
    }
    for f in POLICY_FIELDS:
        value = row[f]
        if value is not None and value != defaults.get(f):
            doc[f] = value
    return doc


async def export(
    ctx: AppContext, principal: Principal, extension_id: uuid.UUID
) -> tuple[str, list[dict[str, Any]]]:
    """(extension name, the install's schedules as document entries, oldest first)."""
    tenant_id = _tenant(principal)
    async with ctx.db.connection() as conn:
        await tenants.require_feature(ctx.db, conn, tenant_id)
        install = await installs.get(ctx, conn, tenant_id, extension_id)
        rows = await ctx.db.fetch_all(
            conn, "schedules_for_install", {"tenant_id": tenant_id, "install_id": install.id}
        )
    return install.name, [_entry_of(ctx, r) for r in rows]


@dataclass
class _Plan:
    creates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = field(
        default_factory=list
    )
    deletes: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _endpoint_key(text: str) -> str:
    method, _, path = text.strip().partition(" ")
    return f"{method.upper()} {path.strip()}"


async def apply(
    ctx: AppContext,
    principal: Principal,
    extension_id: uuid.UUID,
    entries: list[Entry],
    *,
    prune: bool = False,
    dry_run: bool = False,
) -> ApplyReport:
    """Make the install's schedules match ``entries``; with ``dry_run`` only report."""
    tenant_id = _tenant(principal)
    db = ctx.db
    async with db.transaction() as conn:
        tenant = await tenants.require_feature(db, conn, tenant_id)
        install = await installs.get(ctx, conn, tenant_id, extension_id)
        # The tenant lock serializes applies and creates, so quotas and the match hold.
        await db.fetch_one(conn, "tenant_lock", {"tenant_id": tenant_id})
        rows = await db.fetch_all(
            conn,
            "schedules_for_install_for_update",
            {"tenant_id": tenant_id, "install_id": install.id},
        )
        default_tz = principal.user_timezone or tenant.timezone or "UTC"
        plan = await _plan(ctx, conn, install, rows, entries, default_tz, prune=prune)
        if plan.creates:
            if not install.enabled:
                raise InstallDisabled()
            await _check_quota(ctx, conn, tenant_id, install.id, plan)
        report = ApplyReport(
            created=[n for n, _ in plan.creates],
            updated=[n for n, *_ in plan.updates],
            deleted=[exported_name(r) for r in plan.deletes],
            unchanged=plan.unchanged,
            changes={n: c for n, _, _, c in plan.updates},
        )
        if dry_run or not (plan.creates or plan.updates or plan.deletes):
            return report
        await _write(ctx, conn, principal, install, plan, report)
        return report


async def _plan(
    ctx: AppContext,
    conn: Conn,
    install: installs.Install,
    rows: list[dict[str, Any]],
    entries: list[Entry],
    default_tz: str,
    *,
    prune: bool,
) -> _Plan:
    """Validate every entry against the install and decide what changes; raises one
    ValidationFailed with every entry's field errors."""
    endpoints = {
        f"{e['method']} {e['path']}": e
        for e in await ctx.db.fetch_all(
            conn, "endpoints_for_version", {"version_id": install.version_id}
        )
    }
    by_name = {exported_name(r).lower(): r for r in rows}
    defaults = _defaults(ctx)
    errors: dict[str, str] = {}
    seen: dict[str, int] = {}
    plan = _Plan()
    for i, entry in enumerate(entries):
        prefix = f"schedules[{i}]."
        key = entry.name.strip().lower()
        if key in seen:
            errors[prefix + "name"] = f"appears twice in the document (also schedules[{seen[key]}])"
            continue
        seen[key] = i
        current = by_name.get(key)
        wanted = _endpoint_key(entry.endpoint)
        endpoint = endpoints.get(wanted)
        # A schedule disabled by a remap keeps its old endpoint for display: naming that one
        # again is no change (enabling it is refused by the validation below).
        kept = current is not None and wanted == f"{current['endpoint_method']} " + str(
            current["endpoint_path"]
        )
        if endpoint is None and not kept:
            errors[prefix + "endpoint"] = (
                f"no endpoint {entry.endpoint!r} in the installed version "
                f"({install.name} {install.version})"
            )
            continue
        values = {f: entry.values.get(f) for f in ENTRY_FIELDS}
        values["enabled"] = entry.values.get("enabled", True)
        if "timezone" not in entry.values or entry.values["timezone"] is None:
            values["timezone"] = UNSET if current is not None else default_tz
        if current is not None:
            # An absent policy equals a stored one that is the default: nothing to change.
            for f in POLICY_FIELDS:
                if values[f] is None and current[f] == defaults.get(f, object()):
                    values[f] = UNSET
        data = ScheduleInput(
            name=UNSET if current is not None and current["name"] is None else entry.name,
            endpoint_id=UNSET if kept else endpoint["id"] if endpoint else UNSET,
            **values,
        )
        base = current or {
            "name": None,
            "endpoint_id": None,
            "cron": None,
            "timezone": default_tz,
            "enabled": True,
            "payload": None,
            **dict.fromkeys(POLICY_FIELDS),
        }
        try:
            new = await _validated(
                ctx, conn, InstallRef.of(install), base, data, creating=current is None
            )
        except ValidationFailed as exc:
            for f, message in (exc.field_errors or {"": exc.message}).items():
                errors[prefix + ("endpoint" if f == "endpoint_id" else f)] = message
            continue
        if current is None:
            plan.creates.append((entry.name.strip(), new))
            continue
        changes = audit.diff(_audit_view(current), _audit_view(new))
        changes.pop("endpoint_id", None)  # shown as "endpoint", the document's form
        if changes:
            plan.updates.append((exported_name(current), current, new, changes))
        else:
            plan.unchanged.append(exported_name(current))
    if errors:
        raise ValidationFailed(
            f"the document is invalid: {next(iter(errors))}: {next(iter(errors.values()))}",
            field_errors=errors,
        )
    if prune:
        plan.deletes = [r for name, r in by_name.items() if name not in seen]
    return plan


async def _check_quota(
    ctx: AppContext, conn: Conn, tenant_id: str, install_id: uuid.UUID, plan: _Plan
) -> None:
    counts = await ctx.db.fetch_one(
        conn, "schedule_counts", {"tenant_id": tenant_id, "install_id": install_id}
    )
    assert counts is not None
    delta = len(plan.creates) - len(plan.deletes)
    limits = ctx.settings
    for scope, have, limit in (
        ("install", counts["per_install"], limits.max_schedules_per_install),
        ("tenant", counts["per_tenant"], limits.max_schedules_per_tenant),
    ):
        if have + delta > limit:
            raise QuotaExceeded(
                f"applying would leave this {scope} with {have + delta} schedules (limit {limit})",
                details={"limit": limit, "scope": scope},
            )


async def _write(
    ctx: AppContext,
    conn: Conn,
    principal: Principal,
    install: installs.Install,
    plan: _Plan,
    report: ApplyReport,
) -> None:
    """Deletes, then updates, then creates (so a freed name can be taken), each audited,
    then every backend change at once; any failure rolls the whole apply back."""
    db = ctx.db
    tenant_id = install.tenant_id
    actor = principal.actor
    for row in plan.deletes:
        await delete_row(db, conn, actor, row)
    written: list[dict[str, Any]] = []
    previous: list[dict[str, Any]] = []
    for _, current, new, changes in plan.updates:
        if new["enabled"] and not current["enabled"]:
            new["disabled_reason"] = None
            new["consecutive_failures"] = 0
        elif not new["enabled"] and current["enabled"]:
            new["disabled_reason"] = None
        params = {k: new[k] for k in UPDATE_COLUMNS}
        params["payload"] = None if new["payload"] is None else json.dumps(new["payload"])
        updated = await db.fetch_one(conn, "schedule_update", params)
        assert updated is not None  # locked FOR UPDATE above
        written.append(updated)
        previous.append(current)
        await audit.record(
            db,
            conn,
            actor,
            audit.AuditAction.SCHEDULE_UPDATE,
            audit.Target.schedule(updated),
            changes,
        )
    created: list[dict[str, Any]] = []
    for name, new in plan.creates:
        inserted = await db.fetch_one(
            conn,
            "schedule_insert",
            insert_params(
                tenant_id, uuid7(), InstallRef.of(install), {**new, "name": name}, origin="user"
            ),
        )
        assert inserted is not None
        created.append(inserted)
        await audit.record(
            db,
            conn,
            actor,
            audit.AuditAction.SCHEDULE_CREATE,
            audit.Target.schedule(inserted),
            _audit_view(inserted),
        )
    await audit.record(
        db,
        conn,
        actor,
        audit.AuditAction.SCHEDULE_APPLY,
        audit.Target.install(tenant_id, install.extension_id, install.id, install.name),
        {
            k: v
            for k, v in dataclasses.asdict(report).items()
            if k in ("created", "updated", "deleted")
        },
    )
    await handles.change_atomically(
        ctx,
        conn,
        tenant_id,
        install.id,
        put=[*written, *created],
        previous=previous,
        delete=[(r["install_id"], r["id"]) for r in plan.deletes],
    )
