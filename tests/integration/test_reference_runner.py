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

from extsched.domain.manifest import endpoint_schedulability, parse_manifest
from extsched.domain.runs import RunStatus
from extsched.runner.client import RunnerClient
from extsched.runner.demo import create_demo_app, demo_manifest
from extsched.runner.server import create_runner_app
from extsched.runner.signing import sign, verify_signature
from tests.helpers.http_server import free_port, run_asgi_server

INSTALL = "install-alice"
SECRET = b"alice-signing-secret"
TOKEN = "reference-runner-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
RUNNER_CAP = 64 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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

    def secret_for(install_id: str) -> bytes:
        return {INSTALL: SECRET}.get(install_id, b"someone-else")

    runner = create_runner_app(resolve, secret_for, token=TOKEN, max_response_bytes=RUNNER_CAP)
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
        signature = extsched.pop("x-extsched-signature")
        assert verify_signature(SECRET, b"{}", signature)
        assert extsched == {
            "x-extsched-trigger": "schedule",
            "x-extsched-schedule-id": "sch-1",
            "x-extsched-run-id": "run-1",
            "x-extsched-scheduled-for": "2026-11-27T09:00:00Z",
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
        assert [name for name in headers if name.startswith("x-extsched-")] == [
            "x-extsched-signature"
        ]

    async def test_it_signs_the_exact_body_with_the_installs_secret(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        before = int(time.time())
        await execute(http, world, envelope(world.hash_of("capture"), path="/echo", body=b"hi"))
        seen = world.capture.state.requests[-1]
        header = seen["headers"]["x-extsched-signature"]
        assert verify_signature(SECRET, b"hi", header)
        assert not verify_signature(b"someone-else", b"hi", header)
        assert not verify_signature(SECRET, b"hi!", header)
        t = int(header.split(",")[0].removeprefix("t="))
        assert before <= t <= int(time.time())

    async def test_it_signs_an_empty_body_for_get(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("capture"), "GET", "/items/9"))
        assert result["status"] == 201
        seen = world.capture.state.requests[-1]
        assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/base/items/9", b"")
        assert verify_signature(SECRET, b"", seen["headers"]["x-extsched-signature"])

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

    def secret_for(install_id: str) -> bytes:
        lookups.append(f"secret {install_id}")
        return SECRET

    runner = create_runner_app(resolve, secret_for, token=TOKEN)
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
        assert verify_signature(SECRET, b"{}", seen["headers"]["x-extsched-signature"])
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
            create_runner_app(resolve, lambda _: SECRET, token="")


class TestUpstreamLimits:
    async def test_it_times_out_a_slow_upstream(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        started = time.monotonic()
        result = await execute(
            http,
            world,
            envelope(world.hash_of("demo"), path="/slow", query={"ms": "30000"}, timeout_ms=300),
        )
        assert result == {"status": 504, "headers": {}, "error": "upstream timed out after 300 ms"}
        assert 0.3 <= time.monotonic() - started < 10

    async def test_it_caps_the_upstream_body(self, http: httpx.AsyncClient, world: World) -> None:
        result = await execute(http, world, envelope(world.hash_of("capture"), "GET", "/big"))
        assert result == {"status": 502, "headers": {}, "error": "upstream response too large"}

    async def test_it_reports_an_unreachable_upstream(
        self, http: httpx.AsyncClient, world: World
    ) -> None:
        result = await execute(http, world, envelope(world.hash_of("unreachable"), path="/echo"))
        assert result["status"] == 502
        assert result["error"].startswith("upstream unreachable: ")


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
    def test_it_round_trips(self) -> None:
        header = sign(SECRET, b"body", 1_700_000_000)
        assert header.startswith("t=1700000000,v1=")
        assert verify_signature(SECRET, b"body", header, now=1_700_000_000)

    def test_it_matches_the_documented_formula(self) -> None:
        import hashlib
        import hmac

        expected = hmac.new(SECRET, b"1700000000.body", hashlib.sha256).hexdigest()
        assert sign(SECRET, b"body", 1_700_000_000) == f"t=1700000000,v1={expected}"

    def test_it_refuses_other_bodies_secrets_and_stale_times(self) -> None:
        header = sign(SECRET, b"body", 1000)
        assert not verify_signature(SECRET, b"body2", header, now=1000)
        assert not verify_signature(b"other", b"body", header, now=1000)
        assert verify_signature(SECRET, b"body", header, now=1300)
        assert not verify_signature(SECRET, b"body", header, now=1301)
        assert not verify_signature(SECRET, b"body", header, now=699)
        assert verify_signature(SECRET, b"body", header, now=1400, tolerance_s=400)

    def test_it_accepts_any_of_several_v1_values(self) -> None:
        header = sign(SECRET, b"x", 5)
        rotated = header.replace("v1=", "v1=" + "0" * 64 + ",v1=")
        assert verify_signature(SECRET, b"x", rotated, now=5)

    @pytest.mark.parametrize(
        "header",
        ["", "garbage", "t=5", "v1=abc", "t=x,v1=abc", "t=5,t=5,v1=abc", "t=-5,v1=a", "t=5,v1=é"],
    )
    def test_it_treats_malformed_headers_as_invalid(self, header: str) -> None:
        assert not verify_signature(SECRET, b"x", header, now=5)
