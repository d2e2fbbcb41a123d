"""Sign in with a token (form, or the ``?token=`` link ``extsched demo`` prints), with a
host-platform JWT (``/ui/sso?jwt=``), and sign out."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from extsched.api.deps import Ctx
from extsched.domain.auth import Principal
from extsched.errors import Forbidden, Unauthenticated
from extsched.services import sessions, tokens
from extsched.services.identity import ensure_tenant
from extsched.services.platform_jwt import principal_from_claims
from extsched.web import render, session
from extsched.web.routing import UiRoute
from extsched.web.session import SignedIn

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

# The ?token= link's redirect must not pass its URL on as a Referer. (The form page keeps
# "same-origin": under "no-referrer" Chrome sends ``Origin: null``, which we refuse.)
NO_REFERRER = {"Referrer-Policy": "no-referrer"}
# A JWT used for browser sign-in must be short-lived, so a leaked link is soon worthless.
SSO_MAX_REMAINING = timedelta(minutes=10)


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
            error="That token is not valid: it is unknown, was revoked or has expired.",
            status_code=401,
            next_url=next_url,
        )
    return await _open_session(request, ctx, principal, next_url)


async def _open_session(
    request: Request, ctx: Ctx, principal: Principal, next_url: str
) -> Response:
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
    await session.start_session(request, response, ctx, principal)
    return response


@router.get("/sso")
async def sso(request: Request, ctx: Ctx, jwt: str = "", next: str | None = None) -> Response:
    """Sign a browser in with a host-platform JWT that expires within 10 minutes and whose
    ``jti`` was never used; redirects to the UI without the JWT in the URL."""
    next_url = _safe_next(next)

    def refuse(message: str) -> Response:
        response = _login_page(request, error=message, status_code=401, next_url=next_url)
        response.headers.update(NO_REFERRER)
        return response

    if ctx.jwt is None:
        return refuse("Single sign-on is not configured on this service.")
    try:
        claims = await ctx.jwt.claims(jwt)
        principal = principal_from_claims(claims)
    except Unauthenticated as exc:
        return refuse(f"Single sign-on failed: {exc.message}.")
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    if expires_at - datetime.now(UTC) > SSO_MAX_REMAINING:
        return refuse("Single sign-on failed: the token must expire within 10 minutes.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
        return refuse("Single sign-on failed: the token lacks a jti claim.")
    if not await sessions.claim_sso_jti(ctx, jti, expires_at):
        return refuse("Single sign-on failed: this sign-in link was already used.")
    await ensure_tenant(ctx, principal)
    return await _open_session(request, ctx, principal, next_url)


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
async def logout(request: Request, ctx: Ctx, viewer: SignedIn) -> Response:
    await session.check_csrf(request, viewer.csrf)
    await sessions.end(ctx, viewer.session_id)
    response = render.redirect(request, "/ui/login", "You are signed out.")
    session.clear_cookie(request, response, session.SESSION_COOKIE)
    return response
