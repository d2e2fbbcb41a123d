"""``extsched schedules export`` and ``extsched schedules apply``: schedules as code.

``export`` prints an install's schedules as YAML (or JSON with ``--json``); ``apply`` reads
such a file (YAML or JSON), asks the service for the plan (a dry run), prints it as
``+ create NAME``, ``~ update NAME field: old -> new`` and ``- delete NAME``, and applies it
all or nothing. ``--dry-run`` exits 2 when the file differs from the service (drift).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from extsched.cli.client import Api, ApiError
from extsched.cli.schedules import app
from extsched.cli.tenant import Show, command

EXIT_DRIFT = 2


@command(app, "export")
def schedules_export(
    api: Api,
    extension: Annotated[str, typer.Option("--extension", "-e", help="Extension name or id.")],
) -> Show:
    """Print the extension's schedules as a YAML document (JSON with --json) that `apply`
    takes back unchanged."""
    ext_id = api.install(extension)["extension_id"]
    doc = api.get(f"/extensions/{ext_id}/schedules/export")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return Show(doc, lines=[text.rstrip("\n")])


def _plain(value: Any) -> Any:
    """YAML timestamps back to RFC 3339 text, as the API takes them."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ApiError("BAD_DOCUMENT", f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("schedules"), list):
        raise ApiError("BAD_DOCUMENT", f"{path}: expected a mapping with a 'schedules' list")
    return dict(_plain(data))


def _text(value: Any) -> str:
    if value is None:
        return "null"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def plan_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"+ create {n}" for n in report["created"]]
    for name in report["updated"]:
        for f, change in report.get("changes", {}).get(name, {}).items():
            lines.append(f"~ update {name} {f}: {_text(change['from'])} -> {_text(change['to'])}")
    lines += [f"- delete {n}" for n in report["deleted"]]
    counts = (len(report[k]) for k in ("created", "updated", "deleted", "unchanged"))
    lines.append("plan: {} to create, {} to update, {} to delete, {} unchanged".format(*counts))
    return lines


@command(app, "apply")
def schedules_apply(
    api: Api,
    file: Annotated[Path, typer.Argument(help="YAML or JSON document (as exported).")],
    extension: Annotated[
        str | None,
        typer.Option("--extension", "-e", help="Extension name or id [the document's]."),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete the extension's schedules not in the file.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan only; exit 2 if it changes.")
    ] = False,
) -> Show:
    """Make the extension's schedules match the file: prints the plan, then applies it all
    or nothing."""
    doc = read_document(file)
    name = extension or doc.get("extension")
    if not name:
        raise ApiError("BAD_DOCUMENT", "no extension: give --extension or an 'extension' key")
    ext_id = api.install(str(name))["extension_id"]
    url = f"/extensions/{ext_id}/schedules/apply"
    body = {"schedules": doc["schedules"], "prune": prune}
    plan = api.post(url, {**body, "dry_run": True})
    lines = plan_lines(plan)
    changes = bool(plan["created"] or plan["updated"] or plan["deleted"])
    if dry_run or not changes:
        return Show(plan, lines=lines, exit_code=EXIT_DRIFT if dry_run and changes else 0)
    done = api.post(url, {**body, "dry_run": False})
    lines.append(
        f"applied: {len(done['created'])} created, {len(done['updated'])} updated, "
        f"{len(done['deleted'])} deleted"
    )
    return Show(done, lines=lines)
