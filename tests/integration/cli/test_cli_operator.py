"""Operator commands: database-direct, never migrating, saying what they did; the
``extsched admin`` group and the first names side by side; ``--version``."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import psycopg
from click.testing import Result
from typer.testing import CliRunner

from extsched.cli import app
from tests.conftest import TEST_KEY, TEST_RUNNER_TOKEN, manifest


def run(db_url: str, tmp_path: Path, *args: str) -> Result:
    env = {
        "EXTSCHED_DATABASE_URL": db_url,
        "EXTSCHED_HOME": str(tmp_path / "home"),
        "EXTSCHED_SECRET_KEY": TEST_KEY,
        "EXTSCHED_RUNNER_TOKEN": TEST_RUNNER_TOKEN,
    }
    return CliRunner().invoke(app, list(args), env=env)


def test_it_prints_its_version() -> None:
    r = CliRunner().invoke(app, ["--version"])
    assert (r.exit_code, r.stdout) == (0, f"extsched {version('extsched')}\n")


def test_reconcile_says_when_there_is_nothing_to_repair(db_url: str, tmp_path: Path) -> None:
    for args in (("reconcile",), ("admin", "reconcile", "--repair")):
        r = run(db_url, tmp_path, *args)
        assert r.exit_code == 0, r.stderr
        assert r.stdout == "nothing to repair: database and job backend agree\n"
    r = run(db_url, tmp_path, "admin", "reconcile", "--json")
    assert json.loads(r.stdout)["repaired"] == 0


def test_admin_group_and_first_names_work_alike(db_url: str, tmp_path: Path) -> None:
    for prefix in ((), ("admin",)):
        r = run(db_url, tmp_path, *prefix, "token", "create", "--tenant", "acme", "--user", "u")
        assert r.exit_code == 0 and r.stdout.startswith("exs_"), r.stderr
    r = run(db_url, tmp_path, "admin", "token", "list", "--json")
    assert [t["user_id"] for t in json.loads(r.stdout)] == ["u", "u"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest()))
    r = run(db_url, tmp_path, "admin", "registry", "publish", str(path))
    assert r.exit_code == 0 and "com.example.crm-sync 1.0.0 published" in r.stdout
    r = run(db_url, tmp_path, "admin", "schedules", "list", "--tenant", "acme", "--json")
    assert (r.exit_code, json.loads(r.stdout)) == (0, [])
    r = run(db_url, tmp_path, "kill-switch", "acme", "on")
    assert r.stdout == "kill switch for acme is on\n"


def test_operator_commands_do_not_migrate(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    r = run(db_url, tmp_path, "admin", "reconcile")
    assert r.exit_code == 3
    assert "run `extsched migrate`" in r.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
