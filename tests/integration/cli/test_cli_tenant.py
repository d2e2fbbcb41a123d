"""Tenant commands against a running service: extensions, schedules, run-now --wait, runs
(filters, --follow, replay), cron preview, --json, errors and exit codes, login profiles."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from click.testing import Result

from tests.fake_runner import FakeRunner
from tests.helpers.http_server import free_port
from tests.integration.cli.conftest import Service

Cli = Callable[..., Result]


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def test_it_installs_updates_and_uninstalls_an_extension(cli: Cli, service: Service) -> None:
    v1 = service.publish()
    v2 = service.publish(
        version="2.0.0", endpoints=[{"method": "POST", "path": "/sync", "handler": "h"}]
    )
    out = ok(cli("extensions", "install", v1["extension_id"], "--version-id", v1["version_id"]))
    assert "installed com.example.crm-sync 1.0.0" in out
    listing = ok(cli("extensions", "list"))
    assert listing.splitlines()[0].split() == [
        "name", "version", "enabled", "extension_id", "version_id", "updated"
    ]  # fmt: skip
    assert "com.example.crm-sync  1.0.0" in " ".join(listing.split("\n")[2].split("  ")) or (
        "1.0.0" in listing.splitlines()[2]
    )
    items = json.loads(ok(cli("extensions", "list", "--json")))["items"]
    assert [(i["name"], i["version"], i["enabled"]) for i in items] == [
        ("com.example.crm-sync", "1.0.0", True)
    ]
    ok(
        cli(
            "schedules", "create", "-e", "com.example.crm-sync", "--name", "report",
            "--endpoint", "GET /report", "--cron", "0 8 * * 1",
        )
    )  # fmt: skip
    # v2 lacks GET /report: refused, nothing changed, the schedule named.
    r = cli("extensions", "update", "com.example.crm-sync", "--version-id", v2["version_id"])
    assert r.exit_code == 1
    assert r.stderr.startswith("error SCHEDULE_REMAP_FAILED: ")
    assert "report: GET /report" in r.stderr
    assert service.api("GET", f"/extensions/{v1['extension_id']}")["version"] == "1.0.0"
    r = cli(
        "extensions", "update", "com.example.crm-sync",
        "--version-id", v2["version_id"], "--dry-run",
    )  # fmt: skip
    assert "no endpoint GET /report for report" in ok(r)
    r = cli(
        "extensions", "update", "com.example.crm-sync",
        "--version-id", v2["version_id"], "--disable-missing-schedules",
    )  # fmt: skip
    assert "updated com.example.crm-sync to 2.0.0 (0 remapped, 1 disabled)" in ok(r)
    assert "com.example.crm-sync disabled" in ok(cli("extensions", "disable", v1["extension_id"]))
    assert service.api("GET", f"/extensions/{v1['extension_id']}")["enabled"] is False
    ok(cli("extensions", "enable", "com.example.crm-sync"))
    assert "enabled:        yes" in ok(cli("extensions", "show", "com.example.crm-sync"))
    assert "uninstalled" in ok(cli("extensions", "uninstall", "com.example.crm-sync", "--yes"))
    assert service.api("GET", "/extensions")["items"] == []


def test_it_manages_schedules(cli: Cli, service: Service, crm: dict[str, Any]) -> None:
    out = ok(
        cli(
            "schedules", "create", "-e", "com.example.crm-sync", "--name", "nightly",
            "--endpoint", "POST /sync", "--cron", "30 2 * * *", "--payload", '{"full": true}',
            "--overlap", "allow",
        )
    )  # fmt: skip
    assert out.startswith("created nightly (")
    [s] = service.schedules(crm)
    assert (s["timezone"], s["payload"], s["overlap"]) == ("Europe/Paris", {"full": True}, "allow")
    listing = ok(cli("schedules", "list"))
    assert "nightly" in listing and "POST /sync" in listing and "30 2 * * *" in listing
    shown = ok(cli("schedules", "show", "NIGHTLY", "-e", "com.example.crm-sync"))
    assert "overlap:        allow" in shown and "next runs (UTC)" in shown
    assert len(json.loads(ok(cli("schedules", "show", s["id"], "--json")))["next_runs"]) == 5
    ok(cli("schedules", "edit", s["id"], "--cron", "0 3 * * *", "--clear-payload"))
    s = service.schedules(crm)[0]
    assert (s["cron"], s["payload"], s["revision"]) == ("0 3 * * *", None, 2)
    assert "disabled nightly" in ok(cli("schedules", "disable", s["id"]))
    assert "disabled (user)" in ok(cli("schedules", "list", "-e", "com.example.crm-sync"))
    ok(cli("schedules", "enable", s["id"]))
    ok(cli("schedules", "pause", s["id"], "--until", "2h"))
    s = service.schedules(crm)[0]
    assert s["enabled"] and s["paused_until"] is not None
    assert "paused until" in ok(cli("schedules", "list"))
    ok(cli("schedules", "resume", s["id"]))
    assert service.schedules(crm)[0]["paused_until"] is None
    assert "deleted nightly" in ok(cli("schedules", "delete", s["id"], "--yes"))
    assert service.schedules(crm) == []


def test_it_prints_api_errors_with_their_code_and_exits_non_zero(
    cli: Cli, service: Service, crm: dict[str, Any]
) -> None:
    r = cli(
        "schedules", "create", "-e", "com.example.crm-sync",
        "--endpoint", "POST /sync", "--cron", "* * * * *",
    )  # fmt: skip
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("error VALIDATION_FAILED: ")
    assert "\n  cron: " in r.stderr
    r = cli("schedules", "list", actor="rita")
    assert r.exit_code == 0
    r = cli(
        "schedules", "create", "-e", "com.example.crm-sync",
        "--endpoint", "POST /sync", "--cron", "0 9 * * *", actor="rita",
    )  # fmt: skip
    assert (r.exit_code, r.stderr.split(":")[0]) == (1, "error FORBIDDEN")
    r = cli("extensions", "show", "com.example.crm-sync", actor="charlie")
    assert (r.exit_code, r.stderr.split(":")[0]) == (1, "error NOT_INSTALLED")
    r = cli("extensions", "list", EXTSCHED_TOKEN="exs_not-a-token")
    assert (r.exit_code, r.stderr.split(":")[0]) == (1, "error UNAUTHENTICATED")
    r = cli("extensions", "list", EXTSCHED_URL=f"http://127.0.0.1:{free_port()}")
    assert (r.exit_code, r.stderr.split(":")[0]) == (1, "error UNREACHABLE")
    r = cli("extensions", "list", actor=None)
    assert r.exit_code == 1 and r.stderr.startswith("error CONFIG: no token")


def test_run_now_waits_for_the_result_and_runs_are_listed(
    cli: Cli, service: Service, crm: dict[str, Any], runner: FakeRunner
) -> None:
    runner.behaviour["/report"] = "ext_500"
    for name, endpoint in (("sync", "POST /sync"), ("report", "GET /report")):
        ok(
            cli(
                "schedules", "create", "-e", "com.example.crm-sync", "--name", name,
                "--endpoint", endpoint, "--cron", "0 9 * * *",
            )
        )  # fmt: skip
    out = ok(cli("schedules", "run-now", "sync", "-e", "com.example.crm-sync", "--wait"))
    assert "status:         succeeded" in out and "trigger:        run_now" in out
    r = cli("schedules", "run-now", "report", "-e", "com.example.crm-sync", "--wait", "--json")
    assert r.exit_code == 1  # the run failed: --wait says so in its exit code
    failed = json.loads(r.stdout)
    assert (failed["status"], failed["http_status"]) == ("failed", 500)
    r = cli("runs", "list", "--schedule", "report", "-e", "com.example.crm-sync")
    assert failed["id"] in ok(r) and "failed" in r.stdout
    assert ok(r).splitlines()[0].split()[:3] == ["scheduled", "for", "status"]
    # Replay the failed run and wait for the new one.
    runner.behaviour["/report"] = "ok"
    r = cli(
        "runs", "replay", failed["id"], "--wait", "--schedule", "report",
        "-e", "com.example.crm-sync", "--json",
    )  # fmt: skip
    replayed = json.loads(ok(r))
    assert (replayed["trigger"], replayed["replay_of"], replayed["status"]) == (
        "replay",
        failed["id"],
        "succeeded",
    )
    # Filters narrow the listing (applied by the service where it knows them, and again here).
    r = cli(
        "runs", "list", "--schedule", "report", "-e", "com.example.crm-sync",
        "--status", "failed", "--json",
    )  # fmt: skip
    assert [x["id"] for x in json.loads(ok(r))["items"]] == [failed["id"]]
    r = cli(
        "runs", "list", "--schedule", "report", "-e", "com.example.crm-sync",
        "--trigger", "replay,schedule", "--json",
    )  # fmt: skip
    assert [x["id"] for x in json.loads(ok(r))["items"]] == [replayed["id"]]


def test_it_lists_runs_across_the_tenant_with_filters(
    cli: Cli, service: Service, crm: dict[str, Any]
) -> None:
    ok(
        cli(
            "schedules", "create", "-e", "com.example.crm-sync", "--name", "sync",
            "--endpoint", "POST /sync", "--cron", "0 9 * * *",
        )
    )  # fmt: skip
    run = json.loads(
        ok(cli("schedules", "run-now", "sync", "-e", "com.example.crm-sync", "--wait", "--json"))
    )
    items = json.loads(ok(cli("runs", "list", "-e", "com.example.crm-sync", "--json")))["items"]
    assert [(i["id"], i["schedule_name"]) for i in items] == [(run["id"], "sync")]
    r = cli("runs", "list", "--status", "failed", "--since", "1h", "--json")
    assert json.loads(ok(r))["items"] == []


def test_runs_follow_streams_new_runs(
    cli: Cli, service: Service, crm: dict[str, Any], tmp_path: Any
) -> None:
    ok(
        cli(
            "schedules", "create", "-e", "com.example.crm-sync", "--name", "sync",
            "--endpoint", "POST /sync", "--cron", "0 9 * * *",
        )
    )  # fmt: skip
    [s] = service.schedules(crm)
    env = {
        **os.environ,
        "EXTSCHED_URL": service.url,
        "EXTSCHED_TOKEN": service.tokens["alice"],
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "extsched.cli", "runs", "list", "--schedule", s["id"],
         "--follow", "--interval", "0.2", "--timeout", "60", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follow:  # fmt: skip
        try:
            run_id = service.api("POST", f"/schedules/{s['id']}/run-now")["run_id"]
            assert follow.stdout is not None
            statuses = []
            for line in follow.stdout:  # one JSON object per new run or change of status
                event = json.loads(line)
                assert event["id"] == run_id
                statuses.append(event["status"])
                if event["status"] == "succeeded":
                    break
            assert statuses, follow.stderr.read() if follow.stderr else ""
            assert statuses[-1] == "succeeded" and len(set(statuses)) == len(statuses)
        finally:
            follow.terminate()


def test_cron_preview(cli: Cli) -> None:
    out = ok(cli("cron", "preview", "30 2 * * *", "--timezone", "Europe/Paris", "--count", "2"))
    assert out.splitlines()[0] == "At 02:30"
    assert "clock change" in out
    data = json.loads(ok(cli("cron", "preview", "0 9 * * 1-5", "--timezone", "UTC", "--json")))
    assert data["valid"] is True and len(data["next_runs"]) == 5
    r = cli("cron", "preview", "61 * * * *")
    assert r.exit_code == 1 and r.stderr.startswith("error VALIDATION_FAILED")


def test_login_saves_a_private_profile(cli: Cli, service: Service, crm: dict[str, Any]) -> None:
    r = cli("login", "--url", service.url, input=service.tokens["alice"] + "\n", actor=None)
    assert "saved profile 'default'" in ok(r)
    path = service.home / "config" / "extsched" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["profiles"]["default"]["url"] == service.url
    # Without URL or token in the environment, commands use the profile.
    out = ok(cli("extensions", "list", actor=None, EXTSCHED_URL=None))  # type: ignore[arg-type]
    assert "com.example.crm-sync" in out
    r = cli("login", "--url", service.url, "--token", "exs_wrong", actor=None)
    assert r.exit_code == 1 and r.stderr.startswith("error UNAUTHENTICATED")
    ok(cli("logout"))
    r = cli("extensions", "list", actor=None, EXTSCHED_URL=None)  # type: ignore[arg-type]
    assert r.exit_code == 1 and "error CONFIG" in r.stderr
