"""The SSH terminal relay against a real OpenSSH server: ``/ws/user-connection/{id}`` for users'
own connections and ``/ws/ssh/{service_id}`` for admin services, in the JSON terminal protocol."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import UserClient
from tests.peers.base import free_port
from tests.peers.sshd import ClientKey, SshServer
from tests.portal_server import PortalServer
from tests.remote.terminal_client import TerminalClient

MakeUser = Callable[..., UserClient]
Json = dict[str, Any]
PROMPT_TIMEOUT = 15.0


def ssh_connection(user: UserClient, server: SshServer, *, port: int | None = None, **config: Any) -> str:
    """A new ssh connection of ``user`` to ``server`` (password login unless ``config`` says otherwise)."""
    config.setdefault("username", server.username)
    if config.get("auth_method", "password") == "password":
        config.setdefault("password", server.password)
    body = {
        "name": "ssh-" + secrets.token_hex(3),
        "type": "ssh",
        "host": server.host,
        "port": port or server.port,
        "config": config,
    }
    resp = user.post("/api/connections", json=body)
    assert resp.status_code == 201, resp.text
    connection_id: str = resp.json()["id"]
    return connection_id


def shell_ready(term: TerminalClient) -> None:
    """The login shell answers: a command's output comes back (prompts differ between shells)."""
    term.run("echo ready-$((40+2))", r"ready-42", timeout=PROMPT_TIMEOUT)


def relay_sessions(root: UserClient, user: UserClient, kind: str = "ssh") -> list[Json]:
    resp = root.get("/api/admin/relay-sessions", params={"user_id": user.id, "kind": kind})
    assert resp.status_code == 200, resp.text
    sessions: list[Json] = resp.json()["sessions"]
    return sessions


# -- logins ----------------------------------------------------------------------------------------
def test_password_login_runs_a_command(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{ssh_connection(user, ssh_server)}")
    term.run("echo $((6*7))", r"[\r\n]42\r\n", timeout=PROMPT_TIMEOUT)
    term.run("whoami", rf"[\r\n]{ssh_server.username}\r\n")
    assert [f for f in term.frames if f["type"] == "error"] == []


def test_private_key_login(
    ssh_server: SshServer, ssh_client_key: ClientKey, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    ssh_server.authorize(ssh_client_key.public_line)
    user = make_user()
    conn = ssh_connection(user, ssh_server, auth_method="key", private_key=ssh_client_key.private_openssh)
    term = terminals(user, f"/ws/user-connection/{conn}")
    term.run("echo key-$((6*7))", r"[\r\n]key-42\r\n", timeout=PROMPT_TIMEOUT)
    assert f"publickey for {ssh_server.username}" in ssh_server.log()


def test_stored_ssh_key_login(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    made = user.post("/api/ssh-keys", json={"name": "laptop"})
    assert made.status_code == 201, made.text
    key = made.json()
    ssh_server.authorize(key["public_key"])
    conn = ssh_connection(user, ssh_server, auth_method="ssh_key", ssh_key_id=key["id"], private_key=key["private_key"])
    term = terminals(user, f"/ws/user-connection/{conn}")
    term.run("echo stored-$((6*7))", r"[\r\n]stored-42\r\n", timeout=PROMPT_TIMEOUT)
    assert key["fingerprint"] in ssh_server.log()


def test_wrong_password_is_a_clear_error(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    conn = ssh_connection(user, ssh_server, password="not-the-password")
    message, code = terminals(user, f"/ws/user-connection/{conn}").error_and_close()
    assert code == 1011
    assert message == f"SSH authentication failed for {ssh_server.username}@{ssh_server.host}"


def test_a_deleted_ssh_key_is_refused(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    key = user.post("/api/ssh-keys", json={"name": "revoked"}).json()
    ssh_server.authorize(key["public_key"])
    conn = ssh_connection(user, ssh_server, auth_method="ssh_key", ssh_key_id=key["id"], private_key=key["private_key"])
    assert user.delete(f"/api/ssh-keys/{key['id']}").status_code == 200
    message, code = terminals(user, f"/ws/user-connection/{conn}").error_and_close()
    assert code == 1011
    assert "deleted (revoked)" in message, message


def test_an_unreachable_backend_is_an_error_and_1011(
    make_user: MakeUser, ssh_server: SshServer, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    closed_port = free_port()
    conn = ssh_connection(user, ssh_server, port=closed_port)
    message, code = terminals(user, f"/ws/user-connection/{conn}").error_and_close()
    assert code == 1011
    assert message.startswith(f"Could not connect to 127.0.0.1:{closed_port}"), message


# -- host keys -------------------------------------------------------------------------------------
def test_host_key_pinned_on_first_use_and_a_changed_key_refused(
    make_ssh_server: Callable[..., SshServer], make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    server = make_ssh_server()
    user = make_user()
    conn = ssh_connection(user, server)
    first = terminals(user, f"/ws/user-connection/{conn}")
    shell_ready(first)
    first.close()
    again = terminals(user, f"/ws/user-connection/{conn}")  # the pinned key still matches
    shell_ready(again)
    again.close()

    old = server.host_key_fingerprint
    assert server.rotate_host_key() != old
    message, code = terminals(user, f"/ws/user-connection/{conn}").error_and_close()
    assert code == 1011
    assert message.startswith(f"The host key of {server.host}:{server.port} changed (pinned {old})"), message
    assert "refusing to connect" in message
    assert "DELETE /api/connections/{id}/host-key" in message
    # the pin belongs to this user: someone else meets the new key for the first time and pins it
    other = make_user()
    shell_ready(terminals(other, f"/ws/user-connection/{ssh_connection(other, server)}"))
    # the owner sees the old pin, forgets it, and the next connection pins the new key
    pinned = user.get(f"/api/connections/{conn}/host-key").json()
    assert (pinned["pinned"], pinned["fingerprint"]) == (True, old)
    assert pinned["public_key"].startswith("ssh-ed25519 ")
    assert other.get(f"/api/connections/{conn}/host-key").status_code == 404  # not theirs
    assert other.delete(f"/api/connections/{conn}/host-key").status_code == 404
    assert user.delete(f"/api/connections/{conn}/host-key").json() == {"removed": True}
    assert user.delete(f"/api/connections/{conn}/host-key").json() == {"removed": False}
    assert user.get(f"/api/connections/{conn}/host-key").json()["pinned"] is False
    shell_ready(terminals(user, f"/ws/user-connection/{conn}"))
    assert user.get(f"/api/connections/{conn}/host-key").json()["fingerprint"] == server.host_key_fingerprint
    assert "ssh_host_key_forgotten" in [a["action"] for a in user.get("/api/activity").json()["activities"]]


# -- the terminal protocol -------------------------------------------------------------------------
def test_resize_changes_the_terminal_size(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{ssh_connection(user, ssh_server)}")
    term.run("stty size", r"[\r\n]24 80\r\n", timeout=PROMPT_TIMEOUT)  # the default before any resize
    term.resize(132, 43)
    term.run("stty size", r"[\r\n]43 132\r\n")
    term.resize(1000, 1)
    term.run("stty size", r"[\r\n]1 1000\r\n")


def test_ping_pong_and_bad_frames_keep_the_session_usable(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{ssh_connection(user, ssh_server)}")
    shell_ready(term)
    term.ping()
    bad: list[tuple[str | bytes, str]] = [
        ("not json", "Invalid JSON"),
        ("[1, 2]", "A frame must be a JSON object with a 'type'"),
        ('{"type": "launch"}', "Unknown message type: 'launch'"),
        ('{"type": "input"}', "data"),
        ('{"type": "input", "data": 5}', "data"),
        ('{"type": "resize", "cols": 0, "rows": 24}', "cols"),
        ('{"type": "resize", "cols": 80, "rows": 1001}', "rows"),
        ('{"type": "resize", "cols": "80", "rows": 24}', "cols"),
        ('{"type": "input", "data": "' + "x" * 300_000 + '"}', "Frame too large"),
        (b"\x00\x01binary", "Send JSON text frames, not binary ones"),
    ]
    for raw, expected in bad:
        term.send_raw(raw)
        error = term.wait_frame("error")
        assert expected in error["message"], (raw[:40], error)
    term.ping()
    term.run("echo still-$((6*7))", r"[\r\n]still-42\r\n")
    term.run("stty size", r"[\r\n]24 80\r\n")  # the refused resizes changed nothing


def test_utf8_output_survives(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    """Multi-byte characters arrive whole even when a read splits them (thousands of them here)."""
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{ssh_connection(user, ssh_server)}")
    shell_ready(term)
    term.type("export LANG=C.UTF-8\r")
    term.type("printf 'é€😀%.0s' $(seq 1 20000); echo; echo done-$((6*7))\r")
    term.wait_output(r"[\r\n]done-42\r\n", timeout=30)
    assert "é€😀" * 20000 in term.output
    assert "\ufffd" not in term.output


def test_shell_override_runs_instead_of_the_login_shell_and_ends_the_session(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    conn = ssh_connection(user, ssh_server, shell="echo override-$((6*7)) $0; tty")
    term = terminals(user, f"/ws/user-connection/{conn}")
    code, reason = term.wait_closed(PROMPT_TIMEOUT)
    assert (code, reason) == (1000, "session ended")
    assert "override-42" in term.output
    assert "/dev/pts/" in term.output  # the command got a PTY too
    assert [f for f in term.frames if f["type"] == "error"] == []


def test_exiting_the_shell_closes_the_websocket(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{ssh_connection(user, ssh_server)}")
    shell_ready(term)
    term.type("exit\r")
    assert term.wait_closed() == (1000, "session ended")


def _shell_pid(term: TerminalClient) -> int:
    match = term.run("echo pid-$$", r"[\r\n]pid-(\d+)\r\n", timeout=PROMPT_TIMEOUT)
    pid = int(match.group(1))
    assert psutil.pid_exists(pid)  # sshd runs on this machine: the login shell is a local process
    return pid


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_the_backend_session_ends_when_the_browser_leaves(
    root: UserClient, ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    conn = ssh_connection(user, ssh_server)
    term = terminals(user, f"/ws/user-connection/{conn}")
    pid = _shell_pid(term)
    typed = "echo counted-bytes\r"
    term.type(typed)
    term.wait_output("counted-bytes\r\n")
    term.close()
    assert _gone(pid), f"the login shell {pid} outlived the browser"

    deadline = time.monotonic() + 10
    while True:
        sessions = relay_sessions(root, user)
        if sessions and not sessions[0]["active"]:
            break
        assert time.monotonic() < deadline, sessions
        time.sleep(0.1)
    (record,) = sessions
    assert record["connection_id"] == conn and record["service_id"] is None
    assert record["kind"] == "ssh" and record["target"] == f"{ssh_server.host}:{ssh_server.port}"
    assert record["close_reason"] == "browser closed"
    assert record["bytes_in"] == len("echo pid-$$\r") + len(typed)  # everything typed
    assert record["bytes_out"] >= len(term.output.encode())  # the output of the shell, at least what we read
    assert record["duration_seconds"] > 0


def test_a_session_record_counts_the_bytes_of_a_finished_shell(
    root: UserClient, ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    conn = ssh_connection(user, ssh_server, shell="head -c 100000 /dev/zero | tr '\\0' x")
    term = terminals(user, f"/ws/user-connection/{conn}")
    assert term.wait_closed(PROMPT_TIMEOUT) == (1000, "session ended")
    assert term.output == "x" * 100_000
    deadline = time.monotonic() + 10
    while not (sessions := relay_sessions(root, user)) or sessions[0]["active"]:
        assert time.monotonic() < deadline, sessions
        time.sleep(0.1)
    assert sessions[0]["bytes_out"] == 100_000
    assert sessions[0]["bytes_in"] == 0
    assert sessions[0]["close_reason"] == "session ended"


def _written(pid: int) -> int:
    return int(psutil.Process(pid).io_counters().write_chars)


def test_a_reader_that_stops_stops_the_remote_writer(
    portal: PortalServer, ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    """Back-pressure end to end: while the browser reads nothing, the program writing to the
    terminal blocks (the portal neither buffers the stream nor drops it), and it all arrives later."""
    total = 64 * 1024 * 1024
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{ssh_connection(user, ssh_server)}")
    shell = _shell_pid(term)
    assert portal.proc is not None
    portal_rss = psutil.Process(portal.proc.pid).memory_info().rss
    since = len(term.output)
    term.type(f"head -c {total} /dev/zero | tr '\\0' '\\170'; echo; echo done-$((6*7))\r")  # \170 is x
    deadline = time.monotonic() + 20
    writer = None
    while writer is None:
        writer = next((p for p in psutil.Process(shell).children(recursive=True) if p.name() == "tr"), None)
        assert time.monotonic() < deadline, "tr did not start"
        time.sleep(0.05)
    before = -1
    while (now := _written(writer.pid)) != before:  # the client reads nothing now
        assert time.monotonic() < deadline, f"tr kept writing: {now} bytes"
        before = now
        time.sleep(1.0)
    assert 0 < now < total // 2, now  # stalled: what is in flight is bounded (socket buffers, SSH window)
    time.sleep(1.0)
    assert _written(writer.pid) == now
    assert psutil.Process(portal.proc.pid).memory_info().rss - portal_rss < 32 * 1024 * 1024
    term.wait_output(r"[\r\n]done-42\r\n", timeout=120)
    output = term.output
    assert output[since : output.rindex("done-42")].count("x") == total


# -- who may connect -------------------------------------------------------------------------------
def test_another_users_connection_is_refused(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    owner, intruder = make_user(), make_user()
    conn = ssh_connection(owner, ssh_server)
    logins = ssh_server.log().count("Accepted password")
    message, code = terminals(intruder, f"/ws/user-connection/{conn}").error_and_close()
    assert (code, message) == (4404, "Connection not found")
    admin = make_user("admin")  # not even an admin uses someone else's connection
    assert terminals(admin, f"/ws/user-connection/{conn}").wait_closed()[0] == 4404
    assert ssh_server.log().count("Accepted password") == logins  # no SSH login was attempted


def test_origin_and_authentication_are_checked(
    portal: PortalServer, ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    path = f"/ws/user-connection/{ssh_connection(user, ssh_server)}"
    assert terminals(user, path, origin="http://evil.example").wait_closed()[0] == 4403
    assert terminals(None, path).wait_closed()[0] == 4401
    assert terminals(None, path, headers={"Authorization": "Bearer not-a-token"}).wait_closed()[0] == 4401
    same_origin = terminals(user, path, origin=portal.base_url)
    shell_ready(same_origin)


def test_the_eleventh_socket_of_a_user_is_refused(
    ssh_server: SshServer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    conn = ssh_connection(user, ssh_server)
    ten = [terminals(user, f"/ws/user-connection/{conn}") for _ in range(10)]
    for term in ten:
        shell_ready(term)
    eleventh = terminals(user, f"/ws/user-connection/{conn}")
    message, code = eleventh.error_and_close()
    assert code == 4429
    assert message == "At most 10 connections per user"
    ten[0].close()
    deadline = time.monotonic() + 10
    while True:  # the slot comes back once the relay behind the closed socket ended
        term = terminals(user, f"/ws/user-connection/{conn}")
        with contextlib.suppress(AssertionError, ConnectionClosed):
            shell_ready(term)
            break
        assert time.monotonic() < deadline, "the freed slot was not reusable"
        time.sleep(0.2)
    ten[1].ping()


# -- admin services --------------------------------------------------------------------------------
@pytest.fixture
def ssh_service(root: UserClient, ssh_server: SshServer) -> Iterator[Json]:
    body = {
        "name": "ssh-svc-" + secrets.token_hex(3),
        "plugin": "ssh",
        "host": ssh_server.host,
        "port": ssh_server.port,
        "config": {"username": ssh_server.username, "password": ssh_server.password},
    }
    resp = root.post("/api/services", json=body)
    assert resp.status_code == 201, resp.text
    service: Json = resp.json()
    yield service
    root.delete(f"/api/services/{service['id']}")


def test_service_path_relays_to_an_admin_ssh_service(
    root: UserClient, ssh_service: Json, terminals: Callable[..., TerminalClient]
) -> None:
    term = terminals(root, f"/ws/ssh/{ssh_service['id']}")
    term.run("echo service-$((6*7))", r"[\r\n]service-42\r\n", timeout=PROMPT_TIMEOUT)
    term.resize(100, 30)
    term.run("stty size", r"[\r\n]30 100\r\n")


def test_service_path_must_match_the_service_plugin(
    root: UserClient, ssh_service: Json, terminals: Callable[..., TerminalClient]
) -> None:
    message, code = terminals(root, f"/ws/telnet/{ssh_service['id']}").error_and_close()
    assert code == 4400
    assert message == f"Service {ssh_service['id']} is not a telnet service"
