"""The schedule form's time-zone picker: searchable, canonical zones first, other names (links,
deprecated and sign-inverted POSIX zones) only when typed exactly, each with its UTC offset.
What the server accepts and stores is unchanged: any IANA name, exactly as given."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot


def open_form(page: Page, service: Service, login: Callable[[str], Page]) -> str:
    published = service.publish()
    service.install(published)
    login("alice")
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/new")
    page.get_by_label("Endpoint", exact=True).select_option(label="POST /sync")
    page.get_by_label("Cron expression").fill("0 9 * * *")
    return str(published["extension_id"])


def test_it_finds_zones_as_typed_and_shows_their_offsets(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    ext = open_form(page, service, login)
    zone = page.get_by_role("combobox", name="Time zone")
    expect(zone).to_have_value("Europe/Paris")  # alice's zone
    listbox = page.get_by_role("listbox", name="Zone suggestions")
    expect(listbox).to_be_hidden()

    zone.fill("new y")
    expect(listbox).to_be_visible()
    first = listbox.get_by_role("option").first
    expect(first).to_contain_text("America/New_York")
    expect(first).to_contain_text(re.compile(r"UTC-0[45]:00"))
    expect(zone).to_have_attribute("aria-expanded", "true")
    screenshot(page, "timezone-picker")
    zone.press("Enter")
    expect(zone).to_have_value("America/New_York")
    expect(listbox).to_be_hidden()
    expect(page.locator("#timezone-offset")).to_have_text(re.compile(r"^UTC-0[45]:00$"))
    # The live preview follows the chosen zone.
    expect(page.get_by_test_id("cron-preview")).to_contain_text("America/New_York")

    # Other names stay hidden while they are only part of what was typed...
    for partial in ("eastern", "calcutta", "gmt+5"):
        zone.fill(partial)
        expect(page.locator(".tz-status")).to_be_visible()
        names = listbox.get_by_role("option").all_inner_texts()
        assert not any(n.startswith(("US/Eastern", "Asia/Calcutta", "Etc/GMT+5")) for n in names)
    zone.fill("kolkata")
    expect(listbox.get_by_role("option").first).to_contain_text("Asia/Kolkata")
    expect(listbox.get_by_role("option").first).to_contain_text("UTC+05:30")
    # ...and appear when typed exactly, saying what they are.
    zone.fill("Etc/GMT+5")
    option = listbox.locator("li[data-zone='Etc/GMT+5']")
    expect(option).to_contain_text("UTC-05:00")
    expect(option).to_contain_text("POSIX sign: 5 h behind UTC")
    zone.fill("US/Eastern")
    option = listbox.locator("li[data-zone='US/Eastern']")
    expect(option).to_contain_text("another name for America/New_York")
    option.click()
    expect(zone).to_have_value("US/Eastern")

    # Stored exactly as chosen.
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator(".flash")).to_contain_text("created")
    [created] = service.api("GET", f"/extensions/{ext}/schedules")["items"]
    assert created["timezone"] == "US/Eastern"

    # Editing shows the name as stored, with its offset.
    page.get_by_role("link", name="Edit POST /sync").click()
    expect(zone).to_have_value("US/Eastern")
    expect(page.locator("#timezone-offset")).to_contain_text("another name for America/New_York")


def test_it_works_from_the_keyboard_and_restores_an_abandoned_search(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    open_form(page, service, login)
    zone = page.get_by_role("combobox", name="Time zone")
    zone.focus()
    zone.press("ArrowDown")
    listbox = page.get_by_role("listbox", name="Zone suggestions")
    expect(listbox).to_be_visible()
    # Opened on the current zone; the arrows move through the list.
    active = page.locator(".tz-list li[aria-selected='true']")
    expect(active).to_contain_text("Europe/Paris")
    zone.press("ArrowDown")
    expect(active).not_to_contain_text("Europe/Paris")
    zone.press("Escape")
    expect(listbox).to_be_hidden()
    expect(zone).to_have_value("Europe/Paris")

    zone.fill("tok")
    expect(listbox.get_by_role("option").first).to_contain_text("Asia/Tokyo")
    zone.press("Tab")  # leaving with a highlighted match takes it
    expect(zone).to_have_value("Asia/Tokyo")
    expect(page.locator("#timezone")).to_have_value("Asia/Tokyo")

    zone.fill("nowhere at all")
    expect(page.locator(".tz-status")).to_have_text("No time zone matches “nowhere at all”.")
    zone.press("Tab")  # nothing matched: the field goes back to the chosen zone
    expect(zone).to_have_value("Asia/Tokyo")
