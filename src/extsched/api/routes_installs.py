"""Install and endpoint routes (tenant)."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

from fastapi import APIRouter, Query, Response

from extsched.api.deps import Ctx, Reader, Writer
from extsched.api.openapi import raises
from extsched.api.schemas import (
    EndpointPageOut,
    InstallCreatedOut,
    InstallCreateIn,
    InstallListOut,
    InstallOut,
    InstallPatchIn,
    RemappedOut,
    SigningSecretsOut,
    UpdateIn,
    UpdateOut,
    UpdatePreviewOut,
)
from extsched.domain.pagination import DEFAULT_LIMIT, MAX_LIMIT
from extsched.errors import AlreadyInstalled, NotFound, NotInstalled, ScheduleRemapFailed
from extsched.services import endpoints, installs, lifecycle, signing
from extsched.services.installs import InstallSettings

router = APIRouter(prefix="/api/v1/extensions")
INSTALLS: list[str | Enum] = ["installs"]


def _tenant(p: Reader | Writer) -> str:
    assert p.tenant_id is not None
    return p.tenant_id


@router.get("", response_model=InstallListOut, tags=INSTALLS)
async def list_installs(ctx: Ctx, p: Reader) -> InstallListOut:
    """The tenant's installs."""
    items = await installs.list_installs(ctx, _tenant(p))
    return InstallListOut(items=[InstallOut.of(i) for i in items])


@router.get("/{extension_id}", response_model=InstallOut, tags=INSTALLS)
@raises(NotInstalled)
async def get_install(ctx: Ctx, p: Reader, extension_id: uuid.UUID) -> InstallOut:
    """The tenant's install of an extension."""
    return InstallOut.of(await installs.get_install(ctx, _tenant(p), extension_id))


@router.post(
    "/{extension_id}/install", status_code=201, response_model=InstallCreatedOut, tags=INSTALLS
)
@raises(NotFound, AlreadyInstalled)
async def install_extension(
    ctx: Ctx, p: Writer, extension_id: uuid.UUID, body: InstallCreateIn
) -> InstallCreatedOut:
    """Install a published version of the extension for the tenant; the manifest's default
    schedules are created unless ``default_schedules`` is false (their ids in
    ``schedules_created``)."""
    settings = InstallSettings(
        config=body.config, secrets=dict(body.secrets or {}), providers=body.providers
    )
    done = await lifecycle.install(
        ctx,
        p,
        extension_id,
        body.version_id,
        settings,
        default_schedules=body.default_schedules,
    )
    return InstallCreatedOut(
        **InstallOut.of(done.install).model_dump(), schedules_created=done.schedules_created
    )


@router.patch("/{extension_id}", response_model=InstallOut, tags=INSTALLS)
@raises(NotInstalled)
async def update_install(
    ctx: Ctx, p: Writer, extension_id: uuid.UUID, body: InstallPatchIn
) -> InstallOut:
    """Change the install's config, secrets or providers."""
    settings = InstallSettings(config=body.config, secrets=body.secrets, providers=body.providers)
    return InstallOut.of(
        await installs.update_settings(ctx, p.actor, _tenant(p), extension_id, settings)
    )


@router.post("/{extension_id}/disable", response_model=InstallOut, tags=INSTALLS)
@raises(NotInstalled)
async def disable_install(ctx: Ctx, p: Writer, extension_id: uuid.UUID) -> InstallOut:
    """Stop every schedule of the install from firing, keeping its configuration."""
    return InstallOut.of(await installs.set_enabled(ctx, p.actor, _tenant(p), extension_id, False))


@router.post("/{extension_id}/enable", response_model=InstallOut, tags=INSTALLS)
@raises(NotInstalled)
async def enable_install(ctx: Ctx, p: Writer, extension_id: uuid.UUID) -> InstallOut:
    """Restore exactly the schedules that were enabled before the install was disabled."""
    return InstallOut.of(await installs.set_enabled(ctx, p.actor, _tenant(p), extension_id, True))


@router.delete("/{extension_id}", status_code=204, tags=INSTALLS)
@raises(NotInstalled)
async def uninstall_extension(ctx: Ctx, p: Writer, extension_id: uuid.UUID) -> Response:
    """Delete the install with its schedules, runs and backend handles."""
    await installs.uninstall(ctx, p.actor, _tenant(p), extension_id)
    return Response(status_code=204)


def _update_out(report: lifecycle.UpdateReport) -> dict[str, Any]:
    return {
        "install": InstallOut.of(report.install),
        "remapped": [
            RemappedOut(
                schedule_id=r.schedule_id,
                from_endpoint_id=r.from_endpoint_id,
                to_endpoint_id=r.to_endpoint_id,
            )
            for r in report.remapped
        ],
        "disabled": report.disabled,
    }


@router.get("/{extension_id}/signing-secret", response_model=SigningSecretsOut, tags=INSTALLS)
@raises(NotInstalled)
async def get_signing_secret(ctx: Ctx, p: Writer, extension_id: uuid.UUID) -> SigningSecretsOut:
    """The install's Standard Webhooks signing secrets (``whsec_...``), newest first."""
    return SigningSecretsOut.of(await signing.list_secrets(ctx, p, extension_id))


@router.post(
    "/{extension_id}/signing-secret/rotate", response_model=SigningSecretsOut, tags=INSTALLS
)
@raises(NotInstalled)
async def rotate_signing_secret(ctx: Ctx, p: Writer, extension_id: uuid.UUID) -> SigningSecretsOut:
    """A new signing secret; the previous one keeps signing alongside it for 24 h."""
    return SigningSecretsOut.of(await signing.rotate(ctx, p, extension_id))


@router.post("/{extension_id}/update", response_model=UpdateOut, tags=INSTALLS)
@raises(NotInstalled, ScheduleRemapFailed)
async def update_install_version(
    ctx: Ctx, p: Writer, extension_id: uuid.UUID, body: UpdateIn
) -> UpdateOut:
    """Move the install to another version, remapping schedules by (method, path)."""
    report = await lifecycle.update_version(
        ctx,
        p.actor,
        _tenant(p),
        extension_id,
        body.version_id,
        disable_missing=body.disable_missing_schedules,
    )
    return UpdateOut(**_update_out(report))


@router.post("/{extension_id}/update/preview", response_model=UpdatePreviewOut, tags=INSTALLS)
@raises(NotInstalled)
async def preview_install_version_update(
    ctx: Ctx, p: Writer, extension_id: uuid.UUID, body: UpdateIn
) -> UpdatePreviewOut:
    """The report an update would give, changing nothing."""
    report = await lifecycle.update_version(
        ctx,
        p.actor,
        _tenant(p),
        extension_id,
        body.version_id,
        disable_missing=body.disable_missing_schedules,
        preview=True,
    )
    return UpdatePreviewOut(
        **_update_out(report),
        would_block=report.would_block and not body.disable_missing_schedules,
        schedules=[
            {"schedule_id": str(u.schedule_id), "name": u.name, "method": u.method, "path": u.path}
            for u in report.unmatched
        ],
    )


@router.get("/{extension_id}/endpoints", response_model=EndpointPageOut, tags=["endpoints"])
@raises(NotInstalled)
async def list_endpoints(
    ctx: Ctx,
    p: Reader,
    extension_id: uuid.UUID,
    schedulable: bool = False,
    q: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, max_length=1000),
) -> EndpointPageOut:
    """A page of the installed version's endpoints, with why one is not schedulable."""
    page = await endpoints.list_page(
        ctx,
        _tenant(p),
        extension_id,
        schedulable_only=schedulable,
        q=q,
        limit=limit,
        cursor=cursor,
    )
    return EndpointPageOut.of(page)
