"""The dashboard (the landing page) and the tenant's Runs page in Chromium: failing schedules
first with a chart of their last runs that does not rely on colour, the next 24 h, the last
24 h's failures; filters kept in the URL, status chips, paging and the CSV download; audit
entries that name and link their target. Screenshots: docs/screenshots/dashboard.png, runs.png.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from extsched.domain.ids import uuid7
from tests.e2e.conftest import Service, screenshot


@dataclass(frozen=True)
class Fleet:
    crm: dict[str, Any]
    newsletter: dict[str, Any]
    nightly: dict[str, Any]
    hourly: dict[str, Any]
    weekly: dict[str, Any]


def _history(
    db_url: str, schedule: dict[str, Any], install_id: str, statuses: list[str], end: datetime
) -> None:
    """Finished runs of ``schedule``, one every 30 minutes until ``end``, oldest first."""
    now = end
    with psycopg.connect(db_url, autocommit=True) as conn:
        for i, status in enumerate(statuses):
            at = now - timedelta(minutes=30 * (len(statuses) - i))
            conn.execute(
                "INSERT INTO extension_schedule_run (tenant_id, id, schedule_id, install_id,"
                " trigger, scheduled_for, status, attempts, started_at, finished_at,"
                " duration_ms, http_status, error) VALUES ('acme', %s, %s, %s, 'schedule', %s,"
                " %s, 1, %s, %s, %s, %s, %s)",
                (
                    uuid7(int(at.timestamp() * 1000)),
                    schedule["id"],
                    install_id,
                    at,
                    status,
                    at,
                    at + timedelta(milliseconds=200 + 40 * (i % 9)),
                    200 + 40 * (i % 9),
                    200 if status == "succeeded" else 502 if status == "failed" else None,
                    {
                        "failed": "extension answered HTTP 502: upstream CRM unavailable",
                        "timed_out": "timed out after 30000 ms",
                    }.get(status),
                ),
            )
        last = statuses[-1]
        streak = len(statuses) - len(
            "".join("s" if s == "succeeded" else "x" for s in statuses).rstrip("x")
        )
        conn.execute(
            "UPDATE tenant_extension_schedule SET last_run_at = %s, last_run_status = %s,"
            " consecutive_failures = %s, last_error = %s WHERE tenant_id = 'acme' AND id = %s",
            (
                now - timedelta(minutes=30),
                last,
                streak,
                "extension answered HTTP 502: upstream CRM unavailable"
                if last == "failed"
                else None,
                schedule["id"],
            ),
        )


@pytest.fixture
def fleet(service: Service) -> Fleet:
    crm = service.publish(
        endpoints=[
            {"method": "POST", "path": "/sync", "handler": "h/sync"},
            {"method": "GET", "path": "/pull", "handler": "h/pull"},
        ]
    )
    newsletter = service.publish(
        name="com.example.newsletter",
        endpoints=[{"method": "POST", "path": "/send", "handler": "h/send"}],
    )
    crm_install = service.install(crm)
    news_install = service.install(newsletter)
    nightly = service.schedule(crm, "POST", "/sync", name="Nightly CRM sync", cron="0 2 * * *")
    hourly = service.schedule(crm, "GET", "/pull", name="Hourly pull", cron="15 * * * *")
    weekly = service.schedule(
        newsletter, "POST", "/send", name="Weekly newsletter", cron="30 7 * * 1"
    )
    ok = ["succeeded"] * 40
    # One "now" for the fleet, each schedule's newest run a few minutes apart: no ties.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _history(
        service.db_url,
        nightly,
        crm_install["install_id"],
        ok[:37] + ["failed", "succeeded", "timed_out", "skipped"] + ok[:6] + ["failed"] * 3,
        now,
    )
    hourly_runs = [*ok, "skipped", *ok[:9]]
    _history(
        service.db_url, hourly, crm_install["install_id"], hourly_runs, now - timedelta(minutes=10)
    )
    weekly_runs = ["succeeded", "failed"] * 40
    _history(
        service.db_url, weekly, news_install["install_id"], weekly_runs, now - timedelta(minutes=20)
    )
    return Fleet(crm, newsletter, nightly, hourly, weekly)


def test_the_dashboard_puts_failing_schedules_first_with_charts_that_need_no_colour(
    page: Page, service: Service, fleet: Fleet, login: Callable[[str], Page]
) -> None:
    login("alice")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    rows = page.get_by_test_id("board").locator("tbody tr")
    expect(rows).to_have_count(3)
    # Failing ones first (the longest streak first), then the healthy one.
    expect(rows.nth(0)).to_have_attribute("data-schedule", "Nightly CRM sync")
    expect(rows.nth(0).locator(".badge", has_text="Failing")).to_be_visible()
    expect(rows.nth(0)).to_contain_text("3 failures in a row")
    expect(rows.nth(1)).to_have_attribute("data-schedule", "Weekly newsletter")
    expect(rows.nth(2)).to_have_attribute("data-schedule", "Hourly pull")
    expect(rows.nth(2).locator(".badge", has_text="Failing")).to_have_count(0)
    # Each chart has the last 50 runs, a text alternative, and the counts in words.
    chart = rows.nth(0).get_by_role("img")
    expect(chart).to_have_attribute(
        "aria-label",
        re.compile(
            r"^Last 50 runs of Nightly CRM sync: 44 succeeded, 4 failed, 1 timed out, "
            r"1 skipped; median \d+ ms$"
        ),
    )
    expect(rows.nth(0).locator(".chart-text")).to_contain_text("4 failed, 1 timed out")
    # Shape, not colour alone: successes rise above the baseline, failures hang below it,
    # skips are dots on it.
    shapes = chart.evaluate(
        """svg => {
            const base = +svg.querySelector('.chart-base').getAttribute('y1');
            const marks = [...svg.querySelectorAll('.mark')];
            return {
                up: marks.filter(m => m.classList.contains('st-succeeded'))
                         .every(m => +m.getAttribute('y') + +m.getAttribute('height') <= base),
                down: marks.filter(m => m.matches('.st-failed, .st-timed_out'))
                           .every(m => +m.getAttribute('y') > base),
                dots: marks.filter(m => m.classList.contains('st-skipped'))
                           .every(m => m.tagName === 'circle'),
                titled: marks.every(m => m.querySelector('title')),
                n: marks.length,
            };
        }"""
    )
    assert shapes == {"up": True, "down": True, "dots": True, "titled": True, "n": 50}
    # The next 24 hours: a lane per schedule due, the soonest first; the hourly one has 24 ticks.
    upcoming = page.get_by_test_id("upcoming")
    lanes = upcoming.locator(".lanes li")
    expect(lanes).to_have_count(2)  # the weekly newsletter is not due within 24 h
    hourly = lanes.filter(has_text="Hourly pull")
    expect(hourly.locator(".lane-tick")).to_have_count(24)
    expect(hourly.get_by_role("img")).to_have_attribute(
        "aria-label", re.compile(r"^Hourly pull: 24 runs in the next 24 hours")
    )
    expect(lanes.filter(has_text="Nightly CRM sync").get_by_role("img")).to_have_attribute(
        "aria-label", re.compile(r"^Nightly CRM sync: 1 run in the next 24 hours")
    )
    firsts = [
        float(lane.locator(".lane-tick").first.get_attribute("x1") or "nan") for lane in lanes.all()
    ]
    assert firsts == sorted(firsts)
    # Failures of the last 24 h, newest first, each linking to its schedule.
    failures = page.get_by_test_id("failures")
    expect(failures.locator("li").first).to_contain_text("Nightly CRM sync")
    expect(failures.locator("li").first).to_contain_text("upstream CRM unavailable")
    expect(page.get_by_test_id("stats")).to_contain_text("2 failing")
    screenshot(page, "dashboard")
    failures.get_by_role("link", name=re.compile("failed runs of the last 24 hours")).click()
    expect(page).to_have_url(re.compile(r"/ui/runs\?status=failed&status=timed_out&since="))
    rows = page.get_by_test_id("tenant-runs").locator("tbody tr")
    expect(rows.first).to_be_visible()
    for text in rows.locator("td[data-label='Status']").all_inner_texts():
        assert text.split("\n")[0] in ("Failed", "Timed out")


def test_the_runs_page_filters_pages_and_downloads_what_it_shows(
    page: Page, service: Service, fleet: Fleet, login: Callable[[str], Page]
) -> None:
    login("alice")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()
    rows = page.get_by_test_id("tenant-runs").locator("tbody tr")
    expect(rows).to_have_count(50)
    page_one = service.api("GET", "/runs", params={"limit": 50})
    page_two = service.api("GET", "/runs", params={"limit": 50, "cursor": page_one["next_cursor"]})
    first = page_one["items"]
    expect(rows.first).to_have_attribute("data-run-id", first[0]["id"])
    # Older runs, then back to the newest.
    page.get_by_role("link", name="Older runs").click()
    expect(rows.first).to_have_attribute("data-run-id", page_two["items"][0]["id"])
    page.get_by_role("link", name="Newest runs").click()
    expect(rows.first).to_have_attribute("data-run-id", first[0]["id"])

    # Status chips and a schedule: the URL holds the filters.
    filters = page.get_by_test_id("run-filters")
    filters.get_by_role("checkbox", name="Failed").check()
    filters.get_by_role("checkbox", name="Timed out").check()
    filters.get_by_role("combobox", name="Schedule").select_option(
        label="Nightly CRM sync (com.example.crm-sync)"
    )
    filters.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(
        re.compile(rf"status=failed&status=timed_out&schedule_id={fleet.nightly['id']}")
    )
    expect(rows).to_have_count(5)
    api = service.api(
        "GET",
        "/runs",
        params={"status": "failed,timed_out", "schedule_id": fleet.nightly["id"]},
    )["items"]
    assert [r.get_attribute("data-run-id") for r in rows.all()] == [r["id"] for r in api]
    active = page.get_by_test_id("active-filters")
    expect(
        active.get_by_role("link", name="Remove the filter Schedule Nightly CRM sync")
    ).to_be_visible()
    screenshot(page, "runs")
    # Reloading keeps the view (it is the URL); the chips stay checked.
    page.reload()
    expect(rows).to_have_count(5)
    expect(filters.get_by_role("checkbox", name="Failed")).to_be_checked()

    # The CSV button downloads every run the filters select, across pages.
    with page.expect_download() as info:
        page.get_by_test_id("csv-download").click()
    download = info.value
    assert download.suggested_filename == "runs.csv"
    body = download.path().read_text(encoding="utf-8")
    ids = [row["id"] for row in csv.DictReader(io.StringIO(body))]
    assert ids == [r["id"] for r in api]
    # Removing one chip keeps the others.
    active.get_by_role("link", name="Remove the filter status Timed out").click()
    expect(page).to_have_url(re.compile(r"status=failed&schedule_id="))
    expect(rows).to_have_count(4)
    # Every run of the tenant in one download, more than one page's worth.
    page.goto("/ui/runs")
    with page.expect_download() as info:
        page.get_by_test_id("csv-download").click()
    everything = list(csv.DictReader(io.StringIO(info.value.path().read_text("utf-8"))))
    assert len(everything) == 50 + 50 + 80

    # A bad time is shown next to its field, not a crash.
    page.goto("/ui/runs?since=2026-12-01T10:00&until=2026-12-01T09:00")
    expect(page.locator("#until-error")).to_contain_text("later than since")


def test_audit_entries_name_and_link_their_target(
    page: Page, service: Service, fleet: Fleet, login: Callable[[str], Page]
) -> None:
    service.api("PATCH", f"/schedules/{fleet.hourly['id']}", json={"cron": "45 * * * *"})
    service.api("DELETE", f"/schedules/{fleet.weekly['id']}")
    login("alice")
    page.goto(f"/ui/extensions/{fleet.crm['extension_id']}/audit")
    entries = page.get_by_test_id("audit").locator("tbody tr")
    update = entries.filter(has_text="schedule.update").first
    expect(update.locator("td[data-label='Target']")).to_have_text("schedule Hourly pull")
    update.get_by_role("link", name="Hourly pull").click()
    expect(page.get_by_role("heading", name="Hourly pull")).to_be_visible()
    page.goto(f"/ui/extensions/{fleet.crm['extension_id']}/audit")
    install = entries.filter(has_text="install.create").first
    expect(install.locator("td[data-label='Target']")).to_have_text("install com.example.crm-sync")
    expect(install.get_by_role("link", name="com.example.crm-sync")).to_be_visible()
    page.goto(f"/ui/extensions/{fleet.newsletter['extension_id']}/audit")
    deleted = entries.filter(has_text="schedule.delete").first
    expect(deleted.locator("td[data-label='Target']")).to_have_text(
        "schedule Weekly newsletter (deleted)"
    )
    expect(deleted.get_by_role("link")).to_have_count(0)
