"""Request and response schemas (kept apart from rows and services' objects)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from extsched.domain import cron
from extsched.services import registry, tokens
from extsched.services.audit import AuditEntry
from extsched.services.endpoints import EndpointPage
from extsched.services.installs import Install
from extsched.services.runs import ListedRun, Run
from extsched.services.schedules import Schedule
from extsched.services.signing import SigningSecret
from extsched.services.tenants import Tenant


def _utc_seconds(value: datetime) -> datetime:
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(microsecond=0) if value.microsecond else value


UtcTime = Annotated[datetime, AfterValidator(_utc_seconds)]
"""RFC 3339 UTC with ``Z`` and whole seconds (SPEC §5), e.g. ``2026-03-29T01:00:00Z``. Values
are normalized when a response model is built, so pydantic's own (native) JSON encoder writes
them: a Python formatter per value was a third of a 50-schedule listing's CPU."""

ConfigMap = dict[StrictStr, StrictStr]

# A schedule's payload: any JSON object or array, checked by the service (SPEC §5 Validation)
# so that a wrong type is a field error with a clear message.
_PAYLOAD_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "object"}, {"type": "array", "items": {}}, {"type": "null"}],
    "description": "A JSON object or array sent as the request body to the endpoint.",
}
Payload = Annotated[Any, WithJsonSchema(_PAYLOAD_SCHEMA)]

Overlap = Literal["skip", "buffer_one", "allow"]
DstGap = Literal["shift", "skip"]
DstRepeat = Literal["first", "last", "both"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "timed_out", "skipped"]


def _documented_range(description: str, **bounds: int) -> Any:
    """A field whose range the service checks (its message names the field); the document
    states the range."""
    return Field(default=None, description=description, json_schema_extra=dict(bounds))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------- requests
class InstallCreateIn(Strict):
    """Install a published version for the caller's tenant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version_id": "0193a5c4-7d2e-7c41-9f0e-2b6f8f1f4a10",
                    "config": {"region": "eu"},
                    "secrets": {"api_key": "s3cr3t"},
                    "providers": ["cap:http.fetch"],
                }
            ]
        }
    )

    version_id: uuid.UUID
    config: ConfigMap | None = Field(default=None, description="Plain settings, by name.")
    secrets: ConfigMap | None = Field(
        default=None, description="Write-only: stored encrypted, only their names are shown."
    )
    providers: list[StrictStr] | None = Field(
        default=None,
        description="The manifest's capabilities granted to the install (default: all).",
    )
    default_schedules: StrictBool = Field(
        default=True,
        description="Create the manifest's default schedules with the install (SPEC §7).",
    )


class InstallPatchIn(Strict):
    """Change an install's settings: ``config`` is replaced whole, ``secrets`` are merged
    (``null`` deletes one), ``providers`` replaced."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"config": {"region": "us"}, "secrets": {"old": None}}]}
    )

    config: ConfigMap | None = None
    secrets: dict[StrictStr, StrictStr | None] | None = None
    providers: list[StrictStr] | None = None


class PoliciesIn(Strict):
    """Schedule policies (SPEC §5); ``null`` or absent means the default. Ranges are checked
    by the service, so every error is a field error under the field's name."""

    overlap: Overlap | None = Field(
        default=None,
        description="A fire while a run is running: skip (default), buffer_one, allow.",
    )
    max_attempts: StrictInt | None = _documented_range(
        "Attempts per run for retryable failures.", minimum=1, maximum=10
    )
    timeout_ms: StrictInt | None = _documented_range(
        "Per-invocation timeout, at most EXTSCHED_MAX_TIMEOUT_MS.", minimum=1000
    )
    jitter_seconds: StrictInt | None = _documented_range(
        "Fixed pseudo-random delay of each fire; less than half the shortest gap.",
        minimum=0,
        maximum=3600,
    )
    starts_at: AwareDatetime | None = Field(
        default=None, description="Fires only from this instant (before ends_at)."
    )
    ends_at: AwareDatetime | None = Field(default=None, description="Fires only before it.")
    paused_until: AwareDatetime | None = Field(
        default=None, description="No fire before it; a past instant or null resumes."
    )
    dst_gap: DstGap | None = Field(
        default=None, description="Fixed-time schedules: a fire in a DST gap (default shift)."
    )
    dst_repeat: DstRepeat | None = Field(
        default=None,
        description="Fixed-time schedules: a fire in a repeated hour (default first).",
    )


class ScheduleCreateIn(PoliciesIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Nightly CRM sync",
                    "endpoint_id": "0193a5c4-7d2e-7c41-9f0e-2b6f8f1f4a11",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/Paris",
                    "payload": {"full": False},
                    "overlap": "skip",
                    "max_attempts": 3,
                }
            ]
        }
    )

    name: StrictStr | None = Field(default=None, description="1-128 characters, unique.")
    endpoint_id: uuid.UUID = Field(
        description="A GET or POST endpoint, without path parameters, of the installed version."
    )
    cron: StrictStr = Field(description="Five fields: minute hour day-of-month month weekday.")
    timezone: StrictStr | None = Field(
        default=None, description="IANA name; default: the user's, else the tenant's, else UTC."
    )
    enabled: StrictBool = True
    payload: Payload = None


class SchedulePatchIn(PoliciesIn):
    """Any subset of the schedule's fields (``payload: null`` clears it). The revision read,
    in ``revision`` or an ``If-Match`` header, guards against concurrent changes."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"cron": "0 6 * * 1-5", "enabled": True, "revision": 3}]}
    )

    name: StrictStr | None = None
    endpoint_id: uuid.UUID | None = None
    cron: StrictStr | None = None
    timezone: StrictStr | None = None
    enabled: StrictBool | None = None
    payload: Payload = None
    revision: StrictInt | None = None


class RunNowIn(Strict):
    """Run-now's optional body: a payload for this run only (validated like a schedule's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"payload": {"full": True}}]})

    payload: Payload = None


_MAX_PREVIEW = cron.MAX_PREVIEW  # the field ``cron`` hides the module in the class body


class CronPreviewIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"cron": "30 2 * * *", "timezone": "Europe/Paris", "count": 5}]
        }
    )

    cron: StrictStr
    timezone: StrictStr | None = None
    count: StrictInt = Field(default=5, ge=1, le=_MAX_PREVIEW)
    # The first instant shown (fires at or after it); default: now.
    from_: AwareDatetime | None = Field(default=None, alias="from")
    # Checked against the expression by the route (cron.validate_dst), so bad values are
    # field errors with the same messages as on schedules.
    dst_gap: StrictStr | None = Field(default=None, description="shift or skip")
    dst_repeat: StrictStr | None = Field(default=None, description="first, last or both")


class TenantPutIn(Strict):
    timezone: StrictStr | None = None
    scheduled_tasks_enabled: StrictBool | None = None


# ----------------------------------------------------------------- responses
class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. NOT_FOUND.")
    message: str = Field(description="Human-readable explanation.")
    field_errors: dict[str, str] | None = Field(
        default=None, description="Message by request field (VALIDATION_FAILED)."
    )
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer (SPEC §5 Errors)."""

    error: ErrorBody


class EndpointOut(BaseModel):
    id: uuid.UUID
    method: str
    path: str
    handler: str


class SkippedEndpointOut(BaseModel):
    method: str
    path: str
    reason: str


class PublishedOut(BaseModel):
    extension_id: uuid.UUID
    version_id: uuid.UUID
    name: str
    version: str
    content_hash: str
    endpoints: list[EndpointOut]
    skipped_endpoints: list[SkippedEndpointOut]

    @classmethod
    def of(cls, p: registry.Published) -> PublishedOut:
        return cls(
            extension_id=p.extension_id,
            version_id=p.version_id,
            name=p.name,
            version=p.version,
            content_hash=p.content_hash,
            endpoints=[
                EndpointOut(id=e.id, method=e.method, path=e.path, handler=e.handler)
                for e in p.endpoints
            ],
            skipped_endpoints=[
                SkippedEndpointOut(method=s.method, path=s.path, reason=s.reason) for s in p.skipped
            ],
        )


class RegistryVersionOut(BaseModel):
    version_id: uuid.UUID
    version: str


class RegistryExtensionOut(BaseModel):
    extension_id: uuid.UUID
    name: str
    publisher: str
    versions: list[RegistryVersionOut]


class RegistryListOut(BaseModel):
    items: list[RegistryExtensionOut]

    @classmethod
    def of(cls, items: list[registry.RegistryExtension]) -> RegistryListOut:
        return cls(
            items=[
                RegistryExtensionOut(
                    extension_id=e.extension_id,
                    name=e.name,
                    publisher=e.publisher,
                    versions=[
                        RegistryVersionOut(version_id=v.version_id, version=v.version)
                        for v in e.versions
                    ],
                )
                for e in items
            ]
        )


class InstallOut(BaseModel):
    install_id: uuid.UUID
    extension_id: uuid.UUID
    name: str
    version_id: uuid.UUID
    version: str
    enabled: bool
    config: dict[str, str]
    secret_names: list[str]
    providers: list[str]
    created_at: UtcTime
    updated_at: UtcTime

    @classmethod
    def of(cls, i: Install) -> InstallOut:
        return cls(
            install_id=i.id,
            extension_id=i.extension_id,
            name=i.name,
            version_id=i.version_id,
            version=i.version,
            enabled=i.enabled,
            config=i.config,
            secret_names=i.secret_names,
            providers=i.providers,
            created_at=i.created_at,
            updated_at=i.updated_at,
        )


class InstallCreatedOut(InstallOut):
    schedules_created: list[uuid.UUID]


class SigningSecretOut(BaseModel):
    secret: str
    created_at: UtcTime
    expires_at: UtcTime | None


class SigningSecretsOut(BaseModel):
    """The install's Standard Webhooks signing secrets, newest first."""

    secrets: list[SigningSecretOut]

    @classmethod
    def of(cls, items: list[SigningSecret]) -> SigningSecretsOut:
        return cls(
            secrets=[
                SigningSecretOut(secret=s.secret, created_at=s.created_at, expires_at=s.expires_at)
                for s in items
            ]
        )


class InstallListOut(BaseModel):
    items: list[InstallOut]


class EndpointItemOut(BaseModel):
    id: uuid.UUID
    method: str
    path: str
    handler: str
    schedulable: bool
    reason: str | None = None


class EndpointPageOut(BaseModel):
    version_id: uuid.UUID
    version: str
    items: list[EndpointItemOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: EndpointPage) -> EndpointPageOut:
        return cls(
            version_id=page.version_id,
            version=page.version,
            next_cursor=page.next_cursor,
            items=[
                EndpointItemOut(
                    id=e.id,
                    method=e.method,
                    path=e.path,
                    handler=e.handler,
                    schedulable=e.schedulable,
                    reason=e.unschedulable_reason,
                )
                for e in page.items
            ],
        )


class FireOut(BaseModel):
    at: UtcTime
    local: str
    note: str | None = None

    @classmethod
    def of(cls, f: cron.Fire) -> FireOut:
        return cls(at=f.at, local=f.local.isoformat(), note=f.note)


class ScheduleEndpointOut(BaseModel):
    id: uuid.UUID
    method: str
    path: str


class ScheduleOut(BaseModel):
    id: uuid.UUID
    install_id: uuid.UUID
    extension_id: uuid.UUID
    name: str | None
    endpoint: ScheduleEndpointOut
    cron: str
    timezone: str
    enabled: bool
    disabled_reason: str | None
    payload: Payload
    revision: int
    next_run_at: UtcTime | None
    next_runs: list[FireOut] | None = None
    last_run_at: UtcTime | None
    last_run_status: Literal["succeeded", "failed", "timed_out", "skipped"] | None
    last_error: str | None
    last_success_at: UtcTime | None
    consecutive_failures: int
    created_at: UtcTime
    updated_at: UtcTime
    overlap: Overlap | None
    max_attempts: int | None
    timeout_ms: int | None
    jitter_seconds: int | None
    starts_at: UtcTime | None
    ends_at: UtcTime | None
    paused_until: UtcTime | None
    dst_gap: DstGap | None
    dst_repeat: DstRepeat | None
    origin: Literal["user", "manifest"]

    @classmethod
    def of(cls, s: Schedule) -> ScheduleOut:
        return cls(
            id=s.id,
            install_id=s.install_id,
            extension_id=s.extension_id,
            name=s.name,
            endpoint=ScheduleEndpointOut(
                id=s.endpoint_id, method=s.endpoint_method, path=s.endpoint_path
            ),
            cron=s.cron,
            timezone=s.timezone,
            enabled=s.enabled,
            disabled_reason=s.disabled_reason,
            payload=s.payload,
            revision=s.revision,
            next_run_at=s.next_run_at,
            next_runs=None if s.next_runs is None else [FireOut.of(f) for f in s.next_runs],
            last_run_at=s.last_run_at,
            last_run_status=s.last_run_status,
            last_error=s.last_error,
            last_success_at=s.last_success_at,
            consecutive_failures=s.consecutive_failures,
            created_at=s.created_at,
            updated_at=s.updated_at,
            origin=s.origin,
            **vars(s.policies),
        )


class ScheduleListOut(BaseModel):
    items: list[ScheduleOut]


class DisableAllOut(BaseModel):
    disabled: int


class DstFireOut(BaseModel):
    """A fire a clock change moves, drops or doubles. A dropped one (``dropped``) does not
    happen: ``local`` is its wall time, which never shows (no offset), and ``at`` the instant
    of the jump that skipped it."""

    at: UtcTime
    local: str
    note: str
    dropped: bool = False

    @classmethod
    def of(cls, f: cron.Fire) -> DstFireOut:
        return cls(at=f.at, local=f.local.isoformat(), note=f.note or "", dropped=f.dropped)


class CronPreviewOut(BaseModel):
    valid: Literal[True] = True
    description: str
    next_runs: list[FireOut]
    dst_fires: list[DstFireOut]


class ActorOut(BaseModel):
    type: Literal["user", "system", "admin"]
    id: str | None


class TargetOut(BaseModel):
    type: str
    id: str | None
    name: str | None = None


class AuditEntryOut(BaseModel):
    id: uuid.UUID
    at: UtcTime
    actor: ActorOut
    action: str
    target: TargetOut
    changes: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(
            id=e.id,
            at=e.at,
            actor=ActorOut(type=e.actor_type, id=e.actor_id),
            action=e.action,
            target=TargetOut(type=e.target_type, id=e.target_id, name=e.target_name),
            changes=e.changes,
        )


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class TenantOut(BaseModel):
    tenant_id: str
    timezone: str | None
    scheduled_tasks_enabled: bool
    kill_switch: bool
    created_at: UtcTime
    updated_at: UtcTime

    @classmethod
    def of(cls, t: Tenant) -> TenantOut:
        return cls(
            tenant_id=t.tenant_id,
            timezone=t.timezone,
            scheduled_tasks_enabled=t.scheduled_tasks_enabled,
            kill_switch=t.kill_switch,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )


class RunOut(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    trigger: Literal["schedule", "run_now", "replay"]
    replay_of: uuid.UUID | None = None
    scheduled_for: UtcTime
    status: RunStatus
    skip_reason: str | None = None
    skipped_count: int | None = None
    attempts: int
    started_at: UtcTime | None
    finished_at: UtcTime | None
    duration_ms: int | None
    http_status: int | None
    error: str | None
    response_preview: str | None

    @classmethod
    def of(cls, r: Any) -> RunOut:
        return cls.model_validate(r, from_attributes=True)


class RunPageOut(BaseModel):
    items: list[RunOut]
    next_cursor: str | None

    @classmethod
    def of(cls, items: list[ListedRun], next_cursor: str | None) -> RunPageOut:
        return cls(items=[RunOut.of(i.run) for i in items], next_cursor=next_cursor)


class TenantRunOut(RunOut):
    """A run in the tenant-wide listing: also its schedule's name and extension."""

    extension_id: uuid.UUID | None
    schedule_name: str | None

    @classmethod
    def of(cls, r: Any) -> TenantRunOut:
        assert isinstance(r, ListedRun)
        return cls.model_validate(
            {
                **{k: getattr(r.run, k) for k in Run.__dataclass_fields__},
                "extension_id": r.extension_id,
                "schedule_name": r.schedule_name,
            }
        )


class TenantRunPageOut(BaseModel):
    items: list[TenantRunOut]
    next_cursor: str | None


class RunNowOut(BaseModel):
    run_id: uuid.UUID
    status: RunStatus


class UpdateIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version_id": "0193a5c4-7d2e-7c41-9f0e-2b6f8f1f4a12",
                    "disable_missing_schedules": False,
                }
            ]
        }
    )

    version_id: uuid.UUID
    disable_missing_schedules: StrictBool = Field(
        default=False,
        description="Disable the schedules whose endpoint the version lacks instead of refusing.",
    )


class RemappedOut(BaseModel):
    schedule_id: uuid.UUID
    from_endpoint_id: uuid.UUID
    to_endpoint_id: uuid.UUID


class UpdateOut(BaseModel):
    install: InstallOut
    remapped: list[RemappedOut]
    disabled: list[uuid.UUID]


class UnmatchedScheduleOut(BaseModel):
    schedule_id: uuid.UUID
    name: str | None
    method: str
    path: str


class UpdatePreviewOut(UpdateOut):
    would_block: bool
    schedules: list[UnmatchedScheduleOut] = Field(
        default_factory=list, description="Schedules with no matching endpoint (method, path)."
    )


class KillSwitchIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": True}]})

    enabled: StrictBool


class KillSwitchOut(BaseModel):
    tenant_id: str
    kill_switch: bool
    changed: bool


class AdminScheduleOut(ScheduleOut):
    tenant_id: str
    handle_id: str
    handle_present: bool
    handle_paused: bool | None
    overdue_since: UtcTime | None = None


class AdminScheduleListOut(BaseModel):
    items: list[AdminScheduleOut]


class OrphanScheduleOut(BaseModel):
    tenant_id: str
    schedule_id: uuid.UUID
    reason: Literal["install_missing", "endpoint_missing"]


class OverdueScheduleOut(BaseModel):
    tenant_id: str
    schedule_id: uuid.UUID
    expected_at: UtcTime


class ReconcileOut(BaseModel):
    orphan_schedules: list[OrphanScheduleOut]
    orphan_handles: list[str]
    missing_handles: list[str]
    stale_handles: list[str]
    overdue: list[OverdueScheduleOut] = Field(
        default_factory=list, description="Active schedules whose expected fire is late."
    )
    repaired: int


class BackfillOut(BaseModel):
    versions: int
    endpoints_written: int


# ----------------------------------------------------------------- tokens (admin)
class TokenCreateIn(Strict):
    """A tenant user's token (``tenant_id`` + ``user``) or, with ``admin: true``, an admin's."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "acme",
                    "user": "alice",
                    "perms": ["extension:read", "extension:write"],
                    "timezone": "Europe/Paris",
                    "expires_at": "2027-01-01T00:00:00Z",
                },
                {"admin": True},
            ]
        }
    )

    tenant_id: StrictStr | None = None
    user: StrictStr | None = None
    perms: list[StrictStr] | None = None
    timezone: StrictStr | None = None
    expires_at: datetime | None = None
    admin: StrictBool = False


class TokenCreatedOut(BaseModel):
    id: uuid.UUID
    token: str
    expires_at: UtcTime | None


class TokenOut(BaseModel):
    id: uuid.UUID
    tenant_id: str | None
    user: str | None
    perms: list[str]
    created_at: UtcTime
    expires_at: UtcTime | None
    last_used_at: UtcTime | None

    @classmethod
    def of(cls, r: tokens.TokenRecord) -> TokenOut:
        return cls(
            id=r.id,
            tenant_id=r.tenant_id,
            user=r.user_id,
            perms=r.permissions,
            created_at=r.created_at,
            expires_at=r.expires_at,
            last_used_at=r.last_used_at,
        )


class TokenListOut(BaseModel):
    items: list[TokenOut]


# ----------------------------------------------------------------- schedules as code
class ScheduleDocIn(PoliciesIn):
    """One schedule of a document (SPEC §5 "Schedules as code"): the endpoint as
    ``"METHOD /path"``; absent policies and payload mean the default."""

    name: StrictStr = Field(min_length=1, max_length=128)
    endpoint: StrictStr = Field(description="METHOD /path, e.g. POST /sync")
    cron: StrictStr
    timezone: StrictStr | None = None
    enabled: StrictBool = True
    payload: Any = None


class ApplyIn(Strict):
    """A schedules-as-code document to apply to an install, all or nothing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "schedules": [
                        {
                            "name": "Nightly sync",
                            "endpoint": "POST /sync",
                            "cron": "0 2 * * *",
                            "timezone": "Europe/Paris",
                            "payload": {"full": True},
                        }
                    ],
                    "prune": False,
                    "dry_run": True,
                }
            ]
        }
    )

    schedules: list[ScheduleDocIn]
    prune: StrictBool = Field(default=False, description="Delete schedules the document lacks.")
    dry_run: StrictBool = Field(default=False, description="Only report the plan.")


class ApplyOut(BaseModel):
    created: list[str]
    updated: list[str]
    deleted: list[str]
    unchanged: list[str]
    changes: dict[str, dict[str, Any]] = Field(
        description="Per updated schedule: {field: {from, to}} (what a plan shows)."
    )


class ScheduleDocOut(BaseModel):
    """An exported schedule; policies appear only when they differ from the default."""

    name: str
    endpoint: str
    cron: str
    timezone: str
    enabled: bool
    payload: Any
    overlap: str | None = None
    max_attempts: int | None = None
    timeout_ms: int | None = None
    jitter_seconds: int | None = None
    starts_at: UtcTime | None = None
    ends_at: UtcTime | None = None
    paused_until: UtcTime | None = None
    dst_gap: str | None = None
    dst_repeat: str | None = None


class ExportOut(BaseModel):
    extension: str
    schedules: list[ScheduleDocOut]


# ----------------------------------------------------------------- service
class HealthOut(BaseModel):
    status: Literal["ok"]


class BackendStatusOut(BaseModel):
    name: str
    status: Literal["ok", "unavailable"]


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    job_backend: BackendStatusOut
    worker_loops: dict[str, str] | None = Field(
        default=None, description="State of each worker loop this process runs, by name."
    )
