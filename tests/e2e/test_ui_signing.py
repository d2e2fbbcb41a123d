"""The author-facing parts of an install in the browser: the install dialog lists the version's
default schedules with a checkbox, and the Settings tab shows the signing secret (reveal,
copy, rotate with confirmation) to writers only."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service

DEFAULTS = [
    {"name": "Nightly sync", "endpoint": "POST /sync", "cron": "0 2 * * *"},
    {"name": "Weekly report", "endpoint": "GET /report", "cron": "0 8 * * MON"},
]


def test_the_install_dialog_lists_the_default_schedules_of_the_version_picked(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    v1 = service.publish(version="1.0.0", schedules=DEFAULTS)
    service.publish(version="1.1.0")  # proposes none
    login("alice")
    catalogue = page.get_by_test_id("catalogue")
    version = catalogue.get_by_label("Version of com.example.crm-sync")
    offered = catalogue.get_by_test_id("default-schedules")
    checkbox = catalogue.get_by_label("Create the proposed schedules")
    version.select_option(label="1.1.0")
    expect(offered.get_by_text("Nightly sync")).to_be_hidden()
    expect(checkbox).to_be_hidden()
    version.select_option(label="1.0.0")
    expect(offered).to_contain_text("Nightly sync")
    expect(offered).to_contain_text("0 8 * * MON")
    expect(checkbox).to_be_checked()
    catalogue.get_by_role("button", name="Install").click()
    expect(page.locator(".flash")).to_contain_text(
        "Installed com.example.crm-sync 1.0.0 with 2 default schedules."
    )
    expect(page.locator("tr[data-schedule='Nightly sync']")).to_be_visible()
    items = service.api("GET", f"/extensions/{v1['extension_id']}/schedules")["items"]
    assert sorted((s["name"], s["origin"]) for s in items) == [
        ("Nightly sync", "manifest"),
        ("Weekly report", "manifest"),
    ]


def test_unchecking_the_box_installs_without_them(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    v1 = service.publish(version="1.0.0", schedules=DEFAULTS)
    login("alice")
    catalogue = page.get_by_test_id("catalogue")
    catalogue.get_by_label("Create the proposed schedules").uncheck()
    catalogue.get_by_role("button", name="Install").click()
    expect(page.locator(".flash")).to_contain_text("Installed com.example.crm-sync 1.0.0.")
    expect(page.get_by_test_id("no-schedules")).to_be_visible()
    assert service.api("GET", f"/extensions/{v1['extension_id']}/schedules")["items"] == []


def test_settings_reveal_copy_and_rotate_the_signing_secret(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish(version="1.0.0")
    service.install(published)
    ext = published["extension_id"]
    [current] = service.api("GET", f"/extensions/{ext}/signing-secret")["secrets"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login("alice")
    page.goto(f"/ui/extensions/{ext}/settings")
    section = page.get_by_test_id("signing-secret")
    value = section.get_by_test_id("signing-secret-value")
    expect(value).to_be_hidden()  # not shown until revealed
    section.get_by_text("Current secret").click()
    expect(value).to_have_text(current["secret"])
    section.get_by_role("button", name="Copy the signing secret").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == current["secret"]

    section.get_by_role("button", name="Rotate secret").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("keeps signing alongside it for 24 hours")
    dialog.get_by_role("button", name="Rotate").click()
    expect(page.locator(".flash")).to_contain_text("New signing secret created")
    new, previous = service.api("GET", f"/extensions/{ext}/signing-secret")["secrets"]
    assert previous["secret"] == current["secret"] and new["secret"] != current["secret"]
    items = page.get_by_test_id("signing-secret-item")
    expect(items).to_have_count(2)
    expect(items.nth(1)).to_contain_text("Previous secret, still signing until")
    audit = service.api("GET", f"/extensions/{ext}/audit")["items"]
    assert any(e["action"] == "install.signing_secret_rotate" for e in audit)


def test_readers_do_not_see_the_signing_secret(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish(version="1.0.0")
    service.install(published)
    [current] = service.api("GET", f"/extensions/{published['extension_id']}/signing-secret")[
        "secrets"
    ]
    login("rita")
    page.goto(f"/ui/extensions/{published['extension_id']}/settings")
    expect(page.get_by_label("Configuration")).to_be_visible()
    expect(page.get_by_test_id("signing-secret")).to_have_count(0)
    assert current["secret"] not in page.content()
