"""A fake Runner: a real HTTP server (SPEC §6) whose answer per endpoint path is set by tests."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.conftest import TEST_RUNNER_TOKEN
from tests.helpers.http_server import run_asgi_server


def ok_body(status: int = 200, body: bytes = b'{"ok":true}') -> dict[str, Any]:
    return {
        "status": status,
        "headers": {"content-type": "application/json"},
        "body_b64": base64.b64encode(body).decode(),
    }


@dataclass
class Call:
    headers: dict[str, str]
    envelope: dict[str, Any]
    at: float

    @property
    def path(self) -> str:
        return str(self.envelope["http"]["path"])

    @property
    def body(self) -> Any:
        b64 = self.envelope["http"].get("body_b64")
        return None if b64 is None else json.loads(base64.b64decode(b64))


@dataclass
class FakeRunner:
    """Behaviours by endpoint path: ``ok``, ``ext_404``, ``ext_500``, ``runner_500``,
    ``runner_429``, ``runner_400``, ``non_json``, ``empty``, ``huge``, ``hang``,
    ``slow`` (300 ms), ``flaky:N`` (Runner 503 N times, then ok).

    Like the reference Runner it answers 401 (and records nothing but the count in
    ``refused``) to a call without ``authorization: Bearer <token>``."""

    behaviour: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    token: str = TEST_RUNNER_TOKEN
    refused: int = 0

    def calls_to(self, path: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == path]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/execute")
        async def execute(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                with self.lock:
                    self.refused += 1
                return Response(b"unauthenticated", status_code=401)
            envelope = await request.json()
            call = Call(dict(request.headers), envelope, time.monotonic())
            with self.lock:
                self.calls.append(call)
                n_same = sum(1 for c in self.calls if c.path == call.path)
            mode = self.behaviour.get(call.path, "ok")
            if mode.startswith("flaky:"):
                mode = "runner_503" if n_same <= int(mode.split(":")[1]) else "ok"
            if mode == "ok":
                return JSONResponse(ok_body())
            if mode == "ext_404":
                return JSONResponse(ok_body(404, b'{"error":"no such thing"}'))
            if mode == "ext_500":
                return JSONResponse(ok_body(500, b"extension exploded"))
            if mode.startswith("runner_"):
                return Response(b"runner trouble", status_code=int(mode.split("_")[1]))
            if mode == "non_json":
                return Response(b"<html>oops</html>", media_type="text/html")
            if mode == "empty":
                return Response(b"", media_type="application/json")
            if mode == "huge":
                return Response(b"[" + b"1," * 1_000_000 + b"1]", media_type="application/json")
            if mode == "slow":
                import asyncio

                await asyncio.sleep(0.3)  # a deliberately slow extension, not a test wait
                return JSONResponse(ok_body())
            if mode == "hang":
                import asyncio

                await asyncio.to_thread(self.release.wait, 30)
                return JSONResponse(ok_body())
            raise AssertionError(f"unknown behaviour {mode}")

        return app


@contextmanager
def fake_runner() -> Iterator[FakeRunner]:
    runner = FakeRunner()
    with run_asgi_server(runner.app(), graceful_shutdown_s=1) as url:
        runner.url = url
        try:
            yield runner
        finally:
            runner.release.set()
