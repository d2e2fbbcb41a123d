"""The web UI at ``/ui``: server-rendered pages over the same services as the API.

Templates and static files ship inside the package (no CDN, nothing fetched at run time).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from extsched.web import (
    routes_auth,
    routes_installs,
    routes_notifications,
    routes_runs,
    routes_schedules,
)

STATIC_DIR = Path(__file__).with_name("static")


def mount_ui(app: FastAPI) -> None:
    """Add the UI's routes and its static assets (``/ui/static``) to ``app``."""
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    # routes_installs ends with the catch-all "not found" page: it goes last.
    for module in (
        routes_auth,
        routes_schedules,
        routes_runs,
        routes_notifications,
        routes_installs,
    ):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """People who open the service's address land in the UI."""
        return RedirectResponse("/ui", status_code=307)
