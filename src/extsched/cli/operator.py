"""Operator commands: tokens, the registry, reconcile, the kill switch and the cross-tenant
schedule listing. They work on the database directly and never migrate it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from extsched.cli.common import JsonFlag, database, err, fail, out, run, settings
from extsched.domain.timing import parse_duration
from extsched.runtime import open_context
from extsched.services import registry, tokens

app = typer.Typer()
admin_app = typer.Typer(
    help="Operator commands: work on the database directly (EXTSCHED_DATABASE_URL)."
)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
registry_app = typer.Typer(
    help="Publish manifests and maintain the registry.", no_args_is_help=True
)
admin_app.add_typer(token_app, name="token")
admin_app.add_typer(registry_app, name="registry")


# ----------------------------------------------------------------------------- tokens
@token_app.command("create")
def token_create(
    tenant: Annotated[str | None, typer.Option(help="Tenant id.")] = None,
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    perm: Annotated[
        list[str] | None,
        typer.Option(help="Permission (repeatable); default extension:read + extension:write."),
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="The user's IANA time zone.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="A platform admin token.")] = False,
    expires_in: Annotated[
        str | None,
        typer.Option(help="Lifetime such as 30d, 12h, 90m or 2w; default: no expiry."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it (it is shown only this once)."""
    if not admin and (tenant is None or user is None):
        fail("give --tenant and --user, or --admin")
    expires_at = None
    if expires_in is not None:
        try:
            expires_at = datetime.now(UTC) + parse_duration(expires_in)
        except ValueError as exc:
            fail(f"--expires-in: {exc}")
    s = settings()
    url = database(s)

    async def go() -> tokens.NewToken:
        async with open_context(s, url) as ctx:
            return await tokens.create_token(
                ctx.db,
                tenant_id=tenant,
                user_id=user,
                permissions=perm,
                timezone=timezone,
                admin=admin,
                expires_at=expires_at,
            )

    new = run(go)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "id": str(new.id),
                    "token": new.token,
                    "expires_at": new.expires_at.isoformat() if new.expires_at else None,
                }
            )
        )
    else:
        out.print(new.token, highlight=False)


@token_app.command("list")
def token_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's tokens.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (never their secret value)."""
    s = settings()
    url = database(s)

    async def go() -> list[tokens.TokenRecord]:
        async with open_context(s, url) as ctx:
            return await tokens.list_tokens(ctx.db, tenant)

    records = run(go)
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "id": str(r.id),
                        "tenant_id": r.tenant_id,
                        "user_id": r.user_id,
                        "admin": r.is_admin,
                        "permissions": r.permissions,
                        "timezone": r.user_timezone,
                        "created_at": r.created_at.isoformat(),
                        "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                        "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                        "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                    }
                    for r in records
                ]
            )
        )
        return
    table = Table(
        "id", "tenant", "user", "permissions", "created", "expires", "last used", "revoked"
    )
    for r in records:
        table.add_row(
            str(r.id),
            r.tenant_id or "-",
            r.user_id or ("(admin)" if r.is_admin else "-"),
            ", ".join(r.permissions),
            _minute(r.created_at),
            _minute(r.expires_at),
            _minute(r.last_used_at),
            _minute(r.revoked_at),
        )
    out.print(table)


def _minute(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else ""


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token by id."""
    try:
        tid = uuid.UUID(token_id)
    except ValueError:
        fail(f"not a token id: {token_id!r}")
    s = settings()
    url = database(s)

    async def go() -> bool:
        async with open_context(s, url) as ctx:
            return await tokens.revoke(ctx.db, tid)

    if not run(go):
        fail("no active token with that id")
    out.print(f"revoked {tid}")


# ----------------------------------------------------------------------------- registry
@registry_app.command("publish")
def registry_publish(
    manifest: Annotated[
        Path, typer.Argument(help="Manifest JSON file.", exists=True, dir_okay=False, readable=True)
    ],
    as_json: JsonFlag = False,
) -> None:
    """Publish an extension version from its manifest."""
    try:
        data: Any = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {manifest}: {exc}")
    s = settings()
    url = database(s)

    async def go() -> registry.Published:
        async with open_context(s, url) as ctx:
            return await registry.publish(ctx.db, data)

    p = run(go)
    if as_json:
        from extsched.api.schemas import PublishedOut

        out.print_json(PublishedOut.of(p).model_dump_json())
        return
    verb = "published" if p.created else "already published (identical)"
    out.print(f"{p.name} {p.version} {verb}: version_id {p.version_id}, {p.content_hash}")
    table = Table("method", "path", "handler", "schedulable")
    for e in p.endpoints:
        table.add_row(
            e.method,
            e.path,
            e.handler,
            "yes" if e.schedulable else f"no ({e.unschedulable_reason})",
        )
    out.print(table)
    for sk in p.skipped:
        out.print(f"[yellow]skipped[/yellow] {sk.method} {sk.path}: {sk.reason}")


@registry_app.command("backfill-endpoints")
def registry_backfill(
    version_id: Annotated[str | None, typer.Option("--version-id")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write missing endpoint rows from stored manifests (idempotent)."""
    vid = None
    if version_id:
        try:
            vid = uuid.UUID(version_id)
        except ValueError:
            fail(f"not a version id: {version_id!r}")
    s = settings()
    url = database(s)

    async def go() -> tuple[int, int]:
        async with open_context(s, url) as ctx:
            with Progress(console=err, transient=True, disable=as_json) as progress:
                task = progress.add_task("backfilling endpoints", total=None)

                def tick(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                return await registry.backfill_endpoints(ctx.db, vid, tick)

    versions, written = run(go)
    if as_json:
        out.print_json(json.dumps({"versions": versions, "endpoints_written": written}))
    else:
        out.print(f"{versions} versions checked, {written} endpoint rows written")


# ----------------------------------------------------------------------------- operations
schedules_app = typer.Typer(help="Inspect schedules across tenants.", no_args_is_help=True)
admin_app.add_typer(schedules_app, name="schedules")


@app.command()
def reconcile(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is found.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare schedules with the job backend's handles (and fix them with --repair)."""
    from extsched.services import reconcile as reconcile_service

    s = settings()
    url = database(s)

    async def go() -> reconcile_service.ReconcileReport:
        async with open_context(s, url) as ctx:
            with err.status("reconciling…"):
                return await reconcile_service.reconcile(ctx, repair=repair)

    r = run(go)
    data = {
        "orphan_schedules": r.orphan_schedules,
        "orphan_handles": r.orphan_handles,
        "missing_handles": r.missing_handles,
        "stale_handles": r.stale_handles,
        "repaired": r.repaired,
    }
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("finding", "count", "examples")
    for key in ("orphan_schedules", "orphan_handles", "missing_handles", "stale_handles"):
        items: list[Any] = data[key]  # type: ignore[assignment]
        examples = ", ".join(
            (i["schedule_id"] + f" ({i['reason']})") if isinstance(i, dict) else str(i)
            for i in items[:3]
        )
        table.add_row(key.replace("_", " "), str(len(items)), examples)
    found = sum(len(v) for k, v in data.items() if isinstance(v, list))
    if not found:
        out.print("nothing to repair: database and job backend agree")
        return
    out.print(table)
    out.print(f"repaired: {r.repaired}" if repair else "run with --repair to fix")


@app.command("kill-switch")
def kill_switch(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    state: Annotated[str, typer.Argument(help="on or off.")],
) -> None:
    """Pause (on) or restore (off) every schedule of a tenant."""
    from extsched.domain.auth import Actor
    from extsched.services import lifecycle

    if state not in ("on", "off"):
        fail("state must be on or off")
    s = settings()
    url = database(s)

    async def go() -> bool:
        async with open_context(s, url) as ctx:
            return await lifecycle.set_kill_switch(ctx, Actor.system("cli"), tenant, state == "on")

    changed = run(go)
    out.print(f"kill switch for {tenant} is {state}" + ("" if changed else " (unchanged)"))


@schedules_app.command("list")
def schedules_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    extension: Annotated[str | None, typer.Option(help="Only this extension id.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List schedules across tenants with their state and backend handle."""
    from extsched.services import admin

    ext_id = None
    if extension:
        try:
            ext_id = uuid.UUID(extension)
        except ValueError:
            fail(f"not an extension id: {extension!r}")
    s = settings()
    url = database(s)

    async def go() -> list[admin.AdminSchedule]:
        async with open_context(s, url) as ctx:
            return await admin.list_schedules(
                ctx, tenant_id=tenant, extension_id=ext_id, install_id=None, limit=10_000
            )

    items = run(go)
    if as_json:
        from extsched.api.schemas import ScheduleOut

        out.print_json(
            json.dumps(
                [
                    {
                        **ScheduleOut.of(i.schedule).model_dump(mode="json"),
                        "tenant_id": i.schedule.tenant_id,
                        "handle_id": i.handle_id,
                        "handle_present": i.handle_present,
                        "handle_paused": i.handle_paused,
                    }
                    for i in items
                ]
            )
        )
        return
    table = Table(
        "tenant", "schedule", "name", "endpoint", "cron", "zone", "state", "next run", "last"
    )
    for i in items:
        sc = i.schedule
        state = "enabled" if sc.enabled else f"disabled ({sc.disabled_reason or 'user'})"
        if not i.handle_present:
            state += " [no handle]"
        table.add_row(
            sc.tenant_id,
            str(sc.id),
            sc.name or "",
            f"{sc.endpoint_method} {sc.endpoint_path}",
            sc.cron,
            sc.timezone,
            state,
            f"{sc.next_run_at:%Y-%m-%d %H:%M}Z" if sc.next_run_at else "-",
            sc.last_run_status or "-",
        )
    out.print(table)


admin_app.registered_commands += app.registered_commands  # reconcile, kill-switch
