"""The terminal viewer: an SSH connection made in the Connections tab opens xterm.js on the real
sshd peer; typed commands run, the PTY follows the window size, copy/paste and reconnect work."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import UserClient
from tests.e2e.conftest import cookie_session, shot
from tests.peers.sshd import SshServer

pytestmark = pytest.mark.e2e

SCREEN_JS = """() => {
  const buffer = window.portalTerminal.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines.join("\\n");
}"""
LINE_JS = """(wanted) => {
  const buffer = window.portalTerminal.buffer.active;
  for (let i = 0; i < buffer.length; i++) {
    if (buffer.getLine(i).translateToString(true).trim() === wanted) return true;
  }
  return false;
}"""


def wait_for_line(page: Any, wanted: str, timeout: float = 15_000) -> None:
    """Wait until a whole terminal line reads ``wanted`` (the echoed command line never does)."""
    try:
        page.wait_for_function(LINE_JS, arg=wanted, timeout=timeout)
    except Exception as exc:
        raise AssertionError(f"{wanted!r} never appeared; screen:\n{page.evaluate(SCREEN_JS)}") from exc


def run(page: Any, command: str) -> None:
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def open_terminal(page: Any, ssh_server: SshServer) -> Any:
    """Create the connection through the form, press Connect, return the viewer's page."""
    page.goto("/connections")
    page.click('.type-tile[data-type="ssh"]')
    page.fill("#conn-name", "peer shell")
    page.fill("#conn-host", ssh_server.host)
    page.fill("#conn-port", str(ssh_server.port))
    page.fill("#cfg-username", ssh_server.username)
    page.fill("#cfg-password", ssh_server.password)
    page.click("#conn-save")
    expect(page.locator("#conn-dialog")).to_be_hidden()
    item = page.locator("#connection-list .conn-item", has_text="peer shell")
    with page.context.expect_page() as opened:
        item.get_by_role("button", name="Connect").click()
    viewer = opened.value
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    return viewer


def test_ssh_terminal_runs_commands_and_follows_resizes(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    viewer = open_terminal(page, ssh_server)
    assert "/terminal/connect?connection=" in viewer.url
    expect(viewer.locator("#viewer-title")).to_have_text("peer shell")
    expect(viewer.locator("#viewer-address")).to_have_text(f"{ssh_server.host}:{ssh_server.port}")

    run(viewer, "echo $((6*7))")
    wait_for_line(viewer, "42")
    shot(viewer, "e2e-terminal")

    # the PTY has the size the fitted terminal has, and follows the window
    cols, rows = viewer.evaluate("() => [window.portalTerminal.cols, window.portalTerminal.rows]")
    run(viewer, "echo SIZE:$(stty size)")
    wait_for_line(viewer, f"SIZE:{rows} {cols}")
    viewer.set_viewport_size({"width": 760, "height": 480})
    viewer.wait_for_function(f"() => window.portalTerminal.cols < {cols} && window.portalTerminal.rows < {rows}")
    new_cols, new_rows = viewer.evaluate("() => [window.portalTerminal.cols, window.portalTerminal.rows]")
    run(viewer, "clear; echo SIZE:$(stty size)")
    wait_for_line(viewer, f"SIZE:{new_rows} {new_cols}")

    # the session is recorded for the user's connection
    connection_id = viewer.url.rsplit("=", 1)[1]
    assert user.get(f"/api/connections/{connection_id}").json()["last_used_at"] is not None


def test_copy_paste_and_reconnect(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    viewer = open_terminal(page, ssh_server)

    run(viewer, "echo copy-$((20+3))")
    wait_for_line(viewer, "copy-23")
    viewer.evaluate("() => window.portalTerminal.selectAll()")
    viewer.click("#term-copy")
    expect(viewer.locator("#term-copy")).to_have_text("Copied")
    copied = viewer.evaluate("() => navigator.clipboard.readText()")
    assert "copy-23" in copied

    viewer.evaluate("() => navigator.clipboard.writeText('echo pasted-$((1+1))')")
    viewer.click("#term-paste")
    # the page pastes, then gives the terminal the focus back: only then does Enter go to the shell
    viewer.wait_for_function("() => document.activeElement?.classList.contains('xterm-helper-textarea')")
    viewer.keyboard.press("Enter")
    wait_for_line(viewer, "pasted-2")

    # the remote shell ends: the status bar says so and offers to reconnect
    run(viewer, "exit")
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "closed", timeout=15_000)
    expect(viewer.locator("#viewer-status")).to_contain_text("Closed")
    reconnect = viewer.locator("#term-reconnect")
    expect(reconnect).to_be_visible()
    reconnect.click()
    expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(reconnect).to_be_hidden()
    run(viewer, "echo again-$((2*4))")
    wait_for_line(viewer, "again-8")


def test_error_frames_are_shown(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    """A wrong password: the relay's error frame reaches the message area and the status bar."""
    user = make_user()
    made = user.post(
        "/api/connections",
        json={
            "name": "wrong password",
            "type": "ssh",
            "host": ssh_server.host,
            "port": ssh_server.port,
            "config": {"username": ssh_server.username, "password": "not-the-password"},
        },
    )
    assert made.status_code == 201, made.text
    sign_in(user.username, user.password)
    page.goto(f"/terminal/connect?connection={made.json()['id']}")
    expect(page.locator("#viewer-status")).to_have_attribute("data-state", "closed", timeout=20_000)
    message = page.locator("#viewer-msg")
    expect(message).to_be_visible()
    expect(message).to_have_attribute("role", "alert")
    assert message.inner_text().strip()
    expect(page.locator("#term-reconnect")).to_be_visible()


def test_local_shell_for_admins(page: Any, root: UserClient, base_url: str) -> None:
    shells = root.get("/api/shells").json()
    if not shells["shells"]:
        pytest.fail("no allowed shell exists on this host")
    cookie_session(page, base_url, root.username, root.password)
    page.goto(f"/terminal/connect?local=1&shell={shells['default']}")
    expect(page.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(page.locator("#viewer-title")).to_contain_text("Local shell")
    run(page, "echo local-$((5*5))")
    wait_for_line(page, "local-25")


def test_ssh_service_in_the_terminal(
    page: Any, root: UserClient, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    """An admin-defined SSH service opens through /ws/ssh/{id}, with the service's own credentials."""
    made = root.post(
        "/api/services",
        json={
            "name": f"shared shell {secrets.token_hex(3)}",
            "plugin": "ssh",
            "host": ssh_server.host,
            "port": ssh_server.port,
            "config": {"username": ssh_server.username, "password": ssh_server.password},
        },
    )
    assert made.status_code == 201, made.text
    service = made.json()
    try:
        user = make_user()
        sign_in(user.username, user.password)
        page.goto("/connections")
        link = page.locator(f'#service-list [data-service-id="{service["id"]}"]').get_by_role("link", name="Open")
        with page.context.expect_page() as opened:
            link.click()
        viewer = opened.value
        expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
        expect(viewer.locator("#viewer-title")).to_have_text(service["name"])
        run(viewer, "echo service-$((3*3))")
        wait_for_line(viewer, "service-9")
    finally:
        root.delete(f"/api/services/{service['id']}")


def test_local_terminal_connection_from_the_form(page: Any, root: UserClient, base_url: str) -> None:
    """Admins get the local terminal type; its shell is chosen from GET /api/shells."""
    shells = root.get("/api/shells").json()["shells"]
    cookie_session(page, base_url, root.username, root.password)
    page.goto("/connections")
    page.click('.type-tile[data-type="terminal"]')
    expect(page.locator("#conn-address")).to_be_hidden()
    options = page.locator("#cfg-shell option")
    expect(options).to_have_count(len(shells) + 1)
    page.select_option("#cfg-shell", shells[-1])
    name = f"local {secrets.token_hex(3)}"
    page.fill("#conn-name", name)
    page.click("#conn-save")
    expect(page.locator("#conn-dialog")).to_be_hidden()
    saved = next(c for c in root.get("/api/connections").json()["connections"] if c["name"] == name)
    try:
        assert saved["config"]["shell"] == shells[-1]
        with page.context.expect_page() as opened:
            page.locator("#connection-list .conn-item", has_text=name).get_by_role("button", name="Connect").click()
        viewer = opened.value
        expect(viewer.locator("#viewer-status")).to_have_attribute("data-state", "connected", timeout=20_000)
        run(viewer, "echo form-$((4*4))")
        wait_for_line(viewer, "form-16")
    finally:
        root.delete(f"/api/connections/{saved['id']}")


def test_forget_the_pinned_host_key_from_the_connections_tab(
    page: Any, make_user: Callable[..., UserClient], sign_in: Any, ssh_server: SshServer
) -> None:
    user = make_user()
    sign_in(user.username, user.password)
    page.on("dialog", lambda dialog: dialog.accept())
    viewer = open_terminal(page, ssh_server)  # the first connection pins the host key
    run(viewer, "echo pinned-$((40+2))")
    wait_for_line(viewer, "pinned-42")  # the SSH session is up, so the key is pinned
    viewer.close()
    conn_id = user.get("/api/connections").json()["connections"][0]["id"]
    assert user.get(f"/api/connections/{conn_id}/host-key").json()["fingerprint"] == ssh_server.host_key_fingerprint
    item = page.locator("#connection-list .conn-item", has_text="peer shell")
    item.get_by_role("button", name="Forget host key").click()
    expect(page.locator(".toast").last).to_contain_text(f"Forgot the host key {ssh_server.host_key_fingerprint}")
    assert user.get(f"/api/connections/{conn_id}/host-key").json() == {
        "pinned": False,
        "key_type": None,
        "fingerprint": None,
        "public_key": None,
        "pinned_at": None,
    }
    item.get_by_role("button", name="Forget host key").click()
    expect(page.locator(".toast").last).to_contain_text("No host key is pinned")
