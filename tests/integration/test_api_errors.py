"""The SPEC §5 error model everywhere: malformed input is a clear error, never a 500."""

from __future__ import annotations

import httpx

from tests.conftest import Actor


async def test_it_answers_malformed_json_with_bad_request(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    r = await client.post(
        "/api/v1/registry/versions",
        content=b"{not json",
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_REQUEST"


async def test_it_refuses_non_json_content_types(client: httpx.AsyncClient, admin: Actor) -> None:
    r = await client.post(
        "/api/v1/registry/versions",
        content=b"name=x",
        headers={**admin.headers, "content-type": "text/plain"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_REQUEST"


async def test_it_refuses_bodies_over_one_mebibyte(client: httpx.AsyncClient, admin: Actor) -> None:
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    r = await client.post(
        "/api/v1/registry/versions",
        content=big,
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "REQUEST_TOO_LARGE"

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"a" * 65536

    r = await client.post(
        "/api/v1/registry/versions",
        content=chunks(),
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413


async def test_it_reports_wrong_types_and_unknown_fields_per_field(
    client: httpx.AsyncClient,
    alice: Actor,
    install,  # type: ignore[no-untyped-def]
) -> None:
    p, _ = await install(alice)
    r = await client.patch(
        f"/api/v1/extensions/{p['extension_id']}",
        json={"config": "nope", "colour": "red"},
        headers=alice.headers,
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED"
    assert err["field_errors"]["colour"] == "unknown field"
    assert "config" in err["field_errors"]


async def test_it_reports_bad_uuids_in_paths(client: httpx.AsyncClient, alice: Actor) -> None:
    r = await client.get("/api/v1/extensions/not-a-uuid", headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["field_errors"] == {"extension_id": "must be a UUID"}


async def test_it_answers_unknown_routes_and_methods_in_shape(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    r = await client.get("/api/v1/nope", headers=alice.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = await client.put("/api/v1/extensions", headers=alice.headers)
    assert r.status_code == 405 and "error" in r.json()


async def test_it_serves_openapi_and_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
