"""The Connections tab: quick-add forms generated from the type schemas, pin, edit without
re-entering secrets, delete, connect without a viewer, services with health, SSH keys."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient
from tests.e2e.conftest import shot
from tests.peers.echo import EchoServer
from tests.portal_server import free_port

pytestmark = pytest.mark.e2e


def _add_from_tile(page: Any, type_key: str, fields: dict[str, str]) -> None:
    page.click(f'.type-tile[data-type="{type_key}"]')
    dialog = page.locator("#conn-dialog")
    expect(dialog).to_be_visible()
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click("#conn-save")
    expect(dialog).to_be_hidden()


def _item(page: Any, name: str) -> Any:
    return page.locator("#connection-list .conn-item", has=page.locator(".conn-name", has_text=name))


def test_add_pin_edit_delete(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/connections")
    expect(page.locator('.tab[data-nav="connections"]')).to_have_attribute("aria-current", "page")
    expect(page.locator("#connection-list")).to_contain_text("No connections yet")

    # ssh: the form comes from the schema; the port is the type's default
    page.click('.type-tile[data-type="ssh"]')
    expect(page.locator("#conn-port")).to_have_value("22")
    expect(page.locator("#cfg-auth_method")).to_have_value("password")
    expect(page.locator("#cfg-password")).to_have_attribute("type", "password")
    expect(page.locator("#cfg-private_key")).to_be_hidden()
    page.select_option("#cfg-auth_method", "key")
    expect(page.locator("#cfg-private_key")).to_be_visible()
    expect(page.locator("#cfg-password")).to_be_hidden()
    page.select_option("#cfg-auth_method", "password")
    page.fill("#conn-name", "alpha box")
    page.fill("#conn-host", "127.0.0.1")
    page.fill("#cfg-username", "orptest")
    page.fill("#cfg-password", "first-secret")
    shot(page, "e2e-connections-form")
    page.click("#conn-save")
    expect(page.locator("#conn-dialog")).to_be_hidden()
    expect(_item(page, "alpha box")).to_contain_text("SSH Terminal · 127.0.0.1:22")

    # a web panel preset fills its port and path
    page.click('.type-tile[data-type="grafana"]')
    expect(page.locator("#conn-port")).to_have_value("3000")
    expect(page.locator("#cfg-path")).to_have_value("/")
    expect(page.locator("#cfg-scheme")).to_have_value("http")
    page.fill("#conn-name", "zeta graphs")
    page.fill("#conn-host", "127.0.0.1")
    page.click("#conn-save")
    expect(page.locator("#conn-dialog")).to_be_hidden()

    items = page.locator("#connection-list .conn-item")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("alpha box")

    # pinning moves the item to the top
    pin = _item(page, "zeta graphs").get_by_role("button", name="Pin")
    expect(pin).to_have_attribute("aria-pressed", "false")
    pin.click()
    expect(items.first).to_contain_text("zeta graphs")
    expect(items.first.locator(".pin-btn")).to_have_attribute("aria-pressed", "true")
    expect(items.first.locator(".badge")).to_have_text("pinned")
    listed = user.get("/api/connections").json()["connections"]
    assert [c["name"] for c in listed] == ["zeta graphs", "alpha box"]
    assert listed[0]["is_pinned"] is True

    # editing shows the stored secret as such, and an empty secret input keeps it
    _item(page, "alpha box").get_by_role("button", name="Edit").click()
    expect(page.locator("#cfg-password")).to_have_value("")
    expect(page.locator("#cfg-password")).to_have_attribute("placeholder", "unchanged — stored")
    expect(page.locator("#cfg-username")).to_have_value("orptest")
    page.fill("#conn-name", "alpha renamed")
    page.click("#conn-save")
    expect(page.locator("#conn-dialog")).to_be_hidden()
    expect(_item(page, "alpha renamed")).to_have_count(1)
    alpha = next(c for c in user.get("/api/connections").json()["connections"] if c["type"] == "ssh")
    assert alpha["name"] == "alpha renamed"
    assert alpha["config"]["has_password"] is True
    assert "password" not in alpha["config"]
    assert alpha["config"]["username"] == "orptest"

    # unpin, then delete
    _item(page, "zeta graphs").get_by_role("button", name="Pin").click()
    expect(items.first).to_contain_text("alpha renamed")
    expect(_item(page, "zeta graphs").locator(".pin-btn")).to_have_attribute("aria-pressed", "false")
    _item(page, "zeta graphs").get_by_role("button", name="Delete").click()
    expect(page.locator("#connections-msg")).to_have_text("Connection “zeta graphs” deleted.")
    expect(items).to_have_count(1)
    assert [c["name"] for c in user.get("/api/connections").json()["connections"]] == ["alpha renamed"]


def test_form_errors_are_shown(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.goto("/connections")
    page.click('.type-tile[data-type="vnc"]')
    page.fill("#conn-name", "desk")
    page.fill("#conn-host", "http://desk.lan:5900/")
    page.click("#conn-save")
    message = page.locator("#conn-form-msg")
    expect(message).to_have_text("Invalid host: give a host name or an IP address, without scheme or port")
    expect(message).to_have_attribute("role", "alert")
    expect(page.locator("#conn-dialog")).to_be_visible()
    assert user.get("/api/connections").json()["connections"] == []


def test_connect_without_viewer_shows_the_address(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any
) -> None:
    user = make_user()
    made = user.post("/api/connections", json={"name": "pg", "type": "database", "host": "127.0.0.1", "port": 5432})
    assert made.status_code == 201, made.text
    sign_in(user.username, user.password)
    page.goto("/connections")
    _item(page, "pg").get_by_role("button", name="Connect").click()
    toast = page.locator("#toasts .toast-info")
    expect(toast).to_contain_text("127.0.0.1:5432")
    expect(toast).to_contain_text("no web viewer")
    assert len(page.context.pages) == 1


def test_connect_opens_the_viewer(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    made = user.post(
        "/api/connections",
        json={"name": "desk", "type": "vnc", "host": "127.0.0.1", "port": free_port()},
    ).json()
    sign_in(user.username, user.password)
    page.goto("/connections")
    with page.context.expect_page() as opened:
        _item(page, "desk").get_by_role("button", name="Connect").click()
    viewer = opened.value
    viewer.wait_for_load_state()
    assert viewer.url.endswith(f"/vnc/connect?connection={made['id']}")
    expect(viewer.locator("#viewer-title")).to_have_text("desk")
    # nothing listens on that port: the relay's refusal reaches the status bar
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "closed", timeout=15_000)
    expect(viewer.locator("#vnc-reconnect")).to_be_visible()


def test_services_with_health(
    page: Any, root: UserClient, make_user: Callable[..., UserClient], sign_in: Any, echo_server: EchoServer
) -> None:
    tag = secrets.token_hex(3)
    up = root.post(
        "/api/services",
        json={"name": f"echo {tag}", "plugin": "tcp_tunnel", "host": "127.0.0.1", "port": echo_server.port},
    )
    down = root.post(
        "/api/services",
        json={
            "name": f"gone {tag}",
            "plugin": "ssh",
            "host": "127.0.0.1",
            "port": free_port(),
            "config": {"username": "nobody", "password": "unused"},
        },
    )
    try:
        assert up.status_code == 201, up.text
        assert down.status_code == 201, down.text
        user = make_user()
        sign_in(user.username, user.password)
        page.goto("/connections")
        up_item = page.locator(f'#service-list [data-service-id="{up.json()["id"]}"]')
        down_item = page.locator(f'#service-list [data-service-id="{down.json()["id"]}"]')
        expect(up_item).to_contain_text(f"echo {tag}")
        expect(up_item.locator(".health-dot")).to_have_attribute("data-health", "up")
        expect(down_item.locator(".health-dot")).to_have_attribute("data-health", "down")
        expect(down_item.locator(".health-dot")).to_have_attribute("aria-label", _starts("Unreachable"))
        # an SSH service opens in the terminal viewer
        expect(down_item.get_by_role("link", name="Open")).to_have_attribute(
            "href", f"/terminal/connect?service={down.json()['id']}"
        )
        expect(up_item.get_by_role("link", name="Open")).to_have_count(0)
    finally:
        for made in (up, down):
            if made.status_code == 201:
                root.delete(f"/api/services/{made.json()['id']}")


def _starts(prefix: str) -> Any:
    import re

    return re.compile("^" + re.escape(prefix))


def test_ssh_keys(page: Any, make_user: Callable[..., UserClient], sign_in: Any, base_url: str) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/connections")
    expect(page.locator("#keys-table tbody")).to_contain_text("You have no SSH keys yet.")
    page.fill("#key-name", "laptop")
    page.click("#key-generate")
    reveal = page.locator("#new-key")
    expect(reveal).to_be_visible()
    private = page.locator("#new-key-private").input_value()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    row = page.locator("#keys-table tbody tr", has_text="laptop")
    expect(row).to_contain_text("SHA256:")
    expect(row).to_contain_text("ed25519")
    with page.expect_download() as download:
        page.click("#new-key-download")
    assert download.value.suggested_filename == "id_ed25519_laptop"
    shot(page, "e2e-connections-keys")
    page.click("#new-key-done")
    expect(reveal).to_be_hidden()
    expect(page.locator("#new-key-private")).to_have_value("")

    keys = user.get("/api/ssh-keys").json()["keys"]
    assert len(keys) == 1 and keys[0]["name"] == "laptop"
    authorized = user.get("/api/ssh-keys/authorized").text
    assert keys[0]["public_key"].split()[1] in authorized

    # a stored key is offered in the ssh form
    page.click('.type-tile[data-type="ssh"]')
    page.select_option("#cfg-auth_method", "ssh_key")
    expect(page.locator("#cfg-ssh_key_id option", has_text="laptop")).to_have_count(1)
    page.click("#conn-cancel")

    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#keys-msg")).to_have_text("Key “laptop” deleted.")
    expect(page.locator("#keys-table tbody")).to_contain_text("You have no SSH keys yet.")
    assert user.get("/api/ssh-keys").json()["keys"] == []


@pytest.mark.parametrize(
    "path", ["/connections", "/terminal/connect?connection=x", "/vnc/connect", "/sftp?connection=x", "/browser"]
)
def test_pages_need_a_session(base_url: str, path: str) -> None:
    resp = httpx.get(base_url + path, follow_redirects=False, timeout=10)
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/login?next=")


def test_pending_viewer_says_so(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    user = make_user()
    made = user.post(
        "/api/connections", json={"name": "vm console", "type": "spice", "host": "127.0.0.1", "port": 5930}
    ).json()
    sign_in(user.username, user.password)
    page.goto(f"/spice/connect?connection={made['id']}")
    expect(page.locator("#pending-name")).to_have_text("vm console")
    expect(page.locator("#pending-address")).to_have_text("127.0.0.1:5930")
    expect(page.locator("#pending-note")).to_contain_text("not available yet")


def test_another_users_connection_is_not_found(page: Any, make_user: Callable[..., UserClient], sign_in: Any) -> None:
    owner = make_user()
    theirs = owner.post(
        "/api/connections",
        json={"name": "private", "type": "ssh", "host": "127.0.0.1", "config": {"username": "x", "password": "y"}},
    ).json()
    other = make_user()
    sign_in(other.username, other.password)
    page.goto(f"/terminal/connect?connection={theirs['id']}")
    expect(page.locator("#viewer-msg")).to_be_visible()
    expect(page.locator("#viewer-msg")).to_have_attribute("class", _starts("msg msg-error"))
    expect(page.locator("#viewer-status")).to_have_attribute("data-state", "closed")
    expect(page.locator("#viewer-title")).to_have_text("Terminal")
    expect(page.locator("#term-reconnect")).to_be_hidden()


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/static/vendor/@xterm/xterm/lib/xterm.mjs", 200, "text/javascript"),
        ("/static/vendor/@xterm/xterm/css/xterm.css", 200, "text/css"),
        ("/static/vendor/@xterm/addon-fit/lib/addon-fit.mjs", 200, "text/javascript"),
        ("/static/vendor/@novnc/novnc/core/rfb.js", 200, "text/javascript"),
        ("/static/vendor/@novnc/novnc/vendor/pako/lib/zlib/inflate.js", 200, "text/javascript"),
        ("/static/vendor/@novnc/novnc/package.json", 404, None),
        ("/static/vendor/@xterm/xterm/package.json", 404, None),
        ("/static/vendor/@xterm/xterm/src/browser/Terminal.ts", 404, None),
    ],
)
def test_vendor_modules_are_served(base_url: str, path: str, status: int, content_type: str | None) -> None:
    """Only the directories the pages load, with a JavaScript MIME type (modules are refused otherwise)."""
    resp = httpx.get(base_url + path, timeout=10)
    assert resp.status_code == status
    if content_type:
        assert resp.headers["content-type"].startswith(content_type)
