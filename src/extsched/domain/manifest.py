"""Extension manifests: strict validation, endpoint normalization and content hashing (no I/O).

Validation is strict and reports every problem at once as ``ManifestInvalid.field_errors``,
keyed by the dotted path of the offending value (``"api.endpoints.1.method"``). Unknown keys are
refused at every level (top level, ``runtime``, ``api`` and each endpoint) so typos surface at
publish time. An optional field given as ``null`` counts as absent.

Endpoints whose method or path is *semantically* invalid are not errors: they are skipped and
reported (``Manifest.skipped``) so one bad declaration does not block a publish. A *structurally*
broken endpoint entry (not an object, missing or non-string ``method``/``path``) is an error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from extsched.domain import cron
from extsched.domain.manifest_schema import (
    ApiDoc,
    DefaultScheduleDoc,
    EndpointDoc,
    ManifestDocument,
    RuntimeDoc,
    fields_of,
)

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
SCHEDULABLE_METHODS = frozenset({"GET", "POST"})
# The capability that lets the reference Runner hand the install's secrets to the upstream.
SECRETS_CAPABILITY = "cap:secrets.get"

# One list of field names: the published JSON Schema's (domain.manifest_schema).
TOP_LEVEL_FIELDS = fields_of(ManifestDocument)
_RUNTIME_FIELDS = fields_of(RuntimeDoc)
_API_FIELDS = fields_of(ApiDoc)
_ENDPOINT_FIELDS = fields_of(EndpointDoc)
_SCHEDULE_FIELDS = fields_of(DefaultScheduleDoc)
MAX_SCHEDULE_NAME_CHARS = 128

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,127}")
_CAPABILITY_RE = re.compile(r"cap:[a-z0-9][a-z0-9._-]*")
# Semantic Versioning 2.0.0, section "Is there a suggested regular expression": numeric
# identifiers without leading zeros, optional pre-release and build metadata.
_NUMERIC = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD_ID = r"[0-9a-zA-Z-]+"
_SEMVER_RE = re.compile(
    rf"{_NUMERIC}\.{_NUMERIC}\.{_NUMERIC}"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
)
_BAD_PATH_CHARS_RE = re.compile(r"[\s\x00-\x1f\x7f?#\\]")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BAD_DECODED_RE = re.compile(r"[\x00-\x1f\x7f/\\]")

MAX_PUBLISHER_CHARS = 200
MAX_DESCRIPTION_CHARS = 4000
MAX_VERSION_CHARS = 128
MAX_HANDLER_CHARS = 500
MAX_PATH_CHARS = 2048
MAX_URL_CHARS = 2048


class ManifestInvalid(ValueError):
    """The manifest breaks one or more rules; ``field_errors`` maps dotted paths to messages."""

    def __init__(self, field_errors: dict[str, str]) -> None:
        self.field_errors = dict(field_errors)
        summary = "; ".join(f"{key}: {msg}" for key, msg in self.field_errors.items())
        super().__init__(f"invalid manifest: {summary}")


@dataclass(frozen=True)
class EndpointSpec:
    """A declared endpoint after normalization (method upper-case, canonical path)."""

    method: str
    path: str
    handler: str


@dataclass(frozen=True)
class SkippedEndpoint:
    """An endpoint declaration that was dropped at ingest, with the values as given."""

    method: str
    path: str
    reason: str  # "invalid_method" | "invalid_path" | "duplicate"


@dataclass(frozen=True)
class DefaultSchedule:
    """A schedule the manifest proposes (SPEC §7), its endpoint resolved in this manifest."""

    name: str
    method: str
    path: str
    cron: str
    timezone: str | None
    payload: Any
    enabled: bool


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``raw`` is a private copy of the input; hashing covers it exactly."""

    name: str
    publisher: str
    version: str
    description: str | None
    capabilities: tuple[str, ...]
    upstream_url: str | None
    endpoints: tuple[EndpointSpec, ...]
    skipped: tuple[SkippedEndpoint, ...]
    raw: dict[str, Any] = field(compare=False, hash=False, repr=False)
    content_hash: str
    schedules: tuple[DefaultSchedule, ...] = ()


def content_hash(raw: dict[str, Any]) -> str:
    """Return ``"sha256:" + hex`` of the manifest's canonical JSON.

    The canonical form is exactly
    ``json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as
    UTF-8: object keys sorted by code point at every level, no whitespace between tokens,
    non-ASCII characters written literally (not ``\\uXXXX``), numbers as Python prints them.
    Key order and formatting of the published document therefore do not change the hash.
    """
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalize_method(method: str) -> str | None:
    """Return the upper-cased method, or None if it is not a known HTTP method."""
    candidate = method.strip().upper()
    return candidate if candidate in HTTP_METHODS else None


def normalize_path(path: str) -> str | None:
    """Return the canonical form of an endpoint path, or None if it is invalid.

    Canonical: surrounding whitespace stripped, exactly one leading ``/``, no trailing ``/``
    except for the root. Invalid: empty, inner whitespace or control characters, a backslash, a
    query (``?``) or fragment (``#``), an empty inner segment (``//``), a ``.`` or ``..``
    segment (URL clients would rewrite it), also percent-encoded (``%2e%2e``), a malformed
    ``%`` escape or one that decodes to ``/``, ``\\`` or a control character (servers that
    decode before routing would see another path), or longer than ``MAX_PATH_CHARS``.
    """
    candidate = path.strip()
    if (
        not candidate
        or len(candidate) > MAX_PATH_CHARS
        or _BAD_PATH_CHARS_RE.search(candidate)
        or _BAD_ESCAPE_RE.search(candidate)
    ):
        return None
    inner = candidate.strip("/")
    if not inner:
        return "/"
    segments = inner.split("/")
    if any(_unsafe_segment(segment) for segment in segments):
        return None
    return "/" + inner


def _unsafe_segment(segment: str) -> bool:
    if "%" in segment:
        segment = unquote(segment, errors="replace")
        if _BAD_DECODED_RE.search(segment):
            return True
    return segment in ("", ".", "..")


_PARAM_TOKEN_RE = re.compile(r"\{[^/{}]*\}|\*")


def _is_param_segment(segment: str) -> bool:
    return (segment.startswith(":") and len(segment) > 1) or bool(_PARAM_TOKEN_RE.search(segment))


def endpoint_schedulability(method: str, path: str) -> str | None:
    """Return None if a schedule may target this endpoint, else the reason it may not.

    ``"method_not_allowed"`` unless the method is GET or POST; ``"path_params"`` if a segment
    is a parameter (``:name``, ``{name}``) or contains ``*``.
    """
    if method.strip().upper() not in SCHEDULABLE_METHODS:
        return "method_not_allowed"
    if any(_is_param_segment(segment) for segment in path.strip("/").split("/")):
        return "path_params"
    return None


def _segment_regex(segment: str) -> str:
    if segment.startswith(":") and len(segment) > 1:
        return "[^/]+"
    parts: list[str] = []
    last = 0
    for token in _PARAM_TOKEN_RE.finditer(segment):
        parts.append(re.escape(segment[last : token.start()]))
        parts.append("[^/]*" if token.group() == "*" else "[^/]+")
        last = token.end()
    parts.append(re.escape(segment[last:]))
    return "".join(parts)


def path_matches(pattern: str, path: str) -> bool:
    """True if a concrete normalized ``path`` matches a declared (normalized) ``pattern``.

    ``:name`` and ``{name}`` match one non-empty segment (``{name}`` also inside a segment);
    ``*`` matches within one segment, except a final bare ``*`` segment, which matches the
    rest of the path (one or more segments).
    """
    segments = pattern.strip("/").split("/")
    regex = "/".join(_segment_regex(segment) for segment in segments)
    if segments[-1] == "*":
        regex = "/".join(_segment_regex(segment) for segment in segments[:-1])
        regex = (regex + "/" if regex else "") + "[^/]+(?:/[^/]+)*"
    return re.fullmatch(regex, path.strip("/")) is not None


def find_endpoint(
    endpoints: tuple[EndpointSpec, ...], method: str, path: str
) -> EndpointSpec | None:
    """Return the declared endpoint serving ``method path``; exact paths win over patterns."""
    norm_method = normalize_method(method)
    norm_path = normalize_path(path)
    if norm_method is None or norm_path is None:
        return None
    candidates = [e for e in endpoints if e.method == norm_method]
    for endpoint in candidates:
        if endpoint.path == norm_path:
            return endpoint
    for endpoint in candidates:
        if path_matches(endpoint.path, norm_path):
            return endpoint
    return None


class _Errors:
    """Collects field errors; the first message recorded for a key wins."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, key: str, message: str) -> None:
        self.items.setdefault(key, message)


def _check_unknown(
    obj: dict[str, Any], allowed: frozenset[str], prefix: str, errors: _Errors
) -> None:
    for key in obj:
        if key not in allowed:
            errors.add(f"{prefix}{key}", "unknown field")


def _required_str(obj: dict[str, Any], key: str, prefix: str, errors: _Errors) -> str | None:
    value = obj.get(key)
    if value is None:
        errors.add(f"{prefix}{key}", "required")
        return None
    if not isinstance(value, str):
        errors.add(f"{prefix}{key}", "must be a string")
        return None
    return value


def _parse_name(data: dict[str, Any], errors: _Errors) -> str:
    name = _required_str(data, "name", "", errors)
    if name is not None and not _NAME_RE.fullmatch(name):
        errors.add("name", "must match ^[a-z0-9][a-z0-9._-]{1,127}$")
    return name or ""


def _parse_version(data: dict[str, Any], errors: _Errors) -> str:
    version = _required_str(data, "version", "", errors)
    if version is not None and (
        len(version) > MAX_VERSION_CHARS or not _SEMVER_RE.fullmatch(version)
    ):
        errors.add("version", "must be a semantic version (e.g. 1.4.0)")
    return version or ""


def _parse_publisher(data: dict[str, Any], errors: _Errors) -> str:
    publisher = _required_str(data, "publisher", "", errors)
    if publisher is None:
        return ""
    if not publisher.strip():
        errors.add("publisher", "must not be blank")
    elif len(publisher) > MAX_PUBLISHER_CHARS:
        errors.add("publisher", f"must be at most {MAX_PUBLISHER_CHARS} characters")
    return publisher


def _parse_description(data: dict[str, Any], errors: _Errors) -> str | None:
    description = data.get("description")
    if description is None:
        return None
    if not isinstance(description, str):
        errors.add("description", "must be a string")
        return None
    if len(description) > MAX_DESCRIPTION_CHARS:
        errors.add("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters")
    return description


def _parse_capabilities(data: dict[str, Any], errors: _Errors) -> tuple[str, ...]:
    value = data.get("capabilities")
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add("capabilities", "must be a list of strings")
        return ()
    seen: set[str] = set()
    result: list[str] = []
    for index, item in enumerate(value):
        key = f"capabilities.{index}"
        if not isinstance(item, str):
            errors.add(key, "must be a string")
        elif not _CAPABILITY_RE.fullmatch(item):
            errors.add(key, "must match ^cap:[a-z0-9][a-z0-9._-]*$")
        elif item in seen:
            errors.add(key, "duplicate capability")
        else:
            seen.add(item)
            result.append(item)
    return tuple(result)


def _valid_upstream_url(url: str) -> str | None:
    """Return an error message for ``url``, or None if it is a usable http(s) base URL."""
    if len(url) > MAX_URL_CHARS or re.search(r"[\s\x00-\x1f\x7f]", url):
        return "must be an http or https URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError:
        return "must be an http or https URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not contain a query or fragment"
    return None


def _parse_runtime(data: dict[str, Any], errors: _Errors) -> str | None:
    runtime = data.get("runtime")
    if runtime is None:
        return None
    if not isinstance(runtime, dict):
        errors.add("runtime", "must be an object")
        return None
    _check_unknown(runtime, _RUNTIME_FIELDS, "runtime.", errors)
    url = runtime.get("upstream_url")
    if url is None:
        return None
    if not isinstance(url, str):
        errors.add("runtime.upstream_url", "must be a string")
        return None
    problem = _valid_upstream_url(url)
    if problem is not None:
        errors.add("runtime.upstream_url", problem)
        return None
    return url


def _parse_endpoints(
    data: dict[str, Any], errors: _Errors
) -> tuple[tuple[EndpointSpec, ...], tuple[SkippedEndpoint, ...]]:
    api = data.get("api")
    if api is None:
        return (), ()
    if not isinstance(api, dict):
        errors.add("api", "must be an object")
        return (), ()
    _check_unknown(api, _API_FIELDS, "api.", errors)
    entries = api.get("endpoints")
    if entries is None:
        return (), ()
    if not isinstance(entries, list):
        errors.add("api.endpoints", "must be a list of objects")
        return (), ()

    endpoints: list[EndpointSpec] = []
    skipped: list[SkippedEndpoint] = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        prefix = f"api.endpoints.{index}."
        if not isinstance(entry, dict):
            errors.add(f"api.endpoints.{index}", "must be an object")
            continue
        _check_unknown(entry, _ENDPOINT_FIELDS, prefix, errors)
        method = _required_str(entry, "method", prefix, errors)
        path = _required_str(entry, "path", prefix, errors)
        handler = entry.get("handler")
        if handler is not None and not isinstance(handler, str):
            errors.add(f"{prefix}handler", "must be a string")
            handler = None
        elif isinstance(handler, str) and len(handler) > MAX_HANDLER_CHARS:
            errors.add(f"{prefix}handler", f"must be at most {MAX_HANDLER_CHARS} characters")
        if method is None or path is None:
            continue
        norm_method = normalize_method(method)
        norm_path = normalize_path(path)
        if norm_method is None:
            skipped.append(SkippedEndpoint(method, path, "invalid_method"))
        elif norm_path is None:
            skipped.append(SkippedEndpoint(method, path, "invalid_path"))
        elif (norm_method, norm_path) in seen:
            skipped.append(SkippedEndpoint(method, path, "duplicate"))
        else:
            seen.add((norm_method, norm_path))
            endpoints.append(EndpointSpec(norm_method, norm_path, handler or ""))
    return tuple(endpoints), tuple(skipped)


def _parse_schedule_endpoint(
    value: str, endpoints: tuple[EndpointSpec, ...], key: str, errors: _Errors
) -> tuple[str, str] | None:
    method_text, _, path_text = value.strip().partition(" ")
    method = normalize_method(method_text)
    path = normalize_path(path_text)
    if method is None or path is None:
        errors.add(key, 'must be "METHOD /path", e.g. "POST /sync"')
        return None
    if not any(e.method == method and e.path == path for e in endpoints):
        errors.add(key, f"{method} {path} is not an endpoint of this manifest")
        return None
    if endpoint_schedulability(method, path) is not None:
        errors.add(key, f"{method} {path} cannot be scheduled (GET or POST, no path parameters)")
        return None
    return method, path


def _parse_one_schedule(
    entry: dict[str, Any], endpoints: tuple[EndpointSpec, ...], prefix: str, errors: _Errors
) -> DefaultSchedule | None:
    _check_unknown(entry, _SCHEDULE_FIELDS, prefix, errors)
    name = _required_str(entry, "name", prefix, errors)
    if name is not None and not 1 <= len(name.strip()) <= MAX_SCHEDULE_NAME_CHARS:
        errors.add(f"{prefix}name", f"must be 1 to {MAX_SCHEDULE_NAME_CHARS} characters")
        name = None
    ref = _required_str(entry, "endpoint", prefix, errors)
    target = (
        None
        if ref is None
        else _parse_schedule_endpoint(ref, endpoints, f"{prefix}endpoint", errors)
    )
    cron_text = _required_str(entry, "cron", prefix, errors)
    if cron_text is not None:
        try:
            cron.parse_cron(cron_text)
        except cron.CronError as exc:
            errors.add(f"{prefix}cron", exc.message)
    timezone = entry.get("timezone")
    if timezone is not None:
        if not isinstance(timezone, str):
            errors.add(f"{prefix}timezone", "must be a string")
        else:
            try:
                cron.load_zone(timezone)
            except cron.CronError as exc:
                errors.add(f"{prefix}timezone", exc.message)
    payload = entry.get("payload")
    if payload is not None and not isinstance(payload, dict | list):
        errors.add(f"{prefix}payload", "must be a JSON object or array")
    enabled = entry.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        errors.add(f"{prefix}enabled", "must be true or false")
    if name is None or target is None or cron_text is None:
        return None
    return DefaultSchedule(
        name=name.strip(),
        method=target[0],
        path=target[1],
        cron=cron_text,
        timezone=timezone if isinstance(timezone, str) else None,
        payload=payload,
        enabled=enabled is not False,
    )


def _parse_schedules(
    data: dict[str, Any], endpoints: tuple[EndpointSpec, ...], errors: _Errors
) -> tuple[DefaultSchedule, ...]:
    entries = data.get("schedules")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        errors.add("schedules", "must be a list of objects")
        return ()
    result: list[DefaultSchedule] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        prefix = f"schedules.{index}."
        if not isinstance(entry, dict):
            errors.add(f"schedules.{index}", "must be an object")
            continue
        schedule = _parse_one_schedule(entry, endpoints, prefix, errors)
        if schedule is None:
            continue
        if schedule.name.casefold() in names:
            errors.add(f"{prefix}name", "duplicate schedule name")
            continue
        names.add(schedule.name.casefold())
        result.append(schedule)
    return tuple(result)


def parse_manifest(data: object) -> Manifest:
    """Validate ``data`` (decoded JSON) and return a ``Manifest``.

    Raises ``ManifestInvalid`` carrying every field error found. The root key for a
    non-object document is ``"manifest"``.
    """
    if not isinstance(data, dict):
        raise ManifestInvalid({"manifest": "must be a JSON object"})
    if not all(isinstance(key, str) for key in data):
        raise ManifestInvalid({"manifest": "keys must be strings"})
    errors = _Errors()
    name = _parse_name(data, errors)
    publisher = _parse_publisher(data, errors)
    version = _parse_version(data, errors)
    description = _parse_description(data, errors)
    capabilities = _parse_capabilities(data, errors)
    upstream_url = _parse_runtime(data, errors)
    endpoints, skipped = _parse_endpoints(data, errors)
    schedules = _parse_schedules(data, endpoints, errors)
    _check_unknown(data, TOP_LEVEL_FIELDS, "", errors)
    if errors.items:
        raise ManifestInvalid(errors.items)
    raw = copy.deepcopy(data)
    return Manifest(
        name=name,
        publisher=publisher,
        version=version,
        description=description,
        capabilities=capabilities,
        upstream_url=upstream_url,
        endpoints=endpoints,
        skipped=skipped,
        raw=raw,
        content_hash=content_hash(raw),
        schedules=schedules,
    )
