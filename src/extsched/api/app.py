"""The API application: routes, error rendering, body guard (the UI is added above, in
``extsched.server.create_app``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from extsched import __version__
from extsched.api import (
    openapi,
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
from extsched.services.context import AppContext


class Api(FastAPI):
    """FastAPI with the document completed by ``api.openapi`` (ids checked, error answers,
    shared components)."""

    _completed: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        doc = super().openapi()  # cached by FastAPI until the routes change
        if doc is not self._completed:
            openapi.check_operation_ids(self)
            openapi.document(self, doc)
            self._completed = doc
        return doc


def create_api(ctx: AppContext | None) -> FastAPI:
    """The API app; ``ctx`` may be set later by the caller's lifespan (``app.state.ctx``)."""
    app = Api(
        title="extsched",
        version=__version__,
        description="Cron schedules for the API endpoints of installed extensions.",
        openapi_tags=openapi.TAGS,
        generate_unique_id_function=openapi.operation_id,
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
