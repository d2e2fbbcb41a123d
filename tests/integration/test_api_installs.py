"""Installs: install, read, settings (secrets write-only), enable/disable, uninstall; endpoints."""

from __future__ import annotations

import httpx
import psycopg

from extsched.services import installs
from extsched.services.context import AppContext
from tests.conftest import Actor


async def test_it_installs_and_reads_back(
    client: httpx.AsyncClient,
    alice: Actor,
    rita: Actor,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    p = await publish()
    r = await client.post(
        f"/api/v1/extensions/{p['extension_id']}/install",
        json={
            "version_id": p["version_id"],
            "config": {"region": "eu"},
            "secrets": {"API_KEY": "s3cr3t-value"},
            "providers": ["cap:http.fetch"],
        },
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["config"] == {"region": "eu"}
    assert body["secret_names"] == ["API_KEY"]
    assert body["providers"] == ["cap:http.fetch"]
    assert body["version"] == "1.0.0" and body["enabled"] is True
    assert body["created_at"].endswith("Z")
    assert "s3cr3t-value" not in r.text
    assert body.pop("schedules_created") == []  # the manifest proposes no schedules
    again = await client.get(f"/api/v1/extensions/{p['extension_id']}", headers=rita.headers)
    assert again.json() == body
    dup = await client.post(
        f"/api/v1/extensions/{p['extension_id']}/install",
        json={"version_id": p["version_id"]},
        headers=alice.headers,
    )
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "ALREADY_INSTALLED"


async def test_it_stores_secrets_encrypted_and_merges_patches(
    client: httpx.AsyncClient,
    ctx: AppContext,
    alice: Actor,
    install,
    db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    p, _ = await install(alice)
    url = f"/api/v1/extensions/{p['extension_id']}"
    r = await client.patch(
        url, json={"secrets": {"A": "alpha-secret", "B": "beta-secret"}}, headers=alice.headers
    )
    assert r.json()["secret_names"] == ["A", "B"]
    r = await client.patch(
        url, json={"secrets": {"A": None}, "config": {"k": "v"}}, headers=alice.headers
    )
    assert r.json()["secret_names"] == ["B"] and r.json()["config"] == {"k": "v"}
    with psycopg.connect(db_url) as conn:
        raw = conn.execute("SELECT secrets_encrypted FROM tenant_extension_install").fetchone()
    assert raw is not None and b"beta-secret" not in bytes(raw[0])
    current = await installs.get_install(ctx, "acme", p["extension_id"])
    assert installs.decrypt_secrets(ctx, current) == {"B": "beta-secret"}
    audit = await client.get(f"{url}/audit", headers=alice.headers)
    assert "beta-secret" not in audit.text and "alpha-secret" not in audit.text


async def test_it_refuses_undeclared_providers_and_foreign_versions(
    client: httpx.AsyncClient,
    alice: Actor,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    p = await publish()
    other = await publish(name="org.other")
    url = f"/api/v1/extensions/{p['extension_id']}/install"
    r = await client.post(
        url, json={"version_id": p["version_id"], "providers": ["cap:root"]}, headers=alice.headers
    )
    assert r.status_code == 422 and "providers" in r.json()["error"]["field_errors"]
    r = await client.post(url, json={"version_id": other["version_id"]}, headers=alice.headers)
    assert r.status_code == 422 and "version_id" in r.json()["error"]["field_errors"]
    r = await client.post(
        url, json={"version_id": p["version_id"], "config": {"n": 1}}, headers=alice.headers
    )
    assert r.status_code == 422 and "config.n" in r.json()["error"]["field_errors"]
    assert (await client.get("/api/v1/extensions", headers=alice.headers)).json() == {"items": []}


async def test_it_disables_and_enables_idempotently(
    client: httpx.AsyncClient,
    alice: Actor,
    install,  # type: ignore[no-untyped-def]
) -> None:
    p, _ = await install(alice)
    url = f"/api/v1/extensions/{p['extension_id']}"
    for _ in range(2):
        r = await client.post(f"{url}/disable", headers=alice.headers)
        assert r.status_code == 200 and r.json()["enabled"] is False
    for _ in range(2):
        r = await client.post(f"{url}/enable", headers=alice.headers)
        assert r.status_code == 200 and r.json()["enabled"] is True
    actions = [
        e["action"]
        for e in (await client.get(f"{url}/audit", headers=alice.headers)).json()["items"]
    ]
    assert actions == ["install.enable", "install.disable", "install.create"]


async def test_it_uninstalls_and_keeps_the_audit_record(
    client: httpx.AsyncClient,
    alice: Actor,
    install,  # type: ignore[no-untyped-def]
) -> None:
    p, _ = await install(alice)
    url = f"/api/v1/extensions/{p['extension_id']}"
    assert (await client.delete(url, headers=alice.headers)).status_code == 204
    assert (await client.get(url, headers=alice.headers)).status_code == 404
    assert (await client.delete(url, headers=alice.headers)).status_code == 404
    audit = (await client.get(f"{url}/audit", headers=alice.headers)).json()["items"]
    assert audit[0]["action"] == "install.delete"
    assert audit[0]["actor"] == {"type": "user", "id": "alice"}


async def test_it_lists_endpoints_with_schedulability_search_and_cursor(
    client: httpx.AsyncClient,
    alice: Actor,
    install,  # type: ignore[no-untyped-def]
) -> None:
    p, _ = await install(alice)
    url = f"/api/v1/extensions/{p['extension_id']}/endpoints"
    body = (await client.get(url, headers=alice.headers)).json()
    assert body["version"] == "1.0.0"
    by_path = {(e["method"], e["path"]): e for e in body["items"]}
    assert by_path[("POST", "/sync")]["schedulable"] is True
    assert by_path[("GET", "/contacts/:id")]["reason"] == "path_params"
    assert by_path[("DELETE", "/cache")]["reason"] == "method_not_allowed"
    only = (await client.get(url, params={"schedulable": "true"}, headers=alice.headers)).json()
    assert sorted(e["path"] for e in only["items"]) == ["/report", "/sync"]
    found = (await client.get(url, params={"q": "SYN"}, headers=alice.headers)).json()
    assert [e["path"] for e in found["items"]] == ["/sync"]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, params=params, headers=alice.headers)).json()
        seen += [e["path"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(e["path"] for e in body["items"])
    bad = await client.get(url, params={"cursor": "!!"}, headers=alice.headers)
    assert bad.status_code == 422
