"""Notifications on the temporal backend: the worker process that executes Temporal's
activities also delivers notifications (``services.maintenance``), so a run that fails
through Temporal reaches the tenant's webhook, signed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from extsched.jobs.temporal.backend import TemporalBackend
from extsched.server import running_worker
from extsched.services.context import AppContext
from tests.conftest import Actor
from tests.fake_runner import FakeRunner
from tests.helpers.polling import eventually
from tests.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
async def worker(temporal: TemporalBackend, ctx: AppContext) -> AsyncIterator[None]:
    async with running_worker(ctx):
        yield


@pytest.mark.settings(notify_allow_private=True, notify_poll_seconds=0.2)
async def test_a_run_failed_through_temporal_is_delivered(
    worker: None,
    sched: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    runner: FakeRunner,
    receiver: Receiver,
) -> None:
    r = await client.put(
        "/api/v1/notifications",
        json={"webhook_url": f"{receiver.url}/hook", "events": ["run_failed"], "enabled": True},
        headers=alice.headers,
    )
    assert r.status_code == 200, r.text
    secret = (await client.get("/api/v1/notifications/secret", headers=alice.headers)).json()[
        "secret"
    ]
    runner.behaviour = {"/sync": "ext_500"}
    s = await sched(name="Nightly CRM sync")
    r = await client.post(f"/api/v1/schedules/{s['id']}/run-now", headers=alice.headers)
    assert r.status_code == 202, r.text

    async def delivered() -> list[Any]:
        got = await client.get("/api/v1/notifications/deliveries", headers=alice.headers)
        items: list[Any] = got.json()["items"]
        return items

    [d] = await eventually(delivered, lambda items: bool(items) and items[0]["status"] != "pending")
    assert d["status"] == "delivered" and d["type"] == "run_failed"
    [call] = receiver.received()
    payload = call.verify(secret)
    assert payload["type"] == "run_failed"
    assert payload["schedule"] == {"id": s["id"], "name": "Nightly CRM sync"}
    assert payload["run"]["id"] == r.json()["run_id"]
    assert payload["run"]["status"] == "failed" and payload["run"]["http_status"] == 500
