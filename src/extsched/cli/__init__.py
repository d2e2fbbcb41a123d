"""The ``extsched`` command. Every option can also come from an ``EXTSCHED_*`` variable.

- ``processes``: the service's processes (serve, demo, api, worker, runner, migrate);
- ``operator``: database-direct operator commands, under ``admin`` (tokens, registry,
  reconcile, ...; the first ones also keep their top-level names);
- tenant commands over the HTTP API (``client`` + ``tenant``): ``extensions``, ``schedules``
  (``code``: export and apply), ``runs``, ``cron``, ``login``;
- ``common``: what they share.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from extsched.cli import code, extensions, operator, processes, runs, schedules

app = typer.Typer(
    help="extsched: cron schedules for installed extensions' API endpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
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


_ = code  # importing it registers export and apply on the schedules group
app.registered_commands += processes.app.registered_commands
app.command()(runs.login)
app.command()(runs.logout)
app.add_typer(extensions.app, name="extensions", no_args_is_help=True)
app.add_typer(schedules.app, name="schedules", no_args_is_help=True)
app.add_typer(runs.app, name="runs", no_args_is_help=True)
app.add_typer(runs.cron_app, name="cron", no_args_is_help=True)
app.add_typer(operator.admin_app, name="admin", no_args_is_help=True)
# The operator commands' first names (SPEC §2) keep working next to `extsched admin ...`.
app.registered_commands += operator.app.registered_commands
app.add_typer(operator.token_app, name="token")
app.add_typer(operator.registry_app, name="registry")


def main() -> None:
    app()
