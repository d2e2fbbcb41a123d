"""Schedule policies in the browser (SPEC §5): the form's Advanced section with a field error
round trip, the policies on the schedule page, "Pause until…" and "Resume now", replaying a
failed run, and running once with another payload; the new controls and dialogs on a phone and
a desktop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot
from tests.e2e.ui_pages import horizontal_overflow, wait_for_terminal_run
from tests.fake_runner import FakeRunner

PARIS = ZoneInfo("Europe/Paris")  # alice's zone: the form's dates are read in it


def schedule_page(page: Page, published: dict[str, Any], schedule: dict[str, Any]) -> None:
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/{schedule['id']}")
    expect(page.get_by_role("heading", name="Run history")).to_be_visible()


def test_it_sets_policies_in_the_form_with_field_errors_next_to_them(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    login("alice")
    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/new")
    page.get_by_label("Name").fill("Sync")
    page.get_by_label("Endpoint", exact=True).select_option(label="POST /sync")
    page.get_by_label("Cron expression").fill("*/10 * * * *")
    expect(page.get_by_test_id("cron-preview")).to_contain_text("Next 5 runs")

    advanced = page.locator("details.advanced")
    expect(advanced).not_to_have_attribute("open", "")
    advanced.locator("summary").click()
    # Every ten minutes is not fixed-time: the DST choices are off, and the form says why.
    expect(page.get_by_test_id("dst-off")).to_be_visible()
    expect(page.get_by_label("When the time is skipped")).to_be_disabled()
    expect(page.get_by_text("in your time zone, Europe/Paris")).to_be_visible()

    page.get_by_label("When a run is still going").select_option(label="Queue one and run it next")
    page.get_by_label("Attempts per run").fill("5")
    page.get_by_label("Timeout").fill("20")
    page.get_by_label("Jitter").fill("400")  # the gap is 600 s: at most 299 s
    page.get_by_label("From", exact=True).fill("2031-01-01T09:00")
    page.get_by_label("Until", exact=True).fill("2030-06-30T18:00")
    page.get_by_role("button", name="Create schedule").click()

    expect(page.get_by_test_id("form-error")).to_contain_text("correct the fields")
    expect(page.locator("details.advanced")).to_have_attribute("open", "")
    jitter = page.get_by_label("Jitter")
    expect(page.locator("#jitter_seconds-error")).to_have_text(
        "must be less than half of the schedule's shortest gap (300 s)"
    )
    expect(jitter).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ends_at-error")).to_have_text("must be after the start (From)")
    # What was typed stays, in the units of the form.
    expect(jitter).to_have_value("400")
    expect(page.get_by_label("Timeout")).to_have_value("20")
    expect(page.get_by_label("From", exact=True)).to_have_value("2031-01-01T09:00")
    screenshot(page, "schedule-form-policies-errors", doc=False)

    jitter.fill("120")
    expect(page.locator("#jitter_seconds-error")).to_have_count(0)
    page.get_by_label("Until", exact=True).fill("2031-06-30T18:00")
    # A fixed time of day: the DST choices apply.
    page.get_by_label("Cron expression").fill("30 2 * * *")
    expect(page.get_by_label("When the time is skipped")).to_be_enabled()
    expect(page.get_by_test_id("dst-off")).to_be_hidden()
    page.get_by_label("When the time is skipped").select_option(label="Skip that day's run")
    screenshot(page, "schedule-form-policies")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Sync” created.")

    stored = service.api("GET", f"/extensions/{published['extension_id']}/schedules")["items"][0]
    assert {k: stored[k] for k in ("overlap", "max_attempts", "timeout_ms", "jitter_seconds")} == {
        "overlap": "buffer_one",
        "max_attempts": 5,
        "timeout_ms": 20_000,
        "jitter_seconds": 120,
    }
    assert (stored["starts_at"], stored["ends_at"]) == (
        "2031-01-01T08:00:00Z",
        "2031-06-30T16:00:00Z",
    )
    assert (stored["dst_gap"], stored["dst_repeat"]) == ("skip", None)

    page.get_by_role("link", name="Sync", exact=True).click()
    policies = page.get_by_test_id("policies").locator("li")
    expect(policies).to_have_text(
        [
            "Overlap: a fire during a run waits and runs right after it (one at most)",
            "Retries: up to 5 attempts",
            "Timeout: 20 s per attempt",
            "Jitter: up to 2 min",
            "Active from 2031-01-01 09:00 CET until 2031-06-30 18:00 CEST",
            "Daylight saving time: a run whose time does not exist is skipped on the day "
            "clocks jump past it",
        ]
    )
    # The next runs honour the window: 02:30 on the first day is before it opens at 09:00.
    expect(page.locator("ol.fires li").first).to_contain_text("2031-01-02 02:30 CET")

    # Editing shows the stored values; an emptied field goes back to the default.
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.locator("details.advanced")).to_have_attribute("open", "")
    expect(page.get_by_label("Attempts per run")).to_have_value("5")
    expect(page.get_by_label("Timeout")).to_have_value("20")
    expect(page.get_by_label("Until", exact=True)).to_have_value("2031-06-30T18:00")
    page.get_by_label("Attempts per run").fill("")
    page.get_by_label("Timeout").fill("2.5")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash")).to_contain_text("Schedule “Sync” saved.")
    stored = service.api("GET", f"/schedules/{stored['id']}")
    assert (stored["max_attempts"], stored["timeout_ms"], stored["jitter_seconds"]) == (
        None,
        2500,
        120,
    )


def test_it_pauses_until_a_date_and_resumes(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    schedule = service.schedule(published, "POST", "/sync", name="Sync", timezone="Europe/Paris")
    login("alice")
    page.goto(f"/ui/extensions/{published['extension_id']}")
    row = page.locator("tr[data-schedule='Sync']")

    # A past date is refused; nothing changes.
    row.get_by_role("button", name="Pause Sync until…").click()
    dialog = page.get_by_role("dialog", name="Pause “Sync”")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("In your time zone, Europe/Paris.")
    dialog.get_by_label("Pause until").fill("2020-01-01T09:00")
    dialog.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator(".flash-error")).to_contain_text("Not paused: must be in the future")
    assert service.api("GET", f"/schedules/{schedule['id']}")["paused_until"] is None

    until = (datetime.now(PARIS) + timedelta(days=3)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    row.get_by_role("button", name="Pause Sync until…").click()
    dialog.get_by_label("Pause until").fill(until.strftime("%Y-%m-%dT%H:%M"))
    screenshot(page, "pause-dialog", doc=False)
    dialog.get_by_role("button", name="Pause", exact=True).click()
    shown = until.strftime("%a %H:%M")  # "Tue 10:00": within the week, the day is enough
    expect(page.locator(".flash")).to_contain_text(f"“Sync” paused until {shown}")
    expect(row.get_by_test_id("paused-until")).to_have_text(f"Paused until {shown}")
    stored = service.api("GET", f"/schedules/{schedule['id']}")
    assert stored["paused_until"] == until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The next run is the first 09:00 after the pause.
    first = (until + timedelta(days=1)).replace(hour=9)
    expect(row.locator("td.next-run > time")).to_have_attribute(
        "datetime", first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert stored["next_run_at"] == first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    screenshot(page, "schedules-paused", doc=False)

    schedule_page(page, published, schedule)
    expect(page.get_by_test_id("paused-until")).to_have_text(f"Paused until {shown}")
    expect(page.get_by_role("heading", name="Next runs")).to_contain_text("after the pause")
    page.get_by_role("button", name="Resume now for Sync").click()
    expect(page.locator(".flash")).to_contain_text("“Sync” resumed. Next run:")
    expect(page.get_by_role("heading", name="Run history")).to_be_visible()  # back on its page
    expect(page.get_by_test_id("paused-until")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause Sync until…")).to_be_visible()
    assert service.api("GET", f"/schedules/{schedule['id']}")["paused_until"] is None


def test_it_replays_a_failed_run(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    schedule = service.schedule(published, "GET", "/report", name="Report")
    runner.behaviour["/report"] = "ext_500"
    service.api("POST", f"/schedules/{schedule['id']}/run-now")
    wait_for_terminal_run(service, schedule["id"])
    original = service.api("GET", f"/schedules/{schedule['id']}/runs")["items"][0]
    login("alice")
    schedule_page(page, published, schedule)

    runs = page.get_by_test_id("runs").locator("tbody tr")
    expect(runs).to_have_count(1)
    runner.behaviour["/report"] = "ok"  # fixed on the extension's side
    runs.first.get_by_role("button", name="Replay").click()
    toast = page.locator(".toast", has_text="Replay succeeded")
    expect(toast).to_contain_text("HTTP 200")
    toast.get_by_role("link", name="Run history").click()
    expect(runs).to_have_count(2)
    expect(runs.first.locator("td[data-label='Trigger']")).to_have_text("Replay")
    expect(runs.first).to_contain_text("Succeeded")
    # Only failed and timed-out runs offer a replay.
    expect(runs.first.get_by_role("button", name="Replay")).to_have_count(0)
    expect(runs.nth(1).get_by_role("button", name="Replay")).to_be_visible()
    replayed = service.api("GET", f"/schedules/{schedule['id']}/runs")["items"][0]
    assert replayed["trigger"] == "replay"
    assert replayed["replay_of"] == original["id"]
    assert replayed["scheduled_for"] == original["scheduled_for"]
    screenshot(page, "run-history-replay", doc=False)


def test_it_runs_now_with_a_one_off_payload(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    schedule = service.schedule(published, "POST", "/sync", name="Sync", payload={"full": False})
    login("alice")
    schedule_page(page, published, schedule)

    page.get_by_role("button", name="Run now with a different payload…").click()
    dialog = page.get_by_role("dialog", name="Run now with a different payload")
    area = dialog.get_by_label("JSON payload for this run only")
    expect(area).to_have_value('{\n  "full": false\n}')  # the schedule's, to start from
    area.fill("{broken")
    dialog.get_by_role("button", name="Run now").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Invalid JSON")
    area.fill("42")  # JSON, but the service wants an object or array
    dialog.get_by_role("button", name="Run now").click()
    expect(dialog.get_by_role("alert")).to_have_text("The payload must be a JSON object or array")
    expect(area).to_have_attribute("aria-invalid", "true")
    assert runner.calls_to("/sync") == []

    area.fill('{"full": true, "since": "2024-01-01"}')
    expect(dialog.get_by_role("alert")).to_be_hidden()
    dialog.get_by_role("button", name="Run now").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".toast", has_text="Run succeeded")).to_be_visible()
    assert [c.body for c in runner.calls_to("/sync")] == [{"full": True, "since": "2024-01-01"}]
    # For this run only: the schedule keeps its payload.
    assert service.api("GET", f"/schedules/{schedule['id']}")["payload"] == {"full": False}


@pytest.mark.parametrize("width", [360, 1280])
def test_the_new_controls_fit_a_phone_and_a_desktop(
    page: Page, service: Service, runner: FakeRunner, login: Callable[[str], Page], width: int
) -> None:
    published = service.publish()
    service.install(published)
    schedule = service.schedule(published, "GET", "/report", name="Report", max_attempts=4)
    runner.behaviour["/report"] = "ext_500"
    service.api("POST", f"/schedules/{schedule['id']}/run-now")
    wait_for_terminal_run(service, schedule["id"])
    page.set_viewport_size({"width": width, "height": 800})
    login("alice")

    def fits() -> None:
        widths = horizontal_overflow(page)
        assert widths["scrollWidth"] <= widths["clientWidth"], widths

    def in_reach(*locators: Any) -> None:
        for locator in locators:
            expect(locator).to_be_visible()
            box = locator.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box

    page.goto(f"/ui/extensions/{published['extension_id']}/schedules/{schedule['id']}/edit")
    in_reach(page.locator("details.advanced > summary"))
    for label in ("Attempts per run", "Timeout", "Jitter", "When the time is skipped"):
        in_reach(page.get_by_label(label))
    in_reach(page.get_by_label("From", exact=True), page.get_by_label("Until", exact=True))
    fits()

    schedule_page(page, published, schedule)
    in_reach(
        page.get_by_test_id("policies"),
        page.get_by_test_id("runs").get_by_role("button", name="Replay"),
        page.get_by_role("button", name="Pause Report until…"),
    )
    fits()
    page.get_by_role("button", name="Run now with a different payload…").click()
    dialog = page.get_by_role("dialog", name="Run now with a different payload")
    in_reach(
        dialog.get_by_label("JSON payload for this run only"),
        dialog.get_by_role("button", name="Cancel"),
        dialog.get_by_role("button", name="Run now"),
    )
    fits()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.goto(f"/ui/extensions/{published['extension_id']}")
    in_reach(page.get_by_role("button", name="Delete Report"))
    # The table fits its card: the extra action wraps instead of making the table scroll.
    wrap = page.locator(".table-wrap").evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert wrap[0] <= wrap[1], wrap
    page.get_by_role("button", name="Pause Report until…").click()
    dialog = page.get_by_role("dialog", name="Pause “Report”")
    in_reach(
        dialog.get_by_label("Pause until"),
        dialog.get_by_role("button", name="Cancel"),
        dialog.get_by_role("button", name="Pause", exact=True),
    )
    fits()
    if width == 360:
        screenshot(page, "pause-dialog-phone")
