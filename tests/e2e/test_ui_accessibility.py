"""Accessibility: axe-core (vendored, tests/e2e/vendor/) finds no serious or critical issue on
any page at desktop and phone widths; the main journeys work from the keyboard alone, and the
focused control is always visibly marked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.e2e.conftest import Service
from tests.e2e.ui_pages import PAGES, Seeded, seed, visit
from tests.fake_runner import FakeRunner

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
BLOCKING = ("serious", "critical")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe findings on the page as it is now (WCAG 2.x A/AA and best
    practices), each with the first elements it names."""
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in BLOCKING]


@pytest.fixture
def with_axe(context: BrowserContext) -> None:
    # An init script runs in every page before its own scripts; the page's CSP does not apply.
    context.add_init_script(path=str(AXE))


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.usefixtures("with_axe")
def test_axe_finds_no_serious_issue_on_any_page(
    context: BrowserContext,
    page: Page,
    service: Service,
    runner: FakeRunner,
    login: Callable[[str], Page],
    width: int,
) -> None:
    seeded = seed(service, runner)
    page.set_viewport_size({"width": width, "height": 900})
    problems: dict[str, list[dict[str, Any]]] = {}
    for ui_page in PAGES:
        if ui_page.signed_in and "extsched_session" not in {c["name"] for c in context.cookies()}:
            login("alice")
        visit(page, ui_page, seeded)
        if violations := axe_violations(page):
            problems[ui_page.name] = violations
    # States a page reaches only through its script: the zone search, a confirmation and the
    # pause and payload dialogs.
    _open_zone_search(page, seeded)
    if violations := axe_violations(page):
        problems["zone-search"] = violations
    page.goto(f"/ui/extensions/{seeded.extension_id}")
    page.get_by_role("button", name="Delete Nightly CRM sync").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    if violations := axe_violations(page):
        problems["confirm-dialog"] = violations
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Pause Nightly CRM sync until…").click()
    expect(page.get_by_role("dialog", name="Pause “Nightly CRM sync”")).to_be_visible()
    if violations := axe_violations(page):
        problems["pause-dialog"] = violations
    # The one-off payload dialog, showing the service's refusal next to its field.
    page.goto(f"/ui/extensions/{seeded.extension_id}/schedules/{seeded.schedule_id}")
    page.get_by_role("button", name="Run now with a different payload…").click()
    dialog = page.get_by_role("dialog", name="Run now with a different payload")
    dialog.get_by_label("JSON payload for this run only").fill("42")
    dialog.get_by_role("button", name="Run now").click()
    expect(dialog.get_by_role("alert")).to_contain_text("must be a JSON object or array")
    if violations := axe_violations(page):
        problems["payload-dialog"] = violations
    if problems:
        pytest.fail(json.dumps(problems, indent=1), pytrace=False)


def _open_zone_search(page: Page, seeded: Seeded) -> None:
    page.goto(f"/ui/extensions/{seeded.extension_id}/schedules/new")
    page.get_by_role("combobox", name="Time zone").fill("new y")
    expect(page.get_by_role("listbox", name="Zone suggestions")).to_be_visible()


def tab_to(page: Page, target: Locator, *, limit: int = 80) -> None:
    """Press Tab until ``target`` has the focus (fails after ``limit`` presses)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {target}")


def assert_focus_is_visible(target: Locator) -> None:
    """The focused element shows an outline or a focus ring (box-shadow)."""
    style = target.evaluate(
        """el => {
            const s = getComputedStyle(el);
            return {outline: s.outlineStyle, width: parseFloat(s.outlineWidth),
                    shadow: s.boxShadow};
        }"""
    )
    ringed = style["outline"] not in ("none", "") and style["width"] >= 2
    assert ringed or style["shadow"] not in ("none", ""), style


def test_the_main_journeys_work_from_the_keyboard_with_visible_focus(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page]
) -> None:
    seed(service, runner)
    login("alice")

    # The first Tab reaches the skip link, shown while focused.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    assert_focus_is_visible(skip)

    link = page.get_by_role("link", name="com.example.crm-sync")
    tab_to(page, link)
    assert_focus_is_visible(link)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()

    # The switch toggles with Space, "Run now" runs with Enter; both report in a toast.
    switch = page.get_by_role("switch", name="Enabled: Nightly CRM sync")
    tab_to(page, switch)
    assert_focus_is_visible(switch.locator("xpath=following-sibling::span"))
    page.keyboard.press("Space")
    expect(page.locator(".toast")).to_contain_text("“Nightly CRM sync” disabled.")
    expect(page.get_by_role("switch", name="Enabled: Nightly CRM sync")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator(".toast").last).to_contain_text("“Nightly CRM sync” enabled.")

    run = page.get_by_role("button", name="Run now for Nightly CRM sync")
    tab_to(page, run)
    assert_focus_is_visible(run)
    page.keyboard.press("Enter")
    expect(page.locator(".toast", has_text="Run succeeded")).to_be_visible()

    # A confirmation opens with the focus inside it; Escape cancels.
    delete = page.get_by_role("button", name="Delete Nightly CRM sync")
    page.locator("body").focus()
    tab_to(page, delete)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("tr[data-schedule='Nightly CRM sync']")).to_be_visible()

    # The tabs are links in the tab order.
    settings = page.get_by_role("link", name="Settings", exact=True)
    page.locator("body").focus()
    tab_to(page, settings)
    assert_focus_is_visible(settings)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    save = page.get_by_role("button", name="Save settings")
    tab_to(page, save)
    assert_focus_is_visible(save)
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_contain_text("Settings saved.")
