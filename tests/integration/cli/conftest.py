"""The CLI against a running service: ``extsched serve``'s app (API + worker) on a real HTTP
port with a fake Runner, and ``cli(...)`` to run an ``extsched`` command against it the way
a user would (EXTSCHED_URL and EXTSCHED_TOKEN in the environment, a private config folder).

Actors as elsewhere: ``admin`` (platform), ``alice`` (acme, read + write), ``rita`` (acme,
read only), ``charlie`` (globex)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from extsched.cli import app
from extsched.config import Settings
from extsched.db.pool import Database
from extsched.server import Roles, create_service_app
from extsched.services import tokens
from tests.conftest import manifest, marked_settings
from tests.fake_runner import FakeRunner, fake_runner
from tests.helpers.http_server import run_asgi_server


@dataclass
class Service:
    url: str
    tokens: dict[str, str]
    home: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", timeout=10)

    def api(self, method: str, path: str, actor: str = "alice", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[actor]}"}
        r = self.http.request(method, path, headers=headers, **kwargs)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.api(
            "POST", "/registry/versions", "admin", json=manifest(**kwargs)
        )
        return body

    def install(self, published: dict[str, Any], actor: str = "alice") -> dict[str, Any]:
        body: dict[str, Any] = self.api(
            "POST",
            f"/extensions/{published['extension_id']}/install",
            actor,
            json={"version_id": published["version_id"]},
        )
        return body

    def schedules(self, published: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api(
            "GET", f"/extensions/{published['extension_id']}/schedules"
        )["items"]
        return items


async def _make_tokens(db_url: str) -> dict[str, str]:
    db = Database(db_url, min_size=1, max_size=2)
    await db.open()
    try:
        made = {
            "admin": await tokens.create(db, admin=True),
            "alice": await tokens.create(
                db, tenant_id="acme", user_id="alice", timezone="Europe/Paris"
            ),
            "rita": await tokens.create(
                db, tenant_id="acme", user_id="rita", permissions=["extension:read"]
            ),
            "charlie": await tokens.create(db, tenant_id="globex", user_id="charlie"),
        }
    finally:
        await db.close()
    return {k: v[1] for k, v in made.items()}


@pytest.fixture
def runner() -> Iterator[FakeRunner]:
    with fake_runner() as r:
        yield r


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, runner: FakeRunner) -> dict[str, Any]:
    return {"runner_url": runner.url, "runner_timeout_ms": 5000, **marked_settings(request)}


@pytest.fixture
def service(settings: Settings, db_url: str, tmp_path: Path) -> Iterator[Service]:
    made = asyncio.run(_make_tokens(db_url))
    service_app = create_service_app(settings, db_url, Roles(api=True, worker=True))
    with run_asgi_server(service_app, lifespan="on") as url:
        svc = Service(url=url, tokens=made, home=tmp_path / "user")
        try:
            yield svc
        finally:
            svc.http.close()


@pytest.fixture
def cli(service: Service) -> Callable[..., Result]:
    """``cli("schedules", "list", actor="alice")`` -> click's Result (exit_code, stdout,
    stderr), run in-process against the service over HTTP."""

    def _cli(
        *args: str, actor: str | None = "alice", input: str | None = None, **env: str
    ) -> Result:
        environ = {
            "EXTSCHED_URL": service.url,
            "EXTSCHED_TOKEN": service.tokens[actor] if actor else None,
            "XDG_CONFIG_HOME": str(service.home / "config"),
            "HOME": str(service.home),
            "EXTSCHED_PROFILE": None,
            **env,
        }
        return CliRunner().invoke(app, list(args), env=environ, input=input)

    return _cli


@pytest.fixture
def crm(service: Service) -> dict[str, Any]:
    """com.example.crm-sync 1.0.0 published and installed for acme (alice)."""
    published = service.publish()
    service.install(published)
    return published


def new_id() -> str:
    return str(uuid.uuid4())
