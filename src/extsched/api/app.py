"""The API application: routes, error rendering, body guard (the UI is added above, in
``extsched.server.create_app``)."""

from __future__ import annotations

from fastapi import FastAPI

from extsched import __version__
from extsched.api import (
    routes_admin,
    routes_installs,
    routes_notifications,
    routes_registry,
    routes_runs,
    routes_schedule_code,
    routes_schedules,
    routes_service,
)
from extsched.api.errors import BodyGuard, install_handlers
from extsched.api.schemas import ErrorOut
from extsched.services.context import AppContext

_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def create_api(ctx: AppContext | None) -> FastAPI:
    """The API app; ``ctx`` may be set later by the caller's lifespan (``app.state.ctx``)."""
    app = FastAPI(
        title="extsched",
        version=__version__,
        description="Cron schedules for the API endpoints of installed extensions.",
        responses=_ERROR_RESPONSES,
    )
    app.state.ctx = ctx
    install_handlers(app)
    for module in (
        routes_registry,
        routes_installs,
        routes_schedule_code,  # before routes_schedules: .../schedules/export is no id
        routes_schedules,
        routes_runs,
        routes_notifications,
        routes_admin,
        routes_service,
    ):
        app.include_router(module.router)
    app.add_middleware(BodyGuard)
    return app
