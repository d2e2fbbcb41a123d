"""Renders every error in the SPEC §5 shape: ours, FastAPI's validation, Starlette's HTTP."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from extsched.errors import BadRequest, ExtschedError, NotFound, RequestTooLarge, ValidationFailed

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def error_response(exc: ExtschedError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=exc.headers)


def _field_key(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    # Union members appear as tags like "dict[str,any]"; the field is what precedes them.
    parts = [p for p in parts if "[" not in p]
    return ".".join(parts) or "body"


def validation_to_error(exc: RequestValidationError) -> ExtschedError:
    """Malformed JSON or a missing body is a 400; everything else a 422 with field errors."""
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            return BadRequest(f"malformed JSON: {err.get('ctx', {}).get('error', 'invalid')}")
        if err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",):
            return BadRequest("a JSON request body is required")
    field_errors: dict[str, str] = {}
    for err in errors:
        key = _field_key(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "uuid_parsing":
            msg = "must be a UUID"
        field_errors.setdefault(key, msg)
    first = next(iter(field_errors.items()))
    return ValidationFailed(f"{first[0]}: {first[1]}", field_errors=field_errors)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ExtschedError)
    async def _ours(request: Request, exc: ExtschedError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_to_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("no such route"))
        code = {405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        body = {"error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = {"error": {"code": "INTERNAL", "message": "internal error; see the service log"}}
        return JSONResponse(body, status_code=500)


class BodyGuard:
    """Refuses API bodies over 1 MiB (413) and non-JSON bodies (400) before any handler runs."""

    def __init__(self, app: ASGIApp, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            await error_response(RequestTooLarge())(scope, receive, send)
            return
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            has_body
            and scope["method"] in ("POST", "PUT", "PATCH")
            and not (ctype == "application/json" or ctype.endswith("+json"))
        ):
            err = BadRequest("the request body must be JSON (content-type: application/json)")
            await error_response(err)(scope, receive, send)
            return
        if length is not None:
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit here, then replay the body.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await error_response(RequestTooLarge())(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
