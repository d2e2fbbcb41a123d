"""The OpenAPI document as a contract (SPEC §5): readable operation ids pinned, one tag per
operation, every error answer in the ``ErrorResponse`` shape, the statuses each route documents,
typed request bodies, and a document that validates."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from openapi_spec_validator import validate
from pydantic import BaseModel

from extsched.api import openapi
from extsched.api.app import create_api
from extsched.domain.manifest import ManifestInvalid, parse_manifest
from tests.conftest import manifest

# Part of the contract: a generated client's method names. Extend, never rename.
OPERATIONS = """
POST   /api/v1/admin/reconcile                                   admin_reconcile
POST   /api/v1/admin/registry/backfill-endpoints                 admin_backfill_endpoints
GET    /api/v1/admin/schedules                                   admin_list_schedules
PUT    /api/v1/admin/tenants/{tenant_id}                         admin_put_tenant
POST   /api/v1/admin/tenants/{tenant_id}/kill-switch             admin_set_kill_switch
DELETE /api/v1/admin/tenants/{tenant_id}/schedules/{schedule_id} admin_delete_schedule
GET    /api/v1/admin/tokens                                      admin_list_tokens
POST   /api/v1/admin/tokens                                      admin_create_token
DELETE /api/v1/admin/tokens/{token_id}                           admin_revoke_token
POST   /api/v1/cron/preview                                      preview_cron
GET    /api/v1/extensions                                        list_installs
DELETE /api/v1/extensions/{extension_id}                         uninstall_extension
GET    /api/v1/extensions/{extension_id}                         get_install
PATCH  /api/v1/extensions/{extension_id}                         update_install
GET    /api/v1/extensions/{extension_id}/audit                   list_audit_entries
POST   /api/v1/extensions/{extension_id}/disable                 disable_install
POST   /api/v1/extensions/{extension_id}/enable                  enable_install
GET    /api/v1/extensions/{extension_id}/endpoints               list_endpoints
POST   /api/v1/extensions/{extension_id}/install                 install_extension
GET    /api/v1/extensions/{extension_id}/schedules               list_schedules
POST   /api/v1/extensions/{extension_id}/schedules               create_schedule
POST   /api/v1/extensions/{extension_id}/schedules/apply         apply_schedules
POST   /api/v1/extensions/{extension_id}/schedules/disable-all   disable_all_schedules
GET    /api/v1/extensions/{extension_id}/schedules/export        export_schedules
GET    /api/v1/extensions/{extension_id}/signing-secret          get_signing_secret
POST   /api/v1/extensions/{extension_id}/signing-secret/rotate   rotate_signing_secret
POST   /api/v1/extensions/{extension_id}/update                  update_install_version
POST   /api/v1/extensions/{extension_id}/update/preview          preview_install_version_update
GET    /api/v1/notifications                                     get_notifications
PUT    /api/v1/notifications                                     put_notifications
GET    /api/v1/notifications/deliveries                          list_notification_deliveries
GET    /api/v1/notifications/secret                              get_notification_secret
POST   /api/v1/notifications/test                                send_test_notification
GET    /api/v1/registry/extensions                               list_extensions
GET    /api/v1/registry/manifest.schema.json                     manifest_schema
POST   /api/v1/registry/versions                                 publish_version
DELETE /api/v1/registry/versions/{version_id}                    delete_version
GET    /api/v1/runs                                              list_tenant_runs
POST   /api/v1/runs/{run_id}/replay                              replay_run
DELETE /api/v1/schedules/{schedule_id}                           delete_schedule
GET    /api/v1/schedules/{schedule_id}                           get_schedule
PATCH  /api/v1/schedules/{schedule_id}                           update_schedule
POST   /api/v1/schedules/{schedule_id}/run-now                   run_now
GET    /api/v1/schedules/{schedule_id}/runs                      list_schedule_runs
GET    /healthz                                                  get_health
GET    /metrics                                                  get_metrics
GET    /readyz                                                   get_readiness
"""

# The error statuses each operation documents (all in the ErrorResponse shape; "-": none).
ERROR_STATUSES = """
admin_backfill_endpoints       400 401 403 404 422 503
admin_create_token             400 401 403 413 422 503
admin_delete_schedule          400 401 403 404 422 503
admin_list_schedules           400 401 403 422 503
admin_list_tokens              400 401 403 422 503
admin_put_tenant               400 401 403 404 413 422 503
admin_reconcile                400 401 403 422 503
admin_revoke_token             400 401 403 404 422 503
admin_set_kill_switch          400 401 403 404 413 422 503
apply_schedules                400 401 403 404 409 413 422 503
create_schedule                400 401 403 404 409 413 422 503
delete_schedule                400 401 403 404 422 503
delete_version                 400 401 403 404 409 422 503
disable_all_schedules          400 401 403 404 422 503
disable_install                400 401 403 404 422 503
enable_install                 400 401 403 404 422 503
export_schedules               400 401 403 404 422 503
get_health                     -
get_install                    400 401 403 404 422 503
get_metrics                    -
get_notification_secret        400 401 403 503
get_notifications              400 401 403 503
get_readiness                  503
get_schedule                   400 401 403 404 422 503
get_signing_secret             400 401 403 404 422 503
install_extension              400 401 403 404 409 413 422 503
list_audit_entries             400 401 403 404 422 503
list_endpoints                 400 401 403 404 422 503
list_extensions                400 401 403 503
list_installs                  400 401 403 503
list_notification_deliveries   400 401 403 422 503
list_schedule_runs             400 401 403 404 422 503
list_schedules                 400 401 403 404 422 503
list_tenant_runs               400 401 403 404 422 503
manifest_schema                400
preview_cron                   400 401 413 422 503
preview_install_version_update 400 401 403 404 413 422 503
publish_version                400 401 403 409 413 422 503
put_notifications              400 401 403 413 422 503
replay_run                     400 401 403 404 409 422 429 503
rotate_signing_secret          400 401 403 404 422 503
run_now                        400 401 403 404 409 413 422 429 503
send_test_notification         400 401 403 422 503
uninstall_extension            400 401 403 404 422 503
update_install                 400 401 403 404 413 422 503
update_install_version         400 401 403 404 409 413 422 503
update_schedule                400 401 403 404 409 413 422 503
"""


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_api(None).openapi()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]


def test_it_names_every_operation_as_pinned(doc: dict[str, Any]) -> None:
    found = sorted((path, method, op["operationId"]) for method, path, op in _operations(doc))
    pinned = sorted((path, method, op_id) for method, path, op_id in _table(OPERATIONS))
    assert found == pinned


def test_it_documents_the_pinned_error_statuses(doc: dict[str, Any]) -> None:
    found = {
        op["operationId"]: [s for s in sorted(op["responses"]) if s >= "400"]
        for _, _, op in _operations(doc)
    }
    pinned = {row[0]: [s for s in row[1:] if s != "-"] for row in _table(ERROR_STATUSES)}
    assert found == pinned


def test_it_validates_as_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_it_tags_every_operation_with_one_declared_resource(doc: dict[str, Any]) -> None:
    declared = {tag["name"] for tag in doc["tags"]}
    for method, path, op in _operations(doc):
        assert len(op["tags"]) == 1 and op["tags"][0] in declared, (method, path, op["tags"])
    used = {op["tags"][0] for _, _, op in _operations(doc)}
    assert used == declared


def test_every_error_answer_has_the_error_shape_and_names_its_codes(
    doc: dict[str, Any],
) -> None:
    for _, path, op in _operations(doc):
        for status, response in op["responses"].items():
            if status < "400" or (path, status) == ("/readyz", "503"):
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
            codes = list(content["examples"])
            assert codes and all(code in response["description"] for code in codes)
            for code, example in content["examples"].items():
                assert example["value"]["error"]["code"] == code
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    error = doc["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"code", "message"}


def test_it_documents_the_codes_a_route_raises(doc: dict[str, Any]) -> None:
    run_now = doc["paths"]["/api/v1/schedules/{schedule_id}/run-now"]["post"]["responses"]
    assert set(run_now["409"]["content"]["application/json"]["examples"]) == {
        "INSTALL_DISABLED",
        "SCHEDULES_PAUSED",
    }
    assert set(run_now["404"]["content"]["application/json"]["examples"]) == {
        "NOT_FOUND",
        "FEATURE_DISABLED",
    }
    assert "Retry-After" in run_now["429"]["headers"]
    assert "WWW-Authenticate" in run_now["401"]["headers"]
    create = doc["paths"]["/api/v1/extensions/{extension_id}/schedules"]["post"]["responses"]
    assert set(create["422"]["content"]["application/json"]["examples"]) == {
        "VALIDATION_FAILED",
        "QUOTA_EXCEEDED",
    }


def test_it_types_the_request_bodies(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    publish = doc["paths"]["/api/v1/registry/versions"]["post"]["requestBody"]
    assert publish["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Manifest"
    }
    assert schemas["Manifest"]["additionalProperties"] is False
    policies = schemas["ScheduleCreateIn"]["properties"]
    assert policies["overlap"]["anyOf"][0]["enum"] == ["skip", "buffer_one", "allow"]
    assert (policies["max_attempts"]["minimum"], policies["max_attempts"]["maximum"]) == (1, 10)
    assert schemas["ScheduleOut"]["properties"]["dst_gap"]["anyOf"][0]["enum"] == ["shift", "skip"]
    for name in ("ScheduleCreateIn", "SchedulePatchIn", "InstallCreateIn", "UpdateIn", "RunNowIn"):
        assert schemas[name]["examples"], name
    # Every request body is a named schema, none a bare object; run-now's may be absent.
    for method, path, op in _operations(doc):
        body = op.get("requestBody")
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            assert schema["$ref"].startswith("#/components/schemas/"), (method, path)
    run_now = doc["paths"]["/api/v1/schedules/{schedule_id}/run-now"]["post"]["requestBody"]
    assert not run_now.get("required")


# ----------------------------------------------------------------- the manifest schema
MANIFEST_CASES: list[dict[str, Any]] = [
    manifest(),
    manifest(description=None, capabilities=None, runtime=None, api=None),
    manifest(endpoints=[{"method": "FETCH", "path": "no-slash"}]),  # skipped, not refused
    {"name": "x", "publisher": "p", "version": "1.0.0"},
    manifest(name="Bad Name"),
    manifest(version="1.0"),
    manifest(version="01.0.0"),
    manifest(publisher=""),
    manifest(capabilities=["http.fetch"]),
    manifest(capabilities=["cap:a", "cap:a"]),
    manifest(runtime={"upstream_url": "http://x", "other": 1}),
    manifest(api={"endpoints": [{"method": "GET"}]}),
    manifest(api={"endpoints": [{"method": "GET", "path": "/a", "extra": 1}]}),
    manifest(api={"routes": []}),
    manifest(typo=True),
    {"publisher": "p", "version": "1.0.0"},
    [],
]


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_the_manifest_schema_refuses_what_the_registry_refuses(case: Any) -> None:
    schema = openapi.manifest_json_schema()
    try:
        parse_manifest(case)
        valid = True
    except ManifestInvalid:
        valid = False
    assert jsonschema.Draft202012Validator(schema).is_valid(case) == valid


def test_a_standalone_schema_with_defs_becomes_components() -> None:
    """The hook takes any JSON Schema (e.g. a pydantic model's): $defs move to components."""

    class Endpoint(BaseModel):
        method: str

    class Doc(BaseModel):
        endpoints: list[Endpoint]

    schemas: dict[str, Any] = {}
    openapi.register_schema(schemas, "Doc", Doc.model_json_schema())
    assert set(schemas) == {"Doc", "Endpoint"}
    assert schemas["Doc"]["properties"]["endpoints"]["items"] == {
        "$ref": "#/components/schemas/Endpoint"
    }


def test_two_routes_with_one_name_are_refused() -> None:
    app = create_api(None)
    router = APIRouter()

    @router.get("/api/v1/other-installs")
    async def list_installs() -> dict[str, str]:
        return {}

    app.include_router(router)
    with pytest.raises(RuntimeError, match="list_installs"):
        openapi.check_operation_ids(app)


def test_a_new_route_gets_its_function_name_as_id() -> None:
    app = create_api(None)
    router = APIRouter(tags=["runs"])

    @router.get("/api/v1/runs/{run_id}/logs")
    async def get_run_logs(run_id: uuid.UUID) -> dict[str, str]:
        return {}

    app.include_router(router)
    op = app.openapi()["paths"]["/api/v1/runs/{run_id}/logs"]["get"]
    assert op["operationId"] == "get_run_logs"
    assert sorted(op["responses"]) == ["200", "400", "422"]


def test_no_api_route_runs_a_dependency_or_handler_in_the_thread_pool() -> None:
    # FastAPI runs a plain ``def`` dependency or endpoint in its thread pool: a thread hand-off,
    # queue and GIL contention on every request (one such dependency cost the get route a third
    # of its CPU: 1.45 -> 0.94 ms). Everything on the request path is ``async``.
    def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif (included := getattr(route, "original_router", None)) is not None:
                yield from api_routes(included.routes)  # FastAPI's included routers

    def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
        if dependant.call is not None:
            yield dependant.call
        for sub in dependant.dependencies:
            yield from calls(sub)

    routes = list(api_routes(create_api(None).routes))
    assert len(routes) > 50
    blocking = {
        f"{call.__module__}.{call.__qualname__}"
        for route in routes
        for call in calls(route.dependant)
        if not inspect.iscoroutinefunction(call) and not inspect.isasyncgenfunction(call)
    }
    assert blocking == set()
