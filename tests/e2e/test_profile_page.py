"""The profile page: nickname, status, avatar, anonymous mode, password and 2FA enrolment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient, login
from tests.e2e.conftest import shot
from tests.totp_ref import totp

pytestmark = pytest.mark.e2e


def test_nickname_shows_in_the_header(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.goto("/profile")
    header_name = page.locator("#user-menu .user-name")
    expect(header_name).to_have_text(user.username)
    page.fill("#nickname", "Night Owl")
    page.click("#nickname-save")
    expect(page.locator("#nickname-msg")).to_have_text("Nickname set to “Night Owl”.")
    expect(header_name).to_have_text("Night Owl")
    assert user.get("/api/me").json()["display_name"] == "Night Owl"
    page.reload()
    expect(header_name).to_have_text("Night Owl")
    expect(page.locator("#nickname")).to_have_value("Night Owl")

    # invalid input: the server's message is shown, nothing changes
    page.fill("#nickname", "<b>no</b>")
    page.click("#nickname-save")
    expect(page.locator("#nickname-msg")).to_contain_text("nickname must be 2-32 letters")
    expect(page.locator("#nickname-msg")).to_have_attribute("role", "alert")
    expect(header_name).to_have_text("Night Owl")

    page.fill("#nickname", "")
    page.click("#nickname-save")
    expect(page.locator("#nickname-msg")).to_have_text("Nickname cleared.")
    expect(header_name).to_have_text(user.username)


def test_enrol_2fa_from_the_page(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.goto("/profile")
    expect(page.locator("#twofa-badge")).to_have_text("Off")
    page.click("#twofa-enable")
    qr = page.locator("#twofa-qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 120 and box["height"] >= 120
    secret = page.locator("#twofa-secret").inner_text().strip()
    assert len(secret) >= 32
    shot(page, "e2e-profile-2fa-setup")

    page.fill("#twofa-code", "000000" if totp(secret) != "000000" else "111111")
    page.click("#twofa-verify")
    expect(page.locator("#twofa-msg")).to_have_text("Invalid 2FA code")

    page.fill("#twofa-code", totp(secret))
    page.click("#twofa-verify")
    codes = page.locator("#twofa-code-list li")
    expect(codes).to_have_count(10)
    backup_codes = codes.all_inner_texts()
    assert all(len(code) == 11 for code in backup_codes)
    expect(page.locator("#twofa-codes")).to_contain_text("shown only now")
    expect(page.locator("#twofa-badge")).to_have_text("On")
    status = user.get("/api/user/2fa/status").json()
    assert status == {"enabled": True, "backup_codes_remaining": 10}

    page.click("#twofa-codes-done")
    expect(page.locator("#twofa-code-list li")).to_have_count(0)
    expect(page.locator("#twofa-remaining")).to_have_text("10")

    # and off again, with a backup code
    page.fill("#twofa-disable-code", backup_codes[0])
    page.click("#twofa-disable")
    expect(page.locator("#twofa-msg")).to_have_text("Two-factor authentication is off.")
    expect(page.locator("#twofa-enable")).to_be_visible()
    assert user.get("/api/user/2fa/status").json()["enabled"] is False


def test_status_avatar_anonymous_and_password(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, base_url: str
) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.goto("/profile")

    page.select_option("#status", "busy")
    page.fill("#status-message", "In a meeting")
    page.click("#status-save")
    expect(page.locator("#status-msg")).to_have_text("Status updated.")
    me = user.get("/api/me").json()
    assert (me["status"], me["status_message"]) == ("busy", "In a meeting")

    # the preview follows the inputs before anything is saved
    preview = page.locator("#avatar-preview")
    page.fill("#avatar-initials", "zq")
    expect(preview).to_have_text("ZQ")
    page.locator("#avatar-color").fill("#10b981")
    expect(preview).to_have_css("background-color", "rgb(16, 185, 129)")
    assert user.get("/api/me").json()["avatar"]["initials"] is None
    page.click("#avatar-save")
    expect(page.locator("#avatar-msg")).to_have_text("Avatar saved.")
    assert user.get("/api/me").json()["avatar"] == {"color": "#10b981", "emoji": None, "initials": "ZQ"}
    expect(page.locator("#user-menu .avatar")).to_have_text("ZQ")

    page.check("#anonymous")
    expect(page.locator("#anonymous-msg")).to_have_text("Anonymous mode is on.")
    expect(page.locator("#user-menu .user-name")).to_have_text("Anonymous")
    assert user.get("/api/me").json()["anonymous"] is True
    page.uncheck("#anonymous")
    expect(page.locator("#user-menu .user-name")).to_have_text(user.username)

    page.fill("#current-password", "wrong-password")
    page.fill("#new-password", "brand-new-password")
    page.fill("#confirm-password", "brand-new-password")
    page.click("#password-save")
    expect(page.locator("#password-msg")).to_have_text("Current password is incorrect")

    page.fill("#current-password", user.password)
    page.fill("#new-password", "brand-new-password")
    page.fill("#confirm-password", "brand-new-password")
    page.click("#password-save")
    expect(page.locator("#password-msg")).to_contain_text("Password changed")
    assert login(base_url, user.username, "brand-new-password").status_code == 200
    assert login(base_url, user.username, user.password).status_code == 401
    # the page's own session survives; the API token made before the change does not
    page.reload()
    expect(page.locator("#user-menu .user-name")).to_have_text(user.username)
    assert user.get("/api/me").status_code == 401
