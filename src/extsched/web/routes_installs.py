"""Installed extensions: the list, installing, an extension's page with its schedules,
settings, endpoints, version update (with the remap preview) and audit log."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from extsched.api.deps import Ctx
from extsched.domain.pagination import MAX_LIMIT
from extsched.errors import ExtschedError, FeatureDisabled, NotFound, ValidationFailed
from extsched.services import (
    dashboard,
    endpoints,
    installs,
    lifecycle,
    overview,
    registry,
    schedules,
    signing,
)
from extsched.services.registry import Endpoint
from extsched.web import charts, render
from extsched.web.forms import SettingsForm, text
from extsched.web.routing import UiRoute
from extsched.web.session import SignedIn, UiReader, UiWriter, Viewer

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

MAX_ENDPOINT_PAGES = 20


def ext_url(extension_id: uuid.UUID, tail: str = "") -> str:
    return f"/ui/extensions/{extension_id}{tail}"


async def all_endpoints(
    ctx: Ctx, viewer: Viewer, extension_id: uuid.UUID, *, schedulable_only: bool = False
) -> list[Endpoint]:
    """Every endpoint of the installed version (paged through the endpoints service)."""
    items: list[Endpoint] = []
    cursor: str | None = None
    for _ in range(MAX_ENDPOINT_PAGES):
        page = await endpoints.list_page(
            ctx,
            viewer.tenant_id,
            extension_id,
            schedulable_only=schedulable_only,
            q=None,
            limit=MAX_LIMIT,
            cursor=cursor,
        )
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return items


@router.get("")
@router.get("/")
async def home(request: Request, ctx: Ctx, viewer: SignedIn) -> Response:
    """The dashboard (every schedule at a glance, the next 24 h, the last 24 h's failures),
    then the installed extensions (name, version, state, schedules, last failure) and the
    catalogue."""
    summaries = await overview.install_summaries(ctx, viewer.tenant_id) if viewer.can_read else []
    board = await dashboard.load(ctx, viewer.principal) if viewer.can_read else None
    available: list[registry.RegistryExtension] = []
    if viewer.can_write:
        installed = {s.install.extension_id for s in summaries}
        available = [
            e
            for e in await registry.list_extensions(ctx.db)
            if e.extension_id not in installed and e.versions
        ]
    return render.page(
        request,
        "home.html",
        viewer,
        summaries=summaries,
        available=available,
        board=board,
        charts=charts,
        section="dashboard",
    )


@router.post("/extensions/{extension_id}/install")
async def install(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    form = await request.form()
    try:
        version_id = uuid.UUID(text(form, "version_id"))
    except ValueError:
        return render.redirect(request, "/ui", "Pick a version to install.", "error")
    # The dialog lists the version's default schedules with a checkbox (checked: create them).
    default_schedules = "default_schedules_offered" not in form or "default_schedules" in form
    try:
        done = await lifecycle.install(
            ctx,
            viewer.principal,
            extension_id,
            version_id,
            installs.InstallSettings(),
            default_schedules=default_schedules,
        )
    except ExtschedError as exc:
        return render.redirect(request, "/ui", render.friendly(exc), "error")
    created = done.install
    count = len(done.schedules_created)
    extra = f" with {count} default schedule{'s' if count != 1 else ''}" if count else ""
    return render.redirect(
        request,
        ext_url(extension_id),
        f"Installed {created.name} {created.version}{extra}.",
    )


async def _extension_page(
    request: Request, ctx: Ctx, viewer: Viewer, extension_id: uuid.UUID
) -> Response:
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    tenant = await overview.tenant_state(ctx, viewer.tenant_id)
    feature_error: str | None = None
    items: list[schedules.Schedule] = []
    try:
        items = await schedules.list_for_extension(ctx, viewer.principal, extension_id)
    except FeatureDisabled as exc:
        feature_error = render.friendly(exc)
    active = (
        await overview.active_run_schedules(ctx, viewer.tenant_id, install.id) if items else set()
    )
    schedulable = await endpoints.list_page(
        ctx,
        viewer.tenant_id,
        extension_id,
        schedulable_only=True,
        q=None,
        limit=1,
        cursor=None,
    )
    return render.page(
        request,
        "extension.html",
        viewer,
        tab="schedules",
        install=install,
        tenant=tenant,
        schedules=items,
        active=active,
        has_schedulable=bool(schedulable.items),
        feature_error=feature_error,
    )


@router.get("/extensions/{extension_id}")
async def extension(
    request: Request, ctx: Ctx, viewer: UiReader, extension_id: uuid.UUID
) -> Response:
    return await _extension_page(request, ctx, viewer, extension_id)


@router.post("/extensions/{extension_id}/enable")
@router.post("/extensions/{extension_id}/disable")
async def set_enabled(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    enabled = request.url.path.endswith("/enable")
    updated = await installs.set_enabled(
        ctx, viewer.principal.actor, viewer.tenant_id, extension_id, enabled
    )
    message = (
        f"{updated.name} is enabled; its enabled schedules fire again."
        if enabled
        else f"{updated.name} is disabled; none of its schedules fire until you enable it."
    )
    return render.redirect(request, ext_url(extension_id), message)


@router.post("/extensions/{extension_id}/uninstall")
async def uninstall(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    current = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    await installs.uninstall(ctx, viewer.principal.actor, viewer.tenant_id, extension_id)
    return render.redirect(
        request, "/ui", f"Uninstalled {current.name}; its schedules and runs were deleted."
    )


async def _settings_page(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    install: installs.Install,
    form: SettingsForm,
    *,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    # The signing secrets are shown to writers only (SPEC §5: extension:write).
    secrets = (
        await signing.list_secrets(ctx, viewer.principal, install.extension_id)
        if viewer.can_write
        else []
    )
    return render.page(
        request,
        "settings.html",
        viewer,
        tab="settings",
        install=install,
        form=form,
        errors=errors or {},
        message=message,
        status_code=status_code,
        signing_secrets=secrets,
    )


@router.get("/extensions/{extension_id}/settings")
async def settings(
    request: Request, ctx: Ctx, viewer: UiReader, extension_id: uuid.UUID
) -> Response:
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    return await _settings_page(request, ctx, viewer, install, SettingsForm.of(install))


@router.post("/extensions/{extension_id}/settings")
async def save_settings(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    form, secret_value = SettingsForm.parse(await request.form())
    try:
        await installs.update_settings(
            ctx,
            viewer.principal.actor,
            viewer.tenant_id,
            extension_id,
            form.to_settings(secret_value),
        )
    except ValidationFailed as exc:
        return await _settings_page(
            request,
            ctx,
            viewer,
            install,
            form,
            errors=exc.field_errors or {},
            message=render.friendly(exc),
            status_code=exc.status,
        )
    return render.redirect(request, ext_url(extension_id, "/settings"), "Settings saved.")


@router.post("/extensions/{extension_id}/signing-secret/rotate")
async def rotate_signing_secret(
    request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID
) -> Response:
    await signing.rotate(ctx, viewer.principal, extension_id)
    return render.redirect(
        request,
        ext_url(extension_id, "/settings"),
        "New signing secret created; the previous one keeps signing for 24 hours.",
    )


@router.get("/extensions/{extension_id}/endpoints")
async def endpoint_list(
    request: Request,
    ctx: Ctx,
    viewer: UiReader,
    extension_id: uuid.UUID,
    q: str | None = None,
    cursor: str | None = None,
) -> Response:
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    page = await endpoints.list_page(
        ctx,
        viewer.tenant_id,
        extension_id,
        schedulable_only=False,
        q=(q or "").strip()[:200] or None,
        limit=MAX_LIMIT,
        cursor=cursor,
    )
    return render.page(
        request, "endpoints.html", viewer, tab="endpoints", install=install, page=page, q=q or ""
    )


@router.get("/extensions/{extension_id}/version")
async def version(
    request: Request,
    ctx: Ctx,
    viewer: UiReader,
    extension_id: uuid.UUID,
    version_id: str | None = None,
) -> Response:
    """Versions of the extension; with ``version_id`` (writers) the remap preview."""
    install, versions = await overview.extension_versions(ctx, viewer.tenant_id, extension_id)
    target = None
    report = None
    error = None
    if version_id is not None and viewer.can_write:
        target = next((v for v in versions if str(v.version_id) == version_id), None)
        if not version_id.strip():
            error = "Choose a version to preview the update."
        elif target is None:
            error = "Pick one of the listed versions."
        else:
            report = await lifecycle.update_version(
                ctx,
                viewer.principal.actor,
                viewer.tenant_id,
                extension_id,
                target.version_id,
                disable_missing=False,
                preview=True,
            )
    return render.page(
        request,
        "version.html",
        viewer,
        tab="version",
        install=install,
        versions=versions,
        target=target,
        report=report,
        error=error,
    )


@router.post("/extensions/{extension_id}/update")
async def update(request: Request, ctx: Ctx, viewer: UiWriter, extension_id: uuid.UUID) -> Response:
    form = await request.form()
    raw_version = text(form, "version_id")
    back = ext_url(extension_id, f"/version?version_id={raw_version}")
    try:
        version_id = uuid.UUID(raw_version)
    except ValueError:
        return render.redirect(request, ext_url(extension_id, "/version"), "Pick a version.")
    disable_missing = text(form, "disable_missing") == "1"
    try:
        report = await lifecycle.update_version(
            ctx,
            viewer.principal.actor,
            viewer.tenant_id,
            extension_id,
            version_id,
            disable_missing=disable_missing,
        )
    except ExtschedError as exc:
        if exc.code in ("NOT_INSTALLED", "UNAUTHENTICATED", "FORBIDDEN"):
            raise
        # The preview page shows what blocks the update (its dialog lists the schedules).
        return render.redirect(request, back, render.friendly(exc), "error")
    message = f"Updated {report.install.name} to {report.install.version}."
    moved = sum(1 for r in report.remapped if r.from_endpoint_id != r.to_endpoint_id)
    if moved:
        verb = "calls" if moved == 1 else "call"
        message += (
            f" {render.plural(moved, 'schedule')} now {verb} the same endpoint of the new version."
        )
    if report.disabled:
        message += (
            f" {render.plural(len(report.disabled), 'schedule')} "
            f"{'was' if len(report.disabled) == 1 else 'were'} disabled because "
            f"{'its endpoint is' if len(report.disabled) == 1 else 'their endpoints are'} "
            f"missing; pick a new endpoint for {'it' if len(report.disabled) == 1 else 'them'}."
        )
    return render.redirect(request, ext_url(extension_id), message)


@router.get("/extensions/{extension_id}/audit")
async def audit_log(
    request: Request,
    ctx: Ctx,
    viewer: UiReader,
    extension_id: uuid.UUID,
    cursor: str | None = None,
) -> Response:
    install = await installs.get_install(ctx, viewer.tenant_id, extension_id)
    entries, next_cursor = await overview.audit_page(
        ctx, viewer.tenant_id, extension_id, limit=50, cursor=cursor
    )
    return render.page(
        request,
        "audit.html",
        viewer,
        tab="audit",
        install=install,
        entries=entries,
        next_cursor=next_cursor,
        first_page=cursor is None,
    )


@router.get("/{path:path}")
async def unknown_page(request: Request, path: str) -> Response:
    """Any other address under /ui: a page, not the API's JSON 404."""
    raise NotFound("no such page")
