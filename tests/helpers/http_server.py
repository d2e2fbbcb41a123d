"""Run an ASGI app as a real HTTP server on 127.0.0.1 for the duration of a test.

    with run_asgi_server(app) as base_url:
        httpx.get(f"{base_url}/healthz")

The server runs uvicorn in a daemon thread with its own event loop, on a socket bound to port 0
before start (so the URL is known without races). Entering waits until uvicorn has started (or
raises if it failed to); leaving asks it to exit, gives in-flight requests
``graceful_shutdown_s`` seconds, and joins the thread. Usable from sync and async tests alike.

``serve_tcp`` runs a raw asyncio TCP server in the test's own loop for peers that misbehave at
the socket level (resets, hangs).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Literal

import uvicorn

__all__ = ["free_port", "read_http_request", "run_asgi_server", "serve_tcp"]


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago (for 'connection refused' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def run_asgi_server(
    app: Any,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    startup_timeout_s: float = 10.0,
    graceful_shutdown_s: float = 2.0,
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:PORT``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,  # leave the test process's logging configuration alone
        log_level="warning",
        access_log=False,
        ws="none",  # no websockets import: its deprecation warnings would be errors here
        loop="asyncio",
        timeout_graceful_shutdown=int(max(graceful_shutdown_s, 1)),
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on a failed lifespan startup, too
            failure.append(exc)

    thread = threading.Thread(target=serve, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"test server failed to start: {failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"test server did not start within {startup_timeout_s} s")
            time.sleep(0.005)  # polling for readiness, not waiting for an outcome
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout_s + graceful_shutdown_s + 5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()
    if failure and not isinstance(failure[0], SystemExit):
        raise RuntimeError("test server crashed") from failure[0]


TcpHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve_tcp(handler: TcpHandler) -> AsyncIterator[int]:
    """Run a raw TCP server on 127.0.0.1 in the current event loop and yield its port.

    For misbehaving peers an ASGI server cannot imitate (resets, hangs, truncated bodies).
    Each connection runs ``handler``; the writer is closed afterwards. On exit, handlers still
    running (e.g. waiting on an event that never fires) are cancelled and awaited.
    """
    tasks: set[asyncio.Task[Any]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass
        finally:
            tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        pending = list(tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()


async def read_http_request(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 request (head and a Content-Length body) and return the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return await reader.readexactly(length) if length else b""
