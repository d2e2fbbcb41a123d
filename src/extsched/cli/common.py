"""What every command shares: consoles, one-line failures, settings, the event loop, and the
database (migrated only by the commands that may migrate it)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from extsched.config import ConfigError, Settings, load_settings
from extsched.errors import ExtschedError
from extsched.runtime import prepare_database, schema_status

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


def require_runner_token(s: Settings) -> None:
    """Read (or generate) the Runner token now, so a bad one stops the process in one line."""
    try:
        s.runner_token_value  # noqa: B018 - resolved for its side effect and check
    except ConfigError as exc:
        fail(str(exc), 2)


def database(s: Settings, *, migrate: bool = False) -> str:
    """The database URL, migrated to the newest schema when ``migrate`` (only ``migrate`` and
    ``serve``/``demo`` do, SPEC §10); otherwise a schema that is not current stops the command
    with one line saying to run ``extsched migrate``. An unreachable database is one line too."""
    import psycopg
    import sqlalchemy.exc

    try:
        if migrate:
            return prepare_database(s)
        url, current, newest = schema_status(s)
    except (sqlalchemy.exc.OperationalError, psycopg.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"database unreachable: {reason}", 3)
    if current != newest:
        have = f"revision {current}" if current else "no extsched schema"
        fail(f"the database has {have}; this version needs {newest}: run `extsched migrate`", 3)
    return url


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
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
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(coro_fn())  # type: ignore[arg-type]
    except ExtschedError as exc:
        detail = "".join(f"\n  {k}: {v}" for k, v in (exc.field_errors or {}).items())
        fail(f"{exc.message} [{exc.code}]{detail}")
    except ConfigError as exc:
        fail(str(exc), 2)
