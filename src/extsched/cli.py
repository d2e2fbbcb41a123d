"""Operator commands. Every option can also come from an ``EXTSCHED_*`` variable."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from extsched import logs
from extsched.config import ConfigError, Settings, load_settings
from extsched.errors import ExtschedError
from extsched.runtime import (
    bootstrap_token_file,
    open_context,
    prepare_database,
    write_private,
)
from extsched.server import Roles
from extsched.services import registry, tokens

app = typer.Typer(
    help="extsched: cron schedules for installed extensions' API endpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
registry_app = typer.Typer(
    help="Publish manifests and maintain the registry.", no_args_is_help=True
)
app.add_typer(token_app, name="token")
app.add_typer(registry_app, name="registry")

# Piped output (scripts, logs) gets wide tables, so ids are never cut.
_WIDTH = None if sys.stdout.isatty() else 240
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Host = Annotated[str, typer.Option(envvar="EXTSCHED_HOST", help="Address to listen on.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), 2)


def _prepare(s: Settings) -> str:
    """Resolve and migrate the database, or stop with one line saying why it is unreachable."""
    import psycopg
    import sqlalchemy.exc

    try:
        return prepare_database(s)
    except (sqlalchemy.exc.OperationalError, psycopg.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"database unreachable: {reason}", 3)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): a faster event loop for the
    worker's many concurrent Runner calls and database round trips."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async operation, rendering expected errors as one clear message."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro_fn())  # type: ignore[arg-type]
    except ExtschedError as exc:
        detail = "".join(f"\n  {k}: {v}" for k, v in (exc.field_errors or {}).items())
        fail(f"{exc.message} [{exc.code}]{detail}")
    except ConfigError as exc:
        fail(str(exc), 2)


# ----------------------------------------------------------------------------- processes
@app.command()
def migrate() -> None:
    """Bring the database schema to the newest version."""
    s = settings()
    url = _prepare(s)
    from extsched.db.migrate import current_revision

    out.print(f"database migrated to revision {current_revision(url)}")


async def _bootstrap_admin(s: Settings, url: str) -> str:
    """The bootstrap admin token kept in EXTSCHED_HOME (made anew if missing or revoked)."""
    path = bootstrap_token_file(s)
    async with open_context(s, url) as ctx:
        if path.exists():
            token = path.read_text().strip()
            if await tokens.authenticate(ctx.db, token) is not None:
                return token
        _, token = await tokens.create(ctx.db, admin=True)
    write_private(path, token)
    return token


def _serve(host: str, port: int, roles: Roles, *, demo: bool = False, workers: int = 1) -> None:
    import uvicorn

    from extsched.server import create_service_app

    s = settings()
    logs.setup(s.log_level)
    _require_free_port(host, port)
    _exit_on_sigterm()
    base = f"http://{host}:{port}"
    if roles.runner and s.runner_url is None:
        s = s.model_copy(update={"runner_url": f"{base}/runner"})
    if roles.worker and s.runner_url is None:
        fail("EXTSCHED_RUNNER_URL: required when the reference Runner does not run in this process")
    url = _prepare(s)
    admin_token = run(lambda: _bootstrap_admin(s, url))
    out.print(f"extsched listening on [bold]{base}[/bold]  (API docs: {base}/docs)")
    out.print(f"database: {_redact(url)}")
    out.print(f"job backend: {s.job_backend.value}; runner: {s.runner_url or '-'}")
    out.print(f"bootstrap admin token: [bold]{admin_token}[/bold]", highlight=False)
    if demo:
        from extsched.services import demo as demo_setup

        async def go() -> demo_setup.DemoInfo:
            async with open_context(s, url) as ctx:
                return await demo_setup.setup(ctx, base)

        info = run(go)
        out.print()
        out.print(
            f"[bold]demo[/bold]: tenant 'demo', user '{demo_setup.DEMO_USER}', extension "
            "com.example.demo, a schedule calling POST /sync every 5 minutes (Europe/Paris)"
        )
        out.print(f"  UI:    {base}/ui/login?token={info.token}", highlight=False)
        out.print(f"  token: {info.token}", highlight=False)
        out.print(
            f"  runs:  curl -H 'Authorization: Bearer {info.token}' "
            f"{base}/api/v1/schedules/{info.schedule_id}/runs",
            highlight=False,
        )
        out.print(
            f"  now:   curl -X POST -H 'Authorization: Bearer {info.token}' "
            f"{base}/api/v1/schedules/{info.schedule_id}/run-now",
            highlight=False,
        )
    try:
        if workers > 1:
            # Several API processes on one port (the kernel spreads connections between them).
            os.environ["EXTSCHED_DATABASE_URL"] = url
            uvicorn.run(
                "extsched.server:api_app_from_env",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
        else:
            uvicorn.run(
                create_service_app(s, url, roles),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
    finally:
        # uvicorn runs at log level "warning": without this line a shutdown is silent.
        out.print(f"extsched stopped listening on {base}", highlight=False)


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit. uvicorn shuts down gracefully on it and then re-raises it;
    with the default action the process would die without running its exit handlers, and an
    embedded PostgreSQL would be left running."""
    import signal

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def _require_free_port(host: str, port: int) -> None:
    """Stop with one line before printing addresses and tokens if nothing could listen there."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fail(f"cannot listen on {host}:{port}: {reason} (choose another with --port)", 3)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, hostpart = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{hostpart}" if ":" in creds else url
    return url


Port = Annotated[int, typer.Option(envvar="EXTSCHED_PORT", help="Port to listen on.")]
ALL_ROLES = Roles(api=True, runner=True, demo_upstream=True, worker=True)


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Run everything in one process: API, UI, scheduler, worker and reference Runner."""
    _serve(host, port, ALL_ROLES)


@app.command()
def demo(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """`serve` plus a demo extension, tenant, user token and a schedule every 5 minutes."""
    _serve(host, port, ALL_ROLES, demo=True)


@app.command()
def api(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[
        int,
        typer.Option(
            envvar="EXTSCHED_API_WORKERS", min=1, max=64, help="API processes serving the port."
        ),
    ] = 1,
) -> None:
    """Run the API and UI only (production role)."""
    _serve(host, port, Roles(api=True), workers=workers)


@app.command()
def runner(host: Host = "127.0.0.1", port: Port = 8080) -> None:
    """Run the reference Runner (and the demo upstream) only."""
    import uvicorn

    from extsched.server import create_runner_process_app

    s = settings()
    logs.setup(s.log_level)
    url = _prepare(s)
    out.print(f"reference Runner listening on http://{host}:{port}/v1/execute")
    uvicorn.run(
        create_runner_process_app(s, url),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the job backend's worker (postgres: scheduler + executor) until SIGTERM."""
    import signal

    from extsched.server import running_worker

    s = settings()
    logs.setup(s.log_level)
    if s.runner_url is None and s.job_backend.value == "postgres":
        fail("EXTSCHED_RUNNER_URL: required for `extsched worker` (no Runner runs in it)")
    url = _prepare(s)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with open_context(s, url) as ctx, running_worker(ctx):
            logging.getLogger("extsched").info(
                "worker started", extra={"backend": s.job_backend.value}
            )
            await stop.wait()
            logging.getLogger("extsched").info("worker stopping")

    run(go)
    out.print("extsched worker stopped", highlight=False)


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
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it (it is shown only this once)."""
    if not admin and (tenant is None or user is None):
        fail("give --tenant and --user, or --admin")
    s = settings()
    url = _prepare(s)

    async def go() -> tuple[uuid.UUID, str]:
        async with open_context(s, url) as ctx:
            return await tokens.create(
                ctx.db,
                tenant_id=tenant,
                user_id=user,
                permissions=perm,
                timezone=timezone,
                admin=admin,
            )

    token_id, token = run(go)
    if as_json:
        out.print_json(json.dumps({"id": str(token_id), "token": token}))
    else:
        out.print(token, highlight=False)


@token_app.command("list")
def token_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's tokens.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (never their secret value)."""
    s = settings()
    url = _prepare(s)

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
                    }
                    for r in records
                ]
            )
        )
        return
    table = Table("id", "tenant", "user", "permissions", "created", "revoked")
    for r in records:
        table.add_row(
            str(r.id),
            r.tenant_id or "-",
            r.user_id or ("(admin)" if r.is_admin else "-"),
            ", ".join(r.permissions),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token by id."""
    try:
        tid = uuid.UUID(token_id)
    except ValueError:
        fail(f"not a token id: {token_id!r}")
    s = settings()
    url = _prepare(s)

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
    url = _prepare(s)

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
    url = _prepare(s)

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
app.add_typer(schedules_app, name="schedules")


@app.command()
def reconcile(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is found.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare schedules with the job backend's handles (and fix them with --repair)."""
    from extsched.services import reconcile as reconcile_service

    s = settings()
    url = _prepare(s)

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
    url = _prepare(s)

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
    url = _prepare(s)

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
