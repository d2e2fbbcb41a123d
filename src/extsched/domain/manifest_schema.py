"""The manifest document (SPEC §7) as one pydantic model: its JSON Schema is what
``GET /api/v1/registry/manifest.schema.json`` publishes and what the OpenAPI document can use
for the publish body; its field names are the ones ``domain.manifest`` accepts.

The schema describes the *shape* (fields, types, patterns, lengths, unknown fields refused).
``domain.manifest.parse_manifest`` applies the same rules and, beyond what a JSON Schema can
say, the semantic ones: endpoints normalized (invalid ones skipped and reported, not refused),
default schedules checked against the manifest's own endpoints, their cron and time zone
parsed. A test keeps the two in agreement.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,127}$"
CAPABILITY_PATTERN = r"^cap:[a-z0-9][a-z0-9._-]*$"
_NUM = r"(0|[1-9][0-9]*)"
_PRE = r"(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD = r"[0-9a-zA-Z-]+"
SEMVER_PATTERN = rf"^{_NUM}\.{_NUM}\.{_NUM}(-{_PRE}(\.{_PRE})*)?(\+{_BUILD}(\.{_BUILD})*)?$"
ENDPOINT_REF_PATTERN = r"^[A-Za-z]+ /.*$"
SCHEMA_ID = "/api/v1/registry/manifest.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointDoc(_Strict):
    """One HTTP endpoint the extension serves."""

    model_config = ConfigDict(title="Endpoint")
    method: str = Field(
        description="HTTP method, case-insensitive: GET, POST, PUT, PATCH, DELETE, HEAD or "
        "OPTIONS. Only GET and POST endpoints can be scheduled. An unknown method skips the "
        "endpoint (reported in `skipped_endpoints`)."
    )
    path: str = Field(
        description="Path relative to `runtime.upstream_url`, e.g. `/sync`. Normalized to one "
        "leading `/` and no trailing `/`. `:name`, `{name}` and `*` segments are parameters "
        "(such endpoints cannot be scheduled). An invalid path skips the endpoint.",
    )
    handler: str | None = Field(
        default=None,
        max_length=500,
        description="Free text naming the code that serves it (shown in the UI).",
    )


class ApiDoc(_Strict):
    model_config = ConfigDict(title="Api")
    endpoints: list[EndpointDoc] | None = Field(
        default=None, description="The endpoints; duplicates (same method and path) are skipped."
    )


class RuntimeDoc(_Strict):
    model_config = ConfigDict(title="Runtime")
    upstream_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Base URL (http or https, no query or fragment) the reference Runner "
        "forwards each call to: `upstream_url` + endpoint path.",
        json_schema_extra={"format": "uri"},
    )


class DefaultScheduleDoc(_Strict):
    """A schedule the extension proposes; created for the tenant at install (SPEC §7)."""

    model_config = ConfigDict(title="DefaultSchedule")
    name: str = Field(
        min_length=1,
        max_length=128,
        description="Unique (case-insensitive) among the manifest's schedules.",
    )
    endpoint: str = Field(
        pattern=ENDPOINT_REF_PATTERN,
        description='`"METHOD /path"` of a schedulable endpoint of this manifest (GET or POST, '
        'no path parameters), e.g. `"POST /sync"`.',
    )
    cron: str = Field(
        description="Five fields: minute hour day-of-month month day-of-week (SPEC §5). The "
        "minimum interval between fires is checked at install."
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone; default: the installing user's, else the tenant's, else UTC.",
    )
    payload: dict[str, Any] | list[Any] | None = Field(
        default=None, description="JSON object or array sent as the POST body."
    )
    enabled: bool | None = Field(default=True, description="Whether it starts enabled.")


class ManifestDocument(_Strict):
    """An extension version's manifest (SPEC §7). Unknown fields are refused at every level."""

    model_config = ConfigDict(title="Manifest")
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Extension name, e.g. `com.example.crm-sync`; one extension per name.",
    )
    publisher: str = Field(min_length=1, max_length=200, description="Who publishes it.")
    version: str = Field(
        pattern=SEMVER_PATTERN,
        max_length=128,
        description="Semantic version (`1.4.0`, `2.0.0-beta.1`); unique per name.",
    )
    description: str | None = Field(default=None, max_length=4000)
    capabilities: list[Annotated[str, Field(pattern=CAPABILITY_PATTERN)]] | None = Field(
        default=None,
        description="Capabilities the extension may be granted, e.g. `cap:http.fetch`; "
        "`cap:secrets.get` lets the upstream receive the install's secrets. No duplicates.",
    )
    runtime: RuntimeDoc | None = None
    api: ApiDoc | None = None
    schedules: list[DefaultScheduleDoc] | None = Field(
        default=None, description="Default schedules created at install (SPEC §7)."
    )


def top_level_fields() -> frozenset[str]:
    return frozenset(ManifestDocument.model_fields)


def fields_of(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


def manifest_json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of a manifest."""
    schema = ManifestDocument.model_json_schema()
    capabilities = schema["properties"]["capabilities"]
    capabilities["uniqueItems"] = True
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }
