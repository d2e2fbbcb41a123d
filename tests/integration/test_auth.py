"""Authentication and permissions on every route (SPEC §4): 401, 403, and 404 across tenants."""

from __future__ import annotations

import uuid

import httpx
import pytest

from extsched.services import tokens
from extsched.services.context import AppContext
from tests.conftest import Actor

ZERO = "00000000-0000-0000-0000-000000000000"

TENANT_READ = [
    ("GET", "/api/v1/extensions"),
    ("GET", f"/api/v1/extensions/{ZERO}"),
    ("GET", f"/api/v1/extensions/{ZERO}/endpoints"),
    ("GET", f"/api/v1/extensions/{ZERO}/schedules"),
    ("GET", f"/api/v1/schedules/{ZERO}"),
    ("GET", f"/api/v1/extensions/{ZERO}/audit"),
]
TENANT_WRITE = [
    ("POST", f"/api/v1/extensions/{ZERO}/install", {"version_id": ZERO}),
    ("PATCH", f"/api/v1/extensions/{ZERO}", {}),
    ("POST", f"/api/v1/extensions/{ZERO}/disable", None),
    ("POST", f"/api/v1/extensions/{ZERO}/enable", None),
    ("DELETE", f"/api/v1/extensions/{ZERO}", None),
    ("POST", f"/api/v1/extensions/{ZERO}/schedules", {"endpoint_id": ZERO, "cron": "0 9 * * *"}),
    ("PATCH", f"/api/v1/schedules/{ZERO}", {}),
    ("DELETE", f"/api/v1/schedules/{ZERO}", None),
    ("POST", f"/api/v1/extensions/{ZERO}/schedules/disable-all", None),
]
ADMIN = [
    ("POST", "/api/v1/registry/versions", {}),
    ("GET", "/api/v1/registry/extensions", None),
    ("DELETE", f"/api/v1/registry/versions/{ZERO}", None),
    ("PUT", "/api/v1/admin/tenants/acme", {}),
]
ALL = [(m, p, None) for m, p in TENANT_READ] + TENANT_WRITE + ADMIN


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize(("method", "path", "body"), ALL)
async def test_it_refuses_calls_without_a_token(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    r = await _call(client, method, path, body)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_it_refuses_bad_revoked_and_malformed_tokens(
    client: httpx.AsyncClient, ctx: AppContext, alice: Actor
) -> None:
    for header in ("Bearer nope", "Basic abc", "Bearer ", "Bearer exs_" + "x" * 43, alice.token):
        r = await client.get("/api/v1/extensions", headers={"Authorization": header})
        assert r.status_code == 401, header
    token_id, token = await tokens.create(ctx.db, tenant_id="acme", user_id="temp")
    h = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/extensions", headers=h)).status_code == 200
    assert await tokens.revoke(ctx.db, token_id)
    assert (await client.get("/api/v1/extensions", headers=h)).status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), TENANT_WRITE + ADMIN)
async def test_it_refuses_the_read_only_user_every_change(
    client: httpx.AsyncClient, rita: Actor, method: str, path: str, body: object
) -> None:
    r = await _call(client, method, path, body, rita.headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN)
async def test_it_refuses_tenant_admins_the_platform_routes(
    client: httpx.AsyncClient, alice: Actor, method: str, path: str, body: object
) -> None:
    r = await _call(client, method, path, body, alice.headers)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body"), [(m, p, None) for m, p in TENANT_READ] + TENANT_WRITE
)
async def test_it_refuses_platform_admins_the_tenant_routes(
    client: httpx.AsyncClient, admin: Actor, method: str, path: str, body: object
) -> None:
    # A platform admin has no tenant: tenant routes are not theirs.
    r = await _call(client, method, path, body, admin.headers)
    assert r.status_code == 403


async def test_it_hides_another_tenants_install(
    client: httpx.AsyncClient,
    install,
    alice: Actor,
    charlie: Actor,  # type: ignore[no-untyped-def]
) -> None:
    published, _ = await install(alice)
    ext = published["extension_id"]
    for method, path, body in [
        ("GET", f"/api/v1/extensions/{ext}", None),
        ("GET", f"/api/v1/extensions/{ext}/endpoints", None),
        ("PATCH", f"/api/v1/extensions/{ext}", {"config": {"a": "b"}}),
        ("POST", f"/api/v1/extensions/{ext}/disable", None),
        ("DELETE", f"/api/v1/extensions/{ext}", None),
    ]:
        r = await _call(client, method, path, body, charlie.headers)
        assert r.status_code == 404, (method, path)
        assert r.json()["error"]["code"] == "NOT_INSTALLED"
    listing = await client.get("/api/v1/extensions", headers=charlie.headers)
    assert listing.json() == {"items": []}
    # alice's install is untouched
    r = await client.get(f"/api/v1/extensions/{ext}", headers=alice.headers)
    assert r.json()["enabled"] is True and r.json()["config"] == {}


async def test_it_validates_token_creation(ctx: AppContext) -> None:
    from extsched.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as exc:
        await tokens.create(ctx.db, tenant_id="bad tenant!", user_id="u")
    assert exc.value.field_errors is not None and "tenant_id" in exc.value.field_errors
    with pytest.raises(ValidationFailed) as exc:
        await tokens.create(ctx.db, tenant_id="t", user_id="u", permissions=["platform:admin"])
    assert exc.value.field_errors is not None and "perms" in exc.value.field_errors
    with pytest.raises(ValidationFailed):
        await tokens.create(ctx.db, tenant_id="t", user_id="u", timezone="Mars/Olympus")
    token_id, token = await tokens.create(ctx.db, tenant_id="t", user_id="u")
    assert isinstance(token_id, uuid.UUID) and token.startswith("exs_")
    stored = await tokens.list_tokens(ctx.db, "t")
    assert [r.id for r in stored] == [token_id]
    assert token not in repr(stored)
