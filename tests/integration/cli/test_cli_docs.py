"""docs/cli.md is run: every ``$ extsched ...`` line of its console blocks, in order, against
a running service (operator lines against its database), with the YAML block written to the
file the session applies. Exit codes must be 0 or the one the line's ``# exit N`` comment
names, and the plans the doc prints for ``schedules apply`` must be what apply prints."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from extsched.cli import app
from tests.conftest import TEST_KEY, TEST_RUNNER_TOKEN, manifest
from tests.integration.cli.conftest import Service

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def session(text: str) -> list[tuple[str, str, list[str]]]:
    """[("console", command line, shown output lines) | ("yaml", content, [])] in order."""
    steps: list[tuple[str, str, list[str]]] = []
    for kind, body in BLOCK.findall(text):
        if kind == "yaml":
            steps.append(("yaml", body, []))
        elif kind == "console":
            for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, *shown = chunk.rstrip("\n").split("\n")
                steps.append(("console", command, [s for s in shown if s]))
    return steps


def test_the_documented_session_runs(
    cli: Callable[..., Result],
    service: Service,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest()))
    v1 = service.publish()
    v2 = service.publish(version="1.1.0")
    names = {
        "EXTENSION_ID": v1["extension_id"],
        "VERSION_ID": v1["version_id"],
        "NEW_VERSION_ID": v2["version_id"],
    }

    def variable(match: re.Match[str]) -> str:
        if match.group(1) == "RUN_ID":  # the run the session just made
            [s] = [x for x in service.schedules(v1) if x["name"] == "nightly"]
            return str(service.api("GET", f"/schedules/{s['id']}/runs")["items"][0]["id"])
        return names[match.group(1)]

    operator_env = {
        "EXTSCHED_DATABASE_URL": db_url,
        "EXTSCHED_HOME": str(tmp_path / "home"),
        "EXTSCHED_SECRET_KEY": TEST_KEY,
        "EXTSCHED_RUNNER_TOKEN": TEST_RUNNER_TOKEN,
    }
    ran: list[str] = []
    for kind, text, shown in session(DOC.read_text()):
        if kind == "yaml":
            (tmp_path / "schedules.yaml").write_text(text)
            continue
        line, _, comment = text.partition("  # ")
        expected = int(m.group(1)) if (m := re.search(r"exit (\d+)", comment)) else 0
        line = re.sub(r"\$([A-Z_]+)", variable, line).replace("http://127.0.0.1:8000", service.url)
        line, _, redirect = line.partition(" > ")
        args = shlex.split(line)
        assert args[0] == "extsched", line
        result: Any
        if args[1] == "admin":
            result = CliRunner().invoke(app, args[1:], env=operator_env)
        else:
            token = service.tokens["alice"] + "\n"
            result = cli(*args[1:], input=token if args[1] == "login" else None)
        assert result.exit_code == expected, (line, result.stdout, result.stderr)
        if redirect:
            (tmp_path / redirect.strip()).write_text(result.stdout)
        if args[1:3] == ["schedules", "apply"]:
            assert result.stdout.splitlines() == shown, line
        ran.append(" ".join(args[1:3]))
    assert len(ran) >= 20 and {"schedules apply", "runs replay", "admin reconcile"} <= set(ran)
