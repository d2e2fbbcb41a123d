"""A lean HTTP/1.1 client for the one request the worker makes per attempt: ``POST`` a JSON body
to a fixed URL over kept-alive connections, read a bounded response.

The general-purpose client (aiohttp) spent about a third of a worker's CPU per run building
request and response objects, header multidicts and URL objects the Runner call never needs.
This one writes a prebuilt request head and parses the response with ``httptools`` (the C
parser uvicorn uses) straight into a status and a byte string. Pooling is a LIFO stack of idle
connections: under a burst the same few stay hot; an idle one the server closed is dropped when
its close arrives, and one idle longer than ``keepalive_s`` is closed instead of reused.

Errors: ``OSError`` (refused, reset, closed early: ``ConnectionError``), ``ResponseTooLarge``,
``ProtocolError`` (not HTTP). The caller bounds each exchange with ``asyncio.timeout``; a
cancelled exchange closes its connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools


class ResponseTooLarge(Exception):
    """The response declares or streams more than the allowed bytes."""


class ProtocolError(Exception):
    """The server's bytes are not a valid HTTP/1.1 response."""


class ResponseCutShort(ConnectionError):
    """The connection closed before the response was complete."""


class _Exchange:
    """The state of one request/response on a connection."""

    __slots__ = ("chunks", "done", "length", "status")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.chunks: list[bytes] = []
        self.length = 0
        self.status = 0


class _Connection(asyncio.Protocol):
    """One kept-alive connection; ``httptools`` calls the ``on_*`` methods while parsing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.closed = False
        self.keep_alive = True
        self.idle_since = 0.0
        # Whether the response being read ends only when the connection does.
        self.delimited_by_close = True

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            # Bytes nobody asked for: the connection cannot be trusted for the next request.
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            # An exception raised in a callback comes back wrapped, as the context.
            cause = exc.__context__
            self._fail(
                cause
                if isinstance(cause, ResponseTooLarge)
                else ProtocolError(str(exc) or type(exc).__name__)
            )

    def eof_received(self) -> bool | None:
        ex = self.exchange
        if ex is not None and self.delimited_by_close and not ex.done.done():
            # A body without length or chunking ends with the connection (RFC 9112 §6.3).
            ex.status = self.parser.get_status_code()
            self.keep_alive = False
            ex.done.set_result(None)
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        if ex is not None and not ex.done.done():
            if not isinstance(exc, OSError):
                exc = ResponseCutShort(
                    f"connection closed before the response ended{f': {exc}' if exc else ''}"
                )
            ex.done.set_exception(exc)

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.delimited_by_close = False
            if value.strip().isdigit() and int(value) > self.limit:
                raise ResponseTooLarge
        elif name == b"transfer-encoding":
            self.delimited_by_close = False

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 or status in (204, 304):
            self.delimited_by_close = False

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        assert ex is not None
        ex.length += len(body)
        if ex.length > self.limit:
            raise ResponseTooLarge
        ex.chunks.append(body)

    def on_message_complete(self) -> None:
        ex = self.exchange
        assert ex is not None
        ex.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if not ex.done.done():
            ex.done.set_result(None)

    # -- use
    def _fail(self, exc: BaseException) -> None:
        if self.exchange is not None and not self.exchange.done.done():
            self.exchange.done.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        ex = _Exchange(asyncio.get_running_loop().create_future())
        self.exchange = ex
        self.delimited_by_close = True
        self.transport.write(data)
        await ex.done
        self.exchange = None
        # A fresh parser per response: httptools keeps per-message state.
        self.parser = httptools.HttpResponseParser(self)
        return ex.status, b"".join(ex.chunks)


class HttpClient:
    """``POST`` to one URL; up to ``max_connections`` kept alive for reuse."""

    def __init__(
        self,
        url: str,
        *,
        max_response_bytes: int,
        keepalive_s: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        default_port = self.port == (443 if self.ssl else 80)
        authority = parts.hostname if default_port else f"{parts.hostname}:{self.port}"
        if ":" in parts.hostname:  # an IPv6 literal
            authority = f"[{parts.hostname}]" if default_port else f"[{parts.hostname}]:{self.port}"
        self._head_start = f"POST {target} HTTP/1.1\r\nhost: {authority}\r\n".encode("latin-1")
        self.limit = max_response_bytes
        self.keepalive_s = keepalive_s
        self.max_idle = max_connections
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def head(self, headers: Mapping[str, str], length: int) -> bytes:
        """The request head for these headers and a body of ``length`` bytes."""
        lines = [self._head_start]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}\r\n".encode())
        lines.append(b"content-length: %d\r\n\r\n" % length)
        return b"".join(lines)

    async def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """Send ``body`` with ``headers``; the response's status and body."""
        data = self.head(headers, len(body)) + body
        conn = await self._checkout()
        try:
            status, payload = await conn.request(data)
        except BaseException:
            conn.abort()  # a half-read response: the connection cannot be reused
            raise
        if conn.keep_alive and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return status, payload

    async def _checkout(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Used from a new event loop: connections of the old one cannot be reused.
            self._loop, self._idle = loop, []
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        _, protocol = await loop.create_connection(
            lambda: _Connection(self.limit),
            self.host,
            self.port,
            ssl=self.ssl,
            server_hostname=self.host if self.ssl else None,
        )
        return protocol

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if idle:
            await asyncio.sleep(0)  # let the transports close
