"""Schedules as code: export, apply (create, update, delete with prune), dry run, all or
nothing, field errors keyed schedules[i].field, quotas, isolation, audit, backend atomicity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from extsched.services.context import AppContext
from tests.conftest import Actor, Clock, endpoint_id
from tests.integration.test_api_schedules import FailingBackend

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
async def ext(client: httpx.AsyncClient, alice: Actor, install, clock: Clock):  # type: ignore[no-untyped-def]
    clock.set(NOW)
    published, _ = await install(alice)
    return published


def url(ext: dict[str, Any], what: str = "") -> str:
    return f"/api/v1/extensions/{ext['extension_id']}/schedules{what}"


async def create(client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], **f: Any) -> Any:
    body = {"endpoint_id": endpoint_id(ext, "POST", "/sync"), "cron": "0 9 * * *", **f}
    r = await client.post(url(ext), json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def state(client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]) -> list[Any]:
    items = (await client.get(url(ext), headers=alice.headers)).json()["items"]
    return sorted(
        (
            i["name"] or "",
            i["endpoint"]["path"],
            i["cron"],
            i["timezone"],
            i["enabled"],
            i["revision"],
        )
        for i in items
    )


async def apply(
    client: httpx.AsyncClient, actor: Actor, ext: dict[str, Any], schedules: list[Any], **opts: Any
) -> httpx.Response:
    return await client.post(
        url(ext, "/apply"), json={"schedules": schedules, **opts}, headers=actor.headers
    )


async def test_it_exports_schedules_with_policies_that_differ_from_the_default(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    await create(
        client,
        alice,
        ext,
        name="nightly",
        timezone="Europe/Paris",
        payload={"full": True},
        overlap="allow",
        max_attempts=3,  # the default (EXTSCHED_MAX_ATTEMPTS): not exported
        paused_until="2026-12-01T00:00:00Z",
    )
    unnamed = await create(client, alice, ext, timezone="UTC", enabled=False)
    r = await client.get(url(ext, "/export"), headers=alice.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "extension": "com.example.crm-sync",
        "schedules": [
            {
                "name": "nightly",
                "endpoint": "POST /sync",
                "cron": "0 9 * * *",
                "timezone": "Europe/Paris",
                "enabled": True,
                "payload": {"full": True},
                "overlap": "allow",
                "paused_until": "2026-12-01T00:00:00Z",
            },
            {
                "name": f"unnamed-{unnamed['id']}",
                "endpoint": "POST /sync",
                "cron": "0 9 * * *",
                "timezone": "UTC",
                "enabled": False,
                "payload": None,
            },
        ],
    }


async def test_it_applies_an_export_back_as_all_unchanged(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    await create(client, alice, ext, name="nightly", overlap="skip", jitter_seconds=60)
    await create(client, alice, ext, timezone="UTC", enabled=False, payload=[1, 2])
    before = await state(client, alice, ext)
    doc = (await client.get(url(ext, "/export"), headers=alice.headers)).json()
    r = await apply(client, alice, ext, doc["schedules"], prune=True)
    assert r.status_code == 200, r.text
    names = [s["name"] for s in doc["schedules"]]
    assert r.json() == {
        "created": [],
        "updated": [],
        "deleted": [],
        "unchanged": names,
        "changes": {},
    }
    assert await state(client, alice, ext) == before


async def test_it_creates_updates_and_prunes(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    await create(client, alice, ext, name="Nightly", timezone="UTC")
    await create(client, alice, ext, name="old", timezone="UTC")
    doc = [
        {"name": "nightly", "endpoint": "post /sync", "cron": "0 10 * * *", "timezone": "UTC"},
        {"name": "report", "endpoint": "GET /report", "cron": "0 8 * * 1", "timezone": "UTC"},
    ]
    r = await apply(client, alice, ext, doc)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "created": ["report"],
        "updated": ["Nightly"],
        "deleted": [],
        "unchanged": [],
        "changes": {
            "Nightly": {
                "name": {"from": "Nightly", "to": "nightly"},
                "cron": {"from": "0 9 * * *", "to": "0 10 * * *"},
            }
        },
    }
    assert await state(client, alice, ext) == [
        ("nightly", "/sync", "0 10 * * *", "UTC", True, 2),
        ("old", "/sync", "0 9 * * *", "UTC", True, 1),
        ("report", "/report", "0 8 * * 1", "UTC", True, 1),
    ]
    r = await apply(client, alice, ext, doc, prune=True)
    assert r.json()["deleted"] == ["old"] and r.json()["unchanged"] == ["nightly", "report"]
    assert [s[0] for s in await state(client, alice, ext)] == ["nightly", "report"]
    audit = (
        await client.get(f"/api/v1/extensions/{ext['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    applies = [a for a in audit if a["action"] == "schedule.apply"]
    assert [a["changes"] for a in applies] == [
        {"created": [], "updated": [], "deleted": ["old"]},
        {"created": ["report"], "updated": ["Nightly"], "deleted": []},
    ]
    assert applies[0]["target"]["type"] == "install"


async def test_a_dry_run_reports_and_changes_nothing(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    await create(client, alice, ext, name="a", timezone="UTC")
    before = await state(client, alice, ext)
    doc = [{"name": "b", "endpoint": "POST /sync", "cron": "0 7 * * *"}]
    r = await apply(client, alice, ext, doc, prune=True, dry_run=True)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["deleted"]) == (["b"], ["a"])
    assert await state(client, alice, ext) == before


async def test_a_refused_document_changes_nothing_and_names_each_entry(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    await create(client, alice, ext, name="a", timezone="UTC")
    before = await state(client, alice, ext)
    doc = [
        {"name": "a", "endpoint": "POST /sync", "cron": "0 6 * * *"},  # valid update
        {"name": "new", "endpoint": "POST /sync", "cron": "0 6 * * *"},  # valid create
        {"name": "b", "endpoint": "POST /nope", "cron": "0 6 * * *"},
        {"name": "c", "endpoint": "POST /sync", "cron": "* * * * *"},
        {"name": "A", "endpoint": "POST /sync", "cron": "0 6 * * *"},
        {"name": "d", "endpoint": "GET /contacts/:id", "cron": "0 6 * * *", "max_attempts": 99},
        {"name": "e", "endpoint": "POST /sync", "cron": "0 6 * * *", "timezone": "Mars/Base"},
    ]
    r = await apply(client, alice, ext, doc, prune=True)
    assert r.status_code == 422, r.text
    errors = r.json()["error"]["field_errors"]
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert set(errors) == {
        "schedules[2].endpoint",
        "schedules[3].cron",
        "schedules[6].timezone",
        "schedules[4].name",
        "schedules[5].endpoint",
        "schedules[5].max_attempts",
    }
    assert await state(client, alice, ext) == before
    # A malformed entry is a field error of the same shape, from the request schema.
    r = await apply(client, alice, ext, [{"name": "x", "endpoint": "POST /sync", "cron": 5}])
    assert r.status_code == 422
    assert set(r.json()["error"]["field_errors"]) == {"schedules[0].cron"}


@pytest.mark.settings(max_schedules_per_install=2)
async def test_it_respects_quotas_counting_what_prune_deletes(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any]
) -> None:
    await create(client, alice, ext, name="a")
    doc = [{"name": n, "endpoint": "POST /sync", "cron": "0 6 * * *"} for n in ("b", "c")]
    r = await apply(client, alice, ext, doc)
    assert r.status_code == 422 and r.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert [s[0] for s in await state(client, alice, ext)] == ["a"]
    r = await apply(client, alice, ext, doc, prune=True)
    assert r.status_code == 200, r.text
    assert [s[0] for s in await state(client, alice, ext)] == ["b", "c"]


async def test_it_keeps_tenants_and_permissions_apart(
    client: httpx.AsyncClient, alice: Actor, rita: Actor, charlie: Actor, ext: dict[str, Any]
) -> None:
    await create(client, alice, ext, name="a")
    assert (await client.get(url(ext, "/export"), headers=rita.headers)).status_code == 200
    r = await apply(client, rita, ext, [])
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    r = await client.get(url(ext, "/export"), headers=charlie.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_INSTALLED"
    r = await apply(client, charlie, ext, [], prune=True)
    assert r.status_code == 404
    assert [s[0] for s in await state(client, alice, ext)] == ["a"]


async def test_it_rolls_everything_back_when_the_backend_fails(
    client: httpx.AsyncClient, alice: Actor, ext: dict[str, Any], ctx: AppContext
) -> None:
    await create(client, alice, ext, name="a", timezone="UTC")
    await create(client, alice, ext, name="b", timezone="UTC")
    before = await state(client, alice, ext)
    doc = [
        {"name": "a", "endpoint": "POST /sync", "cron": "0 6 * * *"},
        {"name": "new", "endpoint": "POST /sync", "cron": "0 6 * * *"},
    ]
    real = ctx.backend
    ctx.backend = FailingBackend(real)  # type: ignore[assignment]
    try:
        r = await apply(client, alice, ext, doc, prune=True)
    finally:
        ctx.backend = real
    assert r.status_code == 503 and r.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert await state(client, alice, ext) == before
    audit = (
        await client.get(f"/api/v1/extensions/{ext['extension_id']}/audit", headers=alice.headers)
    ).json()["items"]
    assert "schedule.apply" not in [a["action"] for a in audit]
