"""The Notifications page in Chromium: set the webhook, reveal the secret, send a test and see
it delivered (verified by the receiver with the revealed secret), refusal of a private
address, CSRF, read-only users, and a phone-sized screen."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot
from tests.e2e.ui_pages import horizontal_overflow
from tests.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def open_notifications(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Notifications", level=1)).to_be_visible()


@pytest.mark.settings(notify_allow_private=True, notify_poll_seconds=0.2)
@pytest.mark.parametrize("width", [390, 1280])
def test_alice_sets_her_webhook_and_sends_a_test(
    page: Page,
    service: Service,
    receiver: Receiver,
    login: Callable[[str], Page],
    width: int,
) -> None:
    page.set_viewport_size({"width": width, "height": 860})
    login("alice")
    open_notifications(page)
    expect(page.get_by_role("link", name="Notifications")).to_have_attribute("aria-current", "page")
    page.get_by_label("Webhook URL").fill(f"{receiver.url}/hooks/extsched")
    page.get_by_label("A schedule recovered").uncheck()
    page.get_by_label("Notifications on").check()
    page.get_by_role("button", name="Save notification settings").click()
    expect(page.get_by_role("status")).to_have_text("Notification settings saved.")
    expect(page.get_by_label("A schedule recovered")).not_to_be_checked()
    expect(page.get_by_label("A run failed")).to_be_checked()
    settings = service.api("GET", "/notifications")
    assert settings["enabled"] is True
    assert "schedule_recovered" not in settings["events"]
    hint = page.get_by_test_id("secret-hint").inner_text()

    page.get_by_role("button", name="Reveal the secret").click()
    secret = page.get_by_test_id("secret").locator("code").inner_text()
    assert secret.startswith("whsec_") and secret.endswith(hint[-4:])
    # The secret is shown on a POST's answer only: reloading by address shows the hint again.
    page.goto("/ui/notifications")
    expect(page.get_by_test_id("secret")).to_have_count(0)

    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("Test notification queued")
    row = page.get_by_test_id("deliveries").locator("tbody tr").first
    deadline = time.monotonic() + 10
    while "Delivered" not in row.inner_text():
        assert time.monotonic() < deadline, row.inner_text()
        page.wait_for_timeout(200)  # polling the page for the worker's delivery
        page.reload()
    expect(row.get_by_text("HTTP 200")).to_be_visible()
    [call] = receiver.received()
    assert call.verify(secret)["type"] == "test"
    assert call.path == "/hooks/extsched"
    widths = horizontal_overflow(page)
    assert widths["scrollWidth"] <= widths["clientWidth"], widths
    screenshot(page, f"notifications-{'phone' if width == 390 else 'desktop'}")


def test_a_private_address_is_refused_next_to_its_field(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    login("alice")
    open_notifications(page)
    url = page.get_by_label("Webhook URL")
    url.fill("http://localhost:9/hook")
    page.get_by_role("button", name="Save notification settings").click()
    expect(page.get_by_test_id("form-error")).to_be_visible()
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(url).to_have_value("http://localhost:9/hook")  # kept for correction
    expect(page.locator("#webhook_url-error")).to_contain_text("loopback address")
    assert service.api("GET", "/notifications")["webhook_url"] is None


def test_changes_need_the_csrf_token_and_write_permission(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    login("alice")
    form = {"webhook_url": "https://hooks.example.com/x", "events": "run_failed"}
    for path in ("/ui/notifications", "/ui/notifications/secret", "/ui/notifications/test"):
        refused = page.request.post(path, form=form, max_redirects=0)
        assert refused.status == 403, path
        assert "whsec_" not in refused.text()
    page.request.post("/ui/logout", form={"csrf_token": csrf_of(page)}, max_redirects=0)
    login("rita")  # read-only
    page.goto("/ui/notifications")
    expect(page.get_by_label("Webhook URL")).to_have_attribute("readonly", "")
    expect(page.get_by_role("button", name="Save notification settings")).to_have_count(0)
    expect(page.get_by_role("button", name="Reveal the secret")).to_have_count(0)
    expect(page.get_by_role("button", name="Send test")).to_have_count(0)
    assert re.search("read-only", page.get_by_test_id("read-only").inner_text())


def csrf_of(page: Page) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token
