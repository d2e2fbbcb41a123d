"""Templates, time formatting in the viewer's zone, flash messages and friendly errors."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from extsched.domain import cron
from extsched.errors import ExtschedError
from extsched.web import session
from extsched.web.session import Viewer

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``1 schedule``, ``2 schedules`` (or the given plural form)."""
    return f"{n} {singular if n == 1 else (plural_form or singular + 's')}"


templates.env.filters["plural"] = plural

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

RUN_STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "timed_out": "Timed out",
    "skipped": "Skipped",
}

TRIGGER_LABELS = {"schedule": "Schedule", "run_now": "Run now", "replay": "Replay"}
# Runs a person may want to try again (SPEC §5 replay).
REPLAYABLE = frozenset({"failed", "timed_out"})

DISABLED_REASONS = {
    "endpoint_missing": "endpoint missing in the installed version",
    "consecutive_failures": "paused after repeated failures",
}

ENDPOINT_REASONS = {
    "method_not_allowed": "only GET and POST endpoints can be scheduled",
    "path_params": "has path parameters",
}

# What a user should read for each error code; the service's own message is added where it
# carries specifics (limits, field names, retry times).
FRIENDLY: dict[str, str] = {
    "NOT_INSTALLED": "This extension is not installed for your tenant.",
    "NOT_FOUND": "That item does not exist (any more). It may have been deleted.",
    "FEATURE_DISABLED": (
        "Scheduled tasks are not enabled for your tenant. Ask your platform administrator."
    ),
    "INSTALL_DISABLED": "The extension is disabled. Enable it first.",
    "SCHEDULES_PAUSED": (
        "Schedules of your tenant are paused by the platform administrator (kill switch); "
        "nothing runs until it is lifted."
    ),
    "REVISION_CONFLICT": (
        "Someone else changed this schedule while you were editing it. "
        "Reload to see the current version, then apply your changes again."
    ),
    "BACKEND_UNAVAILABLE": (
        "The service is temporarily unavailable; nothing was changed. Try again in a moment."
    ),
    "FORBIDDEN": "You are not allowed to do this.",
    "UNAUTHENTICATED": "Please sign in.",
}


def friendly(exc: ExtschedError) -> str:
    """A sentence for the page or toast; specifics from the service where they help."""
    base = FRIENDLY.get(exc.code)
    if exc.code in ("FORBIDDEN", "UNAUTHENTICATED") and exc.message != exc.default_message:
        return exc.message[:1].upper() + exc.message[1:] + "."
    if base is None:
        return exc.message[:1].upper() + exc.message[1:]
    return base


def field_message(message: str, field: str) -> str:
    """Field errors may repeat their field (``cron: ...``); next to the field they need not."""
    return message.removeprefix(f"{field}: ")


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone the time engine accepts, sorted (UTC first)."""
    names = []
    for name in sorted(zoneinfo.available_timezones()):
        try:
            cron.load_zone(name)
        except cron.CronError:
            continue
        names.append(name)
    names.sort(key=lambda n: (n != "UTC", n))
    return tuple(names)


class Formatter:
    """Renders instants in the viewer's zone; templates put UTC in a ``title``."""

    def __init__(self, zone_name: str, now: datetime | None = None) -> None:
        self.zone_name = zone_name
        self.zone = zoneinfo.ZoneInfo(zone_name)
        # The service's clock when the page was rendered ("paused until" compares with it).
        self.now = now or datetime.now(UTC)

    def local(self, value: datetime | None, zone: str | None = None) -> str:
        if value is None:
            return "—"
        z = zoneinfo.ZoneInfo(zone) if zone else self.zone
        return value.astimezone(z).strftime("%Y-%m-%d %H:%M %Z")

    def elsewhere(self, value: datetime, zone: str) -> str:
        """``value`` on ``zone``'s wall clock (``Mon 07:30 EST in America/New_York``) when it
        reads differently from the viewer's, else ``""``. The zone's name is left out when
        the abbreviation already is the name (``Mon 18:40 UTC``, not "UTC in UTC")."""
        local = value.astimezone(zoneinfo.ZoneInfo(zone))
        mine = value.astimezone(self.zone)
        if zone == self.zone_name or (
            local.strftime("%H:%M %Z") == mine.strftime("%H:%M %Z")
            and local.utcoffset() == mine.utcoffset()
        ):
            return ""
        text = local.strftime("%a %H:%M %Z")
        return text if local.strftime("%Z") == zone else f"{text} in {zone}"

    def short(self, value: datetime) -> str:
        """``Tue 09:00`` within the coming week, ``Tue 14 Jan 09:00`` later this year (or
        before now), with the year when it differs; in the viewer's zone."""
        local = value.astimezone(self.zone)
        now = self.now.astimezone(self.zone)
        if timedelta(0) <= value - self.now < timedelta(days=6):
            return local.strftime("%a %H:%M")
        if local.year == now.year:
            return local.strftime("%a %-d %b %H:%M")
        return local.strftime("%a %-d %b %Y %H:%M")

    def input_value(self, value: datetime | None) -> str:
        """``value`` as a ``datetime-local`` input reads it: the viewer's wall clock."""
        if value is None:
            return ""
        return value.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M")

    def pause_default(self) -> dict[str, str]:
        """The pause picker's start: tomorrow 09:00 on the viewer's clock, nothing earlier
        than now."""
        now = self.now.astimezone(self.zone)
        tomorrow = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
        return {"value": tomorrow.strftime("%Y-%m-%dT%H:%M"), "min": now.strftime("%Y-%m-%dT%H:%M")}

    def is_future(self, value: datetime | None) -> bool:
        return value is not None and value > self.now

    @staticmethod
    def seconds(total: int) -> str:
        """``45 s``, ``2 min``, ``1 min 30 s``, ``1 h``, ``1 h 5 min``."""
        if total < 60:
            return f"{total} s"
        minutes, secs = divmod(total, 60)
        if minutes < 60:
            return f"{minutes} min {secs} s" if secs else f"{minutes} min"
        hours, minutes = divmod(minutes, 60)
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
        return f"{text} {secs} s" if secs else text

    def utc(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def iso(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def duration(ms: int | None) -> str:
        if ms is None:
            return "—"
        if ms < 1000:
            return f"{ms} ms"
        if ms < 60_000:
            return f"{ms / 1000:.1f} s"
        minutes, rest = divmod(ms // 1000, 60)
        return f"{minutes} min {rest} s"

    @staticmethod
    def describe(expr: str) -> str:
        try:
            return cron.describe(cron.parse_cron(expr))
        except cron.CronError:
            return "(not a valid expression)"

    @staticmethod
    def json(value: Any) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def flash(request: Request, response: Response, message: str, kind: str = "ok") -> None:
    """A message for the next page the browser loads (after a redirect)."""
    ctx = request.app.state.ctx
    value = session.serializer(ctx.settings, "flash").dumps({"m": message[:500], "k": kind})
    session.set_cookie(request, response, session.FLASH_COOKIE, str(value), 300)


def take_flash(request: Request) -> dict[str, str] | None:
    ctx = request.app.state.ctx
    data = session.load_signed(
        ctx.settings, "flash", request.cookies.get(session.FLASH_COOKIE), 300
    )
    if not isinstance(data, dict):
        return None
    return {"message": str(data.get("m", "")), "kind": str(data.get("k", "ok"))}


def redirect(
    request: Request, url: str, message: str | None = None, kind: str = "ok"
) -> RedirectResponse:
    """303 to ``url`` (POST-redirect-GET), with an optional flash message."""
    response = RedirectResponse(url, status_code=303)
    if message:
        flash(request, response, message, kind)
    return response


def page(
    request: Request,
    name: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a full page with the shared context (viewer, CSRF token, flash, formatter)."""
    flash_message = take_flash(request)
    response = templates.TemplateResponse(
        request,
        name,
        {**_common(viewer, request.app.state.ctx.clock()), "flash": flash_message, **context},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
    if flash_message is not None:
        session.clear_cookie(request, response, session.FLASH_COOKIE)
    return response


def _common(viewer: Viewer | None, now: datetime | None = None) -> dict[str, Any]:
    return {
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "fmt": Formatter(viewer.timezone if viewer else "UTC", now),
        "run_labels": RUN_STATUS_LABELS,
        "trigger_labels": TRIGGER_LABELS,
        "replayable": REPLAYABLE,
        "disabled_reasons": DISABLED_REASONS,
        "endpoint_reasons": ENDPOINT_REASONS,
    }


def fragment_html(name: str, viewer: Viewer, now: datetime, **context: Any) -> str:
    """A partial template as a string, for the page's script to swap in."""
    return templates.get_template(name).render({**_common(viewer, now), **context})
