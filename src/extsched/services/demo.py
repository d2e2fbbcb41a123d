"""Sets up the demo: extension (served by the demo upstream), tenant, user token, schedule.

Idempotent: running ``extsched demo`` again reuses what exists.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass

from extsched.config import write_private
from extsched.domain.auth import Actor
from extsched.errors import AlreadyInstalled, VersionExists
from extsched.runner.demo import demo_manifest
from extsched.services import installs, registry, schedules, tokens
from extsched.services.context import AppContext
from extsched.services.installs import InstallSettings
from extsched.services.schedules import ScheduleInput

DEMO_TENANT = "demo"
DEMO_USER = "demo-user"
DEMO_SCHEDULE = "Sync every 5 minutes"


@dataclass(frozen=True)
class DemoInfo:
    extension_id: uuid.UUID
    schedule_id: uuid.UUID
    token: str


async def _publish(ctx: AppContext, upstream: str, version: str) -> registry.Published:
    try:
        return await registry.publish(ctx.db, demo_manifest(upstream, version))
    except VersionExists:
        # Published before with another address (another port): tag this address as build
        # metadata, which keeps the version's precedence.
        tag = re.sub(r"[^0-9A-Za-z-]+", "-", upstream.split("://", 1)[-1]).strip("-")
        return await registry.publish(ctx.db, demo_manifest(upstream, f"{version}+{tag}"))


async def _token(ctx: AppContext) -> str:
    path = ctx.settings.home / "demo-user.token"
    if path.exists():
        token = path.read_text().strip()
        principal = await tokens.authenticate(ctx.db, token, record_use=False)
        # A token from an older demo may name another user; the demo's user is DEMO_USER.
        if principal is not None and principal.user_id == DEMO_USER:
            return token
    _, token = await tokens.create(
        ctx.db, tenant_id=DEMO_TENANT, user_id=DEMO_USER, timezone="Europe/Paris"
    )
    write_private(path, token)
    return token


async def setup(ctx: AppContext, base_url: str) -> DemoInfo:
    upstream = f"{base_url}/demo"
    v1 = await _publish(ctx, upstream, "1.0.0")
    await _publish(ctx, upstream, "2.0.0")
    token = await _token(ctx)
    principal = await tokens.authenticate(ctx.db, token, record_use=False)
    assert principal is not None
    actor = Actor.system("demo")
    with contextlib.suppress(AlreadyInstalled):
        await installs.install(
            ctx,
            actor,
            DEMO_TENANT,
            v1.extension_id,
            v1.version_id,
            InstallSettings(config={"region": "eu-west"}, secrets={"DEMO_API_KEY": "demo-secret"}),
        )
    existing = await schedules.list_for_extension(ctx, principal, v1.extension_id)
    for s in existing:
        if s.name == DEMO_SCHEDULE:
            return DemoInfo(v1.extension_id, s.id, token)
    install = await installs.get_install(ctx, DEMO_TENANT, v1.extension_id)
    endpoint = next(
        e
        for e in await _endpoints(ctx, install.version_id)
        if (e.method, e.path) == ("POST", "/sync")
    )
    created = await schedules.create(
        ctx,
        principal,
        v1.extension_id,
        ScheduleInput(
            name=DEMO_SCHEDULE,
            endpoint_id=endpoint.id,
            cron="*/5 * * * *",
            payload={"source": "demo", "full": False},
        ),
    )
    return DemoInfo(v1.extension_id, created.id, token)


async def _endpoints(ctx: AppContext, version_id: uuid.UUID) -> list[registry.Endpoint]:
    async with ctx.db.connection() as conn:
        return await registry.endpoints_for_version(ctx.db, conn, version_id)
