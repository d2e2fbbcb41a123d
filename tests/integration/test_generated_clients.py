"""Clients generated from the running service's own document, as a host platform makes them
(docs/clients.md): the doc's generate commands, its Python flow with the generated package
(publish, install, schedule, run now, read the run) and its TypeScript snippet, type-checked
with ``tsc --strict`` against the generated types and run with Node.js. All against a live
service (API and worker on a real port, real PostgreSQL, the fake Runner).

The generators are pinned in ``tests/clients/`` and installed once into ``.cache/clients/``
(git-ignored): ``openapi-python-client`` in a venv of its own (its pins clash with the
service's), ``openapi-typescript``, ``openapi-fetch`` and ``typescript`` with ``npm ci``.
Without ``npm`` on the machine the TypeScript half is skipped (scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from extsched.config import Settings
from extsched.db.pool import Database
from extsched.server import Roles, create_service_app
from extsched.services import tokens
from tests.conftest import (
    TEST_KEY,
    TEST_RUNNER_TOKEN,
    _with_db,
    endpoint_id,
    manifest,
    without_node_tools,
)
from tests.fake_runner import FakeRunner, fake_runner
from tests.helpers.http_server import run_asgi_server

ROOT = Path(__file__).resolve().parents[2]
PINS = ROOT / "tests" / "clients"
CACHE = ROOT / ".cache" / "clients"
DOC = ROOT / "docs" / "clients.md"
TOOL_TIMEOUT_S = 300


def doc_blocks(lang: str) -> list[str]:
    """The fenced code blocks of docs/clients.md whose info string is ``lang``."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC.read_text(), flags=re.M | re.S)


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False, **kwargs
    )


def _checked(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _cached(name: str, pins: list[Path], build: Callable[[Path], None]) -> Path:
    """``CACHE/name``, built by ``build`` unless it was built from the same pins. A lock keeps
    two test workers from building it at once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / name
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in pins)).hexdigest()
    stamp = target / ".pins-sha256"
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != digest:
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            stamp.write_text(digest)
    return target


@pytest.fixture(scope="session")
def python_tools() -> Path:
    """The bin directory of a venv with openapi-python-client (and what its output imports)."""

    def build(venv: Path) -> None:
        _checked(_run([sys.executable, "-m", "venv", str(venv)]))
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        _checked(_run([*pip, "-r", str(PINS / "requirements.txt")]))

    return _cached("python", [PINS / "requirements.txt"], build) / "bin"


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """A directory with node_modules holding the pinned TypeScript tools."""
    npm = shutil.which("npm")
    if npm is None:
        without_node_tools("npm is not installed")

    def build(target: Path) -> None:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PINS / name, target / name)
        _checked(_run([npm, "ci", "--no-audit", "--no-fund"], cwd=target))

    return _cached("node", [PINS / "package.json", PINS / "package-lock.json"], build)


# ----------------------------------------------------------------- the live service
@dataclass
class Live:
    url: str
    admin: str
    user: str
    runner: FakeRunner

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "EXTSCHED_URL": self.url,
            "EXTSCHED_ADMIN_TOKEN": self.admin,
            "EXTSCHED_TOKEN": self.user,
        }


async def _tokens(url: str) -> tuple[str, str]:
    db = Database(url, min_size=1, max_size=2)
    await db.open()
    try:
        _, admin = await tokens.create(db, admin=True)
        _, user = await tokens.create(db, tenant_id="acme", user_id="alice")
        return admin, user
    finally:
        await db.close()


@pytest.fixture(scope="module")
def live(
    pg_server: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """``extsched serve`` (API and worker) on a real port, calling the fake Runner."""
    name = f"extsched_clients_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = _with_db(pg_server, name)
    admin, user = asyncio.run(_tokens(url))
    try:
        with fake_runner() as runner:
            settings = Settings(
                database_url=url,
                home=tmp_path_factory.mktemp("clients-home"),
                secret_key=TEST_KEY,
                runner_token=TEST_RUNNER_TOKEN,
                runner_url=runner.url,
                runner_timeout_ms=5000,
                db_pool_min=1,
            )
            app = create_service_app(settings, url, Roles(api=True, worker=True))
            with run_asgi_server(app, lifespan="on") as base:
                yield Live(base, admin, user, runner)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def generated(live: Live, python_tools: Path, node_tools: Path) -> Iterator[tuple[Path, str]]:
    """A directory where the doc's ``bash`` block ran against the live service, inside the
    node tools' directory (so Node.js resolves openapi-fetch from there); and its output."""
    (script,) = doc_blocks("bash")
    work = node_tools / "work" / uuid.uuid4().hex[:12]  # one per test worker
    work.mkdir(parents=True)
    tools_path = f"{python_tools}:{node_tools / 'node_modules' / '.bin'}:{os.environ['PATH']}"
    try:
        output = _checked(
            _run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=work,
                env={**live.env(), "PATH": tools_path},
            )
        )
        yield work, output
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------- tests
def test_the_generators_take_the_document_without_a_warning(generated: tuple[Path, str]) -> None:
    work, output = generated
    assert "Warning" not in output and "Unable to" not in output, output
    # Methods are named after the operation ids, grouped by tag.
    api = work / "extsched_client" / "api"
    for module in (
        "registry/publish_version.py",
        "installs/install_extension.py",
        "schedules/create_schedule.py",
        "runs/run_now.py",
        "runs/replay_run.py",
    ):
        assert (api / module).is_file(), module
    types = (work / "extsched-api.d.ts").read_text()
    assert "run_now: {" in types and '"/api/v1/schedules/{schedule_id}/run-now"' in types


def test_the_python_flow_of_the_doc_runs_with_the_generated_client(
    live: Live, python_tools: Path, generated: tuple[Path, str]
) -> None:
    work, _ = generated
    (snippet,) = doc_blocks("python")
    (work / "flow.py").write_text(snippet)
    output = _checked(_run([str(python_tools / "python"), "flow.py"], cwd=work, env=live.env()))
    found = re.search(r"^run ([0-9a-f-]{36}): succeeded \(HTTP 200\)$", output, flags=re.M)
    assert found, output
    (call,) = [
        c
        for c in live.runner.calls_to("/sync")
        if c.headers["x-idempotency-key"].startswith(found.group(1))
    ]
    assert call.headers["x-tenant-id"] == "acme"


TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "types": ["node"],
        "skipLibCheck": True,
        "outDir": "dist",
    },
}
MAIN_TS = """\
import { scheduleAndRunNow } from "./client.js";

const run = await scheduleAndRunNow(process.env.EXTENSION_ID!, process.env.ENDPOINT_ID!);
console.log(JSON.stringify(run));
"""


def _tsc(
    node_tools: Path, work: Path, files: list[str], *, emit: bool
) -> subprocess.CompletedProcess[str]:
    (work / "tsconfig.json").write_text(json.dumps({**TSCONFIG, "files": files}))
    args = [str(node_tools / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"]
    return _run([*args] if emit else [*args, "--noEmit"], cwd=work)


def test_the_typescript_snippet_type_checks_and_runs(
    live: Live, node_tools: Path, generated: tuple[Path, str]
) -> None:
    work, _ = generated
    (snippet,) = doc_blocks("ts")
    (work / "client.ts").write_text(snippet)
    (work / "main.ts").write_text(MAIN_TS)
    _checked(_tsc(node_tools, work, ["extsched-api.d.ts", "client.ts", "main.ts"], emit=True))

    # The types are real: a wrong body does not type-check.
    assert 'cron: "30 2 * * *"' in snippet
    (work / "wrong.ts").write_text(snippet.replace('cron: "30 2 * * *"', "cron: 230"))
    wrong = _tsc(node_tools, work, ["extsched-api.d.ts", "wrong.ts"], emit=False)
    assert wrong.returncode != 0 and "number" in wrong.stdout and "string" in wrong.stdout

    # And it runs against the live service.
    admin = {"Authorization": f"Bearer {live.admin}"}
    user = {"Authorization": f"Bearer {live.user}"}
    with httpx.Client(base_url=live.url, timeout=10) as http:
        published = http.post(
            "/api/v1/registry/versions", json=manifest(name="com.example.ts-flow"), headers=admin
        ).json()
        r = http.post(
            f"/api/v1/extensions/{published['extension_id']}/install",
            json={"version_id": published["version_id"]},
            headers=user,
        )
        assert r.status_code == 201, r.text
    env = {
        **live.env(),
        "EXTENSION_ID": published["extension_id"],
        "ENDPOINT_ID": endpoint_id(published, "POST", "/sync"),
    }
    node = shutil.which("node")
    assert node is not None
    run = json.loads(_checked(_run([node, "dist/main.js"], cwd=work, env=env)))
    assert run["status"] == "succeeded" and run["trigger"] == "run_now"
    assert run["http_status"] == 200
