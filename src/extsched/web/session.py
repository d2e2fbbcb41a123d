"""The UI session: a signed cookie naming a server-side session row, and a CSRF token.

The raw token (or JWT) never leaves the sign-in request: the cookie names a ``ui_session`` row,
and every request reads that row back joined with its token, so signing out, revoking the
token or its expiry ends the session at once and a replayed cookie is refused. Cookies are
HttpOnly and SameSite=Strict; state-changing requests must also echo the CSRF token (form
field ``csrf_token`` or header ``X-CSRF-Token``) and, when the browser sends ``Origin``,
come from this origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from extsched.api.deps import Ctx
from extsched.config import Settings
from extsched.domain.auth import Permission, Principal
from extsched.errors import Forbidden, Unauthenticated
from extsched.services import overview, sessions
from extsched.services.context import AppContext

SESSION_COOKIE = "extsched_session"
LOGIN_COOKIE = "extsched_login"
FLASH_COOKIE = "extsched_flash"
SESSION_MAX_AGE = 12 * 3600
LOGIN_MAX_AGE = 3600
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def signing_key(settings: Settings) -> bytes:
    """``EXTSCHED_SESSION_SECRET``, else a key derived from the secret key (never the key
    itself, so a leaked session key does not expose stored secrets)."""
    if settings.session_secret:
        return settings.session_secret.encode()
    return hmac.new(settings.secret_key_bytes, b"extsched ui session v1", hashlib.sha256).digest()


def serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_key(settings), salt=f"extsched.ui.{purpose}")


def load_signed(settings: Settings, purpose: str, value: str | None, max_age: int) -> Any:
    """The payload of a cookie we signed, or None if absent, forged or expired."""
    if not value:
        return None
    try:
        return serializer(settings, purpose).loads(value, max_age=max_age)
    except BadSignature:
        return None


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def start_session(
    request: Request, response: Response, ctx: AppContext, principal: Principal
) -> None:
    """Open a server-side session for ``principal`` and set its cookie (with a new CSRF token)."""
    session_id = await sessions.start(ctx, principal)
    payload = {"sid": str(session_id), "csrf": secrets.token_urlsafe(32)}
    value = serializer(ctx.settings, "session").dumps(payload)
    set_cookie(request, response, SESSION_COOKIE, str(value), SESSION_MAX_AGE)
    clear_cookie(request, response, LOGIN_COOKIE)


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a UI request."""

    principal: Principal
    csrf: str
    timezone: str
    session_id: uuid.UUID

    @property
    def tenant_id(self) -> str:
        assert self.principal.tenant_id is not None, "UI sessions belong to tenant users"
        return self.principal.tenant_id

    @property
    def can_read(self) -> bool:
        return self.principal.has(Permission.READ)

    @property
    def can_write(self) -> bool:
        return self.principal.has(Permission.WRITE)


async def get_viewer(request: Request, ctx: Ctx) -> Viewer:
    """The session's user, re-validated against the token table; 401 when signed out."""
    cached: Viewer | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    data = load_signed(
        ctx.settings, "session", request.cookies.get(SESSION_COOKIE), SESSION_MAX_AGE
    )
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        raise Unauthenticated("please sign in")
    try:
        session_id = uuid.UUID(str(data.get("sid")))
    except ValueError:
        raise Unauthenticated("please sign in") from None
    principal = await sessions.principal(ctx, session_id)
    if principal is None:
        raise Unauthenticated(
            "your session ended (signed out, or the token was revoked or expired); sign in again"
        )
    viewer = Viewer(
        principal, data["csrf"], await overview.viewer_timezone(ctx, principal), session_id
    )
    request.state.viewer = viewer
    return viewer


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


async def check_csrf(request: Request, expected: str) -> None:
    """Refuse a state-changing request without this session's CSRF token (403)."""
    if not same_origin(request):
        raise Forbidden("cross-site request refused")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("the form's security token is missing or stale; reload the page and retry")


async def get_reader(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    if not viewer.can_read:
        raise Forbidden("your token does not include the extension:read permission")
    return viewer


async def get_writer(request: Request, viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    """A user with extension:write, on a request carrying the CSRF token."""
    await check_csrf(request, viewer.csrf)
    if not viewer.can_write:
        raise Forbidden("your token is read-only (it lacks the extension:write permission)")
    return viewer


SignedIn = Annotated[Viewer, Depends(get_viewer)]
UiReader = Annotated[Viewer, Depends(get_reader)]
UiWriter = Annotated[Viewer, Depends(get_writer)]
