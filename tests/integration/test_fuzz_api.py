"""Schemathesis against the service's own OpenAPI document: every route, a valid token, real
PostgreSQL over real HTTP. No 500s, and responses match the documented schemas. Some cases are
made hostile (SPEC §4): a string of the body replaced by lone surrogates, NUL, bidi or
zero-width characters, a value nested past the depth limit, a header that is not UTF-8.

A second, plain hypothesis fuzz feeds raw bytes to the decoding edge (JSON bodies and UI forms):
the answer is never a 5xx, and every API error is in the error shape.

``EXTSCHED_FUZZ_EXAMPLES`` raises the number of cases per operation (default 15 for CI).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from extsched.api.app import create_api
from extsched.config import Settings
from extsched.db.pool import Database
from extsched.server import Roles, create_service_app
from extsched.services import tokens
from tests.conftest import TEST_KEY, _with_db, endpoint_id, manifest
from tests.helpers.http_server import run_asgi_server

schema = schemathesis.openapi.from_dict(create_api(None).openapi())
EXAMPLES = int(os.environ.get("EXTSCHED_FUZZ_EXAMPLES", "15"))


async def _tokens(url: str) -> tuple[str, str]:
    db = Database(url, min_size=1, max_size=2)
    await db.open()
    try:
        _, admin = await tokens.create(db, admin=True)
        _, user = await tokens.create(db, tenant_id="fuzz", user_id="fuzzer")
        return admin, user
    finally:
        await db.close()


@pytest.fixture(scope="module")
def service(
    pg_server: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    name = f"extsched_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = _with_db(pg_server, name)
    home: Path = tmp_path_factory.mktemp("fuzz-home")
    admin, user = asyncio.run(_tokens(url))
    app = create_service_app(
        Settings(database_url=url, home=home, secret_key=TEST_KEY, db_pool_min=1),
        url,
        Roles(api=True),
    )
    try:
        with run_asgi_server(app, lifespan="on") as base:
            yield {"url": base, "admin": admin, "user": user}
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------- hostile values
HOSTILE_CHARACTERS = (
    "\ud800\udbff\udc00\udfff\x00\x1b\x7f\u202e\u2066\u200e\u061c\u200b\u200d\ufeff\u2028"
)
hostile_text = st.text(
    st.one_of(
        st.sampled_from(HOSTILE_CHARACTERS),
        st.characters(categories=["Cs"]),  # lone surrogates, which st.text() leaves out
        st.characters(),
    ),
    min_size=1,
    max_size=12,
)
deep_json = st.integers(min_value=65, max_value=1200).map(
    lambda depth: json.loads("[" * depth + "]" * depth)
)
# Latin-1 text, which the client sends byte for byte: values that are not UTF-8.
non_utf8_header = st.binary(min_size=1, max_size=8).map(
    lambda raw: "x" + bytes(b | 0x80 for b in raw).decode("latin-1")
)


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every value in a JSON document, nested ones included."""
    found: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            found.append((node, key))
            if isinstance(item, dict | list):
                stack.append(item)
    return found


def make_hostile(case: Any, data: st.DataObject) -> None:
    """Turn some generated cases hostile: one body value (or a new key) becomes hostile text
    or deep JSON, or a header is not UTF-8. Most cases stay as generated."""
    kind = data.draw(st.sampled_from(["none", "none", "text", "key", "deep", "header"]))
    if kind == "header":
        case.headers = {**(case.headers or {}), "x-fuzz": data.draw(non_utf8_header)}
        return
    if kind == "none" or not isinstance(case.body, dict | list):
        return
    # A copy: the generated body may be an object the generator keeps and hands out again (a
    # documented example), and a hostile value written into it would change the next case drawn
    # from it, which Hypothesis reports as a flaky strategy when it replays a case.
    case.body = body = copy.deepcopy(case.body)
    slots = _slots(body)
    if kind == "key" and isinstance(body, dict):
        body[data.draw(hostile_text)] = "x"
    elif slots:
        container, key = data.draw(st.sampled_from(slots))
        container[key] = data.draw(deep_json if kind == "deep" else hostile_text)


def _call_and_validate(case: Any, service: dict[str, Any]) -> None:
    path = case.operation.path
    admin = path.startswith(("/api/v1/registry", "/api/v1/admin"))
    token = service["admin"] if admin else service["user"]
    case.call_and_validate(
        base_url=service["url"],
        headers={"Authorization": f"Bearer {token}"},
        # Business rules (a manifest's contents, cron semantics, quotas) live beyond the JSON
        # schema, so a schema-valid body may rightly be refused: that check does not apply.
        # The status must be one the route documents (status_code_conformance).
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


GENERATED = [phase for phase in Phase if phase != Phase.explicit]


# The service runs in a thread of this process, and its connection pool draws from the global
# `random` (psycopg_pool's reconnection jitter) whenever it opens a connection. When that falls
# in the middle of a draw, Hypothesis sees the global state change and blames the strategy (a
# deprecation warning, an error here): a false alarm, as no strategy uses `random`.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=GENERATED,  # the documented examples run in the test below
)
def test_it_never_fails_and_matches_its_schema(
    case: Any, data: st.DataObject, service: dict[str, Any]
) -> None:
    make_hostile(case, data)
    _call_and_validate(case, service)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit])
def test_its_documented_examples_are_answered_as_documented(
    case: Any, service: dict[str, Any]
) -> None:
    _call_and_validate(case, service)


# ----------------------------------------------------------------- the decoding edge
def _json_text(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")  # raw surrogates are not UTF-8 either


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text() | hostile_text, inner),
    max_leaves=12,
)
json_bodies = st.one_of(
    st.builds(_json_text, json_values, st.booleans()),
    st.builds(
        lambda depth, opener: opener * depth,
        st.integers(min_value=1, max_value=6000),
        st.sampled_from([b"[", b'{"a":', b'{"payload":[']),
    ),
    st.builds(  # valid JSON with raw bytes spliced in
        lambda doc, junk, at: doc[:at] + junk + doc[at:],
        st.builds(_json_text, json_values, st.just(False)),
        st.binary(min_size=1, max_size=4),
        st.integers(min_value=0, max_value=40),
    ),
    st.binary(max_size=200),
)
form_bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.tuples(
            st.sampled_from(["name", "cron", "timezone", "payload", "endpoint_id", "enabled"]),
            st.binary(max_size=40),
        ),
        max_size=6,
    ).map(lambda pairs: b"&".join(k.encode() + b"=" + v for k, v in pairs)),
)


@pytest.fixture(scope="module")
def edge(service: dict[str, Any]) -> dict[str, Any]:
    """An installed extension and a signed-in UI session for the fuzz user."""
    base = service["url"]
    admin = {"Authorization": f"Bearer {service['admin']}"}
    user = {"Authorization": f"Bearer {service['user']}"}
    with httpx.Client(base_url=base) as c:
        r = c.post("/api/v1/registry/versions", json=manifest(name="fuzz.edge"), headers=admin)
        published = r.json()
        ext = published["extension_id"]
        r = c.post(
            f"/api/v1/extensions/{ext}/install",
            json={"version_id": published["version_id"]},
            headers=user,
        )
        assert r.status_code in (201, 409), r.text
    ui = httpx.Client(base_url=base)
    ui.get(f"/ui/login?token={service['user']}")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', ui.get("/ui").text)
    assert csrf is not None
    try:
        yield {
            "ext": ext,
            "endpoint_id": endpoint_id(published, "POST", "/sync"),
            "ui": ui,
            "csrf": csrf.group(1),
            "admin": admin,
            "user": user,
        }
    finally:
        ui.close()


def _assert_error_shape(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


@given(body=json_bodies, target=st.integers(min_value=0, max_value=4))
@settings(max_examples=6 * EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_json_edge_answers_raw_bytes_in_the_error_shape(
    body: bytes, target: int, service: dict[str, Any], edge: dict[str, Any]
) -> None:
    ext = edge["ext"]
    method, url, headers = [
        ("POST", f"/api/v1/extensions/{ext}/schedules", edge["user"]),
        ("PATCH", f"/api/v1/extensions/{ext}", edge["user"]),
        ("POST", "/api/v1/cron/preview", edge["user"]),
        ("POST", "/api/v1/registry/versions", edge["admin"]),
        ("POST", f"/api/v1/extensions/{ext}/schedules", {}),  # unauthenticated
    ][target]
    r = httpx.request(
        method,
        service["url"] + url,
        content=body,
        headers={**headers, "content-type": "application/json"},
    )
    _assert_error_shape(r)


@given(body=form_bodies)
@settings(max_examples=3 * EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_form_edge_never_fails(body: bytes, edge: dict[str, Any]) -> None:
    r = edge["ui"].post(
        f"/ui/extensions/{edge['ext']}/schedules",
        content=body + b"&endpoint_id=" + edge["endpoint_id"].encode(),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-csrf-token": edge["csrf"],
            "accept": "application/json",
        },
    )
    assert r.status_code < 500, r.text
