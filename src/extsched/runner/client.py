"""Outbound Runner contract (SPEC §6): POST an envelope to ``{runner}/v1/execute``.

``RunnerClient.execute`` never raises for a Runner or network problem: every exchange ends in a
``RunnerOutcome`` (SPEC §9), so callers record failures as data and decide on retries from
``retryable``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from extsched.config import ConfigError, Settings
from extsched.domain.runs import RunStatus
from extsched.runner.envelope import compact_json
from extsched.runner.http import HttpClient, ProtocolError, ResponseTooLarge

MAX_ERROR_CHARS = 1000
MAX_PREVIEW_BYTES = 1024
EXECUTE_PATH = "/v1/execute"


@dataclass(frozen=True)
class RunnerOutcome:
    """Result of one attempt. ``status`` is SUCCEEDED, FAILED or TIMED_OUT.

    ``http_status`` is the extension's status (from the Runner's JSON), ``None`` when the Runner
    gave no valid answer; ``response_preview`` is at most the first 1,024 bytes of the
    extension's body, decoded as UTF-8 with replacement characters.
    """

    status: RunStatus
    retryable: bool
    http_status: int | None
    error: str | None
    response_preview: str | None
    duration_ms: int


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapse whitespace to single spaces and cut to ``limit`` characters (with an ellipsis)."""
    # NUL is the one character a PostgreSQL text column cannot hold.
    flat = re.sub(r"\s+", " ", text.replace("\x00", "\ufffd")).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class RunnerClient:
    """Calls one Runner; reuses connections (keep-alive) across calls.

    Every call carries ``authorization: Bearer <token>`` (SPEC §4 "Runner authentication").
    ``timeout_ms`` bounds the whole exchange (connect, send, read of the full body);
    responses larger than ``max_response_bytes`` are abandoned while streaming, so they never
    sit in memory. The HTTP work is ``runner.http``'s lean client: the one request shape this
    client sends, over a few warm connections.
    """

    def __init__(
        self,
        base_url: str,
        timeout_ms: int,
        max_response_bytes: int,
        *,
        token: str,
    ) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        if max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")
        if not token:
            raise ValueError("token must not be empty")
        self.base_url = base_url.rstrip("/")
        self._authorization = f"Bearer {token}"
        self.timeout_ms = timeout_ms
        self.max_response_bytes = max_response_bytes
        self._http = HttpClient(
            self.base_url + EXECUTE_PATH, max_response_bytes=max_response_bytes, keepalive_s=30
        )

    async def aclose(self) -> None:
        """Close the kept-alive connections."""
        await self._http.aclose()

    @classmethod
    def for_settings(cls, settings: Settings) -> RunnerClient:
        """The client for ``EXTSCHED_RUNNER_URL`` with the configured token and limits."""
        if settings.runner_url is None:
            raise ConfigError("EXTSCHED_RUNNER_URL: required to call the Runner")
        return cls(
            settings.runner_url,
            settings.runner_timeout_ms,
            settings.runner_max_response_bytes,
            token=settings.runner_token_value,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def execute(self, envelope: dict[str, Any], headers: dict[str, str]) -> RunnerOutcome:
        """POST ``envelope`` with the transport ``headers``; always return an outcome."""
        started = time.monotonic()

        def done(
            status: RunStatus,
            *,
            retryable: bool = False,
            http_status: int | None = None,
            error: str | None = None,
            preview: str | None = None,
        ) -> RunnerOutcome:
            return RunnerOutcome(
                status=status,
                retryable=retryable,
                http_status=http_status,
                error=one_line(error) if error is not None else None,
                response_preview=preview.replace("\x00", "\ufffd") if preview else preview,
                duration_ms=int((time.monotonic() - started) * 1000),
            )

        body = compact_json(envelope)
        request_headers = {
            name: value
            for name, value in headers.items()
            if name.lower() not in ("authorization", "content-type")
        }
        request_headers["content-type"] = "application/json"
        request_headers["authorization"] = self._authorization
        # The attempt's own limit (a schedule's timeout_ms), as the Runner was told.
        limits = envelope.get("limits")
        timeout_ms = limits.get("timeout_ms") if isinstance(limits, dict) else None
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            timeout_ms = self.timeout_ms
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                status_code, reply_body = await self._http.post(body, request_headers)
        except TimeoutError:
            return done(
                RunStatus.TIMED_OUT,
                retryable=True,
                error=f"runner timed out after {timeout_ms} ms",
            )
        except ResponseTooLarge:
            return done(
                RunStatus.FAILED,
                error=f"runner response exceeds {self.max_response_bytes} bytes",
            )
        except OSError as exc:  # refused, reset, closed before the response ended, TLS
            return done(
                RunStatus.FAILED, retryable=True, error=f"runner connection error: {_describe(exc)}"
            )
        except (ProtocolError, ValueError) as exc:
            return done(RunStatus.FAILED, error=f"runner request failed: {_describe(exc)}")

        if not 200 <= status_code < 300:
            retryable = status_code >= 500 or status_code == 429
            snippet = _error_message(reply_body)
            error = f"runner answered HTTP {status_code}"
            # A Runner's 504 says the extension did not answer in time (SPEC §6): the
            # attempt timed out, as when the Runner itself does not answer.
            status = RunStatus.TIMED_OUT if status_code == 504 else RunStatus.FAILED
            return done(
                status,
                retryable=retryable,
                error=f"{error}: {snippet}" if snippet.strip() else error,
            )

        parsed = _parse_runner_body(reply_body)
        if isinstance(parsed, str):
            return done(RunStatus.FAILED, error=f"invalid runner response: {parsed}")
        ext_status, ext_body, ext_error = parsed
        preview = (
            ext_body[:MAX_PREVIEW_BYTES].decode("utf-8", errors="replace")
            if ext_body is not None
            else None
        )
        if 200 <= ext_status < 400:
            return done(RunStatus.SUCCEEDED, http_status=ext_status, preview=preview)
        error = f"extension answered HTTP {ext_status}"
        if ext_error:
            error = f"{error}: {ext_error}"
        return done(RunStatus.FAILED, http_status=ext_status, error=error, preview=preview)


def _describe(exc: BaseException) -> str:
    """Name the exception; fall back to its cause's text (when it wraps another)."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause) or type(cause).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error_message(body: bytes) -> str:
    """The message of an error body in the SPEC shape, else the body's first 200 bytes."""
    try:
        data = json.loads(body)
        message = data["error"]["message"]
        if isinstance(message, str):
            return message[:300]
    except (ValueError, UnicodeDecodeError, TypeError, KeyError):
        pass
    return body[:200].decode("utf-8", errors="replace")


def _parse_runner_body(body: bytes) -> tuple[int, bytes | None, str | None] | str:
    """Return (extension status, decoded body, error) or a message saying what is wrong."""
    if not body.strip():
        return "empty body"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "body is not JSON"
    if not isinstance(data, dict):
        return "body is not a JSON object"
    status = data.get("status")
    if type(status) is not int or not 100 <= status <= 599:
        return "'status' must be an HTTP status code"
    headers = data.get("headers")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return "'headers' must be an object of strings"
    body_b64 = data.get("body_b64")
    decoded: bytes | None = None
    if body_b64 is not None:
        if not isinstance(body_b64, str):
            return "'body_b64' must be a string"
        try:
            decoded = base64.b64decode(body_b64, validate=True)
        except (binascii.Error, ValueError):
            return "'body_b64' is not valid base64"
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        return "'error' must be a string"
    return status, decoded, error
