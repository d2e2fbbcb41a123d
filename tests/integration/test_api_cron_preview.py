"""POST /api/v1/cron/preview: fires from a chosen instant, DST choices, the fires a clock
change affects, and field errors under the request's field names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conftest import Actor, Clock

PREVIEW = "/api/v1/cron/preview"


async def preview(client: httpx.AsyncClient, alice: Actor, **body: Any) -> httpx.Response:
    return await client.post(PREVIEW, json=body, headers=alice.headers)


async def test_it_previews_from_the_given_instant_with_the_chosen_dst_repeat(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    # Paris, 2026-10-25 01:00Z: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    r = await preview(
        client,
        alice,
        cron="30 2 * * *",
        timezone="Europe/Paris",
        count=3,
        **{"from": "2026-10-24T12:00:00Z"},
        dst_repeat="both",
    )
    assert r.status_code == 200, r.text
    assert r.json()["next_runs"] == [
        {
            "at": "2026-10-25T00:30:00Z",
            "local": "2026-10-25T02:30:00+02:00",
            "note": "repeated 02:30, first occurrence (DST ends)",
        },
        {
            "at": "2026-10-25T01:30:00Z",
            "local": "2026-10-25T02:30:00+01:00",
            "note": "repeated 02:30, second occurrence (DST ends)",
        },
        {"at": "2026-10-26T01:30:00Z", "local": "2026-10-26T02:30:00+01:00", "note": None},
    ]


async def test_it_starts_at_from_inclusively(client: httpx.AsyncClient, alice: Actor) -> None:
    r = await preview(
        client, alice, cron="0 9 * * *", timezone="UTC", count=2, **{"from": "2026-05-01T09:00:00Z"}
    )
    assert [f["at"] for f in r.json()["next_runs"]] == [
        "2026-05-01T09:00:00Z",
        "2026-05-02T09:00:00Z",
    ]


async def test_it_lists_the_fires_dst_moves_drops_or_doubles(
    client: httpx.AsyncClient, alice: Actor, clock: Clock
) -> None:
    clock.set(datetime(2026, 1, 10, tzinfo=UTC))
    r = await preview(
        client, alice, cron="30 2 * * *", timezone="Europe/Paris", dst_gap="skip", dst_repeat="last"
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_runs"][0]["at"] == "2026-01-10T01:30:00Z"
    assert body["dst_fires"] == [
        {
            "at": "2026-03-29T01:00:00Z",
            "local": "2026-03-29T02:30:00",
            "note": "dropped: 02:30 does not exist that day (skipped by DST change)",
            "dropped": True,
        },
        {
            "at": "2026-10-25T01:30:00Z",
            "local": "2026-10-25T02:30:00+01:00",
            "note": "repeated 02:30, second occurrence (DST ends)",
            "dropped": False,
        },
        {
            "at": "2027-03-28T01:00:00Z",
            "local": "2027-03-28T02:30:00",
            "note": "dropped: 02:30 does not exist that day (skipped by DST change)",
            "dropped": True,
        },
    ]
    # The skipped day is not a fire.
    r = await preview(
        client,
        alice,
        cron="30 2 * * *",
        timezone="Europe/Paris",
        count=2,
        dst_gap="skip",
        **{"from": "2026-03-28T12:00:00Z"},
    )
    assert [f["at"] for f in r.json()["next_runs"]] == [
        "2026-03-30T00:30:00Z",
        "2026-03-31T00:30:00Z",
    ]


async def test_it_shows_lord_howes_half_hour_shift(client: httpx.AsyncClient, alice: Actor) -> None:
    # 2026-10-03 15:30Z: 02:00 +10:30 -> 02:30 +11:00.
    r = await preview(
        client,
        alice,
        cron="15 2 * * *",
        timezone="Australia/Lord_Howe",
        count=1,
        **{"from": "2026-10-03T00:00:00Z"},
    )
    assert r.json()["next_runs"] == [
        {
            "at": "2026-10-03T15:30:00Z",
            "local": "2026-10-04T02:30:00+11:00",
            "note": "moved from 02:15 (skipped by DST change)",
        }
    ]
    assert r.json()["dst_fires"][0]["at"] == "2026-10-03T15:30:00Z"


async def test_it_has_no_dst_fires_in_zones_without_changes(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    r = await preview(client, alice, cron="0 9 * * 1-5", timezone="Asia/Kolkata")
    assert r.status_code == 200 and r.json()["dst_fires"] == []


async def test_it_puts_every_error_under_its_field(client: httpx.AsyncClient, alice: Actor) -> None:
    r = await preview(
        client, alice, cron="0 * * * *", timezone="UTC", dst_gap="skip", dst_repeat="later"
    )
    assert r.status_code == 422
    assert r.json()["error"]["field_errors"] == {
        "dst_gap": "only for fixed-time schedules",
        "dst_repeat": "must be one of first, last, both",
    }
    r = await preview(client, alice, cron="nope", timezone="Mars/Base", dst_gap="skip")
    assert set(r.json()["error"]["field_errors"]) == {"cron", "timezone"}
    r = await preview(client, alice, cron="0 9 * * *", timezone="UTC", count=101)
    assert r.status_code == 422 and set(r.json()["error"]["field_errors"]) == {"count"}
    r = await preview(client, alice, cron="0 9 * * *", timezone="UTC", **{"from": "tomorrow"})
    assert r.status_code == 422 and set(r.json()["error"]["field_errors"]) == {"from"}
    r = await preview(
        client, alice, cron="0 9 * * *", timezone="UTC", **{"from": "2026-05-01T09:00:00"}
    )
    assert r.status_code == 422 and set(r.json()["error"]["field_errors"]) == {"from"}


async def test_it_accepts_up_to_100_fires(client: httpx.AsyncClient, alice: Actor) -> None:
    r = await preview(client, alice, cron="0 9 * * *", timezone="UTC", count=100)
    assert r.status_code == 200 and len(r.json()["next_runs"]) == 100
