"""Fixtures for the temporal backend tests: a real Temporal dev server (one per test process),
the backend on it, a fake Runner (a real HTTP server) and a schedule factory.

The server fixture lives in ``tests/temporal_server.py``; importing it here registers it for
this folder only (``pytest_plugins`` is refused in a conftest below the rootdir).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError

from extsched.jobs.backend import HandleInfo
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.services.context import AppContext
from tests.conftest import Actor, endpoint_id, marked_settings
from tests.fake_runner import FakeRunner, fake_runner
from tests.temporal_server import TemporalServer, temporal_server

__all__ = ["temporal_server"]


@pytest.fixture
def runner() -> Iterator[FakeRunner]:
    with fake_runner() as r:
        yield r


@pytest.fixture
def settings_overrides(
    request: pytest.FixtureRequest, temporal_server: TemporalServer, runner: FakeRunner
) -> dict[str, Any]:
    return {
        "temporal_address": temporal_server.address,
        "temporal_namespace": temporal_server.namespace,
        # A task queue per test: no worker of another test picks up this test's workflows.
        "temporal_task_queue": f"extsched-test-{uuid.uuid4().hex[:12]}",
        "runner_url": runner.url,
        "runner_timeout_ms": 3000,
        "lease_grace_seconds": 2.0,
        "retry_base_seconds": 0.5,
        "reconcile_interval_seconds": 0,
        **marked_settings(request),
    }


@contextlib.asynccontextmanager
async def temporal_backend(ctx: AppContext) -> AsyncIterator[TemporalBackend]:
    """The temporal backend on the test server, installed as the service's backend.

    At the end it deletes every schedule on the server: tests of one process run one at a
    time and each process has its own server, so nothing else is using them.
    """
    backend = TemporalBackend(ctx.settings, ctx.db, ctx.clock)
    ctx.backend = backend
    try:
        yield backend
    finally:
        client = await backend.client()
        async for entry in await client.list_schedules():
            with contextlib.suppress(RPCError):  # deleted meanwhile
                await client.get_schedule_handle(entry.id).delete()
        await backend.close()


@pytest.fixture
async def temporal(ctx: AppContext) -> AsyncIterator[TemporalBackend]:
    async with temporal_backend(ctx) as backend:
        yield backend


@pytest.fixture(params=["postgres", "temporal"])
async def backend(request: pytest.FixtureRequest, ctx: AppContext) -> AsyncIterator[str]:
    """Runs a test once per job backend; yields the backend's name."""
    if request.param == "postgres":
        yield "postgres"
        return
    async with temporal_backend(ctx):
        yield "temporal"


async def handles_of(ctx: AppContext, tenant_id: str, install_id: str) -> dict[str, HandleInfo]:
    """The backend's handles of one install, by schedule id."""
    async with ctx.db.connection() as conn:
        listed = await ctx.backend.list_handles(conn, tenant_id)
    return {str(h.schedule_id): h for h in listed if str(h.install_id) == install_id}


@pytest.fixture
async def ext(client: httpx.AsyncClient, alice: Actor, install: Any) -> dict[str, Any]:
    """alice's installed extension (tenant acme): publish + install response bodies."""
    published, installed = await install(
        alice,
        endpoints=[
            {"method": "POST", "path": "/sync", "handler": "h"},
            {"method": "POST", "path": "/flaky", "handler": "h"},
        ],
    )
    return {**published, "install_id": installed["install_id"]}


@pytest.fixture
def sched(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await sched(path='/sync', **fields)`` -> a schedule of alice's, created via the API."""

    async def _create(path: str = "/sync", **fields: Any) -> dict[str, Any]:
        body = {
            "endpoint_id": endpoint_id(ext, "POST", path),
            "cron": "0 9 * * *",
            "timezone": "UTC",
            **fields,
        }
        r = await client.post(
            f"/api/v1/extensions/{ext['extension_id']}/schedules", json=body, headers=alice.headers
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    return _create
