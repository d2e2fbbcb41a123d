"""Browser tests: Debian's Chromium, driven by Playwright, against the real service.

Each test gets a fresh database (cloned from the migrated template), a fake Runner on its own
HTTP port, and the service app of ``extsched serve`` (API + UI + worker) served over HTTP by
uvicorn in a thread. Named actors as in the other suites:

- ``alice``: admin of tenant ``acme`` (read + write), time zone Europe/Paris;
- ``rita``: read-only user of ``acme``;
- ``wanda``: ``acme`` user with extension:write but not extension:read;
- ``charlie``: admin of another tenant, ``globex``.

Screenshots go to ``test-artifacts/e2e/``; with ``EXTSCHED_UPDATE_SCREENSHOTS=1`` also to
``docs/screenshots/`` (the ones docs/ui.md shows).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from extsched.config import Settings
from extsched.db.pool import Database
from extsched.server import Roles, create_service_app
from extsched.services import tokens
from tests.conftest import manifest, marked_settings
from tests.fake_runner import FakeRunner, fake_runner
from tests.helpers.http_server import run_asgi_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
DOC_SHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread, so ``asyncio.run`` cannot be called there."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="e2e-setup")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


# Module scope, not session: while Playwright's sync API is started it keeps an event loop
# running in this thread, which would break the async tests xdist runs on the same worker
# between browser tests. pytest tears a module fixture down before a test of another module.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(scripts/test does: apt-get install -y chromium)",
            pytrace=False,
        )
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def runner() -> Iterator[FakeRunner]:
    with fake_runner() as r:
        yield r


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, runner: FakeRunner) -> dict[str, Any]:
    return {"runner_url": runner.url, "runner_timeout_ms": 5000, **marked_settings(request)}


@dataclass
class Service:
    """The running service: its URL, the actors' tokens and an API client for set-up."""

    url: str
    db_url: str
    tokens: dict[str, str]
    token_ids: dict[str, uuid.UUID]
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def api(self, method: str, path: str, actor: str = "alice", **kwargs: Any) -> Any:
        """Call the JSON API as ``actor``; returns the decoded body (asserting success)."""
        headers = {"Authorization": f"Bearer {self.tokens[actor]}"}
        r = self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.api(
            "POST", "/registry/versions", "admin", json=manifest(**kwargs)
        )
        return body

    def install(self, published: dict[str, Any], actor: str = "alice") -> dict[str, Any]:
        body: dict[str, Any] = self.api(
            "POST",
            f"/extensions/{published['extension_id']}/install",
            actor,
            json={"version_id": published["version_id"]},
        )
        return body

    def schedule(self, published: dict[str, Any], method: str, path: str, **body: Any) -> Any:
        endpoint = next(
            e["id"] for e in published["endpoints"] if (e["method"], e["path"]) == (method, path)
        )
        return self.api(
            "POST",
            f"/extensions/{published['extension_id']}/schedules",
            json={"endpoint_id": endpoint, "cron": "0 9 * * *", **body},
        )

    def revoke(self, actor: str) -> None:
        async def go() -> None:
            db = Database(self.db_url, min_size=1, max_size=1)
            await db.open()
            try:
                await tokens.revoke(db, self.token_ids[actor])
            finally:
                await db.close()

        run_async(go())


async def _make_tokens(db_url: str) -> dict[str, tuple[uuid.UUID, str]]:
    db = Database(db_url, min_size=1, max_size=2)
    await db.open()
    try:
        return {
            "admin": await tokens.create(db, admin=True),
            "alice": await tokens.create(
                db, tenant_id="acme", user_id="alice", timezone="Europe/Paris"
            ),
            "rita": await tokens.create(
                db, tenant_id="acme", user_id="rita", permissions=["extension:read"]
            ),
            "wanda": await tokens.create(
                db, tenant_id="acme", user_id="wanda", permissions=["extension:write"]
            ),
            "charlie": await tokens.create(db, tenant_id="globex", user_id="charlie"),
        }
    finally:
        await db.close()


@pytest.fixture
def service(settings: Settings, db_url: str) -> Iterator[Service]:
    """``extsched serve``'s app (API, UI and worker) on a real HTTP port."""
    made = run_async(_make_tokens(db_url))
    app = create_service_app(settings, db_url, Roles(api=True, worker=True))
    with run_asgi_server(app, lifespan="on") as url:
        svc = Service(
            url=url,
            db_url=db_url,
            tokens={k: v[1] for k, v in made.items()},
            token_ids={k: v[0] for k, v in made.items()},
        )
        try:
            yield svc
        finally:
            svc.http.close()


@pytest.fixture
def context(browser: Browser, service: Service) -> Iterator[BrowserContext]:
    ctx = browser.new_context(
        base_url=service.url,
        viewport=VIEWPORT,  # type: ignore[arg-type]
        timezone_id="Europe/Paris",
        locale="en-GB",
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def login(page: Page, service: Service) -> Callable[[str], Page]:
    """``login("alice")``: sign in through the demo-style link; returns the page at /ui."""

    def _login(actor: str) -> Page:
        page.goto(f"/ui/login?token={service.tokens[actor]}")
        page.wait_for_url("**/ui")
        return page

    return _login


def screenshot(page: Page, name: str, *, doc: bool = True) -> None:
    """Save ``name``.png as a test artifact; with EXTSCHED_UPDATE_SCREENSHOTS=1 the ``doc``
    ones are also written to docs/screenshots/ (shown by docs/ui.md)."""
    targets = [ARTIFACTS / f"{name}.png"]
    if doc and os.environ.get("EXTSCHED_UPDATE_SCREENSHOTS") == "1":
        targets.append(DOC_SHOTS / f"{name}.png")
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
