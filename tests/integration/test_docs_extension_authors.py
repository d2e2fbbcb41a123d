"""docs/extension-authors.md runs as written: its code blocks (the manifest, the Python and
JavaScript upstreams, the shell steps) are extracted and run against a real service (API,
worker and the reference Runner on real ports), with the upstream as a real process. An author
following only the guide publishes, installs, receives a call, verifies it, reads config and
secrets, and sees retries when the upstream is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from extsched.config import Settings
from extsched.server import Roles, create_runner_process_app, create_service_app
from extsched.services import tokens
from extsched.services.context import AppContext
from tests.conftest import without_node_tools
from tests.helpers.http_server import free_port, run_asgi_server

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "extension-authors.md"
BLOCK_RE = re.compile(r"^```(\w+) ([\w.-]+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> dict[str, str]:
    """The guide's named code blocks (```lang name), by name."""
    found = {m.group(2): m.group(3) for m in BLOCK_RE.finditer(GUIDE.read_text())}
    assert {"manifest.json", "upstream.py", "upstream.js", "publish.sh", "run-now.sh"} <= set(found)
    return found


@dataclass
class Service:
    url: str
    env: dict[str, str]
    workdir: Path


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Retries as documented, only faster: 3 attempts, backoff from 0.2 s.
    return {"retry_base_seconds": 0.2, "retry_max_seconds": 1.0, "runner_timeout_ms": 5000}


@pytest.fixture
async def service(settings: Settings, ctx: AppContext, tmp_path: Path) -> Iterator[Service]:
    """``extsched runner`` and ``extsched api`` + worker on real ports, and a shell
    environment with an admin token, a tenant token and the venv's python on PATH."""
    _, admin = await tokens.create(ctx.db, admin=True)
    _, user = await tokens.create(ctx.db, tenant_id="acme", user_id="author")
    assert settings.database_url is not None
    runner_app = create_runner_process_app(settings, settings.database_url)
    with run_asgi_server(runner_app, lifespan="on") as runner_url:
        wired = settings.model_copy(update={"runner_url": runner_url})
        app = create_service_app(wired, settings.database_url, Roles(api=True, worker=True))
        with run_asgi_server(app, lifespan="on") as url:
            env = {
                **os.environ,
                "EXTSCHED_URL": url,
                "ADMIN_TOKEN": admin,
                "TOKEN": user,
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                "PORT": str(free_port()),
            }
            yield Service(url, env, tmp_path)


def write_example(service: Service, *names: str) -> None:
    """Write the guide's files, with the upstream on this test's free port."""
    found = blocks()
    for name in names:
        text = found[name]
        if name == "manifest.json":
            text = text.replace("127.0.0.1:9100", f"127.0.0.1:{service.env['PORT']}")
        (service.workdir / name).write_text(text)


def steps(*names: str) -> str:
    """The named shell blocks, in order."""
    found = blocks()
    return "\n".join(found[name] for name in names)


async def run_script(service: Service, script: str) -> list[str]:
    """Run ``script`` in bash (``set -e``) in the work folder; its stdout lines. Output goes to
    a file, not a pipe: the upstream started in the background keeps its stdout open."""
    out = service.workdir / "steps.out"

    def run() -> int:
        with out.open("w") as sink:
            return subprocess.run(
                ["bash", "-c", "set -euo pipefail\n" + script],
                cwd=service.workdir,
                env=service.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            ).returncode

    code = await asyncio.to_thread(run)
    assert code == 0, out.read_text()
    return out.read_text().splitlines()


def stop_upstream(service: Service) -> None:
    pid_file = service.workdir / "upstream.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def outcomes(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith('{"status"')]


async def test_the_python_example_runs_as_documented(service: Service) -> None:
    write_example(service, "manifest.json", "upstream.py")
    try:
        lines = await run_script(
            service,
            steps(
                "publish.sh",
                "install.sh",
                "start-upstream.sh",
                "run-now.sh",
                "upstream-down.sh",
                "run-now.sh",
            ),
        )
    finally:
        stop_upstream(service)
    ok, down = outcomes(lines)
    assert (ok["status"], ok["attempts"], ok["http_status"], ok["error"]) == (
        "succeeded",
        1,
        200,
        None,
    )
    # The upstream verified the signature and read the config and the secret.
    assert json.loads(ok["response_preview"]) == {
        "verified": True,
        "region": "eu-west",
        "has_token": True,
    }
    log = (service.workdir / "upstream.log").read_text()
    assert re.search(r"run [0-9a-f-]{36}: full=True region=eu-west token=True", log), log
    # Down: retried as a Runner failure, never reported as the extension's status.
    assert (down["status"], down["attempts"], down["http_status"]) == ("failed", 3, None)
    assert down["error"].startswith("runner answered HTTP 502: upstream unreachable")


async def test_the_upstream_refuses_a_call_that_is_not_signed(service: Service) -> None:
    """The documented upstream really verifies: a forged or unsigned call is a 401."""
    write_example(service, "manifest.json", "upstream.py")
    try:
        await run_script(service, steps("publish.sh", "install.sh", "start-upstream.sh"))
        base = f"http://127.0.0.1:{service.env['PORT']}"
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(100):  # the upstream process is starting
                try:
                    r = await client.post(
                        f"{base}/sync",
                        content=b'{"full":true}',
                        headers={
                            "webhook-id": "forged:1",
                            "webhook-timestamp": "1",
                            "webhook-signature": "v1,AAAA",
                        },
                    )
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        assert r.status_code == 401
        assert r.json() == {"error": "bad signature"}
    finally:
        stop_upstream(service)


async def test_the_javascript_example_runs_as_documented(service: Service) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        without_node_tools("node and npm are not installed here")
    write_example(service, "manifest.json", "upstream.js")
    npm = await asyncio.to_thread(
        subprocess.run,
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "standardwebhooks@1"],
        cwd=service.workdir,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if npm.returncode != 0:
        without_node_tools(f"npm install standardwebhooks failed: {npm.stderr[-300:]!r}")
    start = blocks()["start-upstream.sh"]
    node_start = start.replace("python upstream.py", "node upstream.js")
    assert node_start != start
    try:
        lines = await run_script(
            service, steps("publish.sh", "install.sh") + "\n" + node_start + steps("run-now.sh")
        )
    finally:
        stop_upstream(service)
    [ok] = outcomes(lines)
    assert (ok["status"], ok["http_status"]) == ("succeeded", 200)
    assert json.loads(ok["response_preview"]) == {
        "verified": True,
        "region": "eu-west",
        "has_token": True,
    }
    log = (service.workdir / "upstream.log").read_text()
    assert re.search(r"run [0-9a-f-]{36}: full=true region=eu-west", log), log
