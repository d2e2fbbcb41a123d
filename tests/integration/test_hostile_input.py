"""Hostile input is never a 500 (SPEC §4): each case here was found by probing the service.

Deep JSON, lone surrogates, NUL, non-UTF-8 headers, forms and bodies, oversized forms, encoded
dot segments in manifests, names that look like other names; and the response headers every API
answer carries. Real PostgreSQL, the real app; the UI through its own sign-in and forms.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Actor, endpoint_id, manifest

JSON = {"content-type": "application/json"}


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` levels deep (the outermost counts)."""
    return "[" * depth + "]" * depth


def under(key: str, depth: int) -> str:
    """An object whose ``key`` holds an array nested ``depth`` levels deep."""
    return f'{{"{key}": {nested(depth)}}}'


def schedules_url(p: dict[str, Any]) -> str:
    return f"/api/v1/extensions/{p['extension_id']}/schedules"


async def post_raw(client: httpx.AsyncClient, actor: Actor, url: str, text: str) -> httpx.Response:
    return await client.post(url, content=text.encode(), headers={**actor.headers, **JSON})


async def schedule_count(client: httpx.AsyncClient, actor: Actor, p: dict[str, Any]) -> int:
    r = await client.get(schedules_url(p), headers=actor.headers)
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code
    return error


class TestDeepJson:
    async def test_it_refuses_payloads_nested_past_the_limit_naming_it(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        published: dict[str, Any],
    ) -> None:
        eid = endpoint_id(published, "POST", "/sync")

        # The body is one level, so a payload of 63 levels is a 64-level document.
        def body(depth: int) -> str:
            return f'{{"endpoint_id": "{eid}", "cron": "0 9 * * *", "payload": {nested(depth)}}}'

        r = await post_raw(client, alice, schedules_url(published), body(63))
        assert r.status_code == 201, r.text
        for depth in (64, 260, 980, 5000):
            r = await post_raw(client, alice, schedules_url(published), body(depth))
            error = assert_error(r, 422, "VALIDATION_FAILED")
            assert "64 levels" in error["message"]
        assert await schedule_count(client, alice, published) == 1

    async def test_it_refuses_deep_json_in_every_body(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        admin: Actor,
        published: dict[str, Any],
    ) -> None:
        ext = published["extension_id"]
        created = await client.post(
            schedules_url(published),
            json={"endpoint_id": endpoint_id(published, "POST", "/sync"), "cron": "0 9 * * *"},
            headers=alice.headers,
        )
        sid = created.json()["id"]
        for actor, method, url, text in [
            (alice, "PATCH", f"/api/v1/schedules/{sid}", under("payload", 300)),
            (alice, "PATCH", f"/api/v1/extensions/{ext}", under("config", 100)),
            (alice, "POST", f"/api/v1/schedules/{sid}/run-now", nested(2000)),
            (admin, "POST", "/api/v1/registry/versions", under("api", 500)),
        ]:
            r = await client.request(
                method, url, content=text.encode(), headers={**actor.headers, **JSON}
            )
            assert "64 levels" in assert_error(r, 422, "VALIDATION_FAILED")["message"], url
        got = await client.get(f"/api/v1/schedules/{sid}", headers=alice.headers)
        assert got.json()["payload"] is None and got.json()["revision"] == 1

    async def test_it_serves_listings_whatever_depth_a_stored_row_has(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        admin: Actor,
        published: dict[str, Any],
        db_url: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Rows written before the limit (or by hand) must not break a listing: the field that
        cannot be encoded reads as null, is logged, and the rest of the listing is served."""
        eid = endpoint_id(published, "POST", "/sync")
        ids = []
        for name in ("ok", "deep", "deeper"):
            r = await client.post(
                schedules_url(published),
                json={"name": name, "endpoint_id": eid, "cron": "0 9 * * *", "payload": [1]},
                headers=alice.headers,
            )
            ids.append(r.json()["id"])
        with psycopg.connect(db_url, autocommit=True) as conn:
            for sid, depth in ((ids[1], 600), (ids[2], 5000)):
                conn.execute(
                    "UPDATE tenant_extension_schedule SET payload = %s::jsonb WHERE id = %s",
                    (nested(depth), sid),
                )
            conn.execute(
                "UPDATE extension_audit_log SET changes = %s::jsonb WHERE target_id = %s",
                (under("payload", 900), ids[1]),
            )
        listing = await client.get(schedules_url(published), headers=alice.headers)
        assert listing.status_code == 200, listing.text
        payloads = {s["name"]: s["payload"] for s in listing.json()["items"]}
        assert payloads == {"ok": [1], "deep": None, "deeper": None}
        assert "payload nested deeper than 200 levels" in caplog.text
        for url, headers in [
            (f"/api/v1/schedules/{ids[1]}", alice.headers),
            (f"/api/v1/extensions/{published['extension_id']}/audit", alice.headers),
            ("/api/v1/admin/schedules", admin.headers),
        ]:
            r = await client.get(url, headers=headers)
            assert r.status_code == 200, (url, r.text)


class TestUnstorableText:
    @pytest.mark.parametrize(
        "field", ["name", "timezone", "cron", "payload", "payload-key", "endpoint_id"]
    )
    async def test_it_refuses_a_lone_surrogate_in_any_schedule_field(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        published: dict[str, Any],
        field: str,
    ) -> None:
        body: dict[str, Any] = {
            "endpoint_id": endpoint_id(published, "POST", "/sync"),
            "cron": "0 9 * * *",
        }
        if field == "payload":
            body["payload"] = {"note": "\ud800"}
        elif field == "payload-key":
            body["payload"] = {"\udfff": 1}
        else:
            body[field] = "x\ud800"
        # json.dumps writes the surrogate as the escape "\ud800", as a hostile client would.
        r = await post_raw(client, alice, schedules_url(published), json.dumps(body))
        error = assert_error(r, 422, "VALIDATION_FAILED")
        assert "lone surrogate" in error["message"]
        assert list(error["field_errors"]) == [field.removesuffix("-key")]
        assert await schedule_count(client, alice, published) == 0

    async def test_it_refuses_lone_surrogates_and_nul_in_install_settings_and_manifests(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        admin: Actor,
        published: dict[str, Any],
    ) -> None:
        url = f"/api/v1/extensions/{published['extension_id']}"
        for body in (
            {"secrets": {"\ud800": "x"}},
            {"secrets": {"token": "\udc00"}},
            {"config": {"region": "eu\x00"}},
        ):
            r = await client.patch(
                url, content=json.dumps(body).encode(), headers={**alice.headers, **JSON}
            )
            error = assert_error(r, 422, "VALIDATION_FAILED")
            assert set(error["field_errors"]) == set(body)
        got = (await client.get(url, headers=alice.headers)).json()
        assert got["config"] == {} and got["secret_names"] == []
        r = await post_raw(
            client,
            admin,
            "/api/v1/registry/versions",
            json.dumps(manifest(version="2.0.0", description="\ud83d")),
        )
        assert assert_error(r, 422, "VALIDATION_FAILED")["field_errors"] == {
            "description": "must not contain a lone surrogate (U+D83D); it is not Unicode text"
        }

    async def test_it_refuses_invalid_utf8_bodies(
        self, client: httpx.AsyncClient, alice: Actor, published: dict[str, Any]
    ) -> None:
        raw = b'{"endpoint_id": "x", "cron": "0 9 * * *", "name": "\xed\xa0\x80"}'
        r = await client.post(
            schedules_url(published), content=raw, headers={**alice.headers, **JSON}
        )
        assert "UTF-8" in assert_error(r, 400, "BAD_REQUEST")["message"]


class TestHeaders:
    async def test_it_refuses_non_utf8_header_values_on_every_route(
        self, client: httpx.AsyncClient, alice: Actor, published: dict[str, Any]
    ) -> None:
        for headers in (
            [(b"x-trace", b"caf\xe9")],  # latin-1, not UTF-8
            [(b"authorization", b"Bearer \xff\xfe")],
            [(b"authorization", alice.headers["Authorization"].encode()), (b"accept", b"\x80")],
        ):
            for url in ("/api/v1/extensions", schedules_url(published), "/api/v1/nope"):
                r = await client.get(url, headers=headers)
                assert "not valid UTF-8" in assert_error(r, 400, "BAD_REQUEST")["message"]

    async def test_every_api_response_says_nosniff_and_no_store(
        self, client: httpx.AsyncClient, alice: Actor, published: dict[str, Any]
    ) -> None:
        for method, url, body in [
            ("GET", "/api/v1/extensions", None),
            ("GET", schedules_url(published), None),
            ("POST", schedules_url(published), {"cron": "nope"}),
            ("GET", "/api/v1/nope", None),
        ]:
            r = await client.request(method, url, json=body, headers=alice.headers)
            assert r.headers["x-content-type-options"] == "nosniff", url
            assert r.headers["cache-control"] == "no-store", url

    async def test_every_401_names_the_bearer_scheme(self, client: httpx.AsyncClient) -> None:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
            r = await client.get("/api/v1/extensions", headers=headers)
            assert_error(r, 401, "UNAUTHENTICATED")
            assert r.headers["www-authenticate"] == "Bearer"


# Each makes two names look alike, or reorders what is displayed around it.
LOOKALIKE_CHARACTERS = [
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u061c",  # Arabic letter mark
    "\u200b",  # zero width space
    "\u200c",  # zero width non-joiner
    "\u200d",  # zero width joiner
    "\u2060",  # word joiner
    "\ufeff",  # zero width no-break space (BOM)
    "\x00",
    "\x07",
    "\n",
    "\x7f",
    "\x9b",  # C1 control
    "\u2028",  # line separator
]


class TestLookalikeNames:
    @pytest.mark.parametrize(
        "ch", LOOKALIKE_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in LOOKALIKE_CHARACTERS]
    )
    async def test_it_refuses_schedule_names_with_invisible_or_control_characters(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        published: dict[str, Any],
        ch: str,
    ) -> None:
        eid = endpoint_id(published, "POST", "/sync")
        r = await client.post(
            schedules_url(published),
            json={"name": f"nightly{ch}sync", "endpoint_id": eid, "cron": "0 9 * * *"},
            headers=alice.headers,
        )
        error = assert_error(r, 422, "VALIDATION_FAILED")
        assert f"U+{ord(ch):04X}" in error["field_errors"]["name"]
        assert await schedule_count(client, alice, published) == 0

    async def test_it_refuses_them_on_rename_and_in_config_keys_and_secret_names(
        self, client: httpx.AsyncClient, alice: Actor, published: dict[str, Any]
    ) -> None:
        eid = endpoint_id(published, "POST", "/sync")
        r = await client.post(
            schedules_url(published),
            json={"name": "nightly sync", "endpoint_id": eid, "cron": "0 9 * * *"},
            headers=alice.headers,
        )
        sid = r.json()["id"]
        r = await client.patch(
            f"/api/v1/schedules/{sid}", json={"name": "nightly\u200bsync"}, headers=alice.headers
        )
        assert "U+200B" in assert_error(r, 422, "VALIDATION_FAILED")["field_errors"]["name"]
        url = f"/api/v1/extensions/{published['extension_id']}"
        for body in ({"config": {"re\u202egion": "eu"}}, {"secrets": {"api\u2066key": "s"}}):
            r = await client.patch(url, json=body, headers=alice.headers)
            assert set(assert_error(r, 422, "VALIDATION_FAILED")["field_errors"]) == set(body)
        # Visible non-ASCII stays welcome.
        r = await client.patch(
            f"/api/v1/schedules/{sid}", json={"name": "Nächtlich · 夜間 🌙"}, headers=alice.headers
        )
        assert r.status_code == 200, r.text


class TestManifestPaths:
    async def test_it_skips_endpoints_whose_path_hides_dot_segments_or_backslashes(
        self, client: httpx.AsyncClient, admin: Actor
    ) -> None:
        bad = ["/%2e%2e/etc", "/a/%2E./b", "/a\\b", "/a%5cb", "/a%2Fb", "/a%zz", "/a%00"]
        endpoints = [{"method": "GET", "path": "/ok", "handler": "h"}] + [
            {"method": "GET", "path": path, "handler": "h"} for path in bad
        ]
        r = await client.post(
            "/api/v1/registry/versions", json=manifest(endpoints=endpoints), headers=admin.headers
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert [e["path"] for e in body["endpoints"]] == ["/ok"]
        assert body["skipped_endpoints"] == [
            {"method": "GET", "path": path, "reason": "invalid_path"} for path in bad
        ]


async def test_it_answers_not_installed_for_the_audit_of_an_extension_never_installed(
    client: httpx.AsyncClient, alice: Actor, charlie: Actor, published: dict[str, Any]
) -> None:
    url = f"/api/v1/extensions/{published['extension_id']}/audit"
    assert_error(await client.get(url, headers=charlie.headers), 404, "NOT_INSTALLED")
    r = await client.get(
        "/api/v1/extensions/018f0000-0000-7000-8000-000000000000/audit", headers=alice.headers
    )
    assert_error(r, 404, "NOT_INSTALLED")
    assert (await client.get(url, headers=alice.headers)).json()["items"]


class TestUiForms:
    @pytest.fixture
    async def ui(self, client: httpx.AsyncClient, alice: Actor) -> str:
        """Signs ``client`` in as alice; returns the session's CSRF token."""
        r = await client.get(f"/ui/login?token={alice.token}")
        assert r.status_code == 303
        page = await client.get("/ui")
        match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert match is not None
        return match.group(1)

    async def test_it_shows_form_errors_for_hostile_fields(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        published: dict[str, Any],
        ui: str,
    ) -> None:
        url = f"/ui/extensions/{published['extension_id']}/schedules"
        form = {"endpoint_id": endpoint_id(published, "POST", "/sync"), "cron": "0 9 * * *"}
        for field, value, shown in [
            ("payload", "[" * 5000, "nested deeper than the limit of 64 levels"),
            ("payload", '{"a": "\\ud800"}', "lone surrogate (U+D800)"),
            ("name", "nightly\u202esync", "U+202E"),
            ("name", "a\x00b", "U+0000"),
            ("timezone", "Europe/Paris\x00", "time zone"),
        ]:
            r = await client.post(url, data={**form, field: value, "csrf_token": ui})
            assert r.status_code == 422, (field, r.text[:300])
            assert shown in r.text, field
        assert await schedule_count(client, alice, published) == 0

    async def test_it_refuses_oversized_and_non_utf8_forms(
        self,
        client: httpx.AsyncClient,
        alice: Actor,
        published: dict[str, Any],
        ui: str,
    ) -> None:
        url = f"/ui/extensions/{published['extension_id']}/schedules"
        eid = endpoint_id(published, "POST", "/sync")
        r = await client.post(
            url,
            data={
                "endpoint_id": eid,
                "cron": "0 9 * * *",
                "name": "x" * (1 << 20),
                "csrf_token": ui,
            },
        )
        assert_error(r, 413, "REQUEST_TOO_LARGE")
        form = f"endpoint_id={eid}&cron=0+9+*+*+*&csrf_token={ui}&name="
        for name in (b"%ED%A0%80", b"caf%E9", b"caf\xe9"):
            r = await client.post(
                url,
                content=form.encode() + name,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert "not valid UTF-8" in assert_error(r, 400, "BAD_REQUEST")["message"]
        assert await schedule_count(client, alice, published) == 0
