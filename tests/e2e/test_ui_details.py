"""Details users trip over: the root address, refused forms, an update preview without a
version, counts in words, times in a schedule's zone, the catalogue's descriptions."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service
from tests.e2e.ui_pages import wait_for_terminal_run
from tests.fake_runner import FakeRunner


def test_the_services_address_opens_the_ui(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    login("alice")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/ui$"))


def test_a_refused_form_keeps_its_address_and_its_banner_goes_once_fixed(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    login("alice")
    base = f"/ui/extensions/{published['extension_id']}"
    page.goto(f"{base}/schedules/new")
    page.get_by_label("Name").fill("Nightly")
    page.get_by_label("Cron expression").fill("0 2 * * *")
    page.get_by_role("button", name="Create schedule").click()  # no endpoint chosen

    banner = page.get_by_test_id("form-error")
    expect(banner).to_contain_text("correct the fields")
    expect(page).to_have_url(re.compile(r"/schedules/new$"))
    endpoint = page.get_by_label("Endpoint", exact=True)
    expect(page.locator("#endpoint_id-error")).to_be_visible()
    endpoint.select_option(label="POST /sync")
    expect(page.locator("#endpoint_id-error")).to_have_count(0)
    expect(endpoint).not_to_have_attribute("aria-invalid", "true")
    expect(banner).to_have_count(0)
    expect(page.get_by_label("Name")).to_have_value("Nightly")  # what was typed stays
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Nightly” created.")

    # The same for an edit, refused by the server's own check.
    page.get_by_role("link", name="Edit Nightly").click()
    page.get_by_label("JSON payload").fill("42")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(re.compile(r"/schedules/[0-9a-f-]{36}/edit$"))
    expect(page.locator("#payload-error")).to_contain_text("JSON object or array")
    page.get_by_label("JSON payload").fill('{"full": true}')
    expect(page.locator("#payload-error")).to_have_count(0)
    expect(page.get_by_test_id("form-error")).to_have_count(0)
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Nightly” saved.")


def test_previewing_an_update_without_a_version_says_so(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish(version="1.0.0")
    service.publish(version="2.0.0")
    service.install(published)
    login("alice")
    page.goto(f"/ui/extensions/{published['extension_id']}/version")
    page.get_by_role("button", name="Preview update").click()
    expect(page.get_by_role("alert")).to_have_text("Choose a version to preview the update.")
    expect(page.get_by_label("Update to")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("update-preview")).to_have_count(0)


def test_it_counts_in_words_and_names_a_zone_once(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    schedule = service.schedule(published, "GET", "/report", name="Report", timezone="UTC")
    runner.behaviour["/report"] = "ext_500"
    for _ in range(2):
        service.api("POST", f"/schedules/{schedule['id']}/run-now")
        wait_for_terminal_run(service, schedule["id"])
    login("alice")  # Europe/Paris
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/{schedule['id']}")
    expect(page.get_by_text("2 failures in a row")).to_be_visible()
    first = page.locator("ol.fires li").first
    # 09:00 UTC is 10:00 in Paris: the schedule's own time follows, named once.
    expect(first).to_contain_text(re.compile(r"10:00 CET \(\w{3} 09:00 UTC\)"))
    expect(first).not_to_contain_text("in UTC")

    page.get_by_role("link", name="Audit log", exact=True).click()
    expect(page.get_by_test_id("audit")).to_contain_text(re.compile(r"\b1 field\b"))


def test_the_catalogue_shows_what_each_extension_does(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    service.publish(name="com.example.newsletter", description="Sends the weekly newsletter")
    login("alice")
    catalogue = page.get_by_test_id("catalogue")
    row = catalogue.locator("tr", has_text="com.example.newsletter")
    expect(row).to_contain_text("Sends the weekly newsletter")
