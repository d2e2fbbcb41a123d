"""Schedules: create, read, change, delete; every rule of SPEC §5 "Validation of schedules"."""

from __future__ import annotations

import enum
import json
import logging
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from extsched.db.pool import Conn, Database
from extsched.domain import cron, inputs, timing
from extsched.domain.auth import Actor, Principal
from extsched.domain.cron import Fire
from extsched.domain.ids import uuid7
from extsched.domain.manifest import DefaultSchedule
from extsched.errors import (
    FeatureDisabled,
    InstallDisabled,
    NotFound,
    NotInstalled,
    QuotaExceeded,
    RevisionConflict,
    ValidationFailed,
)
from extsched.services import audit, handles, installs, registry, tenants
from extsched.services.context import AppContext

log = logging.getLogger(__name__)

UNSET: Any = object()
"""Marks a field a PATCH did not mention (``None`` means "set to null")."""


class Overlap(enum.StrEnum):
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW = "allow"


POLICY_FIELDS = (
    "overlap",
    "max_attempts",
    "timeout_ms",
    "jitter_seconds",
    "starts_at",
    "ends_at",
    "paused_until",
    "dst_gap",
    "dst_repeat",
)
# The columns ``schedule_update`` sets (besides the payload, stored as JSON).
UPDATE_COLUMNS = (
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
    *POLICY_FIELDS,
)


@dataclass(frozen=True)
class Policies:
    """A schedule's policies as stored; None means the default (SPEC §5)."""

    overlap: str | None = None
    max_attempts: int | None = None
    timeout_ms: int | None = None
    jitter_seconds: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    paused_until: datetime | None = None
    dst_gap: str | None = None
    dst_repeat: str | None = None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Policies:
        return cls(*map(r.get, POLICY_FIELDS))  # positional: the fields are POLICY_FIELDS

    @property
    def dst(self) -> cron.DstChoice:
        return cron.DstChoice.of(self.dst_gap, self.dst_repeat)

    @property
    def not_before(self) -> datetime | None:
        """No fire before this instant: the later of ``starts_at`` and ``paused_until``."""
        bounds = [b for b in (self.starts_at, self.paused_until) if b is not None]
        return max(bounds) if bounds else None


if tuple(f.name for f in fields(Policies)) != POLICY_FIELDS:
    raise RuntimeError("Policies must declare POLICY_FIELDS, in order")


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
    # Policies (SPEC §5) as stored: None means the default.
    policies: Policies
    origin: str
    next_run_at: datetime | None = None
    next_runs: list[Fire] | None = field(default=None)

    @classmethod
    def from_row(
        cls, r: dict[str, Any], *, active: bool, now: datetime, with_next_runs: bool = False
    ) -> Schedule:
        """Build from a row; ``active`` says whether it would fire (enabled, install enabled,
        kill switch off). Fire times come from the time engine, the single source of truth."""
        policies = Policies.from_row(r)
        next_run_at = None
        next_runs = None
        start = timing.window_start(now, policies.not_before)
        try:
            if with_next_runs:
                fires = cron.upcoming_runs(r["cron"], r["timezone"], start, 5, dst=policies.dst)
                next_runs = list(timing.in_window(fires, policies.ends_at))
                if active and next_runs:
                    next_run_at = next_runs[0].at
            elif active:
                fire = cron.upcoming(r["cron"], r["timezone"], start, dst=policies.dst)
                if fire is not None and (policies.ends_at is None or fire.at < policies.ends_at):
                    next_run_at = fire.at
        except (cron.CronError, ValueError):
            # A row that no longer evaluates (SPEC §9 fault isolation) still reads, with no
            # fire times, so one bad schedule cannot break its tenant's listings.
            next_runs = [] if with_next_runs else None
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
            policies=policies,
            origin=r.get("origin") or "user",
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
class InstallRef:
    """What a schedule change needs of its install (no manifest, no secrets)."""

    id: uuid.UUID
    extension_id: uuid.UUID
    version_id: uuid.UUID
    name: str
    version: str
    enabled: bool

    @classmethod
    def of(cls, install: installs.Install) -> InstallRef:
        return cls(
            install.id,
            install.extension_id,
            install.version_id,
            install.name,
            install.version,
            install.enabled,
        )


def insert_params(
    tenant_id: str,
    schedule_id: uuid.UUID,
    install: InstallRef,
    new: dict[str, Any],
    *,
    origin: str,
) -> dict[str, Any]:
    """``schedule_insert``'s parameters for a validated schedule (``_validated``'s result)."""
    return {
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
        "origin": origin,
        **{f: new[f] for f in POLICY_FIELDS},
    }


@dataclass(frozen=True)
class ScheduleInput:
    """A create request, or a PATCH where absent fields are ``UNSET``."""

    name: Any = UNSET
    endpoint_id: Any = UNSET
    cron: Any = UNSET
    timezone: Any = UNSET
    enabled: Any = UNSET
    payload: Any = UNSET
    overlap: Any = UNSET
    max_attempts: Any = UNSET
    timeout_ms: Any = UNSET
    jitter_seconds: Any = UNSET
    starts_at: Any = UNSET
    ends_at: Any = UNSET
    paused_until: Any = UNSET
    dst_gap: Any = UNSET
    dst_repeat: Any = UNSET


AUDITED_FIELDS = ("name", "endpoint_id", "cron", "timezone", "enabled", "payload", *POLICY_FIELDS)
MAX_JITTER_SECONDS = 3600
# What the backend handle carries: a change to any of these re-puts the handle.
HANDLE_FIELDS = frozenset(
    {
        "cron",
        "timezone",
        "enabled",
        "dst_gap",
        "dst_repeat",
        "starts_at",
        "ends_at",
        "paused_until",
        "jitter_seconds",
    }
)


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


def check_payload(ctx: AppContext, value: Any, errors: dict[str, str]) -> None:
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
    install: InstallRef,
    endpoint_id: Any,
    errors: dict[str, str],
    fetched: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The endpoint row if it is a schedulable endpoint of the install's current version;
    ``fetched`` is that row when the caller has read it already (by the same id)."""
    eid = _as_uuid(endpoint_id)
    if eid is None:
        errors["endpoint_id"] = "must be a UUID"
        return None
    if fetched is not None and fetched["id"] == eid:
        row: dict[str, Any] | None = fetched
    else:
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


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _check_timing(
    ctx: AppContext, cron_text: Any, tz: Any, gap: Any, repeat: Any, errors: dict[str, str]
) -> None:
    """The cron, zone and DST choice together: a choice can add fires (``both``), so the
    minimum interval is checked with it."""
    try:
        expr: cron.CronExpr | None = cron.parse_cron(cron_text)
    except (cron.CronError, TypeError, AttributeError):
        expr = None
    dst_errors = cron.validate_dst(expr, gap, repeat)
    errors.update(dst_errors)
    dst = cron.DEFAULT_DST if dst_errors else cron.DstChoice.of(gap, repeat)
    errors.update(
        cron.validate_schedule(
            cron_text,
            tz,
            min_interval_seconds=ctx.settings.min_interval_seconds,
            now=ctx.clock(),
            dst=dst,
        )
    )


async def _validated(
    ctx: AppContext,
    conn: Conn,
    install: InstallRef,
    base: dict[str, Any],
    data: ScheduleInput,
    *,
    creating: bool,
    endpoint: dict[str, Any] | None = None,
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
            endpoint = await _check_endpoint(ctx, conn, install, wanted, errors, endpoint)
            if endpoint is not None:
                new["endpoint_id"] = endpoint["id"]
                new["endpoint_method"] = endpoint["method"]
                new["endpoint_path"] = endpoint["path"]
    if data.cron is not UNSET:
        new["cron"] = data.cron
    if data.timezone is not UNSET and not (creating and data.timezone is None):
        new["timezone"] = data.timezone
    for f in POLICY_FIELDS:
        value = getattr(data, f)
        if value is not UNSET:
            new[f] = value
    timing_given = {data.cron, data.timezone, data.dst_gap, data.dst_repeat} != {UNSET}
    if creating or timing_given:
        if new["cron"] is None:
            errors["cron"] = "is required"
        elif new["timezone"] is None:
            errors["timezone"] = "must be an IANA time zone name"
        else:
            _check_timing(
                ctx, new["cron"], new["timezone"], new["dst_gap"], new["dst_repeat"], errors
            )
    if data.payload is not UNSET:
        check_payload(ctx, data.payload, errors)
        new["payload"] = data.payload
    if data.enabled is not UNSET and not (creating and data.enabled is None):
        if data.enabled is None:
            errors["enabled"] = "must be true or false"
        else:
            new["enabled"] = bool(data.enabled)
    _check_policies(ctx, new, errors)
    if errors:
        raise ValidationFailed("the schedule is invalid", field_errors=errors)
    return new


def _check_policies(ctx: AppContext, new: dict[str, Any], errors: dict[str, str]) -> None:
    """The policy fields of SPEC §5 (None is always the default)."""

    def integer(f: str, lo: int, hi: int) -> int | None:
        value = new.get(f)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            errors[f] = f"must be a whole number from {lo} to {hi}"
            return None
        return value

    overlap = new.get("overlap")
    if overlap is not None and overlap not in Overlap.__members__.values():
        errors["overlap"] = "must be one of skip, buffer_one, allow"
    integer("max_attempts", 1, 10)
    integer("timeout_ms", 1000, ctx.settings.max_timeout_ms)
    jitter = integer("jitter_seconds", 0, MAX_JITTER_SECONDS)
    for f in ("starts_at", "ends_at", "paused_until"):
        value = new.get(f)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            errors[f] = "must be an RFC 3339 instant with a time zone offset"
    starts, ends = new.get("starts_at"), new.get("ends_at")
    valid_bounds = "starts_at" not in errors and "ends_at" not in errors
    if valid_bounds and starts and ends and not starts < ends:
        errors["ends_at"] = "must be after starts_at"
    if "cron" in errors or "timezone" in errors or new.get("cron") is None:
        return
    if "dst_gap" in errors or "dst_repeat" in errors:
        return
    expr, zone = cron.compile_schedule(new["cron"], new["timezone"])
    if jitter:
        gap_s = cron.min_gap_seconds(
            expr, zone, ctx.clock(), dst=cron.DstChoice.of(new["dst_gap"], new["dst_repeat"])
        )
        if gap_s is not None and not jitter < gap_s / 2:
            errors["jitter_seconds"] = (
                f"must be less than half of the schedule's shortest gap ({gap_s // 2} s)"
            )


def clock_changes(schedule: Schedule, now: datetime) -> list[Fire]:
    """The schedule's next fires (up to 3, within 5 years) that a clock change moves, drops or
    doubles, with its DST choice and window: what a daily schedule's next 5 runs rarely show."""
    try:
        expr, zone = cron.compile_schedule(schedule.cron, schedule.timezone)
    except cron.CronError:
        return []
    p = schedule.policies
    fires = cron.dst_fires(expr, zone, timing.window_start(now, p.not_before), p.dst)
    return list(timing.in_window(fires, p.ends_at))


def _active(row: dict[str, Any], install_enabled: bool, kill_switch: bool) -> bool:
    return bool(row["enabled"]) and install_enabled and not kill_switch


async def create(
    ctx: AppContext,
    principal: Principal,
    extension_id: uuid.UUID,
    data: ScheduleInput,
    *,
    origin: str = "user",
) -> Schedule:
    """Create a schedule (``origin`` "manifest" for an extension's default schedules)."""
    async with ctx.db.transaction() as conn:
        return await _create_on(ctx, conn, principal, extension_id, data, origin=origin)


async def _create_on(
    ctx: AppContext,
    conn: Conn,
    principal: Principal,
    extension_id: uuid.UUID,
    data: ScheduleInput,
    *,
    origin: str,
) -> Schedule:
    tenant_id = _tenant(principal)
    db = ctx.db
    wanted = data.endpoint_id
    endpoint_id = None if wanted is UNSET or wanted is None else _as_uuid(wanted)
    view = await db.fetch_one(
        conn,
        "install_for_change",
        {"tenant_id": tenant_id, "extension_id": extension_id, "endpoint_id": endpoint_id},
    )
    if view is None or not view["t_enabled"]:
        raise FeatureDisabled()
    if view["id"] is None:
        raise NotInstalled()
    install = InstallRef(
        view["id"],
        view["extension_id"],
        view["version_id"],
        view["name"],
        view["version"],
        view["enabled"],
    )
    if not install.enabled:
        raise InstallDisabled()
    default_tz = principal.user_timezone or view["t_timezone"] or "UTC"
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
            **dict.fromkeys(POLICY_FIELDS),
        },
        data,
        creating=True,
        endpoint=None
        if view["ep_id"] is None
        else {
            f: view["ep_" + f]
            for f in ("id", "version_id", "method", "path", "handler", "unschedulable_reason")
        },
    )
    schedule_id = uuid7()
    # A taken name is a field error, by the unique constraint (db.pool.UNIQUE_VIOLATIONS).
    row = await ctx.db.fetch_one(
        conn,
        "schedule_insert",
        insert_params(tenant_id, schedule_id, install, new, origin=origin),
    )
    assert row is not None
    # Quotas hold under concurrency because every create counts under the tenant's row
    # lock, held to its commit: a create taking the lock sees every create that took it
    # before. Taken last (the schedule, its audit entry and a transactional backend's
    # handle are written without it, in this same transaction), so creates of one tenant
    # wait for each other only for the count and the commit (and a remote backend's
    # handle); a create over quota rolls back with everything it wrote. A remote backend's
    # handle (Temporal) comes after the check: a rollback would not undo it. Lock and count
    # are one statement (the function of migration 0011), sent in one round trip with the
    # audit entry and the handle before it.
    assumed = (install.enabled, bool(view["t_kill_switch"]))  # the switches as read above
    early = ctx.backend.transactional
    async with db.pipeline(conn):
        await audit.record(
            db,
            conn,
            principal.actor,
            audit.AuditAction.SCHEDULE_CREATE,
            audit.Target.schedule(row),
            _audit_view(row),
        )
        if early:
            await handles.sync_schedules(ctx, conn, tenant_id, install.id, [row], state=assumed)
        quota = await db.send(
            conn, "schedule_quota", {"tenant_id": tenant_id, "install_id": install.id}
        )
    counts = await quota.fetchone()
    if counts is None or not counts["scheduled_tasks_enabled"]:
        raise FeatureDisabled()  # switched off meanwhile
    limits = ctx.settings
    if counts["per_install"] > limits.max_schedules_per_install:
        raise QuotaExceeded(
            f"this extension already has {counts['per_install'] - 1} schedules "
            f"(limit {limits.max_schedules_per_install})",
            details={"limit": limits.max_schedules_per_install, "scope": "install"},
        )
    if counts["per_tenant"] > limits.max_schedules_per_tenant:
        raise QuotaExceeded(
            f"this tenant already has {counts['per_tenant'] - 1} schedules "
            f"(limit {limits.max_schedules_per_tenant})",
            details={"limit": limits.max_schedules_per_tenant, "scope": "tenant"},
        )
    # The switches as of the count, after the lock: a kill switch turned on meanwhile
    # (it takes the same lock) pauses the new handle, written again if it was written early.
    install_enabled = bool(counts["install_enabled"])
    kill_switch = bool(counts["kill_switch"])
    if not early or (install_enabled, kill_switch) != assumed:
        await handles.sync_schedules(
            ctx, conn, tenant_id, install.id, [row], state=(install_enabled, kill_switch)
        )
    return Schedule.from_row(
        row,
        active=_active(row, install_enabled, kill_switch),
        now=ctx.clock(),
        with_next_runs=True,
    )


async def create_defaults(
    ctx: AppContext,
    conn: Conn,
    principal: Principal,
    install: installs.Install,
    defaults: tuple[DefaultSchedule, ...],
) -> list[uuid.UUID]:
    """Create the manifest's default schedules (SPEC §7) for a new install, in the caller's
    transaction, with ``origin: "manifest"``; validated and counted against the quotas like
    any schedule. None when the tenant's scheduled tasks are switched off."""
    if not defaults:
        return []
    tenant = await tenants.get(ctx.db, conn, install.tenant_id)
    if tenant is None or not tenant.scheduled_tasks_enabled:
        return []
    endpoints = {
        (e.method, e.path): e.id
        for e in await registry.endpoints_for_version(ctx.db, conn, install.version_id)
    }
    created: list[uuid.UUID] = []
    for index, default in enumerate(defaults):
        data = ScheduleInput(
            name=default.name,
            endpoint_id=endpoints.get((default.method, default.path)),
            cron=default.cron,
            timezone=default.timezone,
            enabled=default.enabled,
            payload=default.payload,
        )
        try:
            schedule = await _create_on(
                ctx, conn, principal, install.extension_id, data, origin="manifest"
            )
        except ValidationFailed as exc:
            raise ValidationFailed(
                f"the manifest's default schedule {default.name!r} is invalid here; "
                "install with default_schedules: false to skip the defaults",
                field_errors={
                    f"schedules[{index}].{key}": message
                    for key, message in (exc.field_errors or {}).items()
                },
            ) from exc
        created.append(schedule.id)
    return created


async def delete_row(db: Database, conn: Conn, actor: Actor, row: dict[str, Any]) -> None:
    """Delete a schedule (locked by the caller) with its runs, and audit it; its backend handle
    is the caller's to remove."""
    tenant_id = row["tenant_id"]
    await db.execute(
        conn, "runs_delete_for_schedule", {"tenant_id": tenant_id, "schedule_id": row["id"]}
    )
    await db.execute(conn, "schedule_delete", {"tenant_id": tenant_id, "id": row["id"]})
    await audit.record(
        db,
        conn,
        actor,
        audit.AuditAction.SCHEDULE_DELETE,
        audit.Target.schedule(row),
        _audit_view(row),
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


async def load_for_change(
    ctx: AppContext,
    conn: Conn,
    tenant_id: str,
    schedule_id: uuid.UUID,
    extension_id: uuid.UUID | None,
) -> dict[str, Any]:
    """The schedule locked for a change, with its tenant's switches (``t_enabled``,
    ``t_kill_switch``) and its install's state (``i_enabled``, ``i_version_id``, ``i_name``,
    ``i_version``), in one round trip; FEATURE_DISABLED or NotFound otherwise."""
    row = await ctx.db.fetch_one(
        conn, "schedule_for_change", {"tenant_id": tenant_id, "id": schedule_id}
    )
    if row is None or (extension_id is not None and row["extension_id"] != extension_id):
        # Tell a switched-off tenant from an unknown schedule, as the reads do.
        await tenants.require_feature(ctx.db, conn, tenant_id)
        raise NotFound("unknown schedule")
    if not row["t_enabled"]:
        raise FeatureDisabled()
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
        current = await load_for_change(ctx, conn, tenant_id, schedule_id, extension_id)
        if revision is not None and revision != current["revision"]:
            raise RevisionConflict(
                details={"current_revision": current["revision"], "given_revision": revision}
            )
        install = InstallRef(
            current["install_id"],
            current["extension_id"],
            current["i_version_id"],
            current["i_name"],
            current["i_version"],
            current["i_enabled"],
        )
        kill_switch = bool(current["t_kill_switch"])
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
                active=_active(current, install.enabled, kill_switch),
                now=ctx.clock(),
                with_next_runs=True,
            )
        params = {k: new[k] for k in UPDATE_COLUMNS}
        params["payload"] = None if new["payload"] is None else json.dumps(new["payload"])
        action = audit.AuditAction.SCHEDULE_UPDATE
        if set(changes) == {"enabled"}:
            action = (
                audit.AuditAction.SCHEDULE_ENABLE
                if new["enabled"]
                else audit.AuditAction.SCHEDULE_DISABLE
            )
        # The update and its audit entry in one round trip. A taken name is a field error, by
        # the unique constraint (no savepoint needed), raised at the end of the block.
        async with db.pipeline(conn):
            updated = await db.send(conn, "schedule_update", params)
            await audit.record(
                db, conn, principal.actor, action, audit.Target.schedule(new), changes
            )
        row = await updated.fetchone()
        assert row is not None  # the row is locked FOR UPDATE, so the revision still matches
        if HANDLE_FIELDS & changes.keys():
            # The switches are read again here: a concurrent kill switch or install change
            # may have committed since the first statement.
            await handles.sync_schedules(ctx, conn, tenant_id, install.id, [row])
        return Schedule.from_row(
            row,
            active=_active(row, install.enabled, kill_switch),
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
        await delete_row(db, conn, actor, row)


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
