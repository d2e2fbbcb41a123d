"""The reference Runner and the demo upstream as real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from extsched.crypto import SecretsUnreadable
from extsched.domain.manifest import endpoint_schedulability, parse_manifest
from extsched.domain.runs import RunStatus
from extsched.runner.client import RunnerClient
from extsched.runner.demo import create_demo_app, demo_manifest
from extsched.runner.server import create_runner_app
from tests.helpers.http_server import free_port, run_asgi_server

INSTALL = "install-alice"
SECRET = "whsec_" + base64.b64encode(b"alice-signing-secret-24b").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-elses-secret-24b").decode()
SEALED = {"ciphertext_b64": "c2VhbGVk", "algorithm": "AES-256-GCM", "version": 1}
TOKEN = "reference-runner-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
RUNNER_CAP = 64 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verified(seen: dict[str, Any], secret: str = SECRET) -> bool:
    """Whether ``seen`` (a captured request) verifies with ``secret``, as an author would."""
    try:
        Webhook(secret).verify(seen["body"], seen["headers"], json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def unb64url(value: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(value))


async def signing_secrets_for(tenant_id: str, install_id: str) -> list[str]:
    if install_id == "install-unknown":
        return []
    return [SECRET] if (tenant_id, install_id) == ("acme", INSTALL) else [OTHER_SECRET]


def open_secrets(envelope: dict[str, Any], tenant_id: str, install_id: str) -> dict[str, str]:
    if envelope != SEALED or (tenant_id, install_id) != ("acme", INSTALL):
        raise SecretsUnreadable("not ours")
    return {"API_KEY": "k-123"}


def make_capture_app() -> FastAPI:
    """An upstream that records every request it gets and answers by path."""
    app = FastAPI()
    app.state.requests = []

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(path: str, request: Request) -> Response:
        app.state.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": await request.body(),
            }
        )
        if path == "base/big":
            chunks = (b"x" * 8192 for _ in range(16))  # 128 KiB, no content-length
            return StreamingResponse(chunks, media_type="text/plain")
        if path == "base/redirect":
            return Response(status_code=302, headers={"location": "/elsewhere"})
        return JSONResponse(
            {"ok": True},
            status_code=201,
            headers={"etag": '"v1"', "set-cookie": "session=1", "x-internal": "secret"},
        )

    return app


@dataclass
class World:
    runner_url: str
    demo_url: str
    capture: FastAPI
    manifests: dict[str, dict[str, Any]]

    def hash_of(self, name: str) -> str:
        return parse_manifest(self.manifests[name]).content_hash


def capture_manifest(upstream_url: str) -> dict[str, Any]:
    return {
        "name": "com.example.capture",
        "publisher": "tests",
        "version": "1.0.0",
        "capabilities": ["cap:http.fetch", "cap:secrets.get"],
        "runtime": {"upstream_url": upstream_url},
        "api": {
            "endpoints": [
                {"method": "POST", "path": "/echo"},
                {"method": "GET", "path": "/items/{id}"},
                {"method": "GET", "path": "/files/*"},
                {"method": "GET", "path": "/big"},
                {"method": "GET", "path": "/redirect"},
            ]
        },
    }


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    host = FastAPI()
    host.mount("/demo", create_demo_app())
    capture = make_capture_app()
    by_hash: dict[str, dict[str, Any]] = {}

    async def resolve(content_hash: str) -> dict[str, Any] | None:
        return by_hash.get(content_hash)

    runner = create_runner_app(
        resolve, signing_secrets_for, open_secrets, token=TOKEN, max_response_bytes=RUNNER_CAP
    )
    with (
        run_asgi_server(host) as demo_url,
        run_asgi_server(capture) as capture_url,
        run_asgi_server(runner) as runner_url,
    ):
        manifests = {
            "demo": demo_manifest(f"{demo_url}/demo"),
            "capture": capture_manifest(f"{capture_url}/base/"),
            "no-upstream": {**capture_manifest("http://x"), "runtime": {}},
            "unreachable": capture_manifest(f"http://127.0.0.1:{free_port()}"),
        }
        for raw in manifests.values():
            by_hash[parse_manifest(raw).content_hash] = raw
        by_hash["sha256:broken"] = {"name": "Not Valid"}
        yield World(runner_url, demo_url, capture, manifests)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def envelope(
    content_hash: str,
    method: str = "POST",
    path: str = "/sync",
    *,
    body: bytes | None = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    providers: list[str] | None = None,
    timeout_ms: int = 10_000,
) -> dict[str, Any]:
    http: dict[str, Any] = {
        "method": method,
        "path": path,
        "query": query or {},
        "headers": headers or {},
    }
    if body is not None:
        http["body_b64"] = b64(body)
    return {
        "context": {
            "request_id": "req-1",
            "tenant_id": "acme",
            "extension_id": "ext-1",
            "install_id": INSTALL,
            "version_id": "ver-1",
            "content_hash": content_hash,
            "config": {"region": "eu"},
            "trigger": "schedule",
            "schedule_id": "sch-1",
            "run_id": "run-1",
            "scheduled_for": "2026-11-27T09:00:00Z",
            "attempt": 1,
        },
        "http": http,
        "limits": {"timeout_ms": timeout_ms},
        "providers": providers if providers is not None else ["cap:http.fetch"],
    }


async def execute(http: httpx.AsyncClient, world: World, env: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(f"{world.runner_url}/v1/execute", json=env, headers=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def body_of(result: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(result["body_b64"]))


class TestForwarding:
    async def test_it_answers_healthz(self, http: httpx.AsyncClient, world: World) -> None:
        response = await http.get(f"{world.runner_url}/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})

    async def test_it_forwards_a_scheduled_call_to_the_demo_upstream(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        payload = json.dumps({"items": [1, 2, 3]}).encode()
        result = await execute(
            http,
            world,
            envelope(
                world.hash_of("demo"),
                body=payload,
                headers={
                    "content-type": "application/json",
                    "x-extsched-trigger": "schedule",
                    "x-extsched-scheduled-for": "2026-11-27T09:00:00Z",
                },
            ),
        )
        assert result["status"] == 200
        assert result["headers"]["content-type"] == "application/json"
        summary = body_of(result)
        assert summary["synced"] == 3
        assert summary["received"] == {"items": [1, 2, 3]}
        assert summary["signed"] is True
        assert summary["headers"]["x-extsched-trigger"] == "schedule"
        assert summary["headers"]["x-extsched-scheduled-for"] == "2026-11-27T09:00:00Z"

    async def test_it_forwards_method_path_query_body_and_content_type(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(
            http,
            world,
            envelope(
                world.hash_of("capture"),
                path="echo",
                body=b'{"a":1}',
                query={"page": "2", "tag": ["x", "y"]},
                headers={
                    "Content-Type": "application/json",
                    "authorization": "Bearer must-not-leak",
                    "x-other": "dropped",
                },
            ),
        )
        assert result["status"] == 201
        seen = world.capture.state.requests[-1]
        assert (seen["method"], seen["path"]) == ("POST", "/base/echo")
        assert seen["query"] == "page=2&tag=x&tag=y"
        assert seen["body"] == b'{"a":1}'
        assert seen["headers"]["content-type"] == "application/json"
        assert "authorization" not in seen["headers"]
        assert "x-other" not in seen["headers"]

    async def test_it_computes_extsched_headers_from_the_context_and_ignores_the_callers(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        await execute(
            http,
            world,
            envelope(
                world.hash_of("capture"),
                path="/echo",
                body=b"{}",
                headers={
                    "X-Extsched-Run-Id": "forged-run",
                    "x-extsched-trigger": "run_now",
                    "x-extsched-schedule-id": "forged-schedule",
                    "x-extsched-scheduled-for": "1999-01-01T00:00:00Z",
                    "x-extsched-signature": "t=1,v1=forged",
                    "x-extsched-tenant-id": "globex",
                    "x-extsched-secrets": "eyJ9",
                },
            ),
        )
        extsched = {
            name: value
            for name, value in world.capture.state.requests[-1]["headers"].items()
            if name.startswith("x-extsched-")
        }
        assert verified(world.capture.state.requests[-1])
        assert extsched == {
            "x-extsched-trigger": "schedule",
            "x-extsched-schedule-id": "sch-1",
            "x-extsched-run-id": "run-1",
            "x-extsched-scheduled-for": "2026-11-27T09:00:00Z",
            "x-extsched-tenant-id": "acme",
            "x-extsched-install-id": INSTALL,
            "x-extsched-extension-id": "ext-1",
            "x-extsched-version": "1.0.0",
            "x-extsched-config": base64.urlsafe_b64encode(b'{"region":"eu"}').decode(),
        }

    async def test_it_sends_no_extsched_header_the_context_does_not_carry(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        env = envelope(
            world.hash_of("capture"), path="/echo", headers={"x-extsched-trigger": "schedule"}
        )
        for key in ("trigger", "schedule_id", "run_id", "scheduled_for"):
            del env["context"][key]
        await execute(http, world, env)
        headers = world.capture.state.requests[-1]["headers"]
        assert sorted(name for name in headers if name.startswith("x-extsched-")) == [
            "x-extsched-config",
            "x-extsched-extension-id",
            "x-extsched-install-id",
            "x-extsched-tenant-id",
            "x-extsched-version",
        ]

    async def test_it_signs_the_exact_body_with_the_installs_secret(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        before = int(time.time())
        await execute(http, world, envelope(world.hash_of("capture"), path="/echo", body=b"hi"))
        seen = world.capture.state.requests[-1]
        assert seen["headers"]["webhook-id"] == "run-1:1"
        assert before <= int(seen["headers"]["webhook-timestamp"]) <= int(time.time())
        assert seen["headers"]["webhook-signature"].startswith("v1,")
        assert verified(seen)
        assert not verified(seen, OTHER_SECRET)
        assert not verified({**seen, "body": b"hi!"})
        forged_id = {**seen["headers"], "webhook-id": "run-1:2"}
        assert not verified({**seen, "headers": forged_id})

    async def test_it_signs_an_empty_body_for_get(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("capture"), "GET", "/items/9"))
        assert result["status"] == 201
        seen = world.capture.state.requests[-1]
        assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/base/items/9", b"")
        assert verified(seen)

    async def test_it_returns_only_selected_upstream_headers(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("capture"), path="/echo"))
        assert result["headers"] == {"content-type": "application/json", "etag": '"v1"'}
        assert body_of(result) == {"ok": True}

    async def test_it_passes_redirects_through_without_following(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("capture"), "GET", "/redirect"))
        assert (result["status"], result["headers"]) == (302, {"location": "/elsewhere"})
        assert "body_b64" not in result

    async def test_it_serves_path_parameter_endpoints(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("demo"), "get", "/contacts/42"))
        assert result["status"] == 200
        assert body_of(result) == {"id": "42", "name": "Contact 42"}
        wildcard = await execute(
            http, world, envelope(world.hash_of("capture"), "GET", "/files/a/b.txt")
        )
        assert wildcard["status"] == 201
        assert world.capture.state.requests[-1]["path"] == "/base/files/a/b.txt"

    async def test_it_relays_an_extension_failure(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("demo"), path="/fail"))
        assert result["status"] == 500
        assert body_of(result) == {"error": "demo failure, as requested"}


class TestRefusals:
    async def test_it_refuses_undeclared_capabilities(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        count = len(world.capture.state.requests)
        result = await execute(
            http,
            world,
            envelope(
                world.hash_of("demo"), providers=["cap:http.fetch", "cap:secrets.get"], body=b"{}"
            ),
        )
        assert result == {
            "status": 400,
            "headers": {},
            "error": "capability not declared: cap:secrets.get",
        }
        assert len(world.capture.state.requests) == count

    @pytest.mark.parametrize(
        ("method", "path"),
        [("POST", "/nope"), ("GET", "/sync"), ("POST", "/sync/extra"), ("POST", "/sync?x=1")],
    )
    async def test_it_refuses_undeclared_endpoints(
        self, http: httpx.AsyncClient, world: World, method: str, path: str
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("demo"), method, path))
        assert result["status"] == 404
        assert result["error"] == f"endpoint not declared: {method} {path}"

    async def test_it_reports_an_unknown_version(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope("sha256:" + "0" * 64))
        assert result == {"status": 404, "headers": {}, "error": "unknown extension version"}

    async def test_it_reports_an_invalid_stored_manifest(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope("sha256:broken"))
        assert result == {"status": 500, "headers": {}, "error": "extension manifest is invalid"}

    async def test_it_reports_a_missing_upstream_url(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("no-upstream"), path="/echo"))
        assert result["status"] == 501
        assert result["error"] == "extension declares no runtime.upstream_url"

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda env: env.pop("context"),
            lambda env: env["context"].pop("content_hash"),
            lambda env: env["http"].update(body_b64="not base64!"),
            lambda env: env["http"].update(headers={"x-extsched-a": "1\r\nx-evil: 1"}),
            lambda env: env["limits"].update(timeout_ms="300"),
            lambda env: env["limits"].update(timeout_ms=0),
            lambda env: env.update(providers="cap:http.fetch"),
        ],
        ids=[
            "no-context",
            "no-hash",
            "bad-base64",
            "header-injection",
            "string-timeout",
            "zero-timeout",
            "providers-string",
        ],
    )
    async def test_it_answers_400_to_a_malformed_envelope(
        self, http: httpx.AsyncClient, world: World, mutate: Any
    ) -> None:
        env = envelope(world.hash_of("demo"), body=b"{}")
        mutate(env)
        response = await http.post(f"{world.runner_url}/v1/execute", json=env, headers=AUTH)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_REQUEST"

    async def test_it_answers_400_to_a_body_that_is_not_json(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        response = await http.post(f"{world.runner_url}/v1/execute", content=b"{oops", headers=AUTH)
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith("invalid envelope")


@dataclass
class Guarded:
    """A reference Runner in front of its own upstream, recording every lookup it makes."""

    runner_url: str
    upstream: FastAPI
    lookups: list[str]
    content_hash: str


@pytest.fixture
def guarded() -> Iterator[Guarded]:
    upstream = make_capture_app()
    lookups: list[str] = []
    by_hash: dict[str, dict[str, Any]] = {}

    async def resolve(content_hash: str) -> dict[str, Any] | None:
        lookups.append(f"manifest {content_hash}")
        return by_hash.get(content_hash)

    async def secrets_for(tenant_id: str, install_id: str) -> list[str]:
        lookups.append(f"secret {install_id}")
        return [SECRET]

    runner = create_runner_app(resolve, secrets_for, open_secrets, token=TOKEN)
    with run_asgi_server(upstream) as upstream_url, run_asgi_server(runner) as runner_url:
        raw = capture_manifest(f"{upstream_url}/base/")
        content_hash = parse_manifest(raw).content_hash
        by_hash[content_hash] = raw
        yield Guarded(runner_url, upstream, lookups, content_hash)


class TestAuthentication:
    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "",
            "Bearer",
            "Bearer wrong",
            f"Bearer {TOKEN}x",
            f"Bearer {TOKEN} {TOKEN}",
            f"Bearer {TOKEN[:-1]}",
            f"Basic {TOKEN}",
            TOKEN,
            f"Bearer {TOKEN.upper()}",
        ],
        ids=[
            "absent",
            "empty",
            "scheme-only",
            "wrong",
            "longer",
            "twice",
            "prefix",
            "basic",
            "no-scheme",
            "other-case",
        ],
    )
    async def test_it_refuses_a_call_without_the_token_and_reaches_no_upstream(
        self, http: httpx.AsyncClient, guarded: Guarded, authorization: str | None
    ) -> None:
        headers = {} if authorization is None else {"authorization": authorization}
        env = envelope(guarded.content_hash, path="/echo", body=b'{"drop":"all"}')
        response = await http.post(f"{guarded.runner_url}/v1/execute", json=env, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
        assert guarded.upstream.state.requests == []
        assert guarded.lookups == []

    async def test_it_refuses_before_reading_the_body(
        self, http: httpx.AsyncClient, guarded: Guarded
    ) -> None:
        bad_json = await http.post(f"{guarded.runner_url}/v1/execute", content=b"{oops")
        assert bad_json.status_code == 401
        assert guarded.upstream.state.requests == []

    async def test_it_executes_a_call_with_the_token(
        self, http: httpx.AsyncClient, guarded: Guarded
    ) -> None:
        response = await http.post(
            f"{guarded.runner_url}/v1/execute",
            json=envelope(guarded.content_hash, path="/echo", body=b"{}"),
            headers={"authorization": f"bearer {TOKEN}"},  # the scheme is case-insensitive
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == 201
        [seen] = guarded.upstream.state.requests
        assert verified(seen)
        assert "authorization" not in seen["headers"]  # the Runner token stays here

    async def test_it_keeps_healthz_open(self, http: httpx.AsyncClient, guarded: Guarded) -> None:
        response = await http.get(f"{guarded.runner_url}/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})

    async def test_a_client_with_another_token_records_a_failed_run(self, guarded: Guarded) -> None:
        async with RunnerClient(guarded.runner_url, 10_000, 262_144, token="not-the-one") as c:
            outcome = await c.execute(envelope(guarded.content_hash, path="/echo"), {})
        assert (outcome.status, outcome.retryable, outcome.http_status) == (
            RunStatus.FAILED,
            False,
            None,
        )
        assert outcome.error is not None
        assert outcome.error.startswith("runner answered HTTP 401")
        assert guarded.upstream.state.requests == []

    def test_it_refuses_to_start_without_a_token(self) -> None:
        async def resolve(_: str) -> None:
            return None

        with pytest.raises(ValueError, match="token"):
            create_runner_app(resolve, signing_secrets_for, open_secrets, token="")


class TestUpstreamLimits:
    async def test_it_answers_504_for_a_slow_upstream(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        started = time.monotonic()
        response = await http.post(
            f"{world.runner_url}/v1/execute",
            json=envelope(
                world.hash_of("demo"), path="/slow", query={"ms": "30000"}, timeout_ms=300
            ),
            headers=AUTH,
        )
        assert response.status_code == 504
        assert response.json() == {
            "error": {
                "code": "UPSTREAM_TIMEOUT",
                "message": "upstream did not answer within 300 ms",
            }
        }
        assert 0.3 <= time.monotonic() - started < 10

    async def test_it_caps_the_upstream_body(self, http: httpx.AsyncClient, world: World) -> None:
        result = await execute(http, world, envelope(world.hash_of("capture"), "GET", "/big"))
        assert result == {"status": 502, "headers": {}, "error": "upstream response too large"}

    async def test_it_answers_502_for_an_unreachable_upstream(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        response = await http.post(
            f"{world.runner_url}/v1/execute",
            json=envelope(world.hash_of("unreachable"), path="/echo"),
            headers=AUTH,
        )
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "UPSTREAM_UNREACHABLE"
        assert error["message"].startswith("upstream unreachable: ")

    async def test_the_client_retries_both_as_runner_failures(self, world: World) -> None:
        async with RunnerClient(world.runner_url, 10_000, 262_144, token=TOKEN) as client:
            down = await client.execute(envelope(world.hash_of("unreachable"), path="/echo"), {})
            slow = await client.execute(
                envelope(
                    world.hash_of("demo"), path="/slow", query={"ms": "30000"}, timeout_ms=300
                ),
                {},
            )
        assert (down.status, down.retryable, down.http_status) == (RunStatus.FAILED, True, None)
        assert down.error is not None
        assert down.error.startswith("runner answered HTTP 502: upstream unreachable: ")
        assert (slow.status, slow.retryable, slow.http_status) == (
            RunStatus.TIMED_OUT,
            True,
            None,
        )
        # Both ends enforce limits.timeout_ms: whichever gives up first words the error.
        assert slow.error in (
            "runner answered HTTP 504: upstream did not answer within 300 ms",
            "runner timed out after 300 ms",
        )


class TestContextForTheUpstream:
    async def test_it_sends_the_secrets_only_when_declared_and_granted(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        granted = envelope(
            world.hash_of("capture"),
            path="/echo",
            providers=["cap:http.fetch", "cap:secrets.get"],
        )
        granted["secret_envelope"] = SEALED
        await execute(http, world, granted)
        headers = world.capture.state.requests[-1]["headers"]
        assert unb64url(headers["x-extsched-secrets"]) == {"API_KEY": "k-123"}
        assert unb64url(headers["x-extsched-config"]) == {"region": "eu"}

        not_granted = envelope(world.hash_of("capture"), path="/echo")
        not_granted["secret_envelope"] = SEALED
        await execute(http, world, not_granted)
        assert "x-extsched-secrets" not in world.capture.state.requests[-1]["headers"]

    async def test_it_sends_an_empty_object_when_granted_without_secrets(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        env = envelope(world.hash_of("capture"), path="/echo", providers=["cap:secrets.get"])
        await execute(http, world, env)
        assert unb64url(world.capture.state.requests[-1]["headers"]["x-extsched-secrets"]) == {}

    async def test_it_fails_as_the_runner_when_the_secret_envelope_cannot_be_opened(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        count = len(world.capture.state.requests)
        env = envelope(world.hash_of("capture"), path="/echo", providers=["cap:secrets.get"])
        env["secret_envelope"] = {**SEALED, "ciphertext_b64": "b3RoZXI="}
        response = await http.post(f"{world.runner_url}/v1/execute", json=env, headers=AUTH)
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "SECRETS_UNREADABLE"
        assert len(world.capture.state.requests) == count

    async def test_it_refuses_an_unknown_install(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        env = envelope(world.hash_of("capture"), path="/echo")
        env["context"]["install_id"] = "install-unknown"
        result = await execute(http, world, env)
        assert result == {"status": 404, "headers": {}, "error": "unknown install"}

    async def test_it_forwards_a_valid_traceparent_only(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        for sent, expected in ((traceparent, traceparent), ("00-nonsense", None)):
            response = await http.post(
                f"{world.runner_url}/v1/execute",
                json=envelope(world.hash_of("capture"), path="/echo"),
                headers={**AUTH, "traceparent": sent},
            )
            assert response.status_code == 200
            assert world.capture.state.requests[-1]["headers"].get("traceparent") == expected


class TestWithRunnerClient:
    async def test_it_turns_demo_answers_into_run_outcomes(self, world: World) -> None:
        async with RunnerClient(world.runner_url, 10_000, 262_144, token=TOKEN) as client:
            ok = await client.execute(
                envelope(world.hash_of("demo"), body=b"[1,2]"), {"x-request-id": "req-1"}
            )
            failed = await client.execute(
                envelope(world.hash_of("demo"), path="/fail"), {"x-request-id": "req-2"}
            )
        assert (ok.status, ok.http_status, ok.retryable) == (RunStatus.SUCCEEDED, 200, False)
        assert ok.response_preview is not None
        assert json.loads(ok.response_preview)["synced"] == 2
        assert (failed.status, failed.http_status, failed.retryable) == (
            RunStatus.FAILED,
            500,
            False,
        )
        assert failed.error == "extension answered HTTP 500"


class TestDemoUpstream:
    async def test_it_serves_the_demo_routes(self, http: httpx.AsyncClient, world: World) -> None:
        base = f"{world.demo_url}/demo"
        report = await http.get(f"{base}/report")
        assert report.status_code == 200
        assert report.json()["report"] == "demo"
        unsigned = await http.post(f"{base}/sync", json={"items": ["a"]})
        assert unsigned.json()["synced"] == 1
        assert unsigned.json()["signed"] is False
        assert (await http.post(f"{base}/sync-v2")).json()["api"] == "v2"
        assert (await http.post(f"{base}/sync", content=b"{x")).status_code == 400
        assert (await http.post(f"{base}/fail")).status_code == 500
        assert (await http.get(f"{base}/contacts/7")).json()["id"] == "7"
        assert (await http.delete(f"{base}/cache")).status_code == 204

    async def test_it_clamps_the_slow_delay(self, http: httpx.AsyncClient, world: World) -> None:
        response = await http.post(f"{world.demo_url}/demo/slow", params={"ms": "-5"})
        assert response.json() == {"slept_ms": 0}

    def test_it_publishes_a_valid_demo_manifest(self) -> None:
        manifest = parse_manifest(demo_manifest("http://127.0.0.1:8000/demo"))
        assert (manifest.name, manifest.publisher, manifest.version) == (
            "com.example.demo",
            "extsched demo",
            "1.0.0",
        )
        assert manifest.capabilities == ("cap:http.fetch",)
        assert manifest.upstream_url == "http://127.0.0.1:8000/demo"
        assert [(e.method, e.path) for e in manifest.endpoints] == [
            ("POST", "/sync"),
            ("GET", "/report"),
            ("POST", "/fail"),
            ("POST", "/slow"),
            ("GET", "/contacts/:id"),
            ("DELETE", "/cache"),
        ]
        reasons = {e.path: endpoint_schedulability(e.method, e.path) for e in manifest.endpoints}
        assert reasons["/contacts/:id"] == "path_params"
        assert reasons["/cache"] == "method_not_allowed"
        assert reasons["/sync"] is None

    def test_it_publishes_a_second_variant_for_version_two(self) -> None:
        manifest = parse_manifest(demo_manifest("http://h/demo", "2.0.0"))
        paths = {(e.method, e.path) for e in manifest.endpoints}
        assert ("POST", "/fail") not in paths
        assert ("POST", "/sync-v2") in paths
        assert ("POST", "/sync") in paths
        explicit = parse_manifest(demo_manifest("http://h/demo", "1.1.0", variant=2))
        assert ("POST", "/sync-v2") in {(e.method, e.path) for e in explicit.endpoints}
        assert manifest.content_hash != parse_manifest(demo_manifest("http://h/demo")).content_hash


class TestSigning:
    async def test_it_signs_with_every_active_secret_during_a_rotation(self) -> None:
        upstream = make_capture_app()
        current = "whsec_" + base64.b64encode(b"the-new-secret-24-bytes!").decode()

        async def resolve(_: str) -> dict[str, Any] | None:
            return raw

        async def both(tenant_id: str, install_id: str) -> list[str]:
            return [current, SECRET]

        runner = create_runner_app(resolve, both, open_secrets, token=TOKEN)
        with run_asgi_server(upstream) as upstream_url, run_asgi_server(runner) as runner_url:
            raw = capture_manifest(f"{upstream_url}/base/")
            async with httpx.AsyncClient(timeout=30) as http:
                response = await http.post(
                    f"{runner_url}/v1/execute",
                    json=envelope(parse_manifest(raw).content_hash, path="/echo", body=b"{}"),
                    headers=AUTH,
                )
        assert response.status_code == 200, response.text
        [seen] = upstream.state.requests
        assert len(seen["headers"]["webhook-signature"].split(" ")) == 2
        assert verified(seen, current)
        assert verified(seen, SECRET)
        assert not verified(seen, OTHER_SECRET)
