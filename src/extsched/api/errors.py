"""Renders every error in the SPEC §5 shape: ours, FastAPI's validation, Starlette's HTTP."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from extsched.domain import inputs
from extsched.errors import (
    BadRequest,
    ExtschedError,
    NotFound,
    RequestTooLarge,
    ValidationFailed,
    field_error,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def error_response(exc: ExtschedError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=exc.headers)


def _field_key(loc: tuple[Any, ...]) -> str:
    """``("body", "schedules", 0, "cron")`` -> ``schedules[0].cron``."""
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif "[" not in str(part):
            # Union members appear as tags like "dict[str,any]"; the field precedes them.
            key += f".{part}" if key else str(part)
    return key or "body"


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
    """The edge every API and UI request passes first (SPEC §4 "Hostile input").

    Refuses, before any handler runs and in the error shape: a header that is not UTF-8 (400),
    a body over 1 MiB (413), a non-JSON API body (400), a form or JSON body that is not UTF-8,
    percent-escapes included (400), a JSON body that breaks ``domain.inputs`` (422: nested
    deeper than 64 levels, a lone surrogate or NUL in any string). Adds
    ``x-content-type-options: nosniff`` to every response, and to API responses
    ``cache-control: no-store`` and, on a 401, ``WWW-Authenticate: Bearer``.
    """

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = ("/api/", "/ui/")) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")
        send = _with_security_headers(send, api=api)
        try:
            body = await self._checked_body(scope, receive, api=api)
        except ExtschedError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _checked_body(self, scope: Scope, receive: Receive, *, api: bool) -> bytes | None:
        """The body, read here when it has to be (chunked, or JSON to inspect), else None."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            # ASGI servers pass header bytes through; a non-UTF-8 value is refused here so no
            # later ``.decode()`` can fail (HTTP itself only guarantees latin-1).
            name = raw_name.decode("latin-1").lower()
            try:
                raw_value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(f"the {name} header is not valid UTF-8") from None
            headers[name] = raw_value.decode("latin-1")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise RequestTooLarge()
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = ctype == "application/json" or ctype.endswith("+json")
        is_form = ctype == "application/x-www-form-urlencoded"
        if api and has_body and scope["method"] in ("POST", "PUT", "PATCH") and not is_json:
            raise BadRequest("the request body must be JSON (content-type: application/json)")
        if not has_body or (length is not None and not (is_json or is_form)):
            return None
        body = await _read_capped(receive)
        if is_json and body:
            _check_json(body)
        elif is_form:
            try:  # the form parser would silently turn invalid bytes into U+FFFD
                unquote_to_bytes(body.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("the form is not valid UTF-8") from None
        return body


async def _read_capped(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _check_json(body: bytes) -> None:
    """Refuse a JSON body ``inputs.loads`` would refuse; malformed JSON is left to the route
    (its 400 names the position)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    if not inputs.may_break_rules(text):
        return
    try:
        inputs.loads(text)
    except inputs.InputRefused as exc:
        raise field_error(exc.problem.field, exc.problem.message) from None
    except ValueError:
        return


def _with_security_headers(send: Send, *, api: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("x-content-type-options", "nosniff")
            if api:
                headers.setdefault("cache-control", "no-store")
                if message["status"] == 401:
                    headers.setdefault("www-authenticate", "Bearer")
        await send(message)

    return wrapped
