"""Every page on a phone (360 and 390 px), a tablet (768 px), a small laptop (1024 px) and a
desktop (1280 px): nothing
scrolls sideways, tables turn into labelled cards on narrow screens, and each page's key
actions stay on screen. Screenshots at 390 and 1280 px are the ones docs/ui.md shows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import Service, screenshot
from tests.e2e.ui_pages import PAGES, horizontal_overflow, seed, visit
from tests.fake_runner import FakeRunner

HEIGHTS = {360: 740, 390: 844, 768: 1024, 1024: 768, 1280: 860}
DOC_WIDTHS = {390: "phone", 1280: "desktop"}


@pytest.mark.parametrize("width", [360, 390, 768, 1024, 1280])
def test_no_page_scrolls_sideways_and_key_actions_stay_in_reach(
    context: BrowserContext,
    page: Page,
    service: Service,
    runner: FakeRunner,
    login: Callable[[str], Page],
    width: int,
) -> None:
    seeded = seed(service, runner)
    page.set_viewport_size({"width": width, "height": HEIGHTS[width]})
    for ui_page in PAGES:
        if ui_page.signed_in and "extsched_session" not in {c["name"] for c in context.cookies()}:
            login("alice")
        visit(page, ui_page, seeded)
        widths = horizontal_overflow(page)
        assert widths["scrollWidth"] <= widths["clientWidth"], (ui_page.name, width, widths)
        for action in ui_page.key_actions(page):
            expect(action).to_be_visible()
            action.scroll_into_view_if_needed()
            box = action.bounding_box()
            assert box is not None, (ui_page.name, action)
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (ui_page.name, action, box)
        page.evaluate("window.scrollTo(0, 0)")
        if width in DOC_WIDTHS:
            screenshot(page, f"pages/{ui_page.name}-{DOC_WIDTHS[width]}")
        else:
            screenshot(page, f"pages/{ui_page.name}-{width}", doc=False)


def test_tables_become_labelled_cards_on_a_phone(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page]
) -> None:
    seeded = seed(service, runner)
    page.set_viewport_size({"width": 360, "height": 740})
    login("alice")
    page.goto(f"/ui/extensions/{seeded.extension_id}")
    row = page.locator("tr[data-schedule='Nightly CRM sync']")
    # Every cell says what it is; the header row is for screen readers only.
    expect(row.locator("td.next-run")).to_have_attribute("data-label", "Next run")
    label = row.locator("td.next-run").evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Next run"'
    header = page.get_by_test_id("schedules").locator("thead")
    assert header.evaluate("h => h.getBoundingClientRect().height") <= 1
    for path in ("/ui", f"/ui/extensions/{seeded.extension_id}/schedules/{seeded.schedule_id}"):
        page.goto(path)
        expect(page.locator("table td:not([data-label]):not(.actions)")).to_have_count(0)
    # The tabs scroll inside their bar instead of widening the page; the current one is shown.
    page.goto(f"/ui/extensions/{seeded.extension_id}/audit")
    tabs = page.get_by_role("navigation", name="Extension sections")
    expect(tabs.get_by_role("link", name="Audit log")).to_be_in_viewport()
    # The header stays compact: two short lines at most.
    height = page.locator("header.topbar").evaluate("h => h.getBoundingClientRect().height")
    assert height <= 96, height

    page.set_viewport_size({"width": 1280, "height": 860})
    header = page.get_by_test_id("audit").locator("thead")
    assert header.evaluate("h => h.getBoundingClientRect().height") > 20
