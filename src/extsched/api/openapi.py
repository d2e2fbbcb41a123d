"""The OpenAPI document, shaped for generated clients (SPEC §5).

- **Operation ids** are the route's name, i.e. its endpoint function's name (``run_now``,
  ``create_schedule``): ``operation_id`` is the app's ``generate_unique_id_function``, so a new
  route gets a readable id by being given a readable function name. Two routes with one id are
  refused when the document is built.
- **Errors**: every error answer has the ``ErrorResponse`` schema. The statuses a route documents
  are those its shape implies (``implied_errors``: the body guard, a body, parameters) plus those
  declared with ``@raises(...)`` on its endpoint and on its dependencies: ``deps.get_principal``
  declares 401 and 503, the permission checks 403, so a route gets those by using ``Reader``,
  ``Writer`` or ``Admin``. A new route declares what its services raise (404, 409, 429...).
- **Typed bodies**: the manifest body references the ``Manifest`` component, whose schema comes
  from ``manifest_json_schema()`` alone.

``tests/unit/test_openapi.py`` pins the ids and statuses; ``tests/integration/
test_api_documented_statuses.py`` and the schemathesis test check them against real answers.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from extsched.domain.manifest_schema import manifest_json_schema as manifest_document_schema
from extsched.errors import (
    BadRequest,
    ExtschedError,
    RateLimited,
    RequestTooLarge,
    Unauthenticated,
    ValidationFailed,
)

F = TypeVar("F", bound=Callable[..., Any])

COMPONENTS = "#/components/schemas/"
ERROR_RESPONSE_REF = {"$ref": f"{COMPONENTS}ErrorResponse"}
MANIFEST_REF = {"$ref": f"{COMPONENTS}Manifest"}

TAGS: list[dict[str, str]] = [
    {"name": "registry", "description": "Publish and remove extension versions (platform admin)."},
    {"name": "installs", "description": "A tenant's installed extensions and their settings."},
    {"name": "endpoints", "description": "The endpoints of an install's current version."},
    {"name": "schedules", "description": "Cron schedules of an install's endpoints."},
    {
        "name": "runs",
        "description": "Runs: a schedule's and the tenant's history, run now, replay.",
    },
    {"name": "cron", "description": "Cron expression preview and validation."},
    {"name": "notifications", "description": "The tenant's webhook for run events."},
    {"name": "audit", "description": "Who changed what on an extension."},
    {"name": "admin", "description": "Tenants, tokens and cross-tenant operations."},
    {"name": "service", "description": "Health, readiness and metrics."},
]


def operation_id(route: APIRoute) -> str:
    """The operation id of a route: its name (the endpoint function's, unless ``name=`` says
    otherwise)."""
    return route.name


def raises(*errors: type[ExtschedError]) -> Callable[[F], F]:
    """Declare the errors an endpoint or a dependency can answer with, beyond those its shape
    implies; they are listed in the document under their status."""

    def mark(func: F) -> F:
        declared: tuple[type[ExtschedError], ...] = getattr(func, "__extsched_raises__", ())
        func.__extsched_raises__ = (*declared, *errors)  # type: ignore[attr-defined]
        return func

    return mark


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def implied_errors(route: APIRoute) -> list[type[ExtschedError]]:
    """The errors a route's shape implies: any API route refuses a header that is not UTF-8
    (400, ``errors.BodyGuard``); a body can be malformed (400), too large (413) or invalid
    (422), and so can parameters (422)."""
    found: list[type[ExtschedError]] = []
    dependant = route.dependant
    if route.path_format.startswith("/api/"):
        found.append(BadRequest)
    if dependant.body_params:
        found += [RequestTooLarge, ValidationFailed]
    if dependant.path_params or dependant.query_params or dependant.header_params:
        found.append(ValidationFailed)
    return found


def route_errors(route: APIRoute) -> list[type[ExtschedError]]:
    """Every error a route documents: implied by its shape, and declared (``@raises``) by its
    endpoint and its dependencies. In order of status, each class once."""
    found = implied_errors(route)
    for call in _calls(route.dependant):
        found += getattr(call, "__extsched_raises__", ())
    return sorted(dict.fromkeys(found), key=lambda e: (e.status, e.code))


def error_responses(errors: list[type[ExtschedError]]) -> dict[str, dict[str, Any]]:
    """OpenAPI responses for ``errors``, one per status, each naming its codes."""
    by_status: dict[int, list[type[ExtschedError]]] = {}
    for err in errors:
        by_status.setdefault(err.status, []).append(err)
    responses: dict[str, dict[str, Any]] = {}
    for status, group in by_status.items():
        codes = list(dict.fromkeys(e.code for e in group))
        examples = {
            e.code: {"value": e(e.default_message).to_body()}
            for e in {e.code: e for e in group}.values()
        }
        response: dict[str, Any] = {
            "description": f"{http.HTTPStatus(status).phrase}: {', '.join(codes)}",
            "content": {"application/json": {"schema": ERROR_RESPONSE_REF, "examples": examples}},
        }
        if status == Unauthenticated.status:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        if status == RateLimited.status:
            response["headers"] = {
                "Retry-After": {
                    "schema": {"type": "integer"},
                    "description": "Seconds to wait before trying again.",
                }
            }
        responses[str(status)] = response
    return responses


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of a manifest (SPEC §7), published as the ``Manifest`` component and
    referenced by ``publish_version``'s body: the same document the registry serves at
    ``/api/v1/registry/manifest.schema.json`` (``domain.manifest_schema``)."""
    return manifest_document_schema()


def register_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    """Add a standalone JSON Schema as component ``name``: its ``$defs`` become components
    too, and its references to them are rewritten to point there."""
    schema = dict(schema)
    defs: dict[str, Any] = schema.pop("$defs", {})
    schema.pop("$schema", None)
    schema.pop("$id", None)
    for key, sub in {name: schema, **defs}.items():
        if key in schemas and key != name and schemas[key] != sub:
            raise RuntimeError(f"two different schemas are named {key!r}")
        schemas[key] = _rewrite_refs(sub)


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                COMPONENTS + v.removeprefix("#/$defs/")
                if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _documented(app: FastAPI) -> Iterator[APIRoute]:
    """The app's routes that the document shows. Newer FastAPI keeps included routers as
    such and gives each route in context (prefix, tags) through ``iter_route_contexts``."""
    iter_contexts = getattr(routing, "iter_route_contexts", None)
    routes: Iterable[Any] = app.routes if iter_contexts is None else iter_contexts(app.routes)
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield route


def check_operation_ids(app: FastAPI) -> None:
    """Refuse two documented routes with one operation id (the second would be unreachable
    in a generated client)."""
    seen: dict[str, str] = {}
    for route in _documented(app):
        for method in sorted(route.methods or ()):
            where = f"{method} {route.path_format}"
            op_id = route.operation_id or route.unique_id
            if len(route.methods or ()) > 1:  # as FastAPI names it
                op_id = f"{op_id}_{method.lower()}"
            if op_id in seen:
                raise RuntimeError(
                    f"operation id {op_id!r} of {where} is also that of {seen[op_id]}: "
                    "give the route functions different names"
                )
            seen[op_id] = where


def _optional_body_as_absent(op: dict[str, Any]) -> None:
    """An optional body is one that may be absent (``required: false``), not one that may be
    JSON ``null``: generators then send nothing rather than ``null``."""
    body = op.get("requestBody")
    if body is None or body.get("required"):
        return
    for media in body["content"].values():
        options = media["schema"].get("anyOf", [])
        if len(options) == 2 and {"type": "null"} in options:
            media["schema"] = next(o for o in options if o != {"type": "null"})


def document(app: FastAPI, doc: dict[str, Any]) -> dict[str, Any]:
    """Complete FastAPI's document: components shared by reference, and each route's error
    answers (replacing FastAPI's generic 422)."""
    from extsched.api.schemas import ErrorResponse  # the schemas import services

    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template=COMPONENTS + "{model}")
    register_schema(schemas, "ErrorResponse", error_schema)
    register_schema(schemas, "Manifest", manifest_json_schema())
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for route in _documented(app):
        for method in sorted(route.methods or ()):
            op = doc["paths"][route.path_format][method.lower()]
            _optional_body_as_absent(op)
            responses = op["responses"]
            generic = responses.get("422", {}).get("content", {}).get("application/json", {})
            if "HTTPValidationError" in str(generic.get("schema")):
                del responses["422"]
            responses.update(error_responses(route_errors(route)))
            op["responses"] = dict(sorted(responses.items()))
    return doc
