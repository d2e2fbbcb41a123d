"""Registry: publish, validation, normalization, idempotent re-publish, list, delete, backfill."""

from __future__ import annotations

import copy

import httpx
import psycopg

from extsched.services import registry
from extsched.services.context import AppContext
from tests.conftest import Actor, manifest

URL = "/api/v1/registry/versions"


async def test_it_publishes_and_materializes_normalized_endpoints(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    m = manifest(
        endpoints=[
            {"method": "post", "path": "sync/", "handler": "h/sync"},
            {"method": "POST", "path": "//sync", "handler": "h/dup"},
            {"method": "GET", "path": "/", "handler": "h/root"},
            {"method": "FETCH", "path": "/x", "handler": "h/x"},
            {"method": "GET", "path": "/a b", "handler": "h/ab"},
        ]
    )
    r = await client.post(URL, json=m, headers=admin.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "com.example.crm-sync" and body["version"] == "1.0.0"
    assert body["content_hash"].startswith("sha256:") and len(body["content_hash"]) == 71
    assert sorted((e["method"], e["path"]) for e in body["endpoints"]) == [
        ("GET", "/"),
        ("POST", "/sync"),
    ]
    reasons = {(s["method"], s["path"]): s["reason"] for s in body["skipped_endpoints"]}
    assert reasons[("FETCH", "/x")] == "invalid_method"
    assert reasons[("POST", "//sync")] == "duplicate"  # reported as given
    assert any(v == "invalid_path" for v in reasons.values())


async def test_it_republishes_identical_content_idempotently(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    first = await client.post(URL, json=manifest(), headers=admin.headers)
    again = await client.post(URL, json=manifest(), headers=admin.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["version_id"] == first.json()["version_id"]
    assert [e["id"] for e in again.json()["endpoints"]] == [
        e["id"] for e in first.json()["endpoints"]
    ]
    changed = manifest(description="something else")
    r = await client.post(URL, json=changed, headers=admin.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "VERSION_EXISTS"


async def test_it_refuses_invalid_manifests_with_field_errors(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    bad = manifest(name="Bad Name", version="1.0", typo_field=1)
    r = await client.post(URL, json=bad, headers=admin.headers)
    assert r.status_code == 422
    errors = r.json()["error"]["field_errors"]
    assert {"name", "version", "typo_field"} <= errors.keys()
    r = await client.post(URL, json=[1, 2], headers=admin.headers)
    assert r.status_code == 422
    listing = await client.get("/api/v1/registry/extensions", headers=admin.headers)
    assert listing.json() == {"items": []}


async def test_it_lists_extensions_with_versions(client: httpx.AsyncClient, admin: Actor) -> None:
    await client.post(URL, json=manifest(version="1.0.0"), headers=admin.headers)
    await client.post(URL, json=manifest(version="1.1.0"), headers=admin.headers)
    await client.post(URL, json=manifest(name="org.other"), headers=admin.headers)
    items = (await client.get("/api/v1/registry/extensions", headers=admin.headers)).json()["items"]
    assert [i["name"] for i in items] == ["com.example.crm-sync", "org.other"]
    assert [v["version"] for v in items[0]["versions"]] == ["1.0.0", "1.1.0"]


async def test_it_refuses_deleting_a_version_in_use_then_deletes_it_with_endpoints(
    client: httpx.AsyncClient,
    admin: Actor,
    alice: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    published, _ = await install(alice)
    vid = published["version_id"]
    r = await client.delete(f"{URL}/{vid}", headers=admin.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "VERSION_IN_USE"
    assert (
        await client.delete(
            f"/api/v1/extensions/{published['extension_id']}", headers=alice.headers
        )
    ).status_code == 204
    assert (await client.delete(f"{URL}/{vid}", headers=admin.headers)).status_code == 204
    with psycopg.connect(db_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM extension_api_endpoint WHERE version_id = %s", (vid,)
        ).fetchone()
    assert left == (0,)
    assert (await client.delete(f"{URL}/{vid}", headers=admin.headers)).status_code == 404


async def test_it_backfills_missing_endpoint_rows_idempotently(
    ctx: AppContext, client: httpx.AsyncClient, admin: Actor, db_url: str
) -> None:
    r = await client.post(URL, json=manifest(), headers=admin.headers)
    vid = r.json()["version_id"]
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM extension_api_endpoint WHERE version_id = %s", (vid,))
    seen: list[tuple[int, int]] = []
    versions, written = await registry.backfill_endpoints(
        ctx.db, None, lambda d, t: seen.append((d, t))
    )
    assert (versions, written) == (1, 4) and seen == [(1, 1)]
    assert await registry.backfill_endpoints(ctx.db) == (1, 0)


async def test_it_computes_the_content_hash_from_canonical_json(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    m = manifest()
    reordered = dict(reversed(list(copy.deepcopy(m).items())))
    a = (await client.post(URL, json=m, headers=admin.headers)).json()
    b = (await client.post(URL, json=reordered, headers=admin.headers)).json()
    assert a["content_hash"] == b["content_hash"]
