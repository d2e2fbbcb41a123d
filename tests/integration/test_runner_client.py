"""RunnerClient against real HTTP servers: outcome rules (SPEC §9), limits and network faults."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from extsched.domain.runs import RunStatus
from extsched.runner.client import RunnerClient, RunnerOutcome, one_line
from tests.helpers.http_server import free_port, read_http_request, run_asgi_server, serve_tcp

KIB = 1024
CAP = 256 * KIB
BIG = 2 * 1024 * KIB

ENVELOPE: dict[str, Any] = {
    "context": {"request_id": "r-1", "tenant_id": "acme", "content_hash": "sha256:00"},
    "http": {"method": "POST", "path": "/sync", "query": {}, "headers": {}, "body_b64": "e30="},
    "limits": {"timeout_ms": 300},
    "providers": [],
}
HEADERS = {"x-request-id": "r-1", "x-idempotency-key": "run-1:1", "x-tenant-id": "acme"}
TOKEN = "runner-client-test-token"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reply(status: int, *, body: bytes | None = None, error: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "headers": {"content-type": "application/json"}}
    if body is not None:
        data["body_b64"] = b64(body)
    if error is not None:
        data["error"] = error
    return data


SCENARIOS: dict[str, Response] = {
    "ok": JSONResponse(reply(200, body=b'{"synced": 3}')),
    "ok-no-body": JSONResponse({"status": 204, "headers": {}}),
    "redirect": JSONResponse(reply(302)),
    "ext-404": JSONResponse(reply(404, body=b'{"detail":"nope"}', error="no such contact")),
    "ext-500": JSONResponse(reply(500, body=b"boom")),
    "long-body": JSONResponse(reply(200, body="é".encode() * 3000)),
    "long-error": JSONResponse(reply(503, error="line one\nline two " + "x" * 5000)),
    "runner-500": Response("internal error", status_code=500),
    "runner-502": Response("bad gateway", status_code=502),
    "runner-429": Response("slow down", status_code=429),
    "runner-400": Response("bad envelope", status_code=400),
    "runner-201": JSONResponse(reply(200), status_code=201),
    "non-json": Response("hello", media_type="text/plain"),
    "empty": Response(b""),
    "json-array": JSONResponse([1, 2]),
    "status-string": JSONResponse({"status": "200", "headers": {}}),
    "status-bool": JSONResponse({"status": True, "headers": {}}),
    "status-out-of-range": JSONResponse({"status": 700, "headers": {}}),
    "no-headers": JSONResponse({"status": 200}),
    "bad-headers": JSONResponse({"status": 200, "headers": {"x": 1}}),
    "bad-base64": JSONResponse({"status": 200, "headers": {}, "body_b64": "***"}),
    "bad-error": JSONResponse({"status": 500, "headers": {}, "error": ["x"]}),
    "big-declared": Response(b"x" * BIG, media_type="application/json"),
}


def make_runner_app() -> FastAPI:
    app = FastAPI()
    app.state.received = []

    @app.post("/{scenario}/v1/execute")
    async def execute(scenario: str, request: Request) -> Response:
        app.state.received.append(
            {
                "envelope": await request.json(),
                "headers": dict(request.headers),
                "authorization": request.headers.getlist("authorization"),
                "peer": request.client.port if request.client else None,
            }
        )
        if scenario == "big-streamed":
            # No content-length: the client can only find out by reading.
            chunks = (b"x" * (64 * KIB) for _ in range(BIG // (64 * KIB)))
            return StreamingResponse(chunks, media_type="application/json")
        return SCENARIOS[scenario]

    return app


@pytest.fixture(scope="module")
def runner_app() -> FastAPI:
    return make_runner_app()


@pytest.fixture(scope="module")
def runner_url(runner_app: FastAPI) -> Iterator[str]:
    with run_asgi_server(runner_app) as url:
        yield url


@pytest.fixture
async def call(runner_url: str) -> AsyncIterator[Any]:
    clients: list[RunnerClient] = []

    async def call(scenario: str, **kwargs: Any) -> RunnerOutcome:
        client = RunnerClient(
            f"{runner_url}/{scenario}",
            timeout_ms=kwargs.pop("timeout_ms", 5000),
            max_response_bytes=kwargs.pop("max_response_bytes", CAP),
            token=kwargs.pop("token", TOKEN),
            **kwargs,
        )
        clients.append(client)
        return await client.execute(ENVELOPE, HEADERS)

    yield call
    for client in clients:
        await client.aclose()


class TestOutcomes:
    async def test_it_succeeds_on_an_extension_2xx(self, call: Any, runner_app: FastAPI) -> None:
        outcome = await call("ok")
        assert outcome.status is RunStatus.SUCCEEDED
        assert (outcome.http_status, outcome.error, outcome.retryable) == (200, None, False)
        assert outcome.response_preview == '{"synced": 3}'
        assert 0 <= outcome.duration_ms < 5000

    async def test_it_posts_the_envelope_with_transport_headers(
        self, call: Any, runner_app: FastAPI
    ) -> None:
        await call("ok")
        received = runner_app.state.received[-1]
        assert received["envelope"] == ENVELOPE
        assert received["headers"]["content-type"] == "application/json"
        assert received["headers"]["x-idempotency-key"] == "run-1:1"
        assert received["headers"]["x-request-id"] == "r-1"
        assert received["headers"]["x-tenant-id"] == "acme"
        assert received["authorization"] == [f"Bearer {TOKEN}"]

    async def test_it_sends_its_own_token_whatever_the_caller_headers_say(
        self, runner_url: str, runner_app: FastAPI
    ) -> None:
        forged = {**HEADERS, "Authorization": "Bearer forged", "authorization": "Bearer x"}
        async with RunnerClient(f"{runner_url}/ok", 5000, CAP, token=TOKEN) as client:
            outcome = await client.execute(ENVELOPE, forged)
        assert outcome.status is RunStatus.SUCCEEDED
        assert runner_app.state.received[-1]["authorization"] == [f"Bearer {TOKEN}"]

    async def test_it_succeeds_without_a_body_and_on_3xx(self, call: Any) -> None:
        no_body = await call("ok-no-body")
        assert (no_body.status, no_body.http_status, no_body.response_preview) == (
            RunStatus.SUCCEEDED,
            204,
            None,
        )
        redirect = await call("redirect")
        assert (redirect.status, redirect.http_status) == (RunStatus.SUCCEEDED, 302)

    async def test_it_accepts_any_runner_2xx(self, call: Any) -> None:
        assert (await call("runner-201")).status is RunStatus.SUCCEEDED

    async def test_it_fails_without_retry_on_an_extension_4xx(self, call: Any) -> None:
        outcome = await call("ext-404")
        assert outcome.status is RunStatus.FAILED
        assert (outcome.http_status, outcome.retryable) == (404, False)
        assert outcome.error == "extension answered HTTP 404: no such contact"
        assert outcome.response_preview == '{"detail":"nope"}'

    async def test_it_fails_without_retry_on_an_extension_5xx(self, call: Any) -> None:
        outcome = await call("ext-500")
        assert outcome.status is RunStatus.FAILED
        assert (outcome.http_status, outcome.retryable) == (500, False)
        assert outcome.error == "extension answered HTTP 500"
        assert outcome.response_preview == "boom"

    async def test_it_cuts_the_preview_at_1024_bytes(self, call: Any) -> None:
        outcome = await call("long-body")
        assert outcome.response_preview is not None
        assert outcome.response_preview == ("é" * 512)
        assert len(outcome.response_preview.encode()) == 1024

    async def test_it_keeps_errors_to_one_line_of_at_most_1000_chars(self, call: Any) -> None:
        outcome = await call("long-error")
        assert outcome.error is not None
        assert outcome.error.startswith("extension answered HTTP 503: line one line two xxx")
        assert "\n" not in outcome.error
        assert len(outcome.error) == 1000

    @pytest.mark.parametrize(
        ("scenario", "code"), [("runner-500", 500), ("runner-502", 502), ("runner-429", 429)]
    )
    async def test_it_retries_runner_5xx_and_429(self, call: Any, scenario: str, code: int) -> None:
        outcome = await call(scenario)
        assert outcome.status is RunStatus.FAILED
        assert outcome.retryable is True
        assert outcome.http_status is None
        assert outcome.error is not None
        assert outcome.error.startswith(f"runner answered HTTP {code}")

    async def test_it_does_not_retry_other_runner_4xx(self, call: Any) -> None:
        outcome = await call("runner-400")
        assert (outcome.status, outcome.retryable) == (RunStatus.FAILED, False)
        assert outcome.error == "runner answered HTTP 400: bad envelope"

    @pytest.mark.parametrize(
        ("scenario", "reason"),
        [
            ("non-json", "body is not JSON"),
            ("empty", "empty body"),
            ("json-array", "body is not a JSON object"),
            ("status-string", "'status' must be an HTTP status code"),
            ("status-bool", "'status' must be an HTTP status code"),
            ("status-out-of-range", "'status' must be an HTTP status code"),
            ("no-headers", "'headers' must be an object of strings"),
            ("bad-headers", "'headers' must be an object of strings"),
            ("bad-base64", "'body_b64' is not valid base64"),
            ("bad-error", "'error' must be a string"),
        ],
    )
    async def test_it_fails_without_retry_on_a_malformed_runner_body(
        self, call: Any, scenario: str, reason: str
    ) -> None:
        outcome = await call(scenario)
        assert outcome.status is RunStatus.FAILED
        assert (outcome.retryable, outcome.http_status) == (False, None)
        assert outcome.error == f"invalid runner response: {reason}"


class TestLimits:
    async def test_it_refuses_a_declared_oversized_body_without_reading_it(self) -> None:
        async def declared(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            # Declares 10 MiB, sends nothing more and never closes: reading would time out.
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10485760\r\n\r\n")
            await writer.drain()
            await reader.read()  # until the client hangs up

        async with (
            serve_tcp(declared) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 5000, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert outcome.status is RunStatus.FAILED and outcome.retryable is False
        assert outcome.error == f"runner response exceeds {CAP} bytes"
        assert outcome.duration_ms < 4000  # refused on the header, not after the timeout

    async def test_it_stops_an_endless_body_at_the_cap_instead_of_timing_out(self) -> None:
        async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            chunk = b"x" * (16 * KIB)
            while True:  # until the client hangs up
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()

        async with (
            serve_tcp(endless) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 5000, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert outcome.status is RunStatus.FAILED
        assert outcome.error == f"runner response exceeds {CAP} bytes"

    async def test_it_times_out_a_runner_that_never_answers(self) -> None:
        release = asyncio.Event()

        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            await release.wait()

        async with (
            serve_tcp(hang) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 300, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert outcome.status is RunStatus.TIMED_OUT
        assert outcome.retryable is True
        assert outcome.error == "runner timed out after 300 ms"
        assert outcome.http_status is None
        assert 300 <= outcome.duration_ms < 3000

    async def test_it_times_out_the_whole_exchange_including_the_body(self) -> None:
        release = asyncio.Event()

        async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")
            await writer.drain()
            await release.wait()

        async with (
            serve_tcp(trickle) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 300, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert outcome.status is RunStatus.TIMED_OUT
        assert 300 <= outcome.duration_ms < 3000


class TestNetworkFaults:
    async def test_it_retries_a_refused_connection(self) -> None:
        async with RunnerClient(
            f"http://127.0.0.1:{free_port()}", 5000, CAP, token=TOKEN
        ) as client:
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert outcome.status is RunStatus.FAILED
        assert outcome.retryable is True
        assert outcome.error is not None
        assert outcome.error.startswith("runner connection error: ConnectionRefusedError")

    async def test_it_retries_a_connection_reset_mid_response(self) -> None:
        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"{" * 100)
            await writer.drain()
            await asyncio.sleep(0.2)  # the client has read the head and part of the body
            sock = writer.get_extra_info("socket")
            # Linger 0: close() sends a TCP RST instead of an orderly FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

        async with (
            serve_tcp(reset) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 5000, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert outcome.status is RunStatus.FAILED
        assert outcome.retryable is True
        assert outcome.error is not None
        assert outcome.error.startswith("runner connection error:")

    async def test_it_retries_a_connection_closed_before_the_body_ends(self) -> None:
        async def truncate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"{" * 10)
            await writer.drain()

        async with (
            serve_tcp(truncate) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 5000, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert (outcome.status, outcome.retryable) == (RunStatus.FAILED, True)
        assert outcome.error is not None
        assert outcome.error.startswith("runner connection error: ResponseCutShort")


class TestClientLifecycle:
    async def test_it_reuses_connections_between_calls(
        self, runner_url: str, runner_app: FastAPI
    ) -> None:
        async with RunnerClient(f"{runner_url}/ok", 5000, CAP, token=TOKEN) as client:
            await client.execute(ENVELOPE, HEADERS)
            await client.execute(ENVELOPE, HEADERS)
        first, second = runner_app.state.received[-2:]
        assert first["peer"] == second["peer"]

    async def test_it_opens_new_connections_after_aclose(self, runner_url: str) -> None:
        client = RunnerClient(f"{runner_url}/ok/", 5000, CAP, token=TOKEN)
        assert (await client.execute(ENVELOPE, HEADERS)).status is RunStatus.SUCCEEDED
        await client.aclose()
        assert (await client.execute(ENVELOPE, HEADERS)).status is RunStatus.SUCCEEDED
        await client.aclose()

    async def test_it_reads_a_chunked_body_and_one_ended_by_the_close(self) -> None:
        body = json.dumps(reply(200, body=b"chunked")).encode()

        async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (body[:10], body[10:]):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            await reader.read()

        async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + body)
            await writer.drain()
            writer.close()

        for server in (chunked, until_close):
            async with (
                serve_tcp(server) as port,
                RunnerClient(f"http://127.0.0.1:{port}", 5000, CAP, token=TOKEN) as client,
            ):
                outcome = await client.execute(ENVELOPE, HEADERS)
            assert outcome.status is RunStatus.SUCCEEDED, outcome
            assert outcome.response_preview == "chunked"

    async def test_it_fails_without_retry_on_a_response_that_is_not_http(self) -> None:
        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_http_request(reader)
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            await writer.drain()
            await reader.read()

        async with (
            serve_tcp(garbage) as port,
            RunnerClient(f"http://127.0.0.1:{port}", 5000, CAP, token=TOKEN) as client,
        ):
            outcome = await client.execute(ENVELOPE, HEADERS)
        assert (outcome.status, outcome.retryable) == (RunStatus.FAILED, False)
        assert outcome.error is not None
        assert outcome.error.startswith("runner request failed: ProtocolError")

    def test_it_refuses_nonsensical_limits(self) -> None:
        with pytest.raises(ValueError, match="timeout_ms"):
            RunnerClient("http://x", 0, CAP, token=TOKEN)
        with pytest.raises(ValueError, match="max_response_bytes"):
            RunnerClient("http://x", 1000, 0, token=TOKEN)
        with pytest.raises(ValueError, match="token"):
            RunnerClient("http://x", 1000, CAP, token="")


def test_it_flattens_and_truncates_error_text() -> None:
    assert one_line("a\n\tb  c ") == "a b c"
    assert one_line("x" * 2000) == "x" * 999 + "…"
    assert json.dumps(one_line("é" * 10, limit=5)) == json.dumps("éééé…")
