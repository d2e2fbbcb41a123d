"""DST visible for daily schedules (issue 18): the form's live check and the schedule page list
the next fires a clock change moves, drops or doubles, with the schedule's DST choice, so a
daily schedule's DST behaviour shows without paging through months."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot


def test_the_form_and_the_schedule_page_show_the_clock_changes_ahead(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    login("alice")
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/new")
    page.get_by_label("Endpoint", exact=True).select_option(label="POST /sync")
    # 02:30 Paris: skipped when clocks go forward in March, repeated in October.
    page.get_by_label("Cron expression").fill("30 2 * * *")
    preview = page.get_by_test_id("cron-preview")
    expect(preview).to_contain_text("Next 5 runs")
    changes = preview.get_by_test_id("dst-fires")
    expect(changes.locator("li").first).to_contain_text("moved from 02:30")
    expect(changes).to_contain_text("repeated 02:30 fires once")

    # Choosing "skip" for the gap: the preview says the March fire is dropped.
    page.locator("details.advanced summary").click()
    page.get_by_label("When the time is skipped").select_option(value="skip")
    expect(changes.locator("li").first).to_contain_text("dropped")

    # Saved with the choice, the schedule page lists the same changes.
    page.get_by_role("button", name="Create schedule").click()
    expect(page.get_by_role("button", name="Run now for POST /sync")).to_be_visible()
    schedule = service.api("GET", f"/extensions/{published['extension_id']}/schedules")["items"][0]
    assert schedule["dst_gap"] == "skip"
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/{schedule['id']}")
    section = page.get_by_test_id("dst-fires")
    expect(page.get_by_role("heading", name="Clock changes ahead")).to_be_visible()
    expect(section.locator("li").first).to_contain_text("dropped")
    expect(section).to_contain_text("repeated 02:30")
    screenshot(page, "schedule-clock-changes")
