"""Audit entries name their target (SPEC §9): a UI can say "schedule Nightly sync"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import Actor, endpoint_id


async def test_it_names_the_target_of_every_entry(
    client: httpx.AsyncClient, alice: Actor, install: Callable[..., Any]
) -> None:
    published, inst = await install(alice)
    ext = published["extension_id"]
    r = await client.post(
        f"/api/v1/extensions/{ext}/schedules",
        json={
            "name": "Nightly sync",
            "endpoint_id": endpoint_id(published, "POST", "/sync"),
            "cron": "0 2 * * *",
        },
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r = await client.patch(
        f"/api/v1/schedules/{sid}", json={"name": "Nightly CRM sync"}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    assert (
        await client.delete(f"/api/v1/schedules/{sid}", headers=alice.headers)
    ).status_code == 204

    page = await client.get(f"/api/v1/extensions/{ext}/audit", headers=alice.headers)
    assert page.status_code == 200
    targets = [(e["action"], e["target"]) for e in reversed(page.json()["items"])]
    assert targets == [
        (
            "install.create",
            {"type": "install", "id": inst["install_id"], "name": published["name"]},
        ),
        ("schedule.create", {"type": "schedule", "id": sid, "name": "Nightly sync"}),
        ("schedule.update", {"type": "schedule", "id": sid, "name": "Nightly CRM sync"}),
        ("schedule.delete", {"type": "schedule", "id": sid, "name": "Nightly CRM sync"}),
    ]
