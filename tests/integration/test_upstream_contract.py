"""What an extension's upstream receives through the real reference Runner (SPEC §5
"signing-secret", §6): Standard Webhooks signatures verified with the published
``standardwebhooks`` package and the secret from the API (across a rotation), the context
headers, secrets only when granted, and an unreachable upstream retried as a Runner failure."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from extsched.config import Settings
from extsched.server import create_runner_process_app
from extsched.services.context import AppContext
from tests.conftest import Actor, Clock, endpoint_id, manifest
from tests.helpers.http_server import free_port, run_asgi_server
from tests.integration.test_execution import Harness


@dataclass
class Upstream:
    url: str
    requests: list[dict[str, Any]]


@dataclass
class RunnerUrl:
    url: str


def capture_app(requests: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/sync")
    async def sync(request: Request) -> Response:
        requests.append({"headers": dict(request.headers), "body": await request.body()})
        return Response('{"ok":true}', media_type="application/json")

    return app


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    requests: list[dict[str, Any]] = []
    with run_asgi_server(capture_app(requests)) as url:
        yield Upstream(url, requests)


@pytest.fixture
def runner(settings: Settings) -> Iterator[RunnerUrl]:
    """The reference Runner as ``extsched runner`` serves it (its own pool on the test DB)."""
    assert settings.database_url is not None
    with run_asgi_server(
        create_runner_process_app(settings, settings.database_url), lifespan="on"
    ) as url:
        yield RunnerUrl(url)


@pytest.fixture
async def harness(ctx: AppContext, clock: Clock, runner: RunnerUrl) -> AsyncIterator[Harness]:
    h = Harness(ctx, clock, runner)  # type: ignore[arg-type]
    yield h
    await h.client.aclose()


async def install_crm(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    upstream_url: str,
    *,
    providers: list[str] | None = None,
) -> tuple[str, str]:
    """Publish and install the CRM extension served by ``upstream_url``; a POST /sync schedule.
    Returns (extension_id, schedule_id)."""
    doc = manifest(runtime={"upstream_url": upstream_url})
    published = (
        await client.post("/api/v1/registry/versions", json=doc, headers=admin.headers)
    ).json()
    ext = published["extension_id"]
    body: dict[str, Any] = {
        "version_id": published["version_id"],
        "config": {"region": "eu-west"},
        "secrets": {"CRM_TOKEN": "hunter2"},
    }
    if providers is not None:
        body["providers"] = providers
    r = await client.post(f"/api/v1/extensions/{ext}/install", json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/extensions/{ext}/schedules",
        json={
            "endpoint_id": endpoint_id(published, "POST", "/sync"),
            "cron": "0 9 * * *",
            "timezone": "UTC",
            "payload": {"full": True},
        },
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    return ext, r.json()["id"]


async def run_now(client: httpx.AsyncClient, alice: Actor, harness: Harness, sid: str) -> str:
    r = await client.post(f"/api/v1/schedules/{sid}/run-now", headers=alice.headers)
    assert r.status_code == 202, r.text
    await harness.drain()
    run_id: str = r.json()["run_id"]
    return run_id


async def secrets_of(client: httpx.AsyncClient, alice: Actor, ext: str) -> list[str]:
    r = await client.get(f"/api/v1/extensions/{ext}/signing-secret", headers=alice.headers)
    assert r.status_code == 200, r.text
    return [s["secret"] for s in r.json()["secrets"]]


def verifies(seen: dict[str, Any], secret: str) -> bool:
    try:
        Webhook(secret).verify(seen["body"], seen["headers"])
    except WebhookVerificationError:
        return False
    return True


def unb64url(value: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(value))


class TestSigningSecretApi:
    async def test_it_returns_one_whsec_secret_per_install(
        self, client: httpx.AsyncClient, install: Any, alice: Actor, ctx: AppContext
    ) -> None:
        published, _ = await install(alice)
        url = f"/api/v1/extensions/{published['extension_id']}/signing-secret"
        r = await client.get(url, headers=alice.headers)
        assert r.status_code == 200
        [item] = r.json()["secrets"]
        assert item["secret"].startswith("whsec_")
        assert len(base64.b64decode(item["secret"].removeprefix("whsec_"))) == 24
        assert item["expires_at"] is None and item["created_at"].endswith("Z")
        assert (await client.get(url, headers=alice.headers)).json() == r.json()
        async with ctx.db.connection() as conn:
            cur = await conn.execute(
                "SELECT signing_secrets_encrypted AS blob FROM tenant_extension_install"
            )
            row = await cur.fetchone()
        assert row is not None
        assert item["secret"].encode() not in bytes(row["blob"])  # sealed at rest

    async def test_it_rotates_keeping_the_previous_secret_for_24_hours(
        self,
        client: httpx.AsyncClient,
        install: Any,
        alice: Actor,
        clock: Clock,
    ) -> None:
        published, _ = await install(alice)
        ext = published["extension_id"]
        [old] = await secrets_of(client, alice, ext)
        clock.set(clock().replace(microsecond=0))
        rotated_at = clock()
        r = await client.post(
            f"/api/v1/extensions/{ext}/signing-secret/rotate", headers=alice.headers
        )
        assert r.status_code == 200, r.text
        new, previous = r.json()["secrets"]
        assert new["secret"] != old and new["expires_at"] is None
        assert previous["secret"] == old
        expires = (rotated_at + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert previous["expires_at"] == expires
        assert await secrets_of(client, alice, ext) == [new["secret"], old]

        clock.set(rotated_at + timedelta(hours=24, seconds=1))
        assert await secrets_of(client, alice, ext) == [new["secret"]]

        audit = await client.get(f"/api/v1/extensions/{ext}/audit", headers=alice.headers)
        [entry] = [
            e for e in audit.json()["items"] if e["action"] == "install.signing_secret_rotate"
        ]
        assert entry["actor"] == {"type": "user", "id": "alice"}
        assert "whsec_" not in json.dumps(entry)

    async def test_it_needs_write_permission_and_hides_other_tenants(
        self,
        client: httpx.AsyncClient,
        install: Any,
        alice: Actor,
        rita: Actor,
        charlie: Actor,
    ) -> None:
        published, _ = await install(alice)
        base = f"/api/v1/extensions/{published['extension_id']}/signing-secret"
        for method, url in (("GET", base), ("POST", f"{base}/rotate")):
            forbidden = await client.request(method, url, headers=rita.headers)
            assert forbidden.status_code == 403
            assert forbidden.json()["error"]["code"] == "FORBIDDEN"
            hidden = await client.request(method, url, headers=charlie.headers)
            assert hidden.status_code == 404
            assert hidden.json()["error"]["code"] == "NOT_INSTALLED"

    async def test_it_gives_an_install_made_before_signing_secrets_its_first_one(
        self, client: httpx.AsyncClient, install: Any, alice: Actor, ctx: AppContext
    ) -> None:
        published, _ = await install(alice)
        async with ctx.db.connection() as conn:
            await conn.execute(
                "UPDATE tenant_extension_install SET signing_secrets_encrypted = NULL"
            )
        first = await secrets_of(client, alice, published["extension_id"])
        assert len(first) == 1 and first[0].startswith("whsec_")
        assert await secrets_of(client, alice, published["extension_id"]) == first


class TestWhatTheUpstreamReceives:
    async def test_an_author_verifies_each_call_with_the_api_secret_across_a_rotation(
        self,
        client: httpx.AsyncClient,
        admin: Actor,
        alice: Actor,
        harness: Harness,
        upstream: Upstream,
    ) -> None:
        ext, sid = await install_crm(client, admin, alice, upstream.url)
        [secret] = await secrets_of(client, alice, ext)
        run_id = await run_now(client, alice, harness, sid)
        [seen] = upstream.requests
        assert verifies(seen, secret)
        assert json.loads(seen["body"]) == {"full": True}
        headers = seen["headers"]
        assert headers["webhook-id"] == f"{run_id}:1"
        assert headers["x-extsched-run-id"] == run_id
        assert headers["x-extsched-tenant-id"] == "acme"
        assert headers["x-extsched-extension-id"] == ext
        assert headers["x-extsched-version"] == "1.0.0"
        install_body = (await client.get(f"/api/v1/extensions/{ext}", headers=alice.headers)).json()
        assert headers["x-extsched-install-id"] == install_body["install_id"]
        assert unb64url(headers["x-extsched-config"]) == {"region": "eu-west"}
        assert unb64url(headers["x-extsched-secrets"]) == {"CRM_TOKEN": "hunter2"}
        trace = headers["traceparent"].split("-")
        assert trace[1] == run_id.replace("-", "")  # one trace per run

        r = await client.post(
            f"/api/v1/extensions/{ext}/signing-secret/rotate", headers=alice.headers
        )
        new_secret = r.json()["secrets"][0]["secret"]
        await run_now(client, alice, harness, sid)
        after = upstream.requests[-1]
        assert len(after["headers"]["webhook-signature"].split(" ")) == 2
        assert verifies(after, new_secret)  # an upstream already switched
        assert verifies(after, secret)  # an upstream not switched yet
        assert not verifies(after, "whsec_" + base64.b64encode(b"x" * 24).decode())

    async def test_it_sends_no_secrets_without_the_granted_capability(
        self,
        client: httpx.AsyncClient,
        admin: Actor,
        alice: Actor,
        harness: Harness,
        upstream: Upstream,
    ) -> None:
        _, sid = await install_crm(client, admin, alice, upstream.url, providers=["cap:http.fetch"])
        await run_now(client, alice, harness, sid)
        [seen] = upstream.requests
        assert "x-extsched-secrets" not in seen["headers"]
        assert unb64url(seen["headers"]["x-extsched-config"]) == {"region": "eu-west"}

    async def test_an_unreachable_upstream_is_retried_as_a_runner_failure(
        self,
        client: httpx.AsyncClient,
        admin: Actor,
        alice: Actor,
        harness: Harness,
    ) -> None:
        _, sid = await install_crm(client, admin, alice, f"http://127.0.0.1:{free_port()}")
        await run_now(client, alice, harness, sid)
        r = await client.get(f"/api/v1/schedules/{sid}/runs", headers=alice.headers)
        [run] = r.json()["items"]
        assert run["status"] == "failed"
        assert run["attempts"] == 3
        assert run["http_status"] is None  # not the extension's status
        assert run["error"].startswith("runner answered HTTP 502: upstream unreachable")
