"""The VNC viewer: noVNC through the portal's relay to the Xvfb + x11vnc peer, whose whole screen is
one known colour, so the canvas proves the remote screen arrived."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient
from tests.e2e.conftest import shot
from tests.peers.vnc import VncServer

pytestmark = pytest.mark.e2e

PIXEL_JS = """([x, y]) => {
  const canvas = document.querySelector("#vnc-screen canvas");
  if (!canvas || !canvas.width) return null;
  const data = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
  return [data[0], data[1], data[2], canvas.width, canvas.height];
}"""
COLOR_JS = """([x, y, r, g, b]) => {
  const canvas = document.querySelector("#vnc-screen canvas");
  if (!canvas || canvas.width < 2) return false;
  const d = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
  return d[0] === r && d[1] === g && d[2] === b;
}"""


def wait_for_screen(page: Any, server: VncServer) -> None:
    """Wait until the centre and a corner of the canvas have the peer's colour."""
    r, g, b = server.expected_color
    for x, y in ((server.width // 2, server.height // 2), (5, 5)):
        try:
            page.wait_for_function(COLOR_JS, arg=[x, y, r, g, b], timeout=20_000)
        except Exception as exc:
            raise AssertionError(f"canvas pixel at {x},{y}: {page.evaluate(PIXEL_JS, [x, y])}") from exc


def add_vnc_connection(page: Any, server: VncServer, name: str, password: str | None = None) -> None:
    page.goto("/connections")
    page.click('.type-tile[data-type="vnc"]')
    expect(page.locator("#conn-port")).to_have_value("5900")
    page.fill("#conn-name", name)
    page.fill("#conn-host", server.host)
    page.fill("#conn-port", str(server.port))
    if password:
        page.fill("#cfg-password", password)
    page.click("#conn-save")
    expect(page.locator("#conn-dialog")).to_be_hidden()


def connect(page: Any, name: str) -> Any:
    item = page.locator("#connection-list .conn-item", has_text=name)
    with page.context.expect_page() as opened:
        item.get_by_role("button", name="Connect").click()
    return opened.value


def test_canvas_shows_the_remote_screen(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, vnc_server: VncServer
) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    add_vnc_connection(page, vnc_server, "red desktop")
    viewer = connect(page, "red desktop")
    assert "/vnc/connect?connection=" in viewer.url
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(viewer.locator("#viewer-title")).to_have_text("red desktop")
    wait_for_screen(viewer, vnc_server)
    size = viewer.evaluate(PIXEL_JS, [0, 0])
    assert size is not None and size[3:] == [vnc_server.width, vnc_server.height]
    # the page asked for the `binary` subprotocol and the relay echoed it
    assert viewer.evaluate("() => window.portalRfb._sock._websocket.protocol") == "binary"
    shot(viewer, "e2e-vnc")

    # Ctrl-Alt-Del goes out without breaking the session
    cad = viewer.locator("#vnc-cad")
    expect(cad).to_be_enabled()
    cad.click()
    viewer.wait_for_timeout(300)
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected")

    # scaling toggles noVNC's scaleViewport
    scale = viewer.locator("#vnc-scale")
    expect(scale).to_have_attribute("aria-pressed", "true")
    assert viewer.evaluate("() => window.portalRfb.scaleViewport") is True
    scale.click()
    expect(scale).to_have_attribute("aria-pressed", "false")
    assert viewer.evaluate("() => window.portalRfb.scaleViewport") is False
    scale.click()
    assert viewer.evaluate("() => window.portalRfb.scaleViewport") is True

    # the clipboard panel: remote text shows up, local text is sent
    viewer.click("#vnc-clipboard-toggle")
    expect(viewer.locator("#vnc-clipboard")).to_be_visible()
    viewer.evaluate(
        "() => window.portalRfb.dispatchEvent(new CustomEvent('clipboard', {detail: {text: 'from remote'}}))"
    )
    expect(viewer.locator("#vnc-clipboard-text")).to_have_value("from remote")
    viewer.fill("#vnc-clipboard-text", "to remote")
    viewer.click("#vnc-clipboard-send")
    expect(viewer.locator("#viewer-msg")).to_have_text("Clipboard sent to the remote desktop.")
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected")

    # leaving the page closes the relay session
    viewer.close()


def test_stored_password_is_used_by_the_relay(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    assert server.password
    user = make_user()
    sign_in(user.username, user.password)
    add_vnc_connection(page, server, "locked desktop", password=server.password)
    viewer = connect(page, "locked desktop")
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    wait_for_screen(viewer, server)
    expect(viewer.locator("#vnc-password-dialog")).to_be_hidden()


def test_password_prompt_without_a_stored_password(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    assert server.password
    user = make_user()
    made = user.post(
        "/api/connections", json={"name": "ask me", "type": "vnc", "host": server.host, "port": server.port}
    )
    assert made.status_code == 201, made.text
    sign_in(user.username, user.password)
    page.goto(f"/vnc/connect?connection={made.json()['id']}")
    dialog = page.locator("#vnc-password-dialog")
    expect(dialog).to_be_visible(timeout=20_000)
    page.fill("#vnc-password", server.password)
    page.click("#vnc-password-send")
    expect(page.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    wait_for_screen(page, server)


def test_wrong_password_is_reported(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    user = make_user()
    made = user.post(
        "/api/connections", json={"name": "ask me", "type": "vnc", "host": server.host, "port": server.port}
    )
    sign_in(user.username, user.password)
    page.goto(f"/vnc/connect?connection={made.json()['id']}")
    expect(page.locator("#vnc-password-dialog")).to_be_visible(timeout=20_000)
    page.fill("#vnc-password", "wrong")
    page.click("#vnc-password-send")
    expect(page.locator("#viewer-status")).to_have_attribute("data-state", "closed", timeout=20_000)
    expect(page.locator("#viewer-msg")).to_contain_text("Authentication failed")
    expect(page.locator("#vnc-reconnect")).to_be_visible()


def test_vnc_service(
    page: Any, root: UserClient, make_user: Callable[..., UserClient], sign_in: Any, vnc_server: VncServer
) -> None:
    """An admin-defined VNC service: /vnc/connect?service= relays through /ws/vnc/{id}."""
    made = root.post(
        "/api/services",
        json={
            "name": f"shared desk {secrets.token_hex(3)}",
            "plugin": "vnc",
            "host": vnc_server.host,
            "port": vnc_server.port,
        },
    )
    assert made.status_code == 201, made.text
    service = made.json()
    try:
        user = make_user()
        sign_in(user.username, user.password)
        page.goto(f"/vnc/connect?service={service['id']}")
        expect(page.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
        expect(page.locator("#viewer-title")).to_have_text(service["name"])
        wait_for_screen(page, vnc_server)
    finally:
        root.delete(f"/api/services/{service['id']}")
