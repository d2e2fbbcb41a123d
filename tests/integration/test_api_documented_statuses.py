"""Each route answers with the error statuses and codes its OpenAPI entry documents, and the
generic ones it documents really happen: probed for every operation of the document, through
the whole app (body guard included) on a real database.

Probes per operation: no token (401), a token of the wrong kind or without the permission
(403), unknown ids (404), a header that is not UTF-8 (400), the tenant's scheduled tasks
switched off (404 ``FEATURE_DISABLED`` where documented). Every answer's status must be
documented and its ``error.code`` among that status's documented codes. The schemathesis
test (test_fuzz_api.py) checks the statuses of generated requests the same way.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from extsched.api.app import create_api
from extsched.services import tokens
from extsched.services.context import AppContext
from tests.conftest import Actor

DOC = create_api(None).openapi()
OPERATIONS = [
    (method.upper(), path, op) for path, ops in DOC["paths"].items() for method, op in ops.items()
]
NOT_A_TENANT = "No Such Tenant"  # not a tenant id: 404 on the admin tenant routes


def _documented(op: dict[str, Any]) -> dict[int, set[str]]:
    """Documented status -> its documented error codes (empty for a success)."""
    found: dict[int, set[str]] = {}
    for status, response in op["responses"].items():
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        found[int(status)] = set(examples)
    return found


def _url(path: str, op: dict[str, Any], *, tenant: str) -> str:
    def fill(match: re.Match[str]) -> str:
        return tenant if match.group(1) == "tenant_id" else str(uuid.uuid4())

    url = re.sub(r"\{(\w+)\}", fill, path)
    # A UUID query parameter that names an object (backfill's version_id) is unknown, too.
    for param in op.get("parameters", []):
        if (
            param["in"] == "query"
            and "uuid" in str(param["schema"])
            and op["operationId"] in ("admin_backfill_endpoints",)
        ):
            url += f"?{param['name']}={uuid.uuid4()}"
    return url


def _body(op: dict[str, Any]) -> Any:
    """The request body's first documented example, else an empty object."""
    body = op.get("requestBody")
    if body is None:
        return None
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = DOC["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema.get("examples", [{}])[0]


class Prober:
    def __init__(self, client: httpx.AsyncClient, method: str, path: str, op: dict[str, Any]):
        self.client, self.method, self.path, self.op = client, method, path, op
        self.documented = _documented(op)

    async def call(
        self, label: str, actor: Actor | None, *, tenant: str | None = None, **headers: Any
    ) -> httpx.Response:
        if actor is not None:
            headers["Authorization"] = f"Bearer {actor.token}"
        r = await self.client.request(
            self.method,
            _url(self.path, self.op, tenant=tenant or (actor and actor.tenant_id) or "acme"),
            json=_body(self.op),
            headers=headers,
        )
        where = f"{self.op['operationId']} ({label})"
        assert r.status_code in self.documented, f"{where}: undocumented {r.status_code} {r.text}"
        if r.status_code >= 400 and self.path.startswith("/api/"):
            code = r.json()["error"]["code"]
            assert code in self.documented[r.status_code], f"{where}: undocumented {code}"
        return r

    def documents(self, status: int, code: str | None = None) -> bool:
        return status in self.documented and (code is None or code in self.documented[status])


async def test_every_route_answers_only_what_it_documents(
    client: httpx.AsyncClient, ctx: AppContext, admin: Actor
) -> None:
    # One database for all operations (a database per operation costs more than the probes);
    # each operation's tenant is its own, so no probe sees another's changes.
    for n, (method, path, op) in enumerate(OPERATIONS):
        tenant = f"probe{n}"
        _, token = await tokens.create(ctx.db, tenant_id=tenant, user_id="alice")
        alice = Actor("alice", token, tenant)
        _, token = await tokens.create(
            ctx.db, tenant_id=tenant, user_id="rita", permissions=["extension:read"]
        )
        rita = Actor("rita", token, tenant)
        await _probe(Prober(client, method, path, op), admin, alice, rita)


async def _probe(probe: Prober, admin: Actor, alice: Actor, rita: Actor) -> None:
    method, path, op = probe.method, probe.path, probe.op
    is_admin = path.startswith(("/api/v1/admin", "/api/v1/registry"))
    right = admin if is_admin else alice

    r = await probe.call("no token", None)
    if probe.documents(401):
        assert r.status_code == 401

    # Every probe runs on every route: an answer its entry does not document fails in call().
    r = await probe.call("wrong kind of token", alice if is_admin else admin)
    if probe.documents(403):
        assert r.status_code == 403
    r = await probe.call("read-only user", rita)
    if probe.documents(403) and method != "GET" and not path.startswith("/api/v1/cron"):
        assert r.status_code == 403

    r = await probe.call("header not UTF-8", right, **{"x-probe": b"\xff\xfe"})
    if path.startswith("/api/"):
        assert r.status_code == 400

    r = await probe.call("unknown ids", right, tenant=NOT_A_TENANT)
    if probe.documents(404) and re.search(r"\{\w+\}|backfill", path):
        assert r.status_code == 404, r.text

    if is_admin or not path.startswith("/api/"):
        return
    r = await probe.client.put(
        f"/api/v1/admin/tenants/{alice.tenant_id}",
        json={"scheduled_tasks_enabled": False},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    r = await probe.call("scheduled tasks off", alice)
    # A replay looks its (here unknown) run up before the tenant's flag.
    if probe.documents(404, "FEATURE_DISABLED") and op["operationId"] != "replay_run":
        assert r.json()["error"]["code"] == "FEATURE_DISABLED", r.text


def test_the_read_only_user_is_refused_every_change() -> None:
    """Every tenant route that changes something documents 403 for a read-only user (rita is
    probed on each above): the permission check is a documented dependency."""
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            tenant_route = path.startswith("/api/v1/") and not path.startswith(
                ("/api/v1/admin", "/api/v1/registry", "/api/v1/cron")
            )
            if tenant_route and method != "get":
                assert "403" in op["responses"], op["operationId"]
