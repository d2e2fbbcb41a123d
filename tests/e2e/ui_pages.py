"""Every page of the UI, with data that fills its widest parts, for the tests that visit them
all (responsive layout, accessibility).

``seed`` makes alice's tenant look lived in: two schedules (one with a long name, a zone other
than hers, a failed run whose error is long, policies and a pause), a version update that would
orphan one, an audit log, and an extension left to install. ``PAGES`` says, for each page,
where it is and which of its controls must stay reachable on any screen.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import Locator, Page

from tests.e2e.conftest import Service
from tests.fake_runner import FakeRunner

V1 = [
    {"method": "POST", "path": "/sync", "handler": "handlers/sync"},
    {"method": "GET", "path": "/reports/weekly-summary-for-all-regions", "handler": "h/report"},
    {"method": "GET", "path": "/contacts/:id", "handler": "handlers/contact"},
    {"method": "DELETE", "path": "/cache", "handler": "handlers/cache"},
]
V2 = [{"method": "POST", "path": "/sync", "handler": "handlers/sync2"}]


@dataclass(frozen=True)
class Seeded:
    extension_id: str
    schedule_id: str
    v2_id: str


def wait_for_terminal_run(service: Service, schedule_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = service.api("GET", f"/schedules/{schedule_id}/runs")["items"]
        if items and all(r["status"] not in ("queued", "running") for r in items):
            return
        time.sleep(0.1)  # polling the API for the run's end, not waiting for an outcome
    raise AssertionError("the run did not finish")


def seed(service: Service, runner: FakeRunner) -> Seeded:
    v1 = service.publish(version="1.0.0", endpoints=V1)
    v2 = service.publish(version="2.0.0", endpoints=V2)
    service.publish(
        name="com.example.newsletter",
        version="0.9.0",
        description="Sends the weekly newsletter to subscribed contacts",
    )
    service.install(v1)
    service.schedule(v1, "POST", "/sync", name="Nightly CRM sync", payload={"full": False})
    report = service.schedule(
        v1,
        "GET",
        "/reports/weekly-summary-for-all-regions",
        name="Weekly summary report for every sales region",
        cron="30 7 * * 1",
        timezone="America/New_York",
    )
    runner.behaviour["/reports/weekly-summary-for-all-regions"] = "ext_500"
    service.api("POST", f"/schedules/{report['id']}/run-now")
    wait_for_terminal_run(service, report["id"])
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2)
    service.api(
        "PATCH",
        f"/schedules/{report['id']}",
        json={
            "paused_until": soon.isoformat(),
            "max_attempts": 5,
            "jitter_seconds": 120,
            "overlap": "buffer_one",
            "ends_at": (soon + timedelta(days=400)).isoformat(),
        },
    )
    service.api(
        "PATCH",
        f"/extensions/{v1['extension_id']}",
        json={"config": {"REGION": "eu-west"}, "secrets": {"CRM_API_KEY": "s3cret"}},
    )
    return Seeded(str(v1["extension_id"]), str(report["id"]), str(v2["version_id"]))


@dataclass(frozen=True)
class UiPage:
    """A page: its name (for screenshots), address and the controls that must stay in reach."""

    name: str
    path: Callable[[Seeded], str]
    key_actions: Callable[[Page], list[Locator]]
    signed_in: bool = True


def _ext(s: Seeded, tail: str = "") -> str:
    return f"/ui/extensions/{s.extension_id}{tail}"


def _header(page: Page) -> list[Locator]:
    return [
        page.get_by_role("link", name="extsched"),
        page.get_by_role("button", name="Sign out"),
    ]


def _current_tab(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Extension sections").locator(
        "a[aria-current='page']"
    )


PAGES: list[UiPage] = [
    UiPage(
        "login",
        lambda s: "/ui/login",
        lambda p: [p.get_by_label("API token"), p.get_by_role("button", name="Sign in")],
        signed_in=False,
    ),
    UiPage(
        "dashboard",
        lambda s: "/ui",
        lambda p: [
            *_header(p),
            p.get_by_role("navigation", name="Main").get_by_role("link", name="Runs"),
            p.get_by_test_id("board").get_by_role("img").first,
            p.get_by_test_id("board").get_by_role("link", name="Nightly CRM sync"),
            p.get_by_test_id("upcoming").locator(".lane").first,
            p.get_by_test_id("failures").locator("li").first,
            p.get_by_role("link", name="com.example.crm-sync"),
            p.get_by_test_id("installs").locator("td.last-failure").first,
            p.get_by_role("button", name="Install"),
        ],
    ),
    UiPage(
        "runs",
        lambda s: "/ui/runs?status=failed&status=succeeded",
        lambda p: [
            *_header(p),
            p.get_by_role("link", name="Download CSV"),
            p.get_by_role("checkbox", name="Timed out"),
            p.get_by_role("combobox", name="Schedule"),
            p.get_by_role("button", name="Apply filters"),
            p.get_by_role("link", name="Remove the filter status Failed"),
            p.get_by_test_id("tenant-runs").locator("tbody tr").first,
        ],
    ),
    UiPage(
        "schedules",
        lambda s: _ext(s),
        lambda p: [
            *_header(p),
            _current_tab(p),
            p.get_by_role("link", name="New schedule"),
            p.get_by_role("button", name="Run now for Nightly CRM sync"),
            p.get_by_role("link", name="Edit Nightly CRM sync"),
            p.get_by_role("link", name="Run history of Nightly CRM sync"),
            p.get_by_role("button", name="Delete Nightly CRM sync"),
            p.get_by_role("button", name="Pause Nightly CRM sync until…"),
            p.get_by_role(
                "button", name="Resume now for Weekly summary report for every sales region"
            ),
            p.get_by_test_id("paused-until"),
            p.get_by_role("switch", name="Enabled: Nightly CRM sync"),
            p.get_by_role("button", name="Copy the last error"),
            p.locator("tr[data-schedule='Nightly CRM sync'] td.next-run time"),
        ],
    ),
    UiPage(
        "schedule-new",
        lambda s: _ext(s, "/schedules/new"),
        lambda p: [
            *_header(p),
            p.get_by_role("combobox", name="Time zone"),
            p.locator("details.advanced > summary"),
            p.get_by_role("button", name="Create schedule"),
        ],
    ),
    UiPage(
        "schedule-edit",
        lambda s: _ext(s, f"/schedules/{s.schedule_id}/edit"),
        lambda p: [
            *_header(p),
            p.get_by_label("Attempts per run"),
            p.get_by_label("From", exact=True),
            p.get_by_role("button", name="Save changes"),
        ],
    ),
    UiPage(
        "schedule-history",
        lambda s: _ext(s, f"/schedules/{s.schedule_id}"),
        lambda p: [
            *_header(p),
            p.get_by_role("button", name="Run now", exact=True),
            p.get_by_role("button", name="Run now with a different payload…"),
            p.get_by_role(
                "button", name="Resume now for Weekly summary report for every sales region"
            ),
            p.get_by_test_id("paused-until"),
            p.get_by_test_id("policies"),
            p.get_by_role("link", name="Edit", exact=True),
            p.get_by_test_id("runs").locator("tbody tr").first,
            p.get_by_test_id("runs").get_by_role("button", name="Replay").first,
        ],
    ),
    UiPage(
        "settings",
        lambda s: _ext(s, "/settings"),
        lambda p: [
            *_header(p),
            _current_tab(p),
            p.get_by_role("button", name="Save settings"),
            p.get_by_role("button", name="Uninstall com.example.crm-sync"),
        ],
    ),
    UiPage(
        "endpoints",
        lambda s: _ext(s, "/endpoints"),
        lambda p: [*_header(p), _current_tab(p), p.get_by_role("button", name="Search")],
    ),
    UiPage(
        "version",
        lambda s: _ext(s, "/version"),
        lambda p: [*_header(p), _current_tab(p), p.get_by_role("button", name="Preview update")],
    ),
    UiPage(
        "update-preview",
        lambda s: _ext(s, f"/version?version_id={s.v2_id}"),
        lambda p: [
            p.get_by_role("dialog").get_by_role("button", name="Cancel"),
            p.get_by_role("dialog").get_by_role(
                "button", name="Disable affected schedules and update"
            ),
        ],
    ),
    UiPage(
        "audit",
        lambda s: _ext(s, "/audit"),
        lambda p: [
            *_header(p),
            _current_tab(p),
            p.get_by_test_id("audit").locator("tbody tr").first,
        ],
    ),
    UiPage(
        "notifications",
        lambda s: "/ui/notifications",
        lambda p: [
            *_header(p),
            p.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications"),
            p.get_by_label("Webhook URL"),
            p.get_by_role("button", name="Save notification settings"),
            p.get_by_role("button", name="Reveal the secret"),
            p.get_by_role("button", name="Send test"),
        ],
    ),
    UiPage(
        "not-found",
        lambda s: f"/ui/extensions/{uuid.UUID(int=7)}",
        lambda p: [*_header(p), p.get_by_role("link", name="Back to extensions")],
    ),
]


def visit(page: Page, ui_page: UiPage, seeded: Seeded) -> None:
    """Open ``ui_page`` and wait until its script has run (the page is idle)."""
    page.goto(ui_page.path(seeded))
    page.wait_for_load_state("load")


def horizontal_overflow(page: Page) -> dict[str, Any]:
    """The document's widths, and the widest elements when it scrolls sideways."""
    result: dict[str, Any] = page.evaluate(
        """() => {
            const root = document.documentElement;
            const wide = [];
            if (root.scrollWidth > root.clientWidth) {
                for (const el of document.body.querySelectorAll("*")) {
                    const r = el.getBoundingClientRect();
                    if (r.right > root.clientWidth + 0.5 && r.width > 0) {
                        wide.push(`${el.tagName.toLowerCase()}.${el.className} right=${r.right}`);
                    }
                }
            }
            return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
                    wide: wide.slice(0, 8)};
        }"""
    )
    return result
