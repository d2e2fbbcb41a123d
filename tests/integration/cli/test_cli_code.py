"""Schedules as code from the CLI: export, apply with a printed plan, --dry-run (exit 2 on
drift, nothing changed), --prune, an export applied back is a no-op, a refused document
changes nothing, JSON files accepted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from tests.integration.cli.conftest import Service

Cli = Callable[..., Result]
EXT = "com.example.crm-sync"


def make(cli: Cli, name: str, endpoint: str = "POST /sync", cron: str = "0 9 * * *") -> None:
    r = cli(
        "schedules", "create", "-e", EXT, "--name", name, "--endpoint", endpoint, "--cron", cron,
        "--timezone", "UTC",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr


def snapshot(service: Service, crm: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (s["name"], s["cron"], s["revision"], s["endpoint"]["path"]) for s in service.schedules(crm)
    )


def test_an_export_applies_back_as_a_no_op(
    cli: Cli, service: Service, crm: dict[str, Any], tmp_path: Path
) -> None:
    make(cli, "nightly")
    make(cli, "weekly report", "GET /report", "0 8 * * 1")
    r = cli("schedules", "export", "--extension", EXT)
    assert r.exit_code == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert doc["extension"] == EXT
    assert [(s["name"], s["endpoint"]) for s in doc["schedules"]] == [
        ("nightly", "POST /sync"),
        ("weekly report", "GET /report"),
    ]
    path = tmp_path / "schedules.yaml"
    path.write_text(r.stdout)
    before = snapshot(service, crm)
    r = cli("schedules", "apply", str(path), "--prune", "--dry-run")
    assert (r.exit_code, r.stdout) == (
        0,
        "plan: 0 to create, 0 to update, 0 to delete, 2 unchanged\n",
    )
    r = cli("schedules", "apply", str(path), "--prune")
    assert r.exit_code == 0 and "applied" not in r.stdout
    assert snapshot(service, crm) == before
    # The same document as JSON is accepted too.
    as_json = tmp_path / "schedules.json"
    as_json.write_text(cli("schedules", "export", "-e", EXT, "--json").stdout)
    r = cli("schedules", "apply", str(as_json), "--dry-run", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["unchanged"] == ["nightly", "weekly report"]


def test_it_prints_the_plan_and_a_dry_run_changes_nothing(
    cli: Cli, service: Service, crm: dict[str, Any], tmp_path: Path
) -> None:
    make(cli, "nightly")
    make(cli, "old")
    path = tmp_path / "schedules.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "extension": EXT,
                "schedules": [
                    {"name": "nightly", "endpoint": "POST /sync", "cron": "0 10 * * *",
                     "timezone": "UTC", "payload": {"full": True}},
                    {"name": "report", "endpoint": "GET /report", "cron": "0 8 * * 1",
                     "timezone": "UTC"},
                ],
            }
        )
    )  # fmt: skip
    before = snapshot(service, crm)
    r = cli("schedules", "apply", str(path), "--prune", "--dry-run")
    assert r.exit_code == 2, r.stderr  # drift: CI can fail on it
    assert r.stdout.splitlines() == [
        "+ create report",
        "~ update nightly cron: 0 9 * * * -> 0 10 * * *",
        '~ update nightly payload: null -> {"full":true}',
        "- delete old",
        "plan: 1 to create, 1 to update, 1 to delete, 0 unchanged",
    ]
    assert snapshot(service, crm) == before
    # Without --prune, "old" stays.
    r = cli("schedules", "apply", str(path))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "applied: 1 created, 1 updated, 0 deleted"
    assert snapshot(service, crm) == [
        ("nightly", "0 10 * * *", 2, "/sync"),
        ("old", "0 9 * * *", 1, "/sync"),
        ("report", "0 8 * * 1", 1, "/report"),
    ]
    r = cli("schedules", "apply", str(path), "--prune")
    assert r.exit_code == 0 and "- delete old" in r.stdout
    assert [s[0] for s in snapshot(service, crm)] == ["nightly", "report"]
    r = cli("schedules", "apply", str(path), "--prune", "--dry-run")
    assert r.exit_code == 0  # no drift any more


def test_a_refused_document_changes_nothing(
    cli: Cli, service: Service, crm: dict[str, Any], tmp_path: Path
) -> None:
    make(cli, "nightly")
    before = snapshot(service, crm)
    path = tmp_path / "bad.yaml"
    path.write_text(
        "extension: com.example.crm-sync\n"
        "schedules:\n"
        "  - {name: nightly, endpoint: POST /sync, cron: '0 11 * * *'}\n"
        "  - {name: new, endpoint: POST /sync, cron: '* * * * *'}\n"
        "  - {name: other, endpoint: DELETE /cache, cron: '0 1 * * *'}\n"
    )
    for flags in ((), ("--dry-run",), ("--prune",)):
        r = cli("schedules", "apply", str(path), *flags)
        assert r.exit_code == 1 and r.stdout == ""
        assert r.stderr.startswith("error VALIDATION_FAILED: ")
        assert "\n  schedules[1].cron: " in r.stderr
        assert "\n  schedules[2].endpoint: " in r.stderr
    assert snapshot(service, crm) == before
    # Files that are no document at all.
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    r = cli("schedules", "apply", str(tmp_path / "list.yaml"))
    assert r.exit_code == 1 and r.stderr.startswith("error BAD_DOCUMENT")
    r = cli("schedules", "apply", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 1 and r.stderr.startswith("error BAD_DOCUMENT")
