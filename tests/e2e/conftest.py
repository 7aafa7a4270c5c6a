"""Browser fixtures: one Chromium per test session, a fresh context (cookies, storage) per test.

Every context gets its own ``X-Forwarded-For`` address (the test server trusts it from 127.0.0.1),
so per-IP limits such as one registration per day or the failed-login lockout never leak from one
test into another. Pages fail their test on uncaught script errors and CSP violations.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = Path(os.environ.get("PORTAL_E2E_SHOTS", "/tmp/shots"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


def unique_ip() -> str:
    raw = secrets.token_bytes(3)
    return f"10.{raw[0]}.{raw[1]}.{max(raw[2], 1)}"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


class PageErrors:
    """Script errors and CSP violations seen by the pages of one test."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda exc: self.items.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        text = message.text
        # Failed API calls (a 401 for a wrong password...) are logged by Chromium; they are expected.
        if message.type == "error" and not text.startswith("Failed to load resource"):
            self.items.append(f"console: {text}")


@pytest.fixture
def new_context(browser: Any, base_url: str) -> Iterator[Callable[..., Any]]:
    """Open a fresh browser context (own cookies, storage and client IP); closed after the test."""
    contexts: list[Any] = []
    errors = PageErrors()

    def make(**options: Any) -> Any:
        headers = {"X-Forwarded-For": unique_ip(), **options.pop("extra_http_headers", {})}
        options.setdefault("viewport", {"width": 1280, "height": 860})
        context = browser.new_context(base_url=base_url, extra_http_headers=headers, **options)
        context.set_default_timeout(10_000)
        context.on("page", errors.watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not errors.items, "browser errors:\n" + "\n".join(errors.items)


@pytest.fixture
def page(new_context: Callable[..., Any]) -> Any:
    return new_context().new_page()


def cookie_session(page: Any, base_url: str, username: str, password: str) -> dict[str, str]:
    """Sign ``page``'s context in through ``POST /login`` (faster than the form); returns the cookies."""
    resp = httpx.post(base_url + "/login", json={"username": username, "password": password}, timeout=10)
    assert resp.status_code == 200, resp.text
    cookies = {name: value for name, value in resp.cookies.items()}
    page.context.add_cookies(
        [
            {
                "name": name,
                "value": value,
                "url": base_url,
                "httpOnly": name == "portal_session",
                "sameSite": "Lax" if name == "portal_session" else "Strict",
            }
            for name, value in cookies.items()
        ]
    )
    return cookies


@pytest.fixture
def sign_in(page: Any, base_url: str) -> Callable[[str, str], Any]:
    """``sign_in(username, password)``: the test's page, signed in by cookie."""

    def sign(username: str, password: str) -> Any:
        cookie_session(page, base_url, username, password)
        return page

    return sign


def shot(page: Any, name: str) -> None:
    """A full-page screenshot for looking at the pages (PORTAL_E2E_SHOTS, default /tmp/shots)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
