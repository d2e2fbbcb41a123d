"""Schedules in the browser: lists and empty states, the form with live cron validation and
JSON checks, editing with optimistic locking, the switch, run now, history, delete, disable-all."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot
from tests.fake_runner import FakeRunner


def open_extension(page: Page, name: str = "com.example.crm-sync") -> None:
    page.goto("/ui")
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()


def test_it_shows_the_empty_states(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    login("alice")
    expect(page.get_by_test_id("no-installs")).to_be_visible()
    service.install(service.publish())
    service.install(
        service.publish(
            name="com.example.webhooks",
            endpoints=[
                {"method": "DELETE", "path": "/hooks", "handler": "h/clear"},
                {"method": "GET", "path": "/hooks/:id", "handler": "h/get"},
            ],
        )
    )
    page.reload()
    rows = page.get_by_test_id("installs").locator("tbody tr")
    expect(rows).to_have_count(2)

    open_extension(page)
    expect(page.get_by_test_id("no-schedules")).to_contain_text("No schedules yet")
    expect(page.get_by_role("link", name="Create the first schedule")).to_be_visible()

    open_extension(page, "com.example.webhooks")
    empty = page.get_by_test_id("no-schedulable")
    expect(empty).to_contain_text("Nothing to schedule in version 1.0.0")
    expect(page.get_by_role("link", name="New schedule")).to_have_count(0)
    screenshot(page, "no-schedulable-endpoints", doc=False)


def test_it_creates_a_schedule_with_live_cron_validation(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    service.install(service.publish())
    login("alice")
    open_extension(page)
    page.get_by_role("link", name="Create the first schedule").click()
    expect(page.get_by_role("heading", name="New schedule")).to_be_visible()

    endpoint = page.get_by_label("Endpoint", exact=True)
    expect(endpoint.locator("option:not([disabled])")).to_have_text(
        ["Choose an endpoint…", "GET /report", "POST /sync"]
    )
    expect(endpoint.locator("option[disabled]")).to_have_text(
        [
            "DELETE /cache — only GET and POST endpoints can be scheduled",
            "GET /contacts/:id — has path parameters",
        ]
    )
    expect(page.get_by_text("Endpoints of com.example.crm-sync version 1.0.0.")).to_be_visible()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")

    page.get_by_label("Name").fill("Weekday sync")
    endpoint.select_option(label="POST /sync")
    preview = page.get_by_test_id("cron-preview")
    cron = page.get_by_label("Cron expression")
    cron.fill("61 * * * *")
    expect(preview).to_have_class(re.compile("is-error"))
    expect(preview).to_contain_text("minute")
    expect(cron).to_have_attribute("aria-invalid", "true")
    cron.fill("* * * * *")
    expect(preview).to_contain_text("minimum interval is 300 s")

    page.get_by_role("button", name="Weekdays at 09:00").click()
    expect(cron).to_have_value("0 9 * * 1-5")
    expect(preview.locator(".desc")).to_have_text(re.compile("Monday through Friday"))
    expect(preview.locator("li")).to_have_count(5)

    # 02:30 on March Sundays in Berlin: the last one is skipped by the DST jump and moves.
    zone = page.get_by_role("combobox", name="Time zone")
    zone.fill("berlin")
    page.get_by_role("option", name="Europe/Berlin").click()
    expect(zone).to_have_value("Europe/Berlin")
    cron.fill("30 2 * 3 0")
    expect(preview.locator(".dst-note").first).to_contain_text("DST")
    expect(preview.locator(".dst-note").first).to_be_visible()
    screenshot(page, "schedule-form")

    cron.fill("30 9 * * 1-5")
    payload = page.get_by_label("JSON payload")
    payload.fill('{"full": tru')
    expect(page.locator("#payload-status")).to_contain_text("Invalid JSON")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.get_by_role("alert").filter(has_text="not valid JSON")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/schedules/new$"))
    assert service.api("GET", f"/extensions/{_ext(page)}/schedules")["items"] == []

    payload.fill('{"full": true}')
    expect(page.locator("#payload-status")).to_have_text("Valid JSON")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Weekday sync” created.")
    row = page.locator("tr[data-schedule='Weekday sync']")
    expect(row.locator("code.endpoint")).to_have_text("POST /sync")
    expect(row).to_contain_text("30 9 * * 1-5")
    expect(row).to_contain_text("At 09:30, Monday through Friday")
    expect(row).to_contain_text("Europe/Berlin")
    # Shown in the viewer's zone (alice: Europe/Paris), UTC and the schedule's zone on hover.
    next_run = row.locator("td.next-run time")
    expect(next_run).to_have_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T"))
    expect(next_run).to_have_attribute("title", re.compile(r"UTC"))
    expect(page.get_by_role("switch", name="Enabled: Weekday sync")).to_be_checked()
    [created] = service.api("GET", f"/extensions/{_ext(page)}/schedules")["items"]
    assert created["payload"] == {"full": True}
    assert created["timezone"] == "Europe/Berlin"


def _ext(page: Page) -> str:
    match = re.search(r"/ui/extensions/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


def test_it_shows_server_side_errors_next_to_the_fields(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    service.schedule(published, "POST", "/sync", name="Nightly")
    login("alice")
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/new")
    page.get_by_label("Name").fill("nightly")
    page.get_by_label("Cron expression").fill("0 9 * * *")
    page.get_by_label("JSON payload").fill("42")  # valid JSON, but not an object or array
    page.get_by_role("button", name="Create schedule").click()

    expect(page.get_by_test_id("form-error")).to_contain_text("correct the fields")
    expect(page.locator("#endpoint_id-error")).to_contain_text("is required")
    expect(page.locator("#payload-error")).to_contain_text("JSON object or array")
    expect(page.get_by_label("Endpoint", exact=True)).to_have_attribute("aria-invalid", "true")
    # What was typed stays in the form.
    expect(page.get_by_label("Name")).to_have_value("nightly")
    expect(page.get_by_label("Cron expression")).to_have_value("0 9 * * *")
    expect(page.get_by_label("JSON payload")).to_have_value("42")
    screenshot(page, "schedule-form-errors", doc=False)

    page.get_by_label("Endpoint", exact=True).select_option(label="POST /sync")
    page.get_by_label("JSON payload").fill("[1, 2]")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#name-error")).to_contain_text("already has this name")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#payload-error")).to_have_count(0)


def test_it_edits_a_schedule_and_explains_a_revision_conflict(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    schedule = service.schedule(published, "POST", "/sync", name="Nightly", payload={"a": 1})
    login("alice")
    open_extension(page)
    page.get_by_role("link", name="Edit Nightly").click()
    expect(page.get_by_label("Cron expression")).to_have_value("0 9 * * *")
    expect(page.get_by_label("JSON payload")).to_have_value('{\n  "a": 1\n}')

    warning = page.get_by_test_id("endpoint-warning")
    expect(warning).to_be_hidden()
    page.get_by_label("Endpoint", exact=True).select_option(label="GET /report")
    expect(warning).to_be_visible()
    page.get_by_label("Endpoint", exact=True).select_option(label="POST /sync")
    expect(warning).to_be_hidden()

    # Someone else saves first.
    service.api("PATCH", f"/schedules/{schedule['id']}", json={"cron": "0 10 * * *"})
    page.get_by_label("Cron expression").fill("15 8 * * *")
    page.get_by_role("button", name="Save changes").click()
    error = page.get_by_test_id("form-error")
    expect(error).to_contain_text("Someone else changed this schedule")
    screenshot(page, "revision-conflict", doc=False)
    error.get_by_role("link", name="Reload the current version").click()
    expect(page.get_by_label("Cron expression")).to_have_value("0 10 * * *")

    page.get_by_label("Cron expression").fill("15 8 * * *")
    page.get_by_label("Name").fill("Morning")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Morning” saved.")
    expect(page.locator("tr[data-schedule='Morning']")).to_contain_text("At 08:15")


def test_it_switches_runs_now_and_shows_the_history(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    service.publish(name="com.example.newsletter", version="0.9.0")  # in the catalogue
    service.schedule(published, "POST", "/sync", name="Sync")
    service.schedule(published, "GET", "/report", name="Report", cron="0 7 * * *")
    runner.behaviour["/sync"] = "hang"
    runner.behaviour["/report"] = "ext_500"
    login("alice")
    open_extension(page)

    switch = page.get_by_role("switch", name="Enabled: Sync")
    switch.click()
    expect(page.locator(".toast")).to_contain_text("“Sync” disabled.")
    sync_row = page.locator("tr[data-schedule='Sync']")
    expect(sync_row.locator("td.next-run")).to_have_text("—")
    expect(page.get_by_role("switch", name="Enabled: Sync")).not_to_be_checked()
    page.get_by_role("switch", name="Enabled: Sync").click()
    expect(sync_row.locator("td.next-run time")).to_be_visible()

    # Run now: the button waits while the run is queued or running.
    run = sync_row.locator("button.run-now")
    run.click()
    expect(run).to_be_disabled()
    expect(run).to_contain_text("Running…")
    runner.release.set()
    toast = page.locator(".toast", has_text="Run succeeded")
    expect(toast).to_contain_text("HTTP 200")
    expect(page.get_by_role("button", name="Run now for Sync")).to_be_enabled()
    expect(sync_row.locator("td.last-run")).to_contain_text("Succeeded")

    page.get_by_role("button", name="Run now for Report").click()
    failed = page.locator(".toast", has_text="Run failed")
    expect(failed).to_contain_text("HTTP 500")
    report_row = page.locator("tr[data-schedule='Report']")
    expect(report_row.locator("td.last-run")).to_contain_text("Failed")
    expect(report_row.locator(".last-error")).to_be_visible()
    report_row.get_by_role("button", name="Copy the last error").click()
    expect(page.locator(".toast", has_text="Copied to the clipboard.")).to_be_visible()
    screenshot(page, "schedules")

    failed.get_by_role("link", name="Run history").click()
    expect(page.get_by_role("heading", name="Run history")).to_be_visible()
    runs = page.get_by_test_id("runs").locator("tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("Failed")
    expect(runs.first).to_contain_text("Run now")
    expect(runs.first.locator("td.num").last).to_have_text("500")
    expect(runs.first.locator("td.num").first).to_have_text(re.compile(r"\d+(\.\d)? m?s"))
    runs.first.get_by_text("Response preview").click()
    expect(runs.first.locator("pre")).to_have_text("extension exploded")
    expect(page.get_by_role("heading", name="Next runs")).to_be_visible()
    screenshot(page, "run-history")

    page.goto("/ui")
    row = page.get_by_test_id("installs").locator("tr", has_text="com.example.crm-sync")
    expect(row.locator("td.num")).to_have_text("2")
    expect(row.locator("td.last-failure")).to_contain_text("Failed")
    expect(row.locator("td.last-failure")).to_contain_text("500")
    screenshot(page, "extensions", doc=False)


def test_it_deletes_after_confirmation_and_disables_all(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    service.schedule(published, "POST", "/sync", name="Sync")
    service.schedule(published, "GET", "/report", name="Report")
    service.schedule(published, "GET", "/report", name="Weekly", cron="0 9 * * 1")
    login("alice")
    open_extension(page)
    rows = page.get_by_test_id("schedules").locator("tbody tr")
    expect(rows).to_have_count(3)

    dialog = page.locator("#confirm-dialog")
    page.get_by_role("button", name="Delete Sync").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete the schedule “Sync”?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(rows).to_have_count(3)

    page.get_by_role("button", name="Delete Sync").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Sync” deleted.")
    expect(rows).to_have_count(2)

    page.get_by_role("button", name="Disable all").click()
    dialog.get_by_role("button", name="Disable all").click()
    expect(page.locator(".flash")).to_contain_text("Disabled 2 schedules.")
    for switch in page.get_by_role("switch").all():
        expect(switch).not_to_be_checked()
    items = service.api("GET", f"/extensions/{published['extension_id']}/schedules")["items"]
    assert [s["enabled"] for s in items] == [False, False]


def test_it_explains_paused_and_switched_off_schedules(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    service.schedule(published, "POST", "/sync", name="Sync")
    service.api("POST", "/admin/tenants/acme/kill-switch", "admin", json={"enabled": True})
    login("alice")
    open_extension(page)
    expect(page.locator(".notice-warn")).to_contain_text("paused by the platform administrator")
    expect(page.locator("tr[data-schedule='Sync'] td.next-run")).to_have_text("paused")
    page.get_by_role("button", name="Run now for Sync").click()
    expect(page.locator(".toast-error")).to_contain_text("kill switch")
    expect(page.get_by_role("button", name="Run now for Sync")).to_be_enabled()

    service.api("PUT", "/admin/tenants/acme", "admin", json={"scheduled_tasks_enabled": False})
    page.reload()
    expect(page.get_by_test_id("feature-disabled")).to_contain_text(
        "Scheduled tasks are not enabled for your tenant"
    )
    expect(page.get_by_role("link", name="New schedule")).to_have_count(0)

    response = page.goto("/ui/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
