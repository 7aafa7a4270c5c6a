"""The API keys page: a key is shown once, works, is revoked and deleted; sessions can be revoked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e


def test_create_use_revoke_and_delete_a_key(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, base_url: str
) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/keys")
    expect(page.locator("#keys-table tbody")).to_contain_text("You have no API keys yet.")
    expect(page.locator("#key-scopes")).to_have_value("*")

    page.fill("#key-name", "deploy <script>")
    page.fill("#key-expires", "30")
    page.click("#create-key-submit")
    reveal = page.locator("#new-key")
    expect(reveal).to_be_visible()
    expect(reveal).to_contain_text("only time the full key")
    key = page.locator("#new-key-value").input_value()
    assert key.startswith("portal_") and len(key) > 40
    shot(page, "e2e-keys-created")

    row = page.locator("#keys-table tbody tr", has_text="deploy <script>")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("active")
    expect(row).to_contain_text(key[:10] + "…")
    assert key not in page.locator("#keys-table").inner_text()

    resp = httpx.get(base_url + "/api/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["username"] == user.username

    page.click("#new-key-done")
    expect(reveal).to_be_hidden()
    page.reload()
    expect(page.locator("#new-key-value")).to_have_value("")
    assert key not in page.content()

    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#keys-msg")).to_have_text("Key “deploy <script>” revoked.")
    expect(row.locator(".badge")).to_have_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    resp = httpx.get(base_url + "/api/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert resp.status_code == 401

    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#keys-msg")).to_have_text("Key “deploy <script>” deleted.")
    expect(row).to_have_count(0)
    assert user.get("/api/api-keys").json()["api_keys"] == []


def test_key_errors_are_shown(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.goto("/keys")
    page.fill("#key-name", "bad scopes")
    page.fill("#key-scopes", "profile:delete")
    page.click("#create-key-submit")
    expect(page.locator("#create-msg")).to_have_text("invalid scope 'profile:delete'")
    expect(page.locator("#create-msg")).to_have_attribute("role", "alert")
    expect(page.locator("#new-key")).to_be_hidden()


def test_sessions_list_and_revoke(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()  # holds an API token from POST /api/token
    sign_in(user.username, user.password)
    page.goto("/keys")
    rows = page.locator("#sessions-table tbody tr")
    expect(rows).to_have_count(2)
    current = page.locator('#sessions-table tr[data-current="true"]')
    expect(current).to_contain_text("Web sign-in")
    expect(current).to_contain_text("This session")
    expect(current.get_by_role("button", name="Revoke")).to_have_count(0)

    api_row = page.locator('#sessions-table tr[data-current="false"]')
    expect(api_row).to_contain_text("API token")
    assert user.get("/api/me").status_code == 200
    api_row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#sessions-msg")).to_have_text("Session revoked.")
    expect(rows).to_have_count(1)
    assert user.get("/api/me").status_code == 401
