"""Extension registry: publish manifests, list, delete, backfill endpoint rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extsched.db.pool import Conn, Database
from extsched.domain.ids import uuid7
from extsched.domain.manifest import (
    Manifest,
    ManifestInvalid,
    SkippedEndpoint,
    endpoint_schedulability,
    parse_manifest,
)
from extsched.errors import NotFound, ValidationFailed, VersionExists, VersionInUse


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    version_id: uuid.UUID
    method: str
    path: str
    handler: str
    unschedulable_reason: str | None

    @property
    def schedulable(self) -> bool:
        return self.unschedulable_reason is None


@dataclass(frozen=True)
class Published:
    extension_id: uuid.UUID
    version_id: uuid.UUID
    name: str
    version: str
    content_hash: str
    endpoints: list[Endpoint]
    skipped: list[SkippedEndpoint]
    created: bool


@dataclass(frozen=True)
class RegistryVersion:
    version_id: uuid.UUID
    version: str
    description: str | None = None
    # The manifest's default schedules as published (SPEC §7), for the install dialog.
    default_schedules: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RegistryExtension:
    extension_id: uuid.UUID
    name: str
    publisher: str
    versions: list[RegistryVersion]

    @property
    def description(self) -> str | None:
        """The newest published version's manifest ``description``, if any."""
        return next((v.description for v in reversed(self.versions) if v.description), None)


def parse(data: object) -> Manifest:
    try:
        return parse_manifest(data)
    except ManifestInvalid as exc:
        raise ValidationFailed("the manifest is invalid", field_errors=exc.field_errors) from None


async def publish(db: Database, data: object) -> Published:
    """Publish a manifest; identical re-publish returns the existing ids (``created`` False)."""
    manifest = parse(data)
    async with db.transaction() as conn:
        await db.execute(
            conn,
            "extension_insert",
            {"id": uuid7(), "name": manifest.name, "publisher": manifest.publisher},
        )
        ext = await db.fetch_one(conn, "extension_by_name", {"name": manifest.name})
        assert ext is not None
        version_id = uuid7()
        inserted = await db.execute(
            conn,
            "version_insert",
            {
                "id": version_id,
                "extension_id": ext["id"],
                "version": manifest.version,
                "manifest": json.dumps(manifest.raw),
                "content_hash": manifest.content_hash,
            },
        )
        if not inserted:
            existing = await db.fetch_one(
                conn, "version_by_name", {"extension_id": ext["id"], "version": manifest.version}
            )
            assert existing is not None
            if existing["content_hash"] != manifest.content_hash:
                raise VersionExists(
                    f"{manifest.name} {manifest.version} was already published with different "
                    "content; publish a new version instead",
                    details={
                        "version_id": str(existing["id"]),
                        "content_hash": existing["content_hash"],
                    },
                )
            version_id = existing["id"]
        await write_endpoints(db, conn, version_id, manifest)
        endpoints = await endpoints_for_version(db, conn, version_id)
    return Published(
        extension_id=ext["id"],
        version_id=version_id,
        name=manifest.name,
        version=manifest.version,
        content_hash=manifest.content_hash,
        endpoints=endpoints,
        skipped=list(manifest.skipped),
        created=bool(inserted),
    )


async def write_endpoints(db: Database, conn: Conn, version_id: uuid.UUID, m: Manifest) -> int:
    """Materialize endpoint rows for a version (idempotent); returns rows written."""
    if not m.endpoints:
        return 0
    return await db.execute(
        conn,
        "endpoints_insert",
        {
            "ids": [uuid7() for _ in m.endpoints],
            "version_ids": [version_id] * len(m.endpoints),
            "methods": [e.method for e in m.endpoints],
            "paths": [e.path for e in m.endpoints],
            "handlers": [e.handler for e in m.endpoints],
            "reasons": [endpoint_schedulability(e.method, e.path) for e in m.endpoints],
        },
    )


async def endpoints_for_version(db: Database, conn: Conn, version_id: uuid.UUID) -> list[Endpoint]:
    rows = await db.fetch_all(conn, "endpoints_for_version", {"version_id": version_id})
    return [Endpoint(**r) for r in rows]


async def list_extensions(db: Database) -> list[RegistryExtension]:
    async with db.connection() as conn:
        rows = await db.fetch_all(conn, "registry_list")
    out: dict[uuid.UUID, RegistryExtension] = {}
    for r in rows:
        ext = out.setdefault(
            r["extension_id"],
            RegistryExtension(r["extension_id"], r["name"], r["publisher"], []),
        )
        if r["version_id"] is not None:
            ext.versions.append(
                RegistryVersion(
                    r["version_id"], r["version"], r["description"], list(r["schedules"] or [])
                )
            )
    return list(out.values())


async def delete_version(db: Database, version_id: uuid.UUID) -> None:
    """Delete a version and its endpoint rows; VERSION_IN_USE while an install uses it."""
    async with db.transaction() as conn:
        if await db.fetch_one(conn, "version_lock", {"id": version_id}) is None:
            raise NotFound("unknown version")
        if await db.fetch_val(conn, "version_in_use", {"version_id": version_id}):
            raise VersionInUse("an install uses this version; update or uninstall it first")
        await db.execute(conn, "endpoints_delete_for_version", {"version_id": version_id})
        await db.execute(conn, "version_delete", {"id": version_id})


async def backfill_endpoints(
    db: Database,
    version_id: uuid.UUID | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Write missing endpoint rows from stored manifests; returns (versions, rows written)."""
    async with db.connection() as conn:
        ids = [r["id"] for r in await db.fetch_all(conn, "version_ids", {"version_id": version_id})]
    if version_id is not None and not ids:
        raise NotFound("unknown version")
    written = 0
    for done, vid in enumerate(ids, start=1):
        async with db.transaction() as conn:
            row = await db.fetch_one(conn, "version_get", {"id": vid})
            if row is not None:
                written += await write_endpoints(db, conn, vid, parse_stored(row["manifest"]))
        if progress:
            progress(done, len(ids))
    return len(ids), written


def parse_stored(raw: Any) -> Manifest:
    """Parse a manifest that was valid when published."""
    return parse_manifest(raw)


async def manifest_by_content_hash(db: Database, content_hash: str) -> dict[str, Any] | None:
    """The raw manifest with this content hash (for the reference Runner)."""
    async with db.connection() as conn:
        row = await db.fetch_one(conn, "version_by_content_hash", {"content_hash": content_hash})
    return None if row is None else dict(row["manifest"])
