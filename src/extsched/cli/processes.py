"""The service's processes: serve, demo, api, worker, runner, and migrate."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Annotated

import typer

from extsched import logs
from extsched.cli.common import Host, database, fail, out, require_runner_token, run, settings
from extsched.config import Settings, write_private
from extsched.runtime import bootstrap_token_file, open_context, tune_gc_after_start
from extsched.server import Roles
from extsched.services import tokens
from extsched.workers.processes import ExecutorProcesses, stop_when_orphaned

app = typer.Typer()
log = logging.getLogger("extsched")


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest version."""
    s = settings()
    url = database(s, migrate=True)
    from extsched.db.migrate import current_revision

    out.print(f"database migrated to revision {current_revision(url)}")


async def _bootstrap_admin(s: Settings, url: str) -> str:
    """The bootstrap admin token kept in EXTSCHED_HOME (made anew if missing or revoked)."""
    path = bootstrap_token_file(s)
    async with open_context(s, url) as ctx:
        if path.exists():
            token = path.read_text().strip()
            if await tokens.authenticate(ctx.db, token, record_use=False) is not None:
                return token
        _, token = await tokens.create(ctx.db, admin=True)
    write_private(path, token)
    return token


def _serve(
    host: str,
    port: int,
    roles: Roles,
    *,
    demo: bool = False,
    workers: int = 1,
    migrate: bool = False,
    executors: int = 0,
) -> None:
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
    if roles.runner or roles.worker:
        require_runner_token(s)
    url = database(s, migrate=migrate)
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
            os.environ["EXTSCHED_DATABASE_URL"] = url
            _serve_api_processes(host, port, workers)
        else:
            uvicorn.run(
                create_service_app(
                    s,
                    url,
                    roles,
                    _executor_processes(s, url, roles, executors),
                    tune_gc=True,
                ),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
    finally:
        # uvicorn runs at log level "warning": without this line a shutdown is silent.
        out.print(f"extsched stopped listening on {base}", highlight=False)


def _serve_api_processes(host: str, port: int, workers: int) -> None:
    """Several API processes on one port, each listening on its own ``SO_REUSEPORT`` socket,
    so the kernel spreads new connections evenly over them. (uvicorn's own ``workers`` share
    one socket, and whichever process wakes first accepts every waiting connection: eight
    clients connecting at once all landed on one of two processes, leaving the other idle.)
    A process that dies is started again; SIGTERM stops them all gracefully."""
    import multiprocessing
    from multiprocessing.connection import wait

    spawn = multiprocessing.get_context("spawn")

    def start() -> multiprocessing.process.BaseProcess:
        child = spawn.Process(target=_api_process, args=(host, port, os.getpid()))
        child.start()
        return child

    children = [start() for _ in range(workers)]
    try:
        while True:
            wait([c.sentinel for c in children])
            for i, child in enumerate(children):
                if child.exitcode is not None:
                    log.warning(
                        "API process exited; starting another",
                        extra={"pid": child.pid, "exit_code": child.exitcode},
                    )
                    time.sleep(1.0)  # no hot loop when a process cannot start at all
                    children[i] = start()
    finally:
        for child in children:
            child.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for child in children:
            child.join(timeout=30)
            if child.exitcode is None:
                child.kill()


def _api_process(host: str, port: int, parent_pid: int) -> None:
    """One API process of ``extsched api --workers N`` (a spawned child): its own listening
    socket on the shared port, its own app and pool; it stops when its parent is gone."""
    import signal
    import socket
    import threading

    import uvicorn

    from extsched.config import load_settings

    logs.setup(load_settings().log_level)
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # same user only (Linux)
    sock.bind(address)

    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, daemon=True).start()
    config = uvicorn.Config(
        "extsched.server:api_app_from_env", factory=True, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


def _executor_processes(
    s: Settings, url: str, roles: Roles, count: int
) -> ExecutorProcesses | None:
    """``count`` executor child processes on this process's database and Runner (none: the
    executor runs in this process)."""
    if not roles.worker or count <= 0:
        return None
    env = dict(os.environ)
    env.update(
        {
            "EXTSCHED_DATABASE_URL": url,  # the embedded PostgreSQL stays this process's
            "EXTSCHED_HOME": str(s.home),  # the same secret key and Runner token
            "EXTSCHED_RUNNER_URL": s.runner_url or "",
        }
    )
    out.print(f"executor processes: {count}")
    return ExecutorProcesses(count, env, s.worker_stop_grace_seconds)


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


Executors = Annotated[
    int | None,
    typer.Option(
        envvar="EXTSCHED_SERVE_EXECUTORS",
        min=0,
        max=64,
        show_default="the number of CPU cores",
        help="Executor processes beside the API process; 0 runs the executor in it.",
    ),
]


def _default_executors(executors: int | None) -> int:
    """One executor process per core unless told otherwise (docs/operations.md says why)."""
    return executors if executors is not None else os.cpu_count() or 1


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, executors: Executors = None) -> None:
    """Run everything on one machine: API, UI, scheduler and reference Runner in this process,
    the executor in one child process per core."""
    _serve(host, port, ALL_ROLES, migrate=True, executors=_default_executors(executors))


@app.command()
def demo(host: Host = "127.0.0.1", port: Port = 8000, executors: Executors = None) -> None:
    """`serve` plus a demo extension, tenant, user token and a schedule every 5 minutes."""
    _serve(host, port, ALL_ROLES, demo=True, migrate=True, executors=_default_executors(executors))


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
    require_runner_token(s)
    url = database(s)
    out.print(f"reference Runner listening on http://{host}:{port}/v1/execute")
    uvicorn.run(
        create_runner_process_app(s, url),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


@app.command()
def worker(
    executor_only: Annotated[
        bool, typer.Option("--executor-only", hidden=True, help="Run no scheduler.")
    ] = False,
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop when this parent process is gone.")
    ] = None,
) -> None:
    """Run the job backend's worker (postgres: scheduler + executor) until SIGTERM."""
    import signal

    from extsched.server import running_worker

    s = settings()
    logs.setup(s.log_level)
    if s.runner_url is None and s.job_backend.value == "postgres":
        fail("EXTSCHED_RUNNER_URL: required for `extsched worker` (no Runner runs in it)")
    require_runner_token(s)
    url = database(s)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = []
        if parent_pid is not None:  # an executor process of `serve`
            watch.append(asyncio.create_task(stop_when_orphaned(parent_pid, stop)))
        async with open_context(s, url) as ctx, running_worker(ctx, scheduler=not executor_only):
            logging.getLogger("extsched").info(
                "worker started", extra={"backend": s.job_backend.value}
            )
            tune_gc_after_start()
            await stop.wait()
            logging.getLogger("extsched").info("worker stopping")
        for task in watch:
            task.cancel()

    run(go)
    out.print("extsched worker stopped", highlight=False)
