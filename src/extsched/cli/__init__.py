"""The ``extsched`` command. Every option can also come from an ``EXTSCHED_*`` variable.

- ``processes``: the service's processes (serve, demo, api, worker, runner, migrate);
- ``operator``: database-direct operator commands (tokens, registry, reconcile, ...);
- ``common``: what they share.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from extsched.cli import operator, processes

app = typer.Typer(
    help="extsched: cron schedules for installed extensions' API endpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"extsched {version('extsched')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """extsched: cron schedules for installed extensions' API endpoints."""


app.registered_commands += processes.app.registered_commands
app.registered_commands += operator.app.registered_commands
app.registered_groups += operator.app.registered_groups


def main() -> None:
    app()
