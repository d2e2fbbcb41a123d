"""Registry routes (platform admin)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import WithJsonSchema

from extsched.api.deps import Admin, Ctx
from extsched.api.openapi import MANIFEST_REF, raises
from extsched.api.schemas import PublishedOut, RegistryListOut
from extsched.domain.manifest_schema import manifest_json_schema
from extsched.errors import NotFound, VersionExists, VersionInUse
from extsched.services import registry

router = APIRouter(prefix="/api/v1/registry", tags=["registry"])

# Any JSON object reaches ``registry.publish``, which reports every problem as a field error;
# the document shows the manifest's schema (the ``Manifest`` component).
ManifestBody = Annotated[dict[str, Any], WithJsonSchema(MANIFEST_REF), Body()]


@router.post(
    "/versions",
    status_code=201,
    response_model=PublishedOut,
    responses={200: {"model": PublishedOut, "description": "Identical re-publish: same ids"}},
)
@raises(VersionExists)
async def publish_version(
    ctx: Ctx, _: Admin, response: Response, manifest: ManifestBody
) -> PublishedOut:
    """Publish a manifest; an identical re-publish answers 200 with the same ids."""
    published = await registry.publish(ctx.db, manifest)
    if not published.created:
        response.status_code = 200
    return PublishedOut.of(published)


@router.get("/manifest.schema.json")
async def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of a manifest (SPEC §7), the one the registry validates with. Public:
    extension authors point their editors and CI at it."""
    return manifest_json_schema()


@router.get("/extensions", response_model=RegistryListOut)
async def list_extensions(ctx: Ctx, _: Admin) -> RegistryListOut:
    """Every published extension with its versions."""
    return RegistryListOut.of(await registry.list_extensions(ctx.db))


@router.delete("/versions/{version_id}", status_code=204)
@raises(NotFound, VersionInUse)
async def delete_version(ctx: Ctx, _: Admin, version_id: uuid.UUID) -> Response:
    """Delete a version and its endpoints; refused while an install uses it."""
    await registry.delete_version(ctx.db, version_id)
    return Response(status_code=204)
