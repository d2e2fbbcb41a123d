"""Install lifecycle in the browser: install, settings, version update with the remap preview
(blocked, overridden, then repaired), the audit log and uninstall."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot

V1 = [
    {"method": "POST", "path": "/sync", "handler": "handlers/sync"},
    {"method": "GET", "path": "/report", "handler": "handlers/report"},
]
V2 = [
    {"method": "POST", "path": "/sync", "handler": "handlers/sync2"},
    {"method": "POST", "path": "/reports/daily", "handler": "handlers/daily"},
]


def test_it_blocks_an_update_that_orphans_schedules_and_overrides_it(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    v1 = service.publish(version="1.0.0", endpoints=V1)
    service.publish(version="2.0.0", endpoints=V2)
    service.install(v1)
    service.schedule(v1, "POST", "/sync", name="Sync")
    service.schedule(v1, "GET", "/report", name="Daily report", cron="0 7 * * *")
    login("alice")
    page.get_by_role("link", name="com.example.crm-sync").click()
    page.get_by_role("link", name="Version", exact=True).click()

    page.get_by_label("Update to").select_option(label="2.0.0")
    page.get_by_role("button", name="Preview update").click()
    dialog = page.locator("#blocked-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("The update would orphan 1 schedule")
    affected = dialog.get_by_test_id("affected-schedules").locator("tbody tr")
    expect(affected).to_have_count(1)
    expect(affected.first).to_contain_text("Daily report")
    expect(affected.first.locator("code.endpoint")).to_have_text("GET /report")
    expect(dialog.get_by_role("link", name="Edit schedules")).to_be_visible()
    screenshot(page, "update-blocked")

    # "Cancel" leaves everything as it was; the page still explains what blocks the update.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("update-preview")).to_contain_text("1 schedule keeps working")
    assert service.api("GET", f"/extensions/{v1['extension_id']}")["version"] == "1.0.0"

    page.get_by_role("button", name="Disable affected schedules and update…").click()
    dialog.get_by_role("button", name="Disable affected schedules and update").click()
    expect(page.locator(".flash")).to_contain_text("Updated com.example.crm-sync to 2.0.0.")
    expect(page.locator(".flash")).to_contain_text("1 schedule was disabled")
    expect(page.get_by_test_id("installed-version")).to_have_text("2.0.0")

    report = page.locator("tr[data-schedule='Daily report']")
    expect(report.get_by_test_id("disabled-reason")).to_contain_text(
        "endpoint missing in the installed version"
    )
    expect(page.get_by_role("switch", name="Enabled: Daily report")).not_to_be_checked()
    expect(page.get_by_role("switch", name="Enabled: Sync")).to_be_checked()
    screenshot(page, "schedules-after-update")

    # Switching it back on without a new endpoint is refused with the reason.
    page.get_by_role("switch", name="Enabled: Daily report").click()
    expect(page.locator(".toast-error")).to_contain_text("cannot be enabled")
    expect(page.get_by_role("switch", name="Enabled: Daily report")).not_to_be_checked()

    report.get_by_role("link", name="Pick a new endpoint").click()
    expect(page.get_by_test_id("endpoint-missing")).to_contain_text("GET /report")
    endpoint = page.get_by_label("Endpoint", exact=True)
    expect(endpoint).to_have_value("")
    expect(endpoint.locator("option:not([disabled])")).to_have_text(
        ["Choose an endpoint…", "POST /reports/daily", "POST /sync"]
    )
    expect(page.locator("#endpoint-hint")).to_contain_text("version 2.0.0")
    endpoint.select_option(label="POST /reports/daily")
    page.get_by_label("Enabled").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Daily report” saved.")
    row = page.locator("tr[data-schedule='Daily report']")
    expect(row.locator("code.endpoint")).to_have_text("POST /reports/daily")
    expect(page.get_by_role("switch", name="Enabled: Daily report")).to_be_checked()
    expect(row.get_by_test_id("disabled-reason")).to_have_count(0)

    page.get_by_role("link", name="Audit log", exact=True).click()
    audit = page.get_by_test_id("audit")
    expect(audit.locator("tbody tr").first).to_contain_text("schedule.update")
    expect(audit).to_contain_text("install.update")
    expect(audit).to_contain_text("schedule.create")
    expect(audit).to_contain_text("alice")
    audit.locator("tr", has_text="install.update").get_by_text(re.compile(r"^\d+ fields?$")).click()
    expect(audit.locator("tr", has_text="install.update").locator("pre")).to_contain_text(
        '"to": "2.0.0"'
    )
    screenshot(page, "audit")


def test_it_updates_without_a_dialog_when_every_schedule_maps(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    v1 = service.publish(version="1.0.0", endpoints=V1)
    service.publish(version="1.1.0", endpoints=[*V1, *V2[1:]])
    service.install(v1)
    service.schedule(v1, "GET", "/report", name="Daily report")
    login("alice")
    page.goto(f"/ui/extensions/{v1['extension_id']}/version")
    page.get_by_label("Update to").select_option(label="1.1.0")
    page.get_by_role("button", name="Preview update").click()
    expect(page.get_by_test_id("update-preview")).to_contain_text("1 schedule keeps working")
    expect(page.locator("#blocked-dialog")).to_have_count(0)
    page.get_by_role("button", name="Update to 1.1.0").click()
    expect(page.locator(".flash")).to_contain_text("Updated com.example.crm-sync to 1.1.0.")
    expect(page.get_by_role("switch", name="Enabled: Daily report")).to_be_checked()


def _install_body(service: Service, extension_id: str) -> dict[str, Any]:
    body: dict[str, Any] = service.api("GET", f"/extensions/{extension_id}")
    return body


def test_it_installs_configures_and_uninstalls(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish(version="1.0.0")
    service.publish(version="1.2.0")
    login("alice")
    catalogue = page.get_by_test_id("catalogue")
    expect(catalogue).to_contain_text("com.example.crm-sync")
    expect(catalogue.get_by_label("Version of com.example.crm-sync")).to_have_value(
        re.compile(".+")
    )
    catalogue.get_by_label("Version of com.example.crm-sync").select_option(label="1.0.0")
    catalogue.get_by_role("button", name="Install").click()
    expect(page.locator(".flash")).to_contain_text("Installed com.example.crm-sync 1.0.0.")
    expect(page.get_by_test_id("no-schedules")).to_be_visible()

    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_label("Configuration").fill("REGION=eu-west\nbroken line")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("line 2: expected NAME=value")).to_be_visible()
    page.get_by_label("Configuration").fill("REGION=eu-west\nMODE=full")
    page.get_by_label("Set a secret: name").fill("API_KEY")
    page.get_by_label("Value").fill("s3cr3t-value")
    page.get_by_label("cap:secrets.get").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".flash")).to_contain_text("Settings saved.")
    expect(page.get_by_label("Configuration")).to_have_value("MODE=full\nREGION=eu-west")
    expect(page.get_by_text("API_KEY")).to_be_visible()
    assert "s3cr3t-value" not in page.content()
    body = _install_body(service, published["extension_id"])
    assert body["config"] == {"REGION": "eu-west", "MODE": "full"}
    assert body["secret_names"] == ["API_KEY"]
    assert body["providers"] == ["cap:http.fetch"]
    screenshot(page, "settings", doc=False)

    page.get_by_role("button", name="Disable extension").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Disable extension").click()
    expect(page.locator(".flash")).to_contain_text("is disabled")
    expect(page.locator(".notice-warn").first).to_contain_text("This extension is disabled")
    page.get_by_role("button", name="Enable extension").click()
    expect(page.locator(".flash")).to_contain_text("is enabled")

    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_role("button", name="Uninstall com.example.crm-sync").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Uninstall").click()
    expect(page.locator(".flash")).to_contain_text("Uninstalled com.example.crm-sync")
    expect(page.get_by_test_id("no-installs")).to_be_visible()
