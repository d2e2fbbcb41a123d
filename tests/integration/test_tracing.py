"""Tracing (SPEC §3, §6): one trace per run whose id is the run's, a span per attempt, the
``traceparent`` on the Runner call, and with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set the spans
fire -> run -> attempt -> runner call exported over OTLP/HTTP to a real receiver (an HTTP
server started here, decoding the protobuf posts with opentelemetry-proto)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from extsched import tracing
from extsched.services.context import AppContext
from tests.conftest import Actor, Clock, endpoint_id
from tests.fake_runner import FakeRunner, fake_runner
from tests.helpers.http_server import run_asgi_server
from tests.integration.test_execution import Harness


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: ``POST /v1/traces`` with a protobuf body."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/traces")
        async def traces(request: Request) -> Response:
            assert request.headers["content-type"] == "application/x-protobuf"
            message = ExportTraceServiceRequest()
            message.ParseFromString(await request.body())
            with self.lock:
                for resource in message.resource_spans:
                    for scope in resource.scope_spans:
                        for s in scope.spans:
                            self.spans.append(
                                Span(
                                    s.name,
                                    s.trace_id.hex(),
                                    s.span_id.hex(),
                                    s.parent_span_id.hex(),
                                    {
                                        a.key: a.value.string_value or a.value.int_value
                                        for a in s.attributes
                                    },
                                )
                            )
            return Response(
                ExportTraceServiceRequest().SerializeToString(),
                media_type="application/x-protobuf",
            )

        return app


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = Receiver()
    with run_asgi_server(r.app()) as url:
        r.url = url
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        tracing.reset()  # read the environment again, as a process starting now would
        try:
            yield r
        finally:
            tracing.reset()
            monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")


@pytest.fixture
async def harness(ctx: AppContext, clock: Clock) -> AsyncIterator[tuple[Harness, FakeRunner]]:
    with fake_runner() as runner:
        h = Harness(ctx, clock, runner)
        yield h, runner
        await h.client.aclose()


async def flaky_run(
    client: httpx.AsyncClient, install: Any, alice: Actor, h: Harness, runner: FakeRunner
) -> str:
    """A run-now whose first attempt meets a Runner 503 and whose second succeeds."""
    published, _ = await install(alice, endpoints=[{"method": "POST", "path": "/sync"}])
    runner.behaviour["/sync"] = "flaky:1"
    r = await client.post(
        f"/api/v1/extensions/{published['extension_id']}/schedules",
        json={
            "endpoint_id": endpoint_id(published, "POST", "/sync"),
            "cron": "0 9 * * *",
            "timezone": "UTC",
        },
        headers=alice.headers,
    )
    run = await client.post(f"/api/v1/schedules/{r.json()['id']}/run-now", headers=alice.headers)
    await h.drain()
    run_id: str = run.json()["run_id"]
    return run_id


async def test_it_sends_one_trace_per_run_without_export(
    client: httpx.AsyncClient,
    install: Any,
    alice: Actor,
    harness: tuple[Harness, FakeRunner],
) -> None:
    h, runner = harness
    tracing.reset()
    run_id = await flaky_run(client, install, alice, h, runner)
    first, second = (c.headers["traceparent"].split("-") for c in runner.calls)
    assert first[0] == second[0] == "00" and first[3] == "01"
    assert first[1] == second[1] == run_id.replace("-", "")
    assert first[2] != second[2]  # a span per attempt


async def test_it_exports_fire_run_attempt_and_runner_call_spans(
    client: httpx.AsyncClient,
    install: Any,
    alice: Actor,
    harness: tuple[Harness, FakeRunner],
    receiver: Receiver,
) -> None:
    h, runner = harness
    run_id = await flaky_run(client, install, alice, h, runner)
    tracing.force_flush()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with receiver.lock:
            if len(receiver.spans) >= 6:
                break
        await asyncio.sleep(0.05)
    trace_id = run_id.replace("-", "")
    spans = [s for s in receiver.spans if s.trace_id == trace_id]
    assert sorted(s.name for s in spans) == sorted(
        ["fire", "run", "attempt", "attempt", "runner call", "runner call"]
    )
    by_name: dict[str, list[Span]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    [fire], [run] = by_name["fire"], by_name["run"]
    assert fire.parent_id == ""
    assert run.parent_id == fire.span_id
    assert run.attributes["extsched.run.status"] == "succeeded"
    attempts = sorted(by_name["attempt"], key=lambda s: s.attributes["extsched.run.attempt"])
    assert [a.parent_id for a in attempts] == [run.span_id, run.span_id]
    assert [a.attributes["extsched.run.status"] for a in attempts] == ["failed", "succeeded"]
    calls = {c.parent_id: c for c in by_name["runner call"]}
    assert set(calls) == {a.span_id for a in attempts}
    # What the Runner was sent is the context of each attempt's runner-call span.
    sent = [c.headers["traceparent"] for c in runner.calls]
    assert sent == [f"00-{trace_id}-{calls[a.span_id].span_id}-01" for a in attempts]
