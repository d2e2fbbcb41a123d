"""The UI's route class: service errors become pages, redirects or JSON for the page's scripts.

The API renders every ``ExtschedError`` as JSON; UI routes catch them first, so a browser sees
a friendly page (or its script a JSON error it shows as a toast) from the same hierarchy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from extsched.errors import ExtschedError, NotFound
from extsched.web import render

log = logging.getLogger(__name__)

HEADINGS = {
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    422: "Not accepted",
    429: "Too many requests",
    503: "Temporarily unavailable",
}


def wants_json(request: Request) -> bool:
    """Requests made by our scripts ask for JSON; everything else is a browser navigation."""
    return "application/json" in request.headers.get("accept", "")


def error_response(request: Request, exc: ExtschedError) -> Response:
    message = render.friendly(exc)
    if wants_json(request):
        body = exc.to_body()
        body["error"]["message"] = message
        return JSONResponse(
            body, status_code=exc.status, headers={**exc.headers, "Cache-Control": "no-store"}
        )
    if exc.code == "UNAUTHENTICATED":
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        login = "/ui/login"
        if request.method == "GET" and target not in ("/ui", "/ui/"):
            login += "?next=" + quote(target, safe="/")
        response = RedirectResponse(login, status_code=303)
        if exc.message != exc.default_message and exc.message != "please sign in":
            render.flash(request, response, render.friendly(exc), "error")
        return response
    viewer = getattr(request.state, "viewer", None)
    return render.page(
        request,
        "error.html",
        viewer,
        status_code=exc.status,
        heading=HEADINGS.get(exc.status, "Something went wrong"),
        error_code=exc.code,
        message=message,
    )


class Internal(ExtschedError):
    """A bug: rendered as a page (the details are in the service log, not shown)."""

    default_message = "something went wrong on our side; the details are in the service log"


class UiRoute(APIRoute):
    """An APIRoute whose service errors render for people, not programs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except ExtschedError as exc:
                return error_response(request, exc)
            except RequestValidationError:
                # Only malformed path or query values get here (forms are parsed by hand).
                return error_response(request, NotFound("no such page"))
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return error_response(request, Internal())

        return handler
