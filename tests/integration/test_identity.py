"""Identity over real HTTP (SPEC §4): UI sessions end on the server, token expiry and the admin
token API, host-platform JWTs (HS256 secret and a real JWKS server) and ``/ui/sso``.

The service is ``extsched serve``'s app (API + UI, no worker) under uvicorn on a real port, on
a fresh PostgreSQL database; the JWKS is served by a second real HTTP server. Actors as
elsewhere: ``admin`` (platform), ``alice`` (tenant ``acme``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from extsched.config import Settings
from extsched.domain.timing import parse_duration
from extsched.server import Roles, create_service_app
from extsched.services import tokens
from extsched.services.context import AppContext
from tests.conftest import Actor, marked_settings
from tests.helpers.http_server import run_asgi_server

HS_SECRET = "platform-shared-secret-" + "x" * 24
ISSUER = "https://platform.example"
AUDIENCE = "extsched"
POLL_SECONDS = 0.02


# ----------------------------------------------------------------------------- a JWKS server
@dataclass
class Jwks:
    """A real JWKS endpoint whose keys, availability and request count the test controls."""

    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    down: bool = False
    requests: int = 0
    url: str = ""

    def add(self, kid: str, kind: str) -> Any:
        private: Any
        if kind == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        self.keys[kid] = private
        return private

    def document(self) -> dict[str, Any]:
        out = []
        for kid, private in self.keys.items():
            public = private.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
            elif isinstance(public, ec.EllipticCurvePublicKey):
                jwk = ECAlgorithm.to_jwk(public, as_dict=True)
            else:
                jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
            out.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": out}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        status, body = (503, b"down") if self.down else (200, json.dumps(self.document()).encode())
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    server.add("rsa-1", "RS256")
    server.add("ec-1", "ES256")
    server.add("ed-1", "EdDSA")
    with run_asgi_server(server, lifespan="off") as url:
        server.url = f"{url}/.well-known/jwks.json"
        yield server


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, jwks: Jwks) -> dict[str, Any]:
    return {
        "jwt_secret": HS_SECRET,
        "jwt_jwks_url": jwks.url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_jwks_min_refetch_seconds": 0,
        **marked_settings(request),
    }


@pytest.fixture
def service(settings: Settings, db_url: str) -> Iterator[str]:
    """The API + UI of ``extsched serve`` on a real port; yields its base URL."""
    app = create_service_app(settings, db_url, Roles(api=True, worker=False))
    with run_asgi_server(app, lifespan="on") as url:
        yield url


@pytest.fixture
async def http(service: str) -> Any:
    async with httpx.AsyncClient(base_url=service, timeout=10) as c:
        yield c


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "pat",
        "tenant": "platco",
        "perms": ["extension:read", "extension:write"],
        "tz": "Europe/Paris",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(jwks: Jwks, kid: str, payload: dict[str, Any]) -> str:
    alg = {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}[kid.split("-")[0]]
    return jwt.encode(payload, jwks.keys[kid], algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ----------------------------------------------------------------------------- UI sessions
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def ui_sign_in(http: httpx.AsyncClient, token: str) -> str:
    """Sign in with the demo-style link; returns the page's CSRF token."""
    r = await http.get(f"/ui/login?token={token}")
    assert r.status_code == 303 and r.headers["location"] == "/ui", r.text
    page = await http.get("/ui")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found, "no CSRF field on /ui"
    return found.group(1)


async def test_it_refuses_a_captured_cookie_replayed_after_sign_out(
    http: httpx.AsyncClient, ctx: AppContext, alice: Actor
) -> None:
    csrf = await ui_sign_in(http, alice.token)
    captured = dict(http.cookies)
    r = await http.post("/ui/logout", data={"csrf_token": csrf})
    assert r.status_code == 303

    http.cookies.clear()
    for name, value in captured.items():
        http.cookies.set(name, value, path="/ui")
    page = await http.get("/ui")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    write = await http.post(
        "/ui/extensions/00000000-0000-0000-0000-000000000000/disable",
        data={"csrf_token": csrf},
    )
    assert write.status_code in (303, 401)
    assert write.headers.get("location", "").startswith("/ui/login")


async def test_it_ends_the_session_when_the_admin_api_revokes_the_token(
    http: httpx.AsyncClient, admin: Actor
) -> None:
    made = await http.post(
        "/api/v1/admin/tokens",
        json={"tenant_id": "acme", "user": "bob"},
        headers=bearer(admin.token),
    )
    assert made.status_code == 201, made.text
    await ui_sign_in(http, made.json()["token"])
    r = await http.delete(f"/api/v1/admin/tokens/{made.json()['id']}", headers=bearer(admin.token))
    assert r.status_code == 204
    page = await http.get("/ui")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    api = await http.get("/api/v1/extensions", headers=bearer(made.json()["token"]))
    assert api.status_code == 401


async def test_it_ends_api_access_and_sessions_when_the_token_expires(
    http: httpx.AsyncClient, admin: Actor, db_url: str
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = await http.post(
        "/api/v1/admin/tokens",
        json={"tenant_id": "acme", "user": "eve", "expires_at": soon},
        headers=bearer(admin.token),
    )
    assert made.status_code == 201 and made.json()["expires_at"].endswith("Z")
    token = made.json()["token"]
    await ui_sign_in(http, token)
    assert (await http.get("/api/v1/extensions", headers=bearer(token))).status_code == 200

    # The hour passes (the token's expiry moves to a moment ago).
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_token SET expires_at = now() - interval '1 second' WHERE id = %s",
            (made.json()["id"],),
        )
    r = await http.get("/api/v1/extensions", headers=bearer(token))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "expired" in r.json()["error"]["message"]
    page = await http.get("/ui")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")


# ----------------------------------------------------------------------------- token API
async def test_admins_create_list_and_revoke_tokens_through_the_api(
    http: httpx.AsyncClient, admin: Actor, alice: Actor, db_url: str
) -> None:
    r = await http.post(
        "/api/v1/admin/tokens",
        json={"tenant_id": "newco", "user": "nina", "perms": ["extension:read"], "timezone": "UTC"},
        headers=bearer(admin.token),
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == {"id", "token", "expires_at"} and made["expires_at"] is None
    # The new tenant exists, and the token reads but cannot write.
    assert (await http.get("/api/v1/extensions", headers=bearer(made["token"]))).status_code == 200
    ext = "00000000-0000-0000-0000-000000000000"
    w = await http.post(f"/api/v1/extensions/{ext}/disable", headers=bearer(made["token"]))
    assert w.status_code == 403

    listed = await http.get("/api/v1/admin/tokens?tenant=newco", headers=bearer(admin.token))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["id"] == made["id"] and item["user"] == "nina"
    assert item["perms"] == ["extension:read"] and made["token"] not in listed.text
    assert set(item) == {
        "id",
        "tenant_id",
        "user",
        "perms",
        "created_at",
        "expires_at",
        "last_used_at",
    }

    admin_made = await http.post(
        "/api/v1/admin/tokens", json={"admin": True}, headers=bearer(admin.token)
    )
    assert admin_made.status_code == 201
    assert (
        await http.get("/api/v1/registry/extensions", headers=bearer(admin_made.json()["token"]))
    ).status_code == 200

    assert (
        await http.delete(f"/api/v1/admin/tokens/{made['id']}", headers=bearer(admin.token))
    ).status_code == 204
    assert (await http.get("/api/v1/extensions", headers=bearer(made["token"]))).status_code == 401
    again = await http.delete(f"/api/v1/admin/tokens/{made['id']}", headers=bearer(admin.token))
    assert again.status_code == 404
    listed = await http.get("/api/v1/admin/tokens?tenant=newco", headers=bearer(admin.token))
    assert listed.json()["items"] == []

    # Creation and revocation of a tenant's token are in the tenant's audit log.
    with psycopg.connect(db_url) as conn:
        actions = conn.execute(
            "SELECT action, actor_type FROM extension_audit_log "
            "WHERE tenant_id = 'newco' AND target_id = %s ORDER BY id",
            (made["id"],),
        ).fetchall()
    assert actions == [("token.create", "admin"), ("token.revoke", "admin")]

    # Only platform admins manage tokens.
    for method, path in [
        ("GET", "/api/v1/admin/tokens"),
        ("POST", "/api/v1/admin/tokens"),
        ("DELETE", f"/api/v1/admin/tokens/{made['id']}"),
    ]:
        r = await http.request(method, path, json={}, headers=bearer(alice.token))
        assert r.status_code == 403, (method, path)


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"tenant_id": "acme", "user": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"tenant_id": "acme", "user": "x", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"tenant_id": "a b", "user": "x"}, "tenant_id"),
        ({"tenant_id": "acme", "user": "x", "perms": ["platform:admin"]}, "perms"),
        ({"tenant_id": "acme", "user": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"admin": True, "tenant_id": "acme"}, "admin"),
    ],
)
async def test_it_refuses_bad_token_requests_with_field_errors(
    http: httpx.AsyncClient, admin: Actor, body: dict[str, Any], field_name: str
) -> None:
    r = await http.post("/api/v1/admin/tokens", json=body, headers=bearer(admin.token))
    assert r.status_code == 422, r.text
    assert field_name in r.json()["error"]["field_errors"]


async def test_it_records_last_use_at_most_once_a_minute(
    http: httpx.AsyncClient, ctx: AppContext, alice: Actor, db_url: str
) -> None:
    def last_used() -> datetime | None:
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "SELECT last_used_at FROM api_token WHERE token_hash = %s",
                (tokens.hash_token(alice.token),),
            ).fetchone()
        assert row is not None
        value: datetime | None = row[0]
        return value

    assert last_used() is None
    assert (await http.get("/api/v1/extensions", headers=bearer(alice.token))).status_code == 200
    deadline = time.monotonic() + 10
    while (first := last_used()) is None:  # written in the background: poll for it
        assert time.monotonic() < deadline, "last_used_at never written"
        await _yield()
    for _ in range(5):
        assert (
            await http.get("/api/v1/extensions", headers=bearer(alice.token))
        ).status_code == 200
    assert last_used() == first


async def _yield() -> None:
    await asyncio.sleep(POLL_SECONDS)  # polling interval while waiting for a background write


def test_it_parses_token_lifetimes() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration(" 2W ") == timedelta(weeks=2)
    for bad in ("", "d", "30", "-1d", "0d", "1.5d", "30x", "\u0661d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ----------------------------------------------------------------------------- JWTs
@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
async def test_it_accepts_platform_jwts_signed_with_jwks_keys(
    http: httpx.AsyncClient, jwks: Jwks, db_url: str, kid: str
) -> None:
    r = await http.get("/api/v1/extensions", headers=bearer(sign(jwks, kid, claims())))
    assert r.status_code == 200, r.text
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT 1 FROM tenant WHERE tenant_id = 'platco'").fetchone()


async def test_it_accepts_hs256_jwts_with_the_shared_secret(http: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), HS_SECRET, algorithm="HS256")
    assert (await http.get("/api/v1/extensions", headers=bearer(token))).status_code == 200
    admin = jwt.encode(claims(perms=["platform:admin"], tenant=None), HS_SECRET, algorithm="HS256")
    assert (await http.get("/api/v1/registry/extensions", headers=bearer(admin))).status_code == 200
    reader = jwt.encode(claims(perms=["extension:read"]), HS_SECRET, algorithm="HS256")
    ext = "00000000-0000-0000-0000-000000000000"
    w = await http.post(f"/api/v1/extensions/{ext}/disable", headers=bearer(reader))
    assert w.status_code == 403


def _none_alg(payload: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def _hs_with_rsa_public_key(jwks: Jwks, payload: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC keyed with the (public) RSA key's PEM."""
    pem = (
        jwks.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps(payload).encode())
    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def _forged(jwks: Jwks, payload: dict[str, Any]) -> str:
    """Signed by a key that is not in the JWKS, under a kid that is."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, other, algorithm="RS256", headers={"kid": "rsa-1"})


REFUSALS: dict[str, Any] = {
    "bad signature": lambda j: _forged(j, claims()),
    "wrong issuer": lambda j: sign(j, "rsa-1", claims(iss="https://evil.example")),
    "wrong audience": lambda j: sign(j, "rsa-1", claims(aud="someone-else")),
    "expired past leeway": lambda j: sign(j, "rsa-1", claims(exp=int(time.time()) - 120)),
    "missing exp": lambda j: sign(j, "rsa-1", claims(exp=None)),
    "missing sub": lambda j: sign(j, "rsa-1", claims(sub=None)),
    "missing perms": lambda j: sign(j, "rsa-1", claims(perms=None)),
    "missing tenant": lambda j: sign(j, "rsa-1", claims(tenant=None)),
    "unknown permission": lambda j: sign(j, "rsa-1", claims(perms=["root"])),
    "bad tz": lambda j: sign(j, "rsa-1", claims(tz="Mars/Olympus")),
    "unknown kid": lambda j: jwt.encode(
        claims(), j.keys["rsa-1"], algorithm="RS256", headers={"kid": "nope"}
    ),
    "alg none": lambda j: _none_alg(claims()),
    "HS/RS confusion": lambda j: _hs_with_rsa_public_key(j, claims()),
    "HS256 with a wrong secret": lambda j: jwt.encode(claims(), "y" * 40, algorithm="HS256"),
    "RS256 header on an EC key": lambda j: jwt.encode(
        claims(), j.keys["rsa-1"], algorithm="RS256", headers={"kid": "ec-1"}
    ),
    "garbage": lambda j: "eyJhbGciOi.not.ajwt",
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_it_refuses_bad_jwts(http: httpx.AsyncClient, jwks: Jwks, case: str) -> None:
    r = await http.get("/api/v1/extensions", headers=bearer(REFUSALS[case](jwks)))
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_it_allows_sixty_seconds_of_clock_skew(http: httpx.AsyncClient, jwks: Jwks) -> None:
    late = sign(jwks, "rsa-1", claims(exp=int(time.time()) - 30))
    assert (await http.get("/api/v1/extensions", headers=bearer(late))).status_code == 200


async def test_it_refetches_the_jwks_for_a_new_kid_and_survives_its_outage(
    http: httpx.AsyncClient, jwks: Jwks
) -> None:
    known = sign(jwks, "rsa-1", claims())
    assert (await http.get("/api/v1/extensions", headers=bearer(known))).status_code == 200
    fetched = jwks.requests

    # The platform rotates: a new key appears and is found by one refetch.
    jwks.add("rsa-2", "RS256")
    rotated = jwt.encode(claims(), jwks.keys["rsa-2"], algorithm="RS256", headers={"kid": "rsa-2"})
    assert (await http.get("/api/v1/extensions", headers=bearer(rotated))).status_code == 200
    assert jwks.requests == fetched + 1

    # The JWKS server goes down: known keys still verify, without waiting for it.
    jwks.down = True
    for _ in range(3):
        started = time.monotonic()
        r = await http.get("/api/v1/extensions", headers=bearer(sign(jwks, "rsa-1", claims())))
        assert r.status_code == 200 and time.monotonic() - started < 1.0
    stranger = jwt.encode(claims(), jwks.keys["rsa-1"], algorithm="RS256", headers={"kid": "x9"})
    assert (await http.get("/api/v1/extensions", headers=bearer(stranger))).status_code == 401


# ----------------------------------------------------------------------------- SSO
def sso_jwt(jwks: Jwks, **overrides: Any) -> str:
    return sign(jwks, "ec-1", claims(exp=int(time.time()) + 300, **overrides))


async def test_it_signs_a_browser_in_with_a_single_use_jwt(
    http: httpx.AsyncClient, jwks: Jwks
) -> None:
    token = sso_jwt(jwks)
    r = await http.get(f"/ui/sso?jwt={token}")
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    assert r.headers["referrer-policy"] == "no-referrer"
    page = await http.get("/ui")
    assert page.status_code == 200 and "pat" in page.text and token not in page.text

    http.cookies.clear()
    replay = await http.get(f"/ui/sso?jwt={token}")
    assert replay.status_code == 401 and "already used" in replay.text
    assert (await http.get("/ui")).status_code == 303


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) + 3600}, "within 10 minutes"),
        ({"jti": None}, "jti"),
        ({"perms": ["platform:admin"], "tenant": None}, "tenant users"),
        ({"aud": "someone-else"}, "audience"),
    ],
)
async def test_it_refuses_sso_jwts_that_are_long_lived_reusable_or_not_a_tenants(
    http: httpx.AsyncClient, jwks: Jwks, overrides: dict[str, Any], message: str
) -> None:
    token = sign(jwks, "ec-1", claims(**overrides))
    r = await http.get(f"/ui/sso?jwt={token}")
    assert r.status_code in (401, 403) and message in r.text
    assert (await http.get("/ui")).status_code == 303
