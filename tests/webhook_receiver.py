"""A notification receiver: a real HTTP server (in a thread) that records every webhook call
and answers with the status a test sets; it also tracks how many calls were in flight at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from standardwebhooks.webhooks import Webhook

from tests.helpers.http_server import run_asgi_server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str

    def verify(self, secret: str) -> Any:
        """The payload, after verifying its signature as a receiver would."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    status: int = 200
    delay: float = 0.0  # seconds the receiver takes to answer (to observe concurrency)
    calls: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.calls)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(request: Request, path: str) -> Response:
            with self.lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                body = await request.body()
                if self.delay:
                    await asyncio.sleep(self.delay)  # a slow receiver, not a test wait
                with self.lock:
                    self.calls.append(Received(dict(request.headers), body, "/" + path))
                return Response(b"thanks", status_code=self.status)
            finally:
                with self.lock:
                    self.in_flight -= 1

        return app


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with run_asgi_server(receiver.app(), graceful_shutdown_s=1) as url:
        receiver.url = url
        yield receiver
