"""The Runner request of SPEC §6, built by one pure function from what an attempt invokes."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Invocation:
    """Everything one attempt sends: the run, the endpoint and the install's current values."""

    request_id: uuid.UUID
    tenant_id: str
    extension_id: uuid.UUID
    install_id: uuid.UUID
    version_id: uuid.UUID
    content_hash: str
    config: dict[str, str]
    providers: list[str]
    trigger: str
    schedule_id: uuid.UUID
    run_id: uuid.UUID
    scheduled_for: datetime
    attempt: int
    method: str
    path: str
    payload: Any
    timeout_ms: int
    secret_envelope: dict[str, Any] | None


def compact_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (what ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)`` gives, but for the spelling of some floats: ``1.5e-7``, not
    ``1.5e-07``), by orjson: 0.8 against 12 µs for a Runner request, which every attempt
    builds. A value orjson refuses (an integer beyond 64 bits in a payload) goes through the
    standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(value: datetime) -> str:
    """``2026-11-27T09:00:00Z``: UTC, whole seconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(inv: Invocation) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``/v1/execute`` body and its transport headers.

    ``http.headers`` holds only headers the service sets; a ``GET`` carries no body, a ``POST``
    its payload as compact JSON (UTF-8, base64).
    """
    run_id, schedule_id = str(inv.run_id), str(inv.schedule_id)
    scheduled_for = rfc3339(inv.scheduled_for)
    http_headers = {
        "x-extsched-trigger": inv.trigger,
        "x-extsched-schedule-id": schedule_id,
        "x-extsched-run-id": run_id,
        "x-extsched-scheduled-for": scheduled_for,
    }
    http: dict[str, Any] = {
        "method": inv.method,
        "path": inv.path,
        "query": {},
        "headers": http_headers,
    }
    if inv.method == "POST" and inv.payload is not None:
        body = compact_json(inv.payload)
        http_headers["content-type"] = "application/json"
        http["body_b64"] = base64.b64encode(body).decode()
    envelope: dict[str, Any] = {
        "context": {
            "request_id": str(inv.request_id),
            "tenant_id": inv.tenant_id,
            "extension_id": str(inv.extension_id),
            "install_id": str(inv.install_id),
            "version_id": str(inv.version_id),
            "content_hash": inv.content_hash,
            "config": dict(inv.config),
            "trigger": inv.trigger,
            "schedule_id": schedule_id,
            "run_id": run_id,
            "scheduled_for": scheduled_for,
            "attempt": inv.attempt,
        },
        "http": http,
        "limits": {"timeout_ms": inv.timeout_ms},
        "providers": list(inv.providers),
    }
    if inv.secret_envelope is not None:
        envelope["secret_envelope"] = inv.secret_envelope
    headers = {
        "content-type": "application/json",
        "x-request-id": str(inv.request_id),
        "x-idempotency-key": f"{run_id}:{inv.attempt}",
        "x-tenant-id": inv.tenant_id,
        "x-extension-id": str(inv.extension_id),
    }
    return envelope, headers
