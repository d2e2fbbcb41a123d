"""``extsched schedules ...``: a tenant's schedules over the API (list, show, create, edit,
delete, enable, disable, pause, resume, run-now). Export and apply live in ``code.py``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from extsched.cli.client import Api, ApiError
from extsched.cli.tenant import Columns, Show, at, command, parse_json_arg
from extsched.domain.timing import parse_duration

app = typer.Typer(help="Schedules of the tenant's extensions (API); export and apply as code.")

Ref = Annotated[str, typer.Argument(help="Schedule id, or its name with --extension.")]
ExtOpt = Annotated[
    str | None, typer.Option("--extension", "-e", help="Extension name or id (as installed).")
]
TERMINAL = {"succeeded", "failed", "timed_out", "skipped"}


def state(s: dict[str, Any]) -> str:
    if not s["enabled"]:
        return f"disabled ({s['disabled_reason'] or 'user'})"
    if s.get("paused_until") and s["paused_until"] > _now():
        return f"paused until {at(s['paused_until'])}"
    return "enabled"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


SCHEDULE_COLUMNS: Columns = [
    ("id", "id"),
    ("name", "name"),
    ("endpoint", lambda s: f"{s['endpoint']['method']} {s['endpoint']['path']}"),
    ("cron", "cron"),
    ("timezone", "timezone"),
    ("state", state),
    ("next run", lambda s: at(s["next_run_at"])),
    ("last", "last_run_status"),
]


@command(app, "list")
def schedules_list(api: Api, extension: ExtOpt = None) -> Show:
    """List schedules of one extension, or of every installed extension (operators: see
    `extsched admin schedules list` for every tenant's, from the database)."""
    installs = [api.install(extension)] if extension else api.get("/extensions")["items"]
    items = [
        s for i in installs for s in api.get(f"/extensions/{i['extension_id']}/schedules")["items"]
    ]
    return Show({"items": items}, SCHEDULE_COLUMNS)


@command(app, "show")
def schedules_show(api: Api, schedule: Ref, extension: ExtOpt = None) -> Show:
    """Show a schedule with its policies and next five fires."""
    s = api.schedule(schedule, extension)
    return Show(
        s,
        [("next runs (UTC)", lambda f: at(f["at"])), ("local", "local"), ("note", "note")],
        rows=s.get("next_runs") or [],
        fields=[
            ("id", "id"),
            ("name", "name"),
            ("endpoint", lambda s: f"{s['endpoint']['method']} {s['endpoint']['path']}"),
            ("cron", "cron"),
            ("timezone", "timezone"),
            ("state", state),
            ("payload", "payload"),
            ("revision", "revision"),
            *((p, p) for p in POLICIES if s.get(p) is not None),
            ("last run", lambda s: f"{at(s['last_run_at'])} {s['last_run_status'] or ''}"),
            ("last error", "last_error"),
        ],
    )


POLICIES = (
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
Overlap = Annotated[str | None, typer.Option(help="skip, buffer_one or allow.")]
MaxAttempts = Annotated[int | None, typer.Option(help="Attempts per run (1-10).")]
TimeoutMs = Annotated[int | None, typer.Option(help="Per-invocation timeout in ms.")]
Jitter = Annotated[int | None, typer.Option(help="Delay each fire by up to this many s.")]
StartsAt = Annotated[str | None, typer.Option(help="No fire before (RFC 3339).")]
EndsAt = Annotated[str | None, typer.Option(help="No fire at or after (RFC 3339).")]
DstGap = Annotated[str | None, typer.Option(help="shift or skip (fixed-time schedules).")]
DstRepeat = Annotated[str | None, typer.Option(help="first, last or both (fixed-time).")]
Payload = Annotated[str | None, typer.Option(help="JSON object or array, or @file.")]


def _endpoint_id(api: Api, extension_id: str, endpoint: str) -> str:
    """An endpoint id from ``"METHOD /path"`` (or an id, passed through)."""
    method, _, path = endpoint.strip().partition(" ")
    if not path:
        return endpoint
    cursor = None
    while True:
        page = api.get(f"/extensions/{extension_id}/endpoints", limit=200, cursor=cursor)
        for e in page["items"]:
            if e["method"] == method.upper() and e["path"] == path.strip():
                return str(e["id"])
        cursor = page.get("next_cursor")
        if not cursor:
            raise ApiError("NOT_FOUND", f"no endpoint {endpoint!r} in the installed version")


def _policies(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


@command(app, "create")
def schedules_create(
    api: Api,
    extension: Annotated[str, typer.Option("--extension", "-e", help="Extension name or id.")],
    endpoint: Annotated[str, typer.Option(help='"METHOD /path" (or an endpoint id).')],
    cron: Annotated[str, typer.Option(help="Five-field cron expression.")],
    name: Annotated[str | None, typer.Option(help="Unique per extension.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone (default: yours).")] = None,
    payload: Payload = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    overlap: Overlap = None,
    max_attempts: MaxAttempts = None,
    timeout_ms: TimeoutMs = None,
    jitter_seconds: Jitter = None,
    starts_at: StartsAt = None,
    ends_at: EndsAt = None,
    dst_gap: DstGap = None,
    dst_repeat: DstRepeat = None,
) -> Show:
    """Create a schedule."""
    ext_id = api.install(extension)["extension_id"]
    body = {
        "name": name,
        "endpoint_id": _endpoint_id(api, ext_id, endpoint),
        "cron": cron,
        "timezone": timezone,
        "enabled": not disabled,
        "payload": parse_json_arg(payload, "--payload"),
        **_policies(
            overlap=overlap,
            max_attempts=max_attempts,
            timeout_ms=timeout_ms,
            jitter_seconds=jitter_seconds,
            starts_at=starts_at,
            ends_at=ends_at,
            dst_gap=dst_gap,
            dst_repeat=dst_repeat,
        ),
    }
    s = api.post(f"/extensions/{ext_id}/schedules", body)
    return Show(
        s, lines=[f"created {s['name'] or s['id']} ({s['id']}), next run {at(s['next_run_at'])}"]
    )


def _patch(api: Api, s: dict[str, Any], body: dict[str, Any], verb: str) -> Show:
    """PATCH with the revision just read (a concurrent change is REVISION_CONFLICT)."""
    new = api.call(
        "PATCH", f"/schedules/{s['id']}", json=body, headers={"If-Match": f'"{s["revision"]}"'}
    )
    return Show(new, lines=[f"{verb} {new['name'] or new['id']} (revision {new['revision']})"])


@command(app, "edit")
def schedules_edit(
    api: Api,
    schedule: Ref,
    extension: ExtOpt = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    endpoint: Annotated[str | None, typer.Option(help='"METHOD /path" or an id.')] = None,
    cron: Annotated[str | None, typer.Option(help="New cron expression.")] = None,
    timezone: Annotated[str | None, typer.Option(help="New IANA zone.")] = None,
    payload: Payload = None,
    clear_payload: Annotated[bool, typer.Option(help="Remove the payload.")] = False,
    overlap: Overlap = None,
    max_attempts: MaxAttempts = None,
    timeout_ms: TimeoutMs = None,
    jitter_seconds: Jitter = None,
    starts_at: StartsAt = None,
    ends_at: EndsAt = None,
    dst_gap: DstGap = None,
    dst_repeat: DstRepeat = None,
) -> Show:
    """Change the given fields of a schedule (the others stay)."""
    s = api.schedule(schedule, extension)
    body = _policies(
        name=name,
        cron=cron,
        timezone=timezone,
        payload=parse_json_arg(payload, "--payload"),
        overlap=overlap,
        max_attempts=max_attempts,
        timeout_ms=timeout_ms,
        jitter_seconds=jitter_seconds,
        starts_at=starts_at,
        ends_at=ends_at,
        dst_gap=dst_gap,
        dst_repeat=dst_repeat,
    )
    if endpoint is not None:
        body["endpoint_id"] = _endpoint_id(api, s["extension_id"], endpoint)
    if clear_payload:
        body["payload"] = None
    if not body:
        raise ApiError("BAD_ARGUMENT", "nothing to change: give at least one option")
    return _patch(api, s, body, "updated")


@command(app, "enable")
def schedules_enable(api: Api, schedule: Ref, extension: ExtOpt = None) -> Show:
    """Enable a schedule."""
    return _patch(api, api.schedule(schedule, extension), {"enabled": True}, "enabled")


@command(app, "disable")
def schedules_disable(api: Api, schedule: Ref, extension: ExtOpt = None) -> Show:
    """Disable a schedule."""
    return _patch(api, api.schedule(schedule, extension), {"enabled": False}, "disabled")


def _instant(text: str) -> str:
    """RFC 3339 as given, or a duration from now (``2h``, ``3d``)."""
    try:
        return (datetime.now(UTC) + parse_duration(text)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return text


@command(app, "pause")
def schedules_pause(
    api: Api,
    schedule: Ref,
    until: Annotated[str, typer.Option(help="RFC 3339 instant, or a duration like 2h or 3d.")],
    extension: ExtOpt = None,
) -> Show:
    """Pause a schedule until an instant (fires before it are not made)."""
    s = api.schedule(schedule, extension)
    return _patch(api, s, {"paused_until": _instant(until)}, "paused")


@command(app, "resume")
def schedules_resume(api: Api, schedule: Ref, extension: ExtOpt = None) -> Show:
    """End a pause now (the fires it covered are not replayed)."""
    return _patch(api, api.schedule(schedule, extension), {"paused_until": None}, "resumed")


@command(app, "delete")
def schedules_delete(
    api: Api,
    schedule: Ref,
    extension: ExtOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> Show:
    """Delete a schedule with its runs."""
    s = api.schedule(schedule, extension)
    label = s["name"] or s["id"]
    if not yes and not typer.confirm(f"Delete schedule {label} and its runs?"):
        raise typer.Exit(1)
    api.call("DELETE", f"/schedules/{s['id']}")
    return Show({"deleted": s["id"]}, lines=[f"deleted {label}"])


RUN_FIELDS: Columns = [
    ("run", "id"),
    ("status", "status"),
    ("trigger", "trigger"),
    ("scheduled for", lambda r: at(r["scheduled_for"])),
    ("attempts", "attempts"),
    ("duration ms", "duration_ms"),
    ("http status", "http_status"),
    ("error", "error"),
    ("response", "response_preview"),
]


def wait_for_run(api: Api, schedule_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll the schedule's runs until ``run_id`` ends (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        for r in api.get(f"/schedules/{schedule_id}/runs", limit=50)["items"]:
            if r["id"] == run_id and r["status"] in TERMINAL:
                return dict(r)
        if time.monotonic() > deadline:
            raise ApiError("TIMEOUT", f"run {run_id} has not finished after {timeout_s:g} s")
        time.sleep(delay)  # polling the API: the run ends on the service's side
        delay = min(delay * 1.5, 2.0)


def started(api: Api, schedule_id: str, result: dict[str, Any], wait: bool, timeout: float) -> Show:
    """A run-now or replay's answer, or with ``wait`` the finished run (exit 1 unless it
    succeeded)."""
    if not wait:
        return Show(result, lines=[f"run {result['run_id']} {result['status']}"])
    run = wait_for_run(api, schedule_id, result["run_id"], timeout)
    return Show(run, fields=RUN_FIELDS, exit_code=0 if run["status"] == "succeeded" else 1)


Wait = Annotated[bool, typer.Option("--wait", help="Wait for the run and show its result.")]
WaitTimeout = Annotated[float, typer.Option(help="Seconds --wait waits at most.")]


@command(app, "run-now")
def schedules_run_now(
    api: Api,
    schedule: Ref,
    extension: ExtOpt = None,
    payload: Annotated[str | None, typer.Option(help="A payload for this run only.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency-Key header.")] = None,
    wait: Wait = False,
    timeout: WaitTimeout = 120.0,
) -> Show:
    """Run a schedule now (also when it is disabled); --wait shows the result."""
    s = api.schedule(schedule, extension)
    body = None if payload is None else {"payload": parse_json_arg(payload, "--payload")}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    result = api.call("POST", f"/schedules/{s['id']}/run-now", json=body, headers=headers)
    return started(api, s["id"], result, wait, timeout)
