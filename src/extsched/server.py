"""The service process: API (+UI), and for ``serve`` the reference Runner and demo upstream.

``serve`` listens on one port: the API at ``/api/v1``, the reference Runner at ``/runner``
and the demo upstream at ``/demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from extsched.api.app import create_api
from extsched.config import Settings, load_settings
from extsched.crypto import install_aad, opened_envelope
from extsched.runner.client import RunnerClient
from extsched.runner.demo import create_demo_app
from extsched.runner.server import SecretsOpener, SigningSecretsLookup, create_runner_app
from extsched.runtime import open_context, tune_gc_after_start
from extsched.services import registry, signing
from extsched.services.context import AppContext
from extsched.services.execution import InvocationHandler
from extsched.web import mount_ui
from extsched.workers.postgres import PostgresWorker
from extsched.workers.processes import ExecutorProcesses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Roles:
    """Which parts run in this process."""

    api: bool = True
    runner: bool = False
    demo_upstream: bool = False
    worker: bool = False


def create_app(ctx: AppContext | None) -> FastAPI:
    """The API with the web UI (``/ui``): what ``api`` and ``serve`` listen with."""
    app = create_api(ctx)
    mount_ui(app)
    return app


def runner_body_cap(client_cap: int) -> int:
    """The largest upstream body whose Runner response still fits the client's cap."""
    return max(1024, client_cap * 3 // 4 - 4096)


@contextlib.asynccontextmanager
async def running_worker(
    ctx: AppContext, *, scheduler: bool = True, executor: bool = True
) -> AsyncIterator[PostgresWorker | None]:
    """Run the job backend's worker loops beside the caller until it exits. Without
    ``executor`` (its executors run in processes of their own), the postgres backend still
    runs the scheduler, reaper and maintenance loops here; on Temporal the worker is the
    executor, so nothing runs here."""
    if ctx.backend.name == "temporal":
        if not executor:
            yield None
            return
        # Imported only when chosen: temporalio and the worker are heavy to load.
        from extsched.workers.temporal.worker import run_temporal_worker

        async with run_temporal_worker(ctx):
            yield None
        return
    s = ctx.settings
    assert s.runner_url is not None, "the runner URL is resolved before the worker starts"
    client = RunnerClient.for_settings(s)
    worker = PostgresWorker(
        ctx,
        InvocationHandler(ctx, client),
        scheduler=scheduler,
        executor=executor,
        stop_grace_seconds=s.worker_stop_grace_seconds,
    )
    task = asyncio.create_task(worker.run(), name="extsched worker")
    try:
        yield worker
    finally:
        worker.stop()
        await task
        await client.aclose()


def _runner_lookups(
    holder: dict[str, AppContext],
) -> tuple[SigningSecretsLookup, SecretsOpener]:
    """How the reference Runner learns an install's secrets: the signing secrets from the
    database it already reads manifests from, the install's secrets from ``secret_envelope``
    (both sealed with the service key, which this process holds)."""

    async def signing_secrets_for(tenant_id: str, install_id: str) -> list[str]:
        try:
            parsed = uuid.UUID(install_id)
        except ValueError:
            return []
        return await signing.active_for_signing(holder["ctx"], tenant_id, parsed)

    def open_secrets(envelope: dict[str, Any], tenant_id: str, install_id: str) -> dict[str, str]:
        box = holder["ctx"].secrets
        return opened_envelope(box, envelope, aad=install_aad(tenant_id, install_id))

    return signing_secrets_for, open_secrets


def create_service_app(
    settings: Settings,
    url: str,
    roles: Roles,
    executors: ExecutorProcesses | None = None,
    *,
    tune_gc: bool = False,
) -> FastAPI:
    """The ASGI app for ``serve`` / ``api``; the lifespan opens the pool (and the worker).
    With ``executors`` the worker's executor runs in those child processes instead. A process
    that serves only this app passes ``tune_gc`` (``runtime.tune_gc_after_start`` once the
    pool is open; not for an app embedded in a test process)."""
    holder: dict[str, AppContext] = {}
    upstream = httpx.AsyncClient(timeout=None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_context(settings, url) as ctx:
            holder["ctx"] = ctx
            app.state.ctx = ctx
            if tune_gc:
                tune_gc_after_start()
            try:
                if roles.worker and executors is not None:
                    async with executors.running(), running_worker(ctx, executor=False):
                        yield
                elif roles.worker:
                    async with running_worker(ctx):
                        yield
                else:
                    yield
            finally:
                await upstream.aclose()

    app = create_app(None)
    app.router.lifespan_context = lifespan

    if roles.runner:

        async def resolve(content_hash: str) -> dict[str, object] | None:
            return await registry.manifest_by_content_hash(holder["ctx"].db, content_hash)

        app.mount(
            "/runner",
            create_runner_app(
                resolve,
                *_runner_lookups(holder),
                token=settings.runner_token_value,
                # The Runner base64-encodes the upstream body (about 4/3 larger), so its cap
                # leaves room for the client's cap on the whole response.
                max_response_bytes=runner_body_cap(settings.runner_max_response_bytes),
                upstream_client=upstream,
            ),
        )
    if roles.demo_upstream:
        app.mount("/demo", create_demo_app())
    return app


def create_runner_process_app(settings: Settings, url: str) -> FastAPI:
    """``extsched runner``: the reference Runner at ``/v1/execute`` plus the demo upstream."""

    holder: dict[str, AppContext] = {}
    upstream = httpx.AsyncClient(timeout=None)

    async def resolve(content_hash: str) -> dict[str, object] | None:
        return await registry.manifest_by_content_hash(holder["ctx"].db, content_hash)

    app = create_runner_app(
        resolve,
        *_runner_lookups(holder),
        token=settings.runner_token_value,
        max_response_bytes=runner_body_cap(settings.runner_max_response_bytes),
        upstream_client=upstream,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with open_context(settings, url) as ctx:
            holder["ctx"] = ctx
            try:
                yield
            finally:
                await upstream.aclose()

    app.router.lifespan_context = lifespan
    app.mount("/demo", create_demo_app())
    return app


def api_app_from_env() -> FastAPI:
    """Factory for ``extsched api --workers N``: each uvicorn worker process builds its own app
    from the environment (the parent has already resolved and migrated the database)."""

    settings = load_settings()
    assert settings.database_url, "the parent process sets EXTSCHED_DATABASE_URL"
    return create_service_app(settings, settings.database_url, Roles(api=True), tune_gc=True)
