"""Demo upstream for the demo extension, and its manifest.

Routes are relative: ``serve`` mounts the app at ``/demo`` and the manifest's
``runtime.upstream_url`` points there. The upstream does not verify signatures (it has no
install's secret; ``docs/extension-authors.md`` shows an upstream that does); ``/sync`` reports
whether a well-formed Standard Webhooks signature arrived so the forwarding is visible.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

DEMO_NAME = "com.example.demo"
DEMO_PUBLISHER = "extsched demo"
MAX_SLOW_MS = 60_000
_SIGNATURE_RE = re.compile(r"v1,[A-Za-z0-9+/]{43}=( v1,[A-Za-z0-9+/]{43}=)*")


def demo_manifest(
    upstream_url: str, version: str = "1.0.0", *, variant: Literal[1, 2] | None = None
) -> dict[str, Any]:
    """Return a valid manifest for the demo extension served at ``upstream_url``.

    Variant 1 declares POST /sync, GET /report, POST /fail, POST /slow, GET /contacts/:id and
    DELETE /cache. Variant 2 drops POST /fail and adds POST /sync-v2 (for remap demos). By
    default the variant follows the version's major number (2.x and later → variant 2).
    """
    if variant is None:
        major = version.split(".", 1)[0]
        variant = 2 if major.isdigit() and int(major) >= 2 else 1
    endpoints = [
        {"method": "POST", "path": "/sync", "handler": "handlers/sync"},
        {"method": "GET", "path": "/report", "handler": "handlers/report"},
        {"method": "POST", "path": "/fail", "handler": "handlers/fail"},
        {"method": "POST", "path": "/slow", "handler": "handlers/slow"},
        {"method": "GET", "path": "/contacts/:id", "handler": "handlers/contact"},
        {"method": "DELETE", "path": "/cache", "handler": "handlers/cache"},
    ]
    if variant == 2:
        endpoints = [e for e in endpoints if e["path"] != "/fail"]
        endpoints.insert(1, {"method": "POST", "path": "/sync-v2", "handler": "handlers/sync_v2"})
    return {
        "name": DEMO_NAME,
        "publisher": DEMO_PUBLISHER,
        "version": version,
        "description": "Demo extension served by the reference Runner's demo upstream",
        "capabilities": ["cap:http.fetch"],
        "runtime": {"upstream_url": upstream_url},
        "api": {"endpoints": endpoints},
    }


def _extsched_headers(request: Request) -> dict[str, str]:
    """The context headers, echoed for the demo; never the secrets (the answer is kept in
    the run history)."""
    return {
        k: v
        for k, v in request.headers.items()
        if k.lower().startswith("x-extsched-") and k.lower() != "x-extsched-secrets"
    }


def _count_items(payload: object) -> int:
    if isinstance(payload, list):
        return len(payload)
    if isinstance(payload, dict):
        items = payload.get("items")
        return len(items) if isinstance(items, list) else 1
    return 0


async def _sync_summary(request: Request, api: str) -> Response:
    raw = await request.body()
    try:
        payload = json.loads(raw) if raw.strip() else None
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    return JSONResponse(
        {
            "api": api,
            "synced": _count_items(payload),
            "received": payload,
            "headers": _extsched_headers(request),
            "signed": bool(_SIGNATURE_RE.fullmatch(request.headers.get("webhook-signature", ""))),
        }
    )


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_demo_app() -> FastAPI:
    """Build the demo upstream (mount it at ``/demo``)."""
    app = FastAPI(title="extsched demo upstream")

    @app.post("/sync")
    async def sync(request: Request) -> Response:
        return await _sync_summary(request, "v1")

    @app.post("/sync-v2")
    async def sync_v2(request: Request) -> Response:
        return await _sync_summary(request, "v2")

    @app.get("/report")
    async def report(request: Request) -> dict[str, Any]:
        return {
            "report": "demo",
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rows": [{"name": "contacts", "count": 42}, {"name": "deals", "count": 7}],
            "headers": _extsched_headers(request),
        }

    @app.post("/fail")
    async def fail() -> Response:
        return JSONResponse({"error": "demo failure, as requested"}, status_code=500)

    @app.post("/slow")
    async def slow(request: Request, ms: int = 1000) -> dict[str, int]:
        """Answer after ``ms`` milliseconds (0 to 60,000), or stop early if the caller hangs up."""
        ms = min(max(ms, 0), MAX_SLOW_MS)
        await request.body()
        sleeper = asyncio.create_task(asyncio.sleep(ms / 1000))
        watcher = asyncio.create_task(_wait_for_disconnect(request))
        _, pending = await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return {"slept_ms": ms}

    @app.get("/contacts/{contact_id}")
    async def contact(contact_id: str) -> dict[str, str]:
        return {"id": contact_id, "name": f"Contact {contact_id}"}

    @app.delete("/cache", status_code=204)
    async def clear_cache() -> Response:
        return Response(status_code=204)

    return app
