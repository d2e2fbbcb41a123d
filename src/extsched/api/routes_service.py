"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from extsched.api.deps import Ctx
from extsched.api.schemas import HealthOut, ReadyOut
from extsched.errors import BackendUnavailable
from extsched.metrics import SCHEDULES

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=HealthOut)
async def get_health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "The database or job backend is down"}},
)
async def get_readiness(ctx: Ctx) -> JSONResponse:
    """The database and the job backend are reachable, and no worker loop keeps failing."""
    database = await ctx.db.ping()
    backend = await ctx.backend.ping() if database or ctx.backend.name != "postgres" else False
    # The worker loops this process runs (none for `extsched api`); one that keeps failing
    # makes the process not ready, by name (SPEC §9 fault isolation).
    loops = ctx.loops.status()
    ok = database and backend and "failing" not in loops.values()
    body: dict[str, object] = {
        "status": "ok" if ok else "unavailable",
        "database": "ok" if database else "unavailable",
        "job_backend": {"name": ctx.backend.name, "status": "ok" if backend else "unavailable"},
    }
    if loops:
        body["worker_loops"] = loops
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format",
        }
    },
)
async def get_metrics(ctx: Ctx) -> Response:
    """Prometheus metrics; schedule counts by state are read at scrape time."""
    try:
        async with ctx.db.connection() as conn:
            rows = await ctx.db.fetch_all(conn, "schedule_state_counts")
        counts = {r["state"]: r["n"] for r in rows}
        for state in ("enabled", "disabled", "paused"):
            SCHEDULES.labels(state=state).set(counts.get(state, 0))
    except BackendUnavailable:
        pass  # still serve the process metrics while the database is down
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
