"""Reference Runner: a real ``POST /v1/execute`` server (SPEC §6) that forwards to an upstream.

Transport status is 200 whenever the upstream answered (or the Runner itself refused the call
on the extension's behalf); the JSON body's ``status`` is then the extension's status, or the
Runner's own verdict for it:

- 404 unknown ``content_hash``, unknown install, or an endpoint the manifest does not declare;
- 400 a provider (capability) the manifest does not declare;
- 501 the manifest has no ``runtime.upstream_url``; 500 the stored manifest is invalid;
- 502 the upstream answered with more than ``max_response_bytes``.

When there is no upstream answer the call is a Runner failure, never the extension's status
(SPEC §6, retried per §9): transport 502 ``UPSTREAM_UNREACHABLE`` (refused, reset, broken
exchange) and transport 504 ``UPSTREAM_TIMEOUT`` (no answer within ``limits.timeout_ms``).

A malformed envelope is transport 400 with ``{"error": {"code": "BAD_REQUEST", ...}}``. A call
without ``authorization: Bearer <runner token>`` is transport 401 (``UNAUTHENTICATED``), answered
before the body is read: only the service can make this Runner sign a call. ``/healthz`` is open.

What the upstream receives (SPEC §6) is computed here from ``context``, never taken from the
caller's ``http.headers`` (only ``content-type`` is): the ``x-extsched-*`` headers, the install's
config (``x-extsched-config``) and, with ``cap:secrets.get`` declared and granted, its decrypted
secrets (``x-extsched-secrets``), the caller's ``traceparent``, and a Standard Webhooks
signature with each of the install's active signing secrets. The signing secrets are read from
the database by ``signing_secrets_for`` (they never travel in the envelope); the install's
secrets are opened from ``secret_envelope`` by ``open_secrets``. Neither is ever logged.

The upstream client is created on first use. Sub-app lifespans do not run when this app is
mounted inside another one, so a host that mounts it should pass ``upstream_client`` and close
it itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from standardwebhooks.webhooks import Webhook

from extsched.crypto import SecretsUnreadable
from extsched.domain.manifest import (
    SECRETS_CAPABILITY,
    ManifestInvalid,
    find_endpoint,
    normalize_path,
    parse_manifest,
)

DEFAULT_MAX_RESPONSE_BYTES = 262_144
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_TIMEOUT_MS = 3_600_000
# Upstream response headers worth handing back; everything else (cookies, hop-by-hop,
# server details) stays behind the Runner.
RETURNED_HEADERS = frozenset(
    {
        "content-type",
        "content-language",
        "cache-control",
        "etag",
        "last-modified",
        "location",
        "retry-after",
    }
)

_TRACEPARENT_RE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

ManifestResolver = Callable[[str], Awaitable[dict[str, Any] | None]]
# (tenant_id, install_id) -> the install's active whsec_ secrets, newest first; [] if unknown.
SigningSecretsLookup = Callable[[str, str], Awaitable[list[str]]]
# (secret_envelope, tenant_id, install_id) -> the install's secrets.
SecretsOpener = Callable[[dict[str, Any], str, str], dict[str, str]]


def _no_line_breaks(value: str) -> bool:
    return not any(ch in value for ch in "\r\n\x00")


class EnvelopeContext(BaseModel):
    """The part of ``context`` the reference Runner needs; other keys are accepted and ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")
    content_hash: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1, max_length=256)
    install_id: str = Field(min_length=1, max_length=256)
    extension_id: str | None = Field(default=None, max_length=256)
    request_id: str | None = Field(default=None, max_length=256)
    config: dict[str, str] = Field(default_factory=dict)
    trigger: str | None = Field(default=None, max_length=64)
    schedule_id: str | None = Field(default=None, max_length=256)
    run_id: str | None = Field(default=None, max_length=256)
    scheduled_for: str | None = Field(default=None, max_length=64)
    attempt: int | None = Field(default=None, ge=1)

    @field_validator("tenant_id", "install_id", "extension_id", "request_id")
    @classmethod
    def _id_safe(cls, value: str | None) -> str | None:
        if value is not None and not _no_line_breaks(value):
            raise ValueError("must not contain line breaks")
        return value

    @field_validator("trigger", "schedule_id", "run_id", "scheduled_for")
    @classmethod
    def _header_value_safe(cls, value: str | None) -> str | None:
        if value is not None and not _no_line_breaks(value):
            raise ValueError("must not contain line breaks")
        return value

    def extsched_headers(self) -> dict[str, str]:
        """The ``x-extsched-*`` headers for the upstream (SPEC §6), from this context only."""
        values = {
            "x-extsched-trigger": self.trigger,
            "x-extsched-schedule-id": self.schedule_id,
            "x-extsched-run-id": self.run_id,
            "x-extsched-scheduled-for": self.scheduled_for,
        }
        return {name: value for name, value in values.items() if value is not None}

    def webhook_id(self) -> str:
        """``<run_id>:<attempt>`` (stable across redeliveries of one attempt), else the
        request id: what an upstream deduplicates on."""
        if self.run_id is not None and self.attempt is not None:
            return f"{self.run_id}:{self.attempt}"
        return self.request_id or str(uuid.uuid4())


class EnvelopeHttp(BaseModel):
    """The HTTP request to perform against the extension."""

    model_config = ConfigDict(strict=True, extra="ignore")
    method: str = Field(min_length=1, max_length=16)
    path: str = Field(min_length=1, max_length=4096)
    query: dict[str, str | list[str]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body_b64: str | None = None

    @field_validator("headers")
    @classmethod
    def _header_safe(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not name or not _no_line_breaks(name) or ":" in name or not _no_line_breaks(value):
                raise ValueError(f"invalid header {name!r}")
        return headers

    def body(self) -> bytes:
        """The decoded body (empty when absent); raises ValueError on invalid base64."""
        if self.body_b64 is None:
            return b""
        try:
            return base64.b64decode(self.body_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError("http.body_b64 is not valid base64") from exc


class EnvelopeLimits(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    timeout_ms: int = Field(gt=0, le=MAX_TIMEOUT_MS)


class Envelope(BaseModel):
    """``POST /v1/execute`` request body (SPEC §6)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    context: EnvelopeContext
    http: EnvelopeHttp
    limits: EnvelopeLimits
    providers: list[str] = Field(default_factory=list)
    secret_envelope: dict[str, Any] | None = None


class _UpstreamTooLarge(Exception):
    pass


def _result(
    status: int,
    *,
    error: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> JSONResponse:
    content: dict[str, Any] = {"status": status, "headers": headers or {}}
    if body:
        content["body_b64"] = base64.b64encode(body).decode("ascii")
    if error is not None:
        content["error"] = error
    return JSONResponse(content)


def _unauthenticated() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "UNAUTHENTICATED", "message": "a valid Runner token is required"}},
        status_code=401,
        headers={"www-authenticate": "Bearer"},
    )


def _bearer_matches(authorization: str, expected: bytes) -> bool:
    """Whether ``authorization`` is ``Bearer <expected>``; compared in constant time."""
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Header values arrive decoded as latin-1; any bytes compare, a wrong one never matches.
    return hmac.compare_digest(presented.strip().encode("latin-1", "replace"), expected)


def _runner_failure(status_code: int, code: str, message: str) -> JSONResponse:
    """No upstream answer: a transport error, so the service retries it (SPEC §6, §9)."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


def _b64url_json(value: object) -> str:
    """base64url (RFC 4648 §5, padded) of compact UTF-8 JSON: safe in a header value."""
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def sign_webhook(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


def _bad_request(message: str, status_code: int = 400) -> JSONResponse:
    code = "BAD_REQUEST" if status_code == 400 else "REQUEST_TOO_LARGE"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause) or type(cause).__name__
    return (text or type(exc).__name__).replace("\n", " ")[:300]


async def _read_capped(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_runner_app(
    resolve_manifest: ManifestResolver,
    signing_secrets_for: SigningSecretsLookup,
    open_secrets: SecretsOpener,
    *,
    token: str,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    upstream_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """Build the reference Runner.

    ``resolve_manifest(content_hash)`` returns the raw manifest of that version (None if
    unknown); ``signing_secrets_for(tenant_id, install_id)`` the install's active signing
    secrets; ``open_secrets(secret_envelope, tenant_id, install_id)`` the install's secrets
    (raising ``SecretsUnreadable``); ``token`` is the bearer token every ``/v1/execute`` call
    must carry.
    """
    if not token:
        raise ValueError("the Runner token must not be empty")
    expected = token.encode()
    state: dict[str, httpx.AsyncClient] = {}
    if upstream_client is not None:
        state["client"] = upstream_client

    def client() -> httpx.AsyncClient:
        if "client" not in state:
            # asyncio.timeout per call bounds every exchange; httpx's own timeouts stay off.
            state["client"] = httpx.AsyncClient(timeout=None, follow_redirects=False)
        return state["client"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        owned = state.get("client")
        if owned is not None and owned is not upstream_client:
            await owned.aclose()
            del state["client"]

    app = FastAPI(title="extsched reference Runner", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/execute")
    async def execute(request: Request) -> JSONResponse:
        # First, before the body is read or anything is looked up.
        if not _bearer_matches(request.headers.get("authorization", ""), expected):
            return _unauthenticated()
        raw = await _read_capped(request, MAX_ENVELOPE_BYTES)
        if raw is None:
            return _bad_request(f"envelope exceeds {MAX_ENVELOPE_BYTES} bytes", 413)
        try:
            envelope = Envelope.model_validate_json(raw)
            body = envelope.http.body()
            body_text = body.decode("utf-8")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return _bad_request(f"invalid envelope: {where}: {first['msg']}")
        except UnicodeDecodeError:
            return _bad_request("invalid envelope: http.body_b64 must hold UTF-8 text")
        except ValueError as exc:
            return _bad_request(f"invalid envelope: {exc}")
        context = envelope.context

        manifest_raw = await resolve_manifest(envelope.context.content_hash)
        if manifest_raw is None:
            return _result(404, error="unknown extension version")
        try:
            manifest = parse_manifest(manifest_raw)
        except ManifestInvalid:
            return _result(500, error="extension manifest is invalid")

        for provider in envelope.providers:
            if provider not in manifest.capabilities:
                return _result(400, error=f"capability not declared: {provider}")

        method = envelope.http.method.strip().upper()
        path = normalize_path(envelope.http.path)
        if path is None or find_endpoint(manifest.endpoints, method, path) is None:
            return _result(404, error=f"endpoint not declared: {method} {envelope.http.path}")
        if manifest.upstream_url is None:
            return _result(501, error="extension declares no runtime.upstream_url")

        # Only content-type is taken from the caller; every x-extsched-* header comes from
        # the context, so a caller cannot hand the upstream a forged one.
        headers = {
            name.lower(): value
            for name, value in envelope.http.headers.items()
            if name.lower() == "content-type"
        }
        headers.update(context.extsched_headers())
        headers["x-extsched-tenant-id"] = context.tenant_id
        headers["x-extsched-install-id"] = context.install_id
        if context.extension_id is not None:
            headers["x-extsched-extension-id"] = context.extension_id
        headers["x-extsched-version"] = manifest.version
        headers["x-extsched-config"] = _b64url_json(context.config)
        if SECRETS_CAPABILITY in manifest.capabilities and SECRETS_CAPABILITY in envelope.providers:
            secrets: dict[str, str] = {}
            if envelope.secret_envelope is not None:
                try:
                    secrets = open_secrets(
                        envelope.secret_envelope, context.tenant_id, context.install_id
                    )
                except SecretsUnreadable:
                    return _runner_failure(
                        500, "SECRETS_UNREADABLE", "the secret envelope cannot be opened"
                    )
            headers["x-extsched-secrets"] = _b64url_json(secrets)
        traceparent = request.headers.get("traceparent", "").strip().lower()
        if _TRACEPARENT_RE.fullmatch(traceparent):
            headers["traceparent"] = traceparent
        try:
            signing_secrets = await signing_secrets_for(context.tenant_id, context.install_id)
        except SecretsUnreadable:
            return _runner_failure(
                500, "SECRETS_UNREADABLE", "the install's signing secrets cannot be read"
            )
        if not signing_secrets:
            return _result(404, error="unknown install")
        msg_id = context.webhook_id()
        now = datetime.now(UTC).replace(microsecond=0)
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = sign_webhook(signing_secrets, msg_id, now, body_text)
        url = manifest.upstream_url.rstrip("/") + path
        timeout_ms = envelope.limits.timeout_ms
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return await _forward(
                    client(), method, url, envelope.http.query, headers, body, max_response_bytes
                )
        except TimeoutError:
            return _runner_failure(
                504, "UPSTREAM_TIMEOUT", f"upstream did not answer within {timeout_ms} ms"
            )
        except _UpstreamTooLarge:
            return _result(502, error="upstream response too large")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return _runner_failure(
                502, "UPSTREAM_UNREACHABLE", f"upstream unreachable: {_describe(exc)}"
            )
        except httpx.HTTPError as exc:
            return _runner_failure(
                502,
                "UPSTREAM_UNREACHABLE",
                f"upstream error: {type(exc).__name__}: {_describe(exc)}",
            )

    return app


async def _forward(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    query: dict[str, str | list[str]],
    headers: dict[str, str],
    body: bytes,
    cap: int,
) -> JSONResponse:
    request = client.build_request(
        method, url, params=query, headers=headers, content=body if body else None
    )
    response = await client.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _UpstreamTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise _UpstreamTooLarge
            chunks.append(chunk)
    finally:
        await response.aclose()
    returned = {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower() in RETURNED_HEADERS
    }
    return _result(response.status_code, headers=returned, body=b"".join(chunks))
