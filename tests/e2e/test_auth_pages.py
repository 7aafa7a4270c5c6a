"""Sign-in, two-factor sign-in, registration, sign-out, the theme toggle and the narrow layout."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient
from tests.e2e.conftest import cookie_session, shot, unique_ip
from tests.totp_ref import totp

pytestmark = pytest.mark.e2e


def fill_login(page: Any, username: str, password: str) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@pytest.fixture(scope="module")
def member(root: UserClient) -> Account:
    """One plain user shared by the tests that do not change its state (signing in and out does not)."""
    account = Account("member" + secrets.token_hex(4), "pw-" + secrets.token_hex(8))
    resp = root.post("/api/users", json={"username": account.username, "password": account.password})
    assert resp.status_code == 201, resp.text
    return account


def enable_2fa(user: UserClient) -> tuple[str, list[str]]:
    secret = user.post("/api/user/2fa/setup").json()["secret"]
    resp = user.post("/api/user/2fa/verify", json={"code": totp(secret)})
    assert resp.status_code == 200, resp.text
    return secret, resp.json()["backup_codes"]


def test_login_lands_on_dashboard_with_the_users_name(page: Any, member: Account) -> None:
    user = member
    page.goto("/login")
    expect(page.get_by_role("link", name="Register with an invite code")).to_have_attribute("href", "/register")
    fill_login(page, user.username, user.password)
    page.wait_for_url("**/dashboard")
    expect(page.locator("#welcome")).to_have_text(f"Welcome, {user.username}")
    expect(page.locator("#user-menu summary")).to_contain_text(user.username)
    expect(page.locator("#role-badge")).to_have_text("user")
    # the activity card lists this very sign-in
    expect(page.locator("#activity-list li").first).to_contain_text("Signed in")
    expect(page.locator("#activity-list li").first).to_contain_text("signed in (web)")
    # unavailable tabs are shown, disabled, with a hint; users get no Admin tab
    expect(page.locator('.tab.disabled[data-nav="streams"]')).to_contain_text("soon")
    expect(page.locator('[data-nav="admin"]')).to_have_count(0)
    expect(page.locator("#coming-soon")).to_contain_text("not available yet")


def test_login_follows_a_local_next_and_ignores_an_external_one(page: Any, member: Account) -> None:
    user = member
    page.goto("/profile")
    page.wait_for_url(re.compile(r"/login\?next=/profile$"))
    fill_login(page, user.username, user.password)
    page.wait_for_url("**/profile")
    expect(page.get_by_role("heading", name="Profile", exact=True)).to_be_visible()

    page.context.clear_cookies()
    page.goto("/login?next=//evil.example/x")
    fill_login(page, user.username, user.password)
    page.wait_for_url("**/dashboard")


def test_wrong_password_shows_the_error(page: Any, member: Account) -> None:
    user = member
    page.goto("/login")
    fill_login(page, user.username, "not-the-password")
    alert = page.locator("#login-msg")
    expect(alert).to_have_text("Invalid username or password")
    expect(alert).to_have_attribute("role", "alert")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("#password")).to_have_value("")


def test_lockout_after_failed_logins_shows_the_wait(new_context: Callable[..., Any], base_url: str) -> None:
    username = "nobody" + secrets.token_hex(4)  # failures count per name too, so lock out nobody real
    address = unique_ip()  # and per address: this one is the test's own
    page = new_context(extra_http_headers={"X-Forwarded-For": address}).new_page()
    page.goto("/login")
    fill_login(page, username, "wrong-password")
    expect(page.locator("#login-msg")).to_have_text("Invalid username or password")
    for _attempt in range(4):
        resp = httpx.post(
            base_url + "/login",
            json={"username": username, "password": "wrong-password"},
            headers={"X-Forwarded-For": address},
            timeout=10,
        )
        assert resp.status_code == 401
    fill_login(page, username, "wrong-password")
    alert = page.locator("#login-msg")
    expect(alert).to_contain_text("Too many failed logins")
    expect(alert).to_have_text(re.compile(r"Retry in \d+ (seconds?|minutes)\.$"))
    expect(alert).to_have_attribute("role", "alert")


def test_login_with_2fa_asks_for_the_code(page: Any, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    secret, _ = enable_2fa(user)
    page.goto("/login")
    expect(page.locator("#step-totp")).to_be_hidden()
    fill_login(page, user.username, user.password)
    expect(page.locator("#totp-code")).to_be_visible()
    expect(page.locator("#step-password")).to_be_hidden()
    expect(page.locator("#login-msg")).to_contain_text("two-factor")

    page.fill("#totp-code", "000000" if totp(secret) != "000000" else "111111")
    page.click("#login-submit")
    expect(page.locator("#login-msg")).to_have_text("Invalid 2FA code")
    expect(page.locator("#totp-code")).to_be_visible()

    # The code that enabled 2FA burnt the current time step; the next step's code is within the
    # server's one-step clock-drift window, so the test need not wait 30 seconds.
    page.fill("#totp-code", totp(secret, at=time.time() + 30))
    page.click("#login-submit")
    page.wait_for_url("**/dashboard")
    expect(page.locator("#welcome")).to_contain_text(user.username)


def test_login_with_a_backup_code(page: Any, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    _, backup_codes = enable_2fa(user)
    page.goto("/login")
    fill_login(page, user.username, user.password)
    page.fill("#totp-code", backup_codes[0])
    page.click("#login-submit")
    page.wait_for_url("**/dashboard")
    assert user.get("/api/user/2fa/status").json()["backup_codes_remaining"] == 9


def test_register_with_the_invite_code_then_sign_in(new_context: Callable[..., Any], root: UserClient) -> None:
    invite = root.get("/api/invite-code").json()["invite_code"]
    page = new_context().new_page()  # its own X-Forwarded-For: one registration per IP per day
    username = "reg" + secrets.token_hex(4)
    page.goto("/register")
    page.fill("#reg-username", username)
    page.fill("#reg-password", "long-enough-pw")
    page.fill("#reg-invite", "ZZZZ-ZZZZ" if invite != "ZZZZ-ZZZZ" else "YYYY-YYYY")
    page.click("#register-submit")
    expect(page.locator("#register-msg")).to_have_text("Invalid or expired invite code")

    page.fill("#reg-invite", invite)
    page.click("#register-submit")
    expect(page.locator("#register-msg")).to_contain_text(f"Account “{username}” created")
    expect(page.locator("#register-form")).to_be_hidden()
    shot(page, "e2e-register-done")
    page.click("#register-login-link")
    page.wait_for_url(re.compile(r"/login\?username="))
    expect(page.locator("#username")).to_have_value(username)
    page.fill("#password", "long-enough-pw")
    page.click("#login-submit")
    page.wait_for_url("**/dashboard")
    expect(page.locator("#welcome")).to_have_text(f"Welcome, {username}")

    # the same address cannot register a second account today, and the page says so
    other = page.context.new_page()
    other.goto("/register")
    other.fill("#reg-username", "reg" + secrets.token_hex(4))
    other.fill("#reg-password", "long-enough-pw")
    other.fill("#reg-invite", invite)
    other.click("#register-submit")
    expect(other.locator("#register-msg")).to_contain_text("Only one account per IP address per 24 hours")
    expect(other.locator("#register-msg")).to_contain_text("Retry in")


def test_logout_ends_the_session(page: Any, member: Account, base_url: str) -> None:
    user = member
    page.goto("/login")
    fill_login(page, user.username, user.password)
    page.wait_for_url("**/dashboard")
    session = next(c["value"] for c in page.context.cookies() if c["name"] == "portal_session")

    page.click("#user-menu summary")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next=/dashboard$"))
    # GET /logout only asks for confirmation (a link from another site cannot sign anyone out)
    cookie_session(page, base_url, user.username, user.password)
    page.goto("/logout")
    expect(page.locator("#logout-confirm")).to_be_visible()
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    # the old cookie value is revoked on the server, not merely deleted from the browser
    replay = httpx.get(base_url + "/api/me", cookies={"portal_session": session}, timeout=10)
    assert replay.status_code == 401


def test_theme_toggle_switches_and_persists(page: Any, member: Account, sign_in: Any) -> None:
    page.emulate_media(color_scheme="light")
    user = member
    sign_in(user.username, user.password)
    page.goto("/dashboard")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "light")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    expect(html).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    shot(page, "e2e-dashboard-dark")
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    page.click("#theme-toggle")
    expect(html).to_have_attribute("data-theme", "light")
    # the login page carries the same toggle, and a dark system preference is followed by default
    page.context.clear_cookies()
    page.evaluate("localStorage.clear()")
    page.emulate_media(color_scheme="dark")
    page.goto("/login")
    expect(html).to_have_attribute("data-theme", "dark")


def test_narrow_viewport_has_no_horizontal_overflow(
    new_context: Callable[..., Any], root: UserClient, base_url: str
) -> None:
    page = new_context(viewport={"width": 375, "height": 800}).new_page()
    cookie_session(page, base_url, root.username, root.password)
    loaded = {
        "/dashboard": "#activity-list[aria-busy=false]",
        "/profile": "#twofa-badge:not(:text-is('…'))",
        "/keys": "#sessions-table tbody tr[data-token-id]",
        "/admin/users": "#users-table tbody tr[data-user-id]",
    }
    for path, ready in loaded.items():
        page.goto(path)
        expect(page.locator(ready).first).to_be_attached()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide at a 375px viewport"
        expect(page.locator(".topbar")).to_be_visible()
        if path == "/dashboard":
            expect(page.locator("#welcome")).to_be_in_viewport()
            shot(page, "e2e-dashboard-375")
