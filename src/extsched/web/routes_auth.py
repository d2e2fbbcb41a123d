"""Sign in with a token (form, or the ``?token=`` link ``extsched demo`` prints) and sign out."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response

from extsched.api.deps import Ctx
from extsched.errors import Forbidden
from extsched.services import tokens
from extsched.web import render, session
from extsched.web.routing import UiRoute
from extsched.web.session import SignedIn

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

# The ?token= link's redirect must not pass its URL on as a Referer. (The form page keeps
# "same-origin": under "no-referrer" Chrome sends ``Origin: null``, which we refuse.)
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


def _safe_next(value: object) -> str:
    """Only a path inside the UI may be a post-login target (no open redirects)."""
    if (
        isinstance(value, str)
        and value.startswith("/ui")
        and not any(c in value for c in ("\\", "\n", "\r", "//"))
    ):
        return value
    return "/ui"


def _login_page(
    request: Request, *, error: str | None = None, status_code: int = 200, next_url: str = "/ui"
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render.page(
        request,
        "login.html",
        None,
        status_code=status_code,
        error=error,
        login_nonce=nonce,
        next_url=next_url,
    )
    # Double-submit nonce: a cross-site form cannot read it, and SameSite=Strict keeps the
    # cookie off cross-site POSTs altogether (login CSRF).
    session.set_cookie(request, response, session.LOGIN_COOKIE, nonce, session.LOGIN_MAX_AGE)
    return response


async def _sign_in(request: Request, ctx: Ctx, token: str, next_url: str) -> Response:
    principal = await tokens.authenticate(ctx.db, token.strip())
    if principal is None:
        return _login_page(
            request,
            error="That token is not valid: it is unknown or was revoked.",
            status_code=401,
            next_url=next_url,
        )
    if principal.tenant_id is None:
        return _login_page(
            request,
            error="Platform admin tokens cannot sign in here; the UI is for tenant users. "
            "Use the API or the CLI for platform administration.",
            status_code=403,
            next_url=next_url,
        )
    response = render.redirect(request, next_url)
    response.headers.update(NO_REFERRER)
    session.start_session(request, response, ctx.settings, principal.token_id)
    return response


@router.get("/login")
async def login_form(
    request: Request, ctx: Ctx, token: str | None = None, next: str | None = None
) -> Response:
    """The sign-in form; with ``?token=`` (the demo link) it signs in and redirects to /ui."""
    next_url = _safe_next(next)
    if token:
        return await _sign_in(request, ctx, token, next_url)
    return _login_page(request, next_url=next_url)


@router.post("/login")
async def login(request: Request, ctx: Ctx) -> Response:
    if not session.same_origin(request):
        raise Forbidden("cross-site request refused")
    form = await request.form()
    nonce = form.get("login_nonce")
    cookie = request.cookies.get(session.LOGIN_COOKIE, "")
    next_url = _safe_next(form.get("next"))
    if not isinstance(nonce, str) or not cookie or not hmac.compare_digest(nonce, cookie):
        return _login_page(
            request,
            error="The sign-in form expired; please try again.",
            status_code=403,
            next_url=next_url,
        )
    token = form.get("token")
    if not isinstance(token, str) or not token.strip():
        return _login_page(
            request, error="Paste your API token.", status_code=422, next_url=next_url
        )
    return await _sign_in(request, ctx, token, next_url)


@router.post("/logout")
async def logout(request: Request, viewer: SignedIn) -> Response:
    await session.check_csrf(request, viewer.csrf)
    response = render.redirect(request, "/ui/login", "You are signed out.")
    session.clear_cookie(request, response, session.SESSION_COOKIE)
    return response
