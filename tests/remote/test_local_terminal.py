"""The local terminal (``/ws/terminal/local``): a shell on the portal host for admins only, from
the allowed list that ``GET /api/shells`` returns."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from urllib.parse import quote

import psutil

from portal.config import Settings
from tests.chat.conftest import assert_api_error
from tests.conftest import UserClient
from tests.portal_server import PortalServer
from tests.remote.terminal_client import TerminalClient

MakeUser = Callable[..., UserClient]
PATH = "/ws/terminal/local"


def expected_shells() -> list[str]:
    """The default PORTAL_TERMINAL_SHELLS, computed here, minus those missing on this machine."""
    configured = Settings.model_fields["terminal_shells"].default.split(",")
    return [s for s in configured if os.path.isfile(s) and os.access(s, os.X_OK)]


def test_shells_lists_the_allowed_shells_present_here(root: UserClient, make_user: MakeUser) -> None:
    shells = expected_shells()
    assert "/bin/bash" in shells and "/bin/sh" in shells  # Debian always has both
    for admin in (root, make_user("admin")):
        resp = admin.get("/api/shells")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"shells": shells, "default": shells[0]}


def test_shells_is_for_admins_only(make_user: MakeUser) -> None:
    for role in ("user", "moderator"):
        assert_api_error(make_user(role).get("/api/shells"), 403)


def test_shells_needs_the_connections_read_scope(portal: PortalServer, root: UserClient) -> None:
    import httpx

    narrow = root.post("/api/api-keys", json={"name": "no-connections", "scopes": "chat:read"})
    assert narrow.status_code == 201, narrow.text
    resp = httpx.get(portal.base_url + "/api/shells", headers={"X-API-Key": narrow.json()["api_key"]})
    assert_api_error(resp, 403, "connections:read")
    wide = root.post("/api/api-keys", json={"name": "connections", "scopes": "connections:read"})
    resp = httpx.get(portal.base_url + "/api/shells", headers={"X-API-Key": wide.json()["api_key"]})
    assert resp.status_code == 200 and resp.json()["default"] == expected_shells()[0], resp.text


def test_an_admin_gets_a_login_shell(make_user: MakeUser, terminals: Callable[..., TerminalClient]) -> None:
    admin = make_user("admin")
    term = terminals(admin, PATH)
    term.run("echo hi", r"[\r\n]hi\r\n", timeout=15)
    term.run("echo $0", r"[\r\n]/bin/bash\r\n")  # the default shell
    term.run("shopt -q login_shell && echo login-shell", r"[\r\n]login-shell\r\n")
    term.run("tty", r"[\r\n]/dev/pts/\d+\r\n")
    term.run("stty size", r"[\r\n]24 80\r\n")
    term.resize(120, 40)
    term.run("stty size", r"[\r\n]40 120\r\n")
    term.ping()
    # the portal's own environment (its master key among it) stays out of the shell
    term.run("echo key=${PORTAL_SECRET_KEY:-unset}", r"[\r\n]key=unset\r\n")
    # job control works: the shell has the PTY as its controlling terminal
    term.run("sleep 30 & echo job-$!", r"[\r\n]job-\d+\r\n")
    term.run("jobs", r"\[1\]\+\s+Running\s+sleep 30 &")


def test_an_allowed_shell_can_be_chosen(root: UserClient, terminals: Callable[..., TerminalClient]) -> None:
    term = terminals(root, PATH + "?shell=" + quote("/bin/sh"))
    term.run('echo "[$0]"', r"\[/bin/sh\]\r\n", timeout=15)  # dash may print its prompt late
    term.run("echo sh-$((6*7))", r"sh-42\r\n")


def test_a_shell_outside_the_list_is_refused(root: UserClient, terminals: Callable[..., TerminalClient]) -> None:
    for shell in ("/usr/bin/python3", "/bin/bash -c id", "bash", "/nonexistent/zsh"):
        message, code = terminals(root, PATH + "?shell=" + quote(shell)).error_and_close()
        assert code == 4400, shell
        assert message == f"Shell {shell!r} is not allowed; see GET /api/shells"


def test_non_admins_are_refused(make_user: MakeUser, terminals: Callable[..., TerminalClient]) -> None:
    for role in ("user", "moderator"):
        message, code = terminals(make_user(role), PATH).error_and_close()
        assert (code, message) == (4403, "Only admins may use Local Terminal")


def test_origin_is_checked(portal: PortalServer, root: UserClient, terminals: Callable[..., TerminalClient]) -> None:
    assert terminals(root, PATH, origin="http://evil.example").wait_closed()[0] == 4403
    terminals(root, PATH, origin=portal.base_url).run("echo ok-$((1+1))", r"[\r\n]ok-2\r\n", timeout=15)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running")


def test_leaving_kills_the_shell_and_its_jobs(root: UserClient, terminals: Callable[..., TerminalClient]) -> None:
    term = terminals(root, PATH)
    shell = int(term.run("echo pid-$$", r"[\r\n]pid-(\d+)\r\n", timeout=15).group(1))
    job = int(term.run("sleep 300 & echo job-$!", r"[\r\n]job-(\d+)\r\n").group(1))
    held = int(term.run("(trap '' HUP; exec sleep 301) & echo held-$!", r"[\r\n]held-(\d+)\r\n").group(1))
    assert all(psutil.pid_exists(p) for p in (shell, job, held))
    term.close()
    for pid in (shell, job, held):  # the one ignoring SIGHUP is killed after the grace period
        _wait_gone(pid)


def test_exit_closes_the_websocket(root: UserClient, terminals: Callable[..., TerminalClient]) -> None:
    term = terminals(root, PATH)
    term.run("echo up-$((2*3))", r"[\r\n]up-6\r\n", timeout=15)
    term.type("exit\r")
    assert term.wait_closed() == (1000, "session ended")


def test_a_session_is_recorded(root: UserClient, make_user: MakeUser, terminals: Callable[..., TerminalClient]) -> None:
    admin = make_user("admin")
    term = terminals(admin, PATH)
    term.run("echo rec", r"[\r\n]rec\r\n", timeout=15)
    term.type("exit\r")
    term.wait_closed()
    deadline = time.monotonic() + 10
    while True:
        resp = root.get("/api/admin/relay-sessions", params={"user_id": admin.id, "kind": "terminal"})
        sessions = resp.json()["sessions"]
        if sessions and not sessions[0]["active"]:
            break
        assert time.monotonic() < deadline, sessions
        time.sleep(0.1)
    (record,) = sessions
    assert record["target"] == "local" and record["close_reason"] == "session ended"
    assert record["bytes_in"] == len("echo rec\r") + len("exit\r")
    assert record["bytes_out"] == len(term.output.encode())
