"""``extsched extensions ...``: the tenant's installs, over the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from extsched.cli.client import Api, ApiError
from extsched.cli.tenant import Columns, Show, at, command, pairs

app = typer.Typer(help="Install, update, enable, disable and uninstall extensions (API).")

Ext = Annotated[str, typer.Argument(help="Extension name or id (as installed).")]
INSTALL_COLUMNS: Columns = [
    ("name", "name"),
    ("version", "version"),
    ("enabled", "enabled"),
    ("extension_id", "extension_id"),
    ("version_id", "version_id"),
    ("updated", lambda i: at(i["updated_at"])),
]


def _install(api: Api, ext: str) -> dict[str, Any]:
    return api.install(ext)


@command(app, "list")
def extensions_list(api: Api) -> Show:
    """List the tenant's installed extensions."""
    return Show(api.get("/extensions"), INSTALL_COLUMNS)


@command(app, "show")
def extensions_show(api: Api, extension: Ext) -> Show:
    """Show one install: version, state, configuration and secret names."""
    i = _install(api, extension)
    return Show(
        i,
        fields=[
            ("name", "name"),
            ("extension_id", "extension_id"),
            ("version", "version"),
            ("version_id", "version_id"),
            ("enabled", "enabled"),
            ("config", "config"),
            ("secret names", "secret_names"),
            ("providers", "providers"),
        ],
    )


@command(app, "install")
def extensions_install(
    api: Api,
    extension_id: Annotated[str, typer.Argument(help="The extension's id (from the registry).")],
    version_id: Annotated[str, typer.Option("--version-id", help="The version to install.")],
    config: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    secret: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    provider: Annotated[list[str] | None, typer.Option(help="Granted capability.")] = None,
    default_schedules: Annotated[
        bool | None,
        typer.Option(help="Create the manifest's default schedules [the service's default]."),
    ] = None,
) -> Show:
    """Install an extension version for the tenant."""
    body = {
        "version_id": version_id,
        "config": pairs(config, "--config"),
        "secrets": pairs(secret, "--secret"),
        "providers": provider,
        "default_schedules": default_schedules,
    }
    i = api.post(
        f"/extensions/{extension_id}/install", {k: v for k, v in body.items() if v is not None}
    )
    created = i.get("schedules_created") or []
    return Show(
        i,
        lines=[f"installed {i['name']} {i['version']} ({len(created)} default schedules)"],
    )


REMAP_COLUMNS: Columns = [
    ("schedule", "schedule_id"),
    ("from endpoint", "from_endpoint_id"),
    ("to endpoint", "to_endpoint_id"),
]


@command(app, "update")
def extensions_update(
    api: Api,
    extension: Ext,
    version_id: Annotated[str, typer.Option("--version-id", help="The version to move to.")],
    disable_missing_schedules: Annotated[
        bool,
        typer.Option(help="Disable the schedules whose endpoint the new version lacks."),
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Show the remap preview only.")] = False,
) -> Show:
    """Move an install to another version: shows the remap preview, then updates (refused,
    changing nothing, when a schedule would lose its endpoint, unless
    --disable-missing-schedules)."""
    ext_id = _install(api, extension)["extension_id"]
    body = {"version_id": version_id, "disable_missing_schedules": disable_missing_schedules}
    preview = api.post(f"/extensions/{ext_id}/update/preview", body)
    lines = [f"remap to {preview['install']['version']}: {len(preview['remapped'])} schedules"]
    unmatched = preview.get("schedules") or []
    after = [
        f"no endpoint {u['method']} {u['path']} for {u['name'] or u['schedule_id']}"
        + (" (will be disabled)" if disable_missing_schedules else "")
        for u in unmatched
    ]
    if dry_run or (preview["would_block"] and not disable_missing_schedules):
        if preview["would_block"] and not disable_missing_schedules and not dry_run:
            raise ApiError(
                "SCHEDULE_REMAP_FAILED",
                "some schedules have no matching endpoint in the target version; "
                "give --disable-missing-schedules to disable them",
                details={"schedules": unmatched},
            )
        return Show(preview, REMAP_COLUMNS, rows=preview["remapped"], lines=lines, after=after)
    result = api.post(f"/extensions/{ext_id}/update", body)
    after.append(
        f"updated {result['install']['name']} to {result['install']['version']}"
        f" ({len(result['remapped'])} remapped, {len(result['disabled'])} disabled)"
    )
    return Show(result, REMAP_COLUMNS, rows=result["remapped"], lines=lines, after=after)


def _toggle(api: Api, extension: str, action: str) -> Show:
    i = api.post(f"/extensions/{_install(api, extension)['extension_id']}/{action}")
    return Show(i, lines=[f"{i['name']} {action}d"])


@command(app, "enable")
def extensions_enable(api: Api, extension: Ext) -> Show:
    """Enable an install: its schedules that were enabled fire again."""
    return _toggle(api, extension, "enable")


@command(app, "disable")
def extensions_disable(api: Api, extension: Ext) -> Show:
    """Disable an install: none of its schedules fires; configuration is kept."""
    return _toggle(api, extension, "disable")


@command(app, "uninstall")
def extensions_uninstall(
    api: Api,
    extension: Ext,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> Show:
    """Uninstall: deletes the install with its schedules and runs (the audit log stays)."""
    i = _install(api, extension)
    if not yes and not typer.confirm(f"Uninstall {i['name']} and delete its schedules?"):
        raise typer.Exit(1)
    api.call("DELETE", f"/extensions/{i['extension_id']}")
    return Show({"uninstalled": i["extension_id"]}, lines=[f"uninstalled {i['name']}"])
