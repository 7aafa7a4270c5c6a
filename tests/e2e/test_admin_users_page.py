"""The admin users page: invite code, create, change role, reset password, delete, and who may do what."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient, login
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e


def user_row(page: Any, username: str) -> Any:
    return page.locator(f'#users-table tbody tr[data-username="{username}"]')


def search(page: Any, text: str) -> None:
    page.fill("#user-search", text)
    page.press("#user-search", "Enter")


def test_root_manages_a_user(page: Any, root: UserClient, sign_in: Any, base_url: str) -> None:
    sign_in(root.username, root.password)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/admin/users")
    invite = root.get("/api/invite-code").json()["invite_code"]
    expect(page.locator("#invite-code")).to_have_text(invite)
    expect(page.locator("#new-role option")).to_have_text(["user", "moderator", "admin"])

    username = "adm" + secrets.token_hex(4)
    page.fill("#new-username", username)
    page.fill("#new-password", "first-password-1")
    page.click("#create-user-submit")
    expect(page.locator("#create-user-msg")).to_have_text(f"User “{username}” created with the role user.")

    search(page, username)
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    row = user_row(page, username)
    expect(row.get_by_role("combobox")).to_have_value("user")
    expect(page.locator("#users-range")).to_have_text("1–1 of 1")
    shot(page, "e2e-admin-users")

    row.get_by_role("combobox").select_option("moderator")
    expect(page.locator("#users-msg")).to_have_text(f"{username} is now moderator.")
    listed = root.get("/api/users", params={"q": username}).json()["users"]
    assert [(u["username"], u["role"]) for u in listed] == [(username, "moderator")]

    row.get_by_role("button", name="Reset password").click()
    expect(page.locator("#temp-password")).to_be_visible()
    expect(page.locator("#temp-password-user")).to_have_text(username)
    temporary = page.locator("#temp-password-value").input_value()
    assert len(temporary) >= 12
    assert login(base_url, username, temporary).status_code == 200
    assert login(base_url, username, "first-password-1").status_code == 401
    page.click("#temp-password-done")
    expect(page.locator("#temp-password")).to_be_hidden()

    # the same username again: the conflict is shown
    page.fill("#new-username", username)
    page.fill("#new-password", "first-password-1")
    page.click("#create-user-submit")
    expect(page.locator("#create-user-msg")).to_have_text("Username already taken")

    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#users-msg")).to_have_text(f"User {username} deleted.")
    expect(page.locator("#users-table tbody")).to_contain_text("No user matches.")
    assert root.get("/api/users", params={"q": username}).json()["total"] == 0

    # root's own row cannot be edited
    search(page, root.username)
    own = user_row(page, root.username)
    expect(own).to_contain_text("you")
    expect(own.get_by_role("combobox")).to_have_count(0)


def test_non_admin_gets_the_forbidden_page(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user("moderator")
    sign_in(user.username, user.password)
    response = page.goto("/admin/users")
    assert response is not None and response.status == 403
    expect(page.locator("#forbidden h1")).to_have_text("Access denied")
    expect(page.locator("#forbidden")).to_contain_text(user.username)
    expect(page.locator("#users-table")).to_have_count(0)
    expect(page.locator('[data-nav="admin"]')).to_have_count(0)
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url("**/dashboard")


def test_admin_sees_limits_and_server_refusals(
    page: Any, make_user: Callable[..., UserClient], root: UserClient, sign_in: Any
) -> None:
    admin = make_user("admin")
    target = make_user("user")
    peer = make_user("admin")
    sign_in(admin.username, admin.password)
    page.goto("/admin/users")
    expect(page.locator('[data-nav="admin"]')).to_have_attribute("aria-current", "page")
    expect(page.locator("#new-role option")).to_have_text(["user", "moderator"])

    search(page, peer.username)
    peer_row = user_row(page, peer.username)
    expect(peer_row.locator(".badge")).to_have_text("admin")
    expect(peer_row.get_by_role("button")).to_have_count(0)

    search(page, target.username)
    row = user_row(page, target.username)
    expect(row.get_by_role("button", name="Reset password")).to_be_visible()
    expect(row.get_by_role("button", name="Delete")).to_have_count(0)  # deleting is for superadmins

    # someone promotes the target meanwhile: the stale page's change is refused and the error shown
    assert root.put(f"/api/users/{target.id}/role", json={"role": "admin"}).status_code == 200
    row.get_by_role("combobox").select_option("moderator")
    expect(page.locator("#users-msg")).to_have_text("You cannot manage a user with an equal or higher role")
    expect(page.locator("#users-msg")).to_have_attribute("role", "alert")
    expect(row.get_by_role("combobox")).to_have_value("user")
