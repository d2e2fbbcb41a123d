"""FastAPI dependencies as named type aliases: the context, the caller, permission checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from extsched.api.openapi import raises
from extsched.domain.auth import Permission, Principal
from extsched.errors import BackendUnavailable, Forbidden, Unauthenticated
from extsched.services import identity
from extsched.services.context import AppContext


async def get_ctx(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hand-off (and GIL contention) on every request for one attribute read.
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


@raises(Unauthenticated, BackendUnavailable)
async def get_principal(request: Request, ctx: Ctx) -> Principal:
    """The caller of this request: a bearer token, or the UI's session (set by the UI layer)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    principal = await identity.authenticate(ctx, token.strip())
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def _tenant_perm(perm: Permission):  # type: ignore[no-untyped-def]
    @raises(Forbidden)
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.tenant_id is None or not principal.has(perm):
            raise Forbidden(f"this call needs the {perm.value} permission of a tenant user")
        return principal

    return check


@raises(Forbidden)
async def _admin(principal: CurrentPrincipal) -> Principal:
    if not principal.has(Permission.ADMIN):
        raise Forbidden("this call needs the platform:admin permission")
    return principal


Reader = Annotated[Principal, Depends(_tenant_perm(Permission.READ))]
Writer = Annotated[Principal, Depends(_tenant_perm(Permission.WRITE))]
Admin = Annotated[Principal, Depends(_admin)]
