"""Default schedules in the manifest (SPEC §7): validated at publish, created at install with
``origin: "manifest"`` unless ``default_schedules: false``, within the quotas, never recreated
by an update; and the manifest's JSON Schema published for authors."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import Actor, manifest

DEFAULTS = [
    {"name": "Nightly sync", "endpoint": "POST /sync", "cron": "0 2 * * *"},
    {
        "name": "Weekly report",
        "endpoint": "GET /report",
        "cron": "0 8 * * MON",
        "timezone": "Europe/Paris",
        "enabled": False,
    },
    {
        "name": "Hourly delta",
        "endpoint": "post /sync",
        "cron": "5 * * * *",
        "payload": {"full": False},
    },
]


async def publish(
    client: httpx.AsyncClient, admin: Actor, version: str = "1.0.0", **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/registry/versions",
        json=manifest(version=version, schedules=DEFAULTS, **extra),
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def install(
    client: httpx.AsyncClient, actor: Actor, published: dict[str, Any], **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/extensions/{published['extension_id']}/install",
        json={"version_id": published["version_id"], **body},
        headers=actor.headers,
    )


async def schedules_of(
    client: httpx.AsyncClient, actor: Actor, extension_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/extensions/{extension_id}/schedules", headers=actor.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_it_creates_the_defaults_at_install(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    published = await publish(client, admin)
    r = await install(client, alice, published)
    assert r.status_code == 201, r.text
    created = r.json()["schedules_created"]
    assert len(created) == 3
    items = {s["name"]: s for s in await schedules_of(client, alice, published["extension_id"])}
    assert {s["id"] for s in items.values()} == set(created)
    assert {s["origin"] for s in items.values()} == {"manifest"}
    nightly, weekly, hourly = items["Nightly sync"], items["Weekly report"], items["Hourly delta"]
    assert (nightly["endpoint"]["method"], nightly["endpoint"]["path"]) == ("POST", "/sync")
    assert (nightly["timezone"], nightly["enabled"], nightly["payload"]) == ("UTC", True, None)
    assert (weekly["timezone"], weekly["enabled"]) == ("Europe/Paris", False)
    assert weekly["endpoint"]["method"] == "GET"
    assert hourly["payload"] == {"full": False}
    audit = await client.get(
        f"/api/v1/extensions/{published['extension_id']}/audit", headers=alice.headers
    )
    actions = [e["action"] for e in audit.json()["items"]]
    assert actions.count("schedule.create") == 3 and "install.create" in actions


async def test_it_skips_the_defaults_when_asked(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    published = await publish(client, admin)
    r = await install(client, alice, published, default_schedules=False)
    assert r.status_code == 201, r.text
    assert r.json()["schedules_created"] == []
    assert await schedules_of(client, alice, published["extension_id"]) == []


@pytest.mark.settings(max_schedules_per_install=2)
async def test_it_refuses_the_whole_install_over_a_quota(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    published = await publish(client, admin)
    r = await install(client, alice, published)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "QUOTA_EXCEEDED"
    gone = await client.get(
        f"/api/v1/extensions/{published['extension_id']}", headers=alice.headers
    )
    assert gone.json()["error"]["code"] == "NOT_INSTALLED"  # all or nothing
    assert (await install(client, alice, published, default_schedules=False)).status_code == 201


async def test_it_checks_the_minimum_interval_at_install(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    r = await client.post(
        "/api/v1/registry/versions",
        json=manifest(
            schedules=[{"name": "Too often", "endpoint": "POST /sync", "cron": "* * * * *"}]
        ),
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text  # the interval is the service's setting, not the manifest's
    refused = await install(client, alice, r.json())
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert "minimum interval" in error["field_errors"]["schedules[0].cron"]
    assert "default_schedules: false" in error["message"]


async def test_an_update_never_recreates_them(
    client: httpx.AsyncClient, admin: Actor, alice: Actor
) -> None:
    v1 = await publish(client, admin)
    v2 = await publish(client, admin, version="2.0.0")
    ext = v1["extension_id"]
    r = await install(client, alice, v1)
    nightly = next(s for s in await schedules_of(client, alice, ext) if s["name"] == "Nightly sync")
    deleted = await client.delete(f"/api/v1/schedules/{nightly['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    r = await client.post(
        f"/api/v1/extensions/{ext}/update",
        json={"version_id": v2["version_id"]},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    names = sorted(s["name"] for s in await schedules_of(client, alice, ext))
    assert names == ["Hourly delta", "Weekly report"]


async def test_it_refuses_an_invalid_default_at_publish(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    r = await client.post(
        "/api/v1/registry/versions",
        json=manifest(
            schedules=[
                {"name": "A", "endpoint": "GET /contacts/:id", "cron": "0 2 * * *"},
                {"name": "B", "endpoint": "POST /sync", "cron": "0 25 * * *"},
                {"name": "C", "endpoint": "POST /sync", "cron": "0 2 * * *", "timezone": "Nowhere"},
            ]
        ),
        headers=admin.headers,
    )
    assert r.status_code == 422
    errors = r.json()["error"]["field_errors"]
    assert set(errors) == {"schedules.0.endpoint", "schedules.1.cron", "schedules.2.timezone"}


async def test_it_publishes_the_manifest_schema_to_anyone(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/registry/manifest.schema.json")
    assert r.status_code == 200
    schema = r.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(manifest(schedules=DEFAULTS))
    assert not jsonschema.Draft202012Validator(schema).is_valid(manifest(shedules=[]))
