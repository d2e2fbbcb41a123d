"""Schemathesis against the service's own OpenAPI document: every route, a valid token, real
PostgreSQL over real HTTP. No 500s, and responses match the documented schemas.

``EXTSCHED_FUZZ_EXAMPLES`` raises the number of cases per operation (default 15 for CI).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
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
from tests.conftest import TEST_KEY, _with_db
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


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_it_never_fails_and_matches_its_schema(case: Any, service: dict[str, Any]) -> None:
    path = case.operation.path
    admin = path.startswith(("/api/v1/registry", "/api/v1/admin"))
    token = service["admin"] if admin else service["user"]
    case.call_and_validate(
        base_url=service["url"],
        headers={"Authorization": f"Bearer {token}"},
        # Business rules (a manifest's contents, cron semantics, quotas) live beyond the JSON
        # schema, so a schema-valid body may rightly be refused: that check does not apply.
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
