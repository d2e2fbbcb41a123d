"""Signing in and out, the session cookie, CSRF protection and permissions in the browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Service, screenshot


def csrf_of(page: Page) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token


def schedules_of(service: Service, published: dict[str, Any]) -> list[dict[str, Any]]:
    body = service.api("GET", f"/extensions/{published['extension_id']}/schedules")
    items: list[dict[str, Any]] = body["items"]
    return items


def test_it_signs_in_with_the_form_and_signs_out(page: Page, service: Service) -> None:
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")

    page.get_by_label("API token").fill("exs_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("not valid")

    page.get_by_label("API token").fill(service.tokens["admin"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("Platform admin tokens")

    page.get_by_label("API token").fill(service.tokens["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui$"))
    expect(page.get_by_role("heading", name="Installed extensions")).to_be_visible()
    expect(page.get_by_text("Times in Europe/Paris")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    expect(page.locator(".flash")).to_contain_text("You are signed out.")
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login$"))


def test_it_signs_in_with_the_demo_link_and_keeps_the_token_out_of_pages(
    page: Page, service: Service
) -> None:
    token = service.tokens["alice"]
    response = page.goto(f"/ui/login?token={token}")
    expect(page).to_have_url(re.compile(r"/ui$"))
    assert token not in page.content()
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["extsched_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/ui"
    assert token not in session["value"]
    assert str(service.token_ids["alice"]) not in page.content()


def test_it_ends_the_session_when_the_token_is_revoked(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    login("alice")
    service.revoke("alice")
    page.reload()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    expect(page.get_by_role("alert")).to_contain_text("revoked")


def test_it_sends_a_signed_out_visitor_back_to_the_page_after_signing_in(
    page: Page, service: Service
) -> None:
    published = service.publish()
    service.install(published)
    target = f"/ui/extensions/{published['extension_id']}/audit"
    page.goto(target)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API token").fill(service.tokens["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()


def test_it_refuses_state_changing_requests_without_the_csrf_token(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    login("alice")
    token = csrf_of(page)
    base = f"/ui/extensions/{published['extension_id']}"
    endpoint = next(e["id"] for e in published["endpoints"] if e["path"] == "/sync")
    form = {"endpoint_id": endpoint, "cron": "0 9 * * *", "timezone": "UTC", "enabled": "on"}

    # The browser context's request client carries the session cookie, like a forged form.
    missing = page.request.post(f"{base}/schedules", form=form, max_redirects=0)
    assert missing.status == 403
    assert "security token" in missing.text()
    wrong = page.request.post(
        f"{base}/schedules", form={**form, "csrf_token": "forged"}, max_redirects=0
    )
    assert wrong.status == 403
    foreign = page.request.post(
        f"{base}/schedules",
        form={**form, "csrf_token": token},
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert foreign.status == 403
    logout = page.request.post("/ui/logout", max_redirects=0)
    assert logout.status == 403
    assert schedules_of(service, published) == []

    accepted = page.request.post(
        f"{base}/schedules", form={**form, "csrf_token": token}, max_redirects=0
    )
    assert accepted.status == 303
    assert len(schedules_of(service, published)) == 1


def test_a_read_only_user_sees_no_write_controls_and_cannot_write(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    service.schedule(published, "POST", "/sync", name="Nightly sync")
    # rita's token has no time zone: times are shown in the tenant's.
    service.api("PUT", "/admin/tenants/acme", "admin", json={"timezone": "America/New_York"})
    login("rita")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_text("Times in America/New_York")).to_be_visible()
    expect(page.get_by_test_id("catalogue")).to_have_count(0)
    page.get_by_role("link", name="com.example.crm-sync").click()

    row = page.locator("tr[data-schedule='Nightly sync']")
    expect(row).to_be_visible()
    expect(row.get_by_text("Enabled")).to_be_visible()
    expect(row.locator("td.next-run time")).to_have_text(re.compile(r"E[SD]T$"))
    expect(row.get_by_role("link", name=re.compile("Run history"))).to_be_visible()
    for name in ("New schedule", "Disable all", "Disable extension"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    expect(page.get_by_role("switch")).to_have_count(0)
    expect(page.locator("button.run-now")).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("Delete"))).to_have_count(0)
    expect(row.get_by_role("link", name=re.compile("Edit"))).to_have_count(0)
    screenshot(page, "read-only", doc=False)

    page.get_by_role("link", name="Version", exact=True).click()
    expect(page.get_by_role("button", name="Preview update")).to_have_count(0)
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Uninstall"))).to_have_count(0)

    base = f"/ui/extensions/{published['extension_id']}"
    page.goto(f"{base}/schedules/new")
    expect(page.get_by_test_id("error-message")).to_contain_text("read-only")
    endpoint = next(e["id"] for e in published["endpoints"] if e["path"] == "/sync")
    refused = page.request.post(
        f"{base}/schedules",
        form={"endpoint_id": endpoint, "cron": "0 9 * * *", "csrf_token": csrf_of(page)},
        max_redirects=0,
    )
    assert refused.status == 403
    assert len(schedules_of(service, published)) == 1


def test_a_user_without_read_permission_sees_no_extensions(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    login("wanda")
    expect(page.get_by_test_id("no-read")).to_be_visible()
    expect(page.get_by_test_id("installs")).to_have_count(0)
    page.goto(f"/ui/extensions/{published['extension_id']}")
    expect(page.get_by_test_id("error-message")).to_contain_text("extension:read")
    expect(page.get_by_role("heading", name="Schedules")).to_have_count(0)


def test_an_other_tenants_extension_is_not_found(
    page: Page, service: Service, login: Callable[[str], Page]
) -> None:
    published = service.publish()
    service.install(published)
    login("charlie")
    expect(page.get_by_test_id("no-installs")).to_be_visible()
    response = page.goto(f"/ui/extensions/{published['extension_id']}")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-message")).to_contain_text("not installed")
