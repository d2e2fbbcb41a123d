"""Shared fixtures: a real PostgreSQL, a fresh database per test cloned from a migrated
template, the app on that database, and named actors:

- ``admin``: the platform admin;
- ``alice``: admin of tenant ``acme`` (extension:read + extension:write);
- ``rita``: read-only user of ``acme``;
- ``charlie``: admin of another tenant, ``globex`` (the outsider).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from extsched.config import Settings
from extsched.crypto import SecretBox
from extsched.db import migrate
from extsched.db.pool import Database
from extsched.jobs.postgres.backend import PostgresBackend
from extsched.server import create_app
from extsched.services import tokens
from extsched.services.context import AppContext

TEST_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
# What the service sends to the Runner and what the fake and reference Runners require.
TEST_RUNNER_TOKEN = "test-runner-token-0123456789"


def without_node_tools(reason: str) -> NoReturn:
    """Skip a test that needs Node.js and npm where they are missing. ``scripts/test`` (hence
    CI) installs them and sets EXTSCHED_REQUIRE_NODE=1, and then a missing tool fails instead."""
    if os.environ.get("EXTSCHED_REQUIRE_NODE") == "1":
        pytest.fail(f"{reason} (EXTSCHED_REQUIRE_NODE=1: scripts/test installs them)")
    pytest.skip(reason)


def _server_url() -> str:
    """A PostgreSQL server for tests: EXTSCHED_TEST_DATABASE_URL, the local server, or embedded."""
    env = os.environ.get("EXTSCHED_TEST_DATABASE_URL")
    if env:
        return env
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(local, connect_timeout=3).close()
        return local
    except psycopg.OperationalError:
        import pgserver

        home = Path(os.environ.get("TMPDIR", "/tmp")) / "extsched-test-pg"
        server = pgserver.get_server(home, cleanup_mode="stop")
        return str(server.get_uri())


def _with_db(url: str, dbname: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def pg_server() -> str:
    return _server_url()


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> Iterator[str]:
    """A database migrated once per test session (and xdist worker), used as a template."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"extsched_tmpl_{worker}_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(_with_db(pg_server, name))
    yield name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(pg_server: str, template_db: str) -> Iterator[str]:
    """A fresh database for this test, cloned from the migrated template."""
    name = f"extsched_t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_db(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Clock:
    """An injectable clock: real time unless frozen or moved by a test."""

    def __init__(self) -> None:
        self.frozen: datetime | None = None

    def __call__(self) -> datetime:
        return self.frozen or datetime.now(UTC)

    def set(self, when: datetime) -> None:
        self.frozen = when


@pytest.fixture
def clock() -> Clock:
    return Clock()


def marked_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings from a ``@pytest.mark.settings(name=value, ...)`` marker."""
    marker = request.node.get_closest_marker("settings")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for this test; modules override this fixture, tests use the marker."""
    return marked_settings(request)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, settings_overrides: dict[str, Any]) -> Settings:
    return Settings(
        database_url=db_url,
        home=tmp_path / "home",
        secret_key=TEST_KEY,
        runner_token=TEST_RUNNER_TOKEN,
        db_pool_min=1,
        db_pool_max=25,
        **settings_overrides,
    )


@pytest.fixture
async def ctx(settings: Settings, db_url: str, clock: Clock) -> AsyncIterator[AppContext]:
    db = Database(db_url, min_size=1, max_size=settings.db_pool_max)
    await db.open()
    context = AppContext(
        settings=settings,
        db=db,
        backend=PostgresBackend(db, clock),
        secrets=SecretBox(settings.secret_key_bytes),
        clock=clock,
    )
    try:
        yield context
    finally:
        await db.close()


@pytest.fixture
async def client(ctx: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class Actor:
    """A caller with a token; ``headers`` go on every request it makes."""

    name: str
    token: str
    tenant_id: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def admin(ctx: AppContext) -> Actor:
    _, token = await tokens.create(ctx.db, admin=True)
    return Actor("admin", token, None)


@pytest.fixture
async def alice(ctx: AppContext) -> Actor:
    _, token = await tokens.create(ctx.db, tenant_id="acme", user_id="alice")
    return Actor("alice", token, "acme")


@pytest.fixture
async def rita(ctx: AppContext) -> Actor:
    _, token = await tokens.create(
        ctx.db, tenant_id="acme", user_id="rita", permissions=["extension:read"]
    )
    return Actor("rita", token, "acme")


@pytest.fixture
async def charlie(ctx: AppContext) -> Actor:
    _, token = await tokens.create(ctx.db, tenant_id="globex", user_id="charlie")
    return Actor("charlie", token, "globex")


def manifest(
    name: str = "com.example.crm-sync",
    version: str = "1.0.0",
    endpoints: list[dict[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid manifest; endpoints default to a schedulable POST /sync and a few others."""
    return {
        "name": name,
        "publisher": "Example Inc.",
        "version": version,
        "description": "Keeps CRM contacts in sync",
        "capabilities": ["cap:http.fetch", "cap:secrets.get"],
        "runtime": {"upstream_url": "http://127.0.0.1:9100"},
        "api": {
            "endpoints": endpoints
            if endpoints is not None
            else [
                {"method": "POST", "path": "/sync", "handler": "handlers/sync"},
                {"method": "GET", "path": "/report", "handler": "handlers/report"},
                {"method": "GET", "path": "/contacts/:id", "handler": "handlers/contact"},
                {"method": "DELETE", "path": "/cache", "handler": "handlers/cache"},
            ]
        },
        **extra,
    }


@pytest.fixture
def publish(client: httpx.AsyncClient, admin: Actor) -> Callable[..., Any]:
    """``await publish(**manifest_kwargs)`` -> the publish response body."""

    async def _publish(**kwargs: Any) -> dict[str, Any]:
        r = await client.post(
            "/api/v1/registry/versions", json=manifest(**kwargs), headers=admin.headers
        )
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        return body

    return _publish


@pytest.fixture
def install(client: httpx.AsyncClient, publish: Callable[..., Any]) -> Callable[..., Any]:
    """``await install(actor, **manifest_kwargs)`` -> (published, install body)."""

    async def _install(actor: Actor, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        published = await publish(**kwargs)
        r = await client.post(
            f"/api/v1/extensions/{published['extension_id']}/install",
            json={"version_id": published["version_id"]},
            headers=actor.headers,
        )
        assert r.status_code == 201, r.text
        return published, r.json()

    return _install


def endpoint_id(published: dict[str, Any], method: str, path: str) -> str:
    for e in published["endpoints"]:
        if e["method"] == method and e["path"] == path:
            return str(e["id"])
    raise AssertionError(f"no endpoint {method} {path}")
