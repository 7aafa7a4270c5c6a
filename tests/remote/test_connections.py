"""``/api/connections``: each user's private connections, their secrets, and the viewer they open.

All calls go to the real server; what the server keeps at rest is read from its database (and
decrypted with the test server's own master key where a test must know the stored value).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from portal.core.crypto import Keyring, load_master_keys
from tests import aio
from tests.accounts.support import assert_error
from tests.conftest import UserClient
from tests.portal_server import PortalServer

MakeUser = Callable[..., UserClient]
Json = dict[str, Any]
CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{16}$")
VIEW_FIELDS = {
    "id",
    "name",
    "type",
    "host",
    "port",
    "config",
    "is_pinned",
    "icon",
    "viewer",
    "created_at",
    "updated_at",
    "last_used_at",
}


def create(user: UserClient, **body: Any) -> Json:
    body.setdefault("name", "conn-" + secrets.token_hex(3))
    body.setdefault("type", "ssh")
    if body["type"] != "terminal":
        body.setdefault("host", "10.0.0.5")
    if body["type"] == "ssh":
        body.setdefault("config", {"username": "admin"})
    resp = user.post("/api/connections", json=body)
    assert resp.status_code == 201, resp.text
    created: Json = resp.json()
    return created


def listed(user: UserClient) -> list[Json]:
    resp = user.get("/api/connections")
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"connections"}
    connections: list[Json] = resp.json()["connections"]
    return connections


def get(user: UserClient, connection_id: str) -> Json:
    resp = user.get(f"/api/connections/{connection_id}")
    assert resp.status_code == 200, resp.text
    body: Json = resp.json()
    return body


def update(user: UserClient, connection_id: str, **body: Any) -> Json:
    resp = user.put(f"/api/connections/{connection_id}", json=body)
    assert resp.status_code == 200, resp.text
    updated: Json = resp.json()
    return updated


def connect(user: UserClient, connection_id: str) -> Json:
    resp = user.get(f"/api/connections/{connection_id}/connect")
    assert resp.status_code == 200, resp.text
    info: Json = resp.json()
    return info


def stored_secrets(portal: PortalServer, connection_id: str) -> Json:
    """The decrypted secrets the server keeps for a connection ({} when none are stored)."""
    env = portal.shared.env()
    if "PORTAL_DATABASE_URL" in env:
        import asyncpg

        async def fetch() -> str | None:
            conn = await asyncpg.connect(env["PORTAL_DATABASE_URL"])
            try:
                value: str | None = await conn.fetchval(
                    "SELECT secrets_enc FROM remote_connections WHERE id = $1", connection_id
                )
                return value
            finally:
                await conn.close()

        encrypted = aio.run(fetch())
    else:
        path = portal.shared.data_dir / "portal.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT secrets_enc FROM remote_connections WHERE id = ?", (connection_id,)).fetchone()
        assert row is not None, connection_id
        encrypted = row[0]
    if encrypted is None:
        return {}
    keyring = Keyring(load_master_keys(portal.shared.secret_key, portal.shared.data_dir))
    secrets_: Json = json.loads(keyring.decrypt(encrypted))
    return secrets_


# -- create and read -------------------------------------------------------------------------------
def test_create_returns_the_redacted_connection(make_user: MakeUser) -> None:
    user = make_user()
    password = "pw-canary-" + secrets.token_hex(8)
    resp = user.post(
        "/api/connections",
        json={
            "name": "  My Home Server ",
            "type": "ssh",
            "host": "192.168.1.100",
            "config": {"username": "admin", "auth_method": "password", "password": password},
        },
    )
    assert resp.status_code == 201, resp.text
    assert password not in resp.text
    body = resp.json()
    assert set(body) == VIEW_FIELDS
    assert CONNECTION_ID.match(body["id"])
    assert body["name"] == "My Home Server"
    assert (body["type"], body["host"], body["port"]) == ("ssh", "192.168.1.100", 22)
    assert body["config"] == {
        "username": "admin",
        "auth_method": "password",
        "term": "xterm-256color",
        "has_password": True,
        "has_private_key": False,
        "has_passphrase": False,
    }
    assert body["is_pinned"] is False
    assert (body["icon"], body["viewer"]) == ("terminal", "terminal")
    assert body["last_used_at"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert get(user, body["id"]) == body
    assert listed(user) == [body]


def test_ids_are_opaque_random_strings(make_user: MakeUser) -> None:
    user = make_user()
    ids = [create(user, type="vnc")["id"] for _ in range(6)]
    assert len(set(ids)) == len(ids)
    for connection_id in ids:
        assert CONNECTION_ID.match(connection_id), connection_id
        assert not connection_id.isdigit()
    # not a counter: no two consecutive ids share a prefix the way sequential values would
    assert len({i[:4] for i in ids}) >= len(ids) - 1


@pytest.mark.parametrize(
    ("type_", "port"),
    [
        ("ssh", 22),
        ("telnet", 23),
        ("vnc", 5900),
        ("rdp", 3389),
        ("spice", 5900),
        ("proxmox", 8006),
        ("http", 80),
        ("https", 443),
        ("http_proxy", 8080),
        ("grafana", 3000),
        ("portainer", 9443),
        ("database", 5432),
        ("redis", 6379),
        ("mongodb", 27017),
        ("elasticsearch", 9200),
        ("mediamtx", 8888),
        ("stream", 8888),
    ],
)
def test_the_port_defaults_to_the_types_port(make_user: MakeUser, type_: str, port: int) -> None:
    user = make_user()
    assert create(user, type=type_)["port"] == port
    assert create(user, type=type_, port=15000)["port"] == 15000


@pytest.mark.parametrize("type_", ["tcp_tunnel", "custom"])
def test_types_without_a_default_port_need_one(make_user: MakeUser, type_: str) -> None:
    user = make_user()
    assert_error(
        user.post("/api/connections", json={"name": "t", "type": type_, "host": "10.0.0.1"}), 400, field="port"
    )
    assert create(user, type=type_, port=5432)["port"] == 5432


BAD_BODIES: list[tuple[Json, str]] = [
    ({"host": "http://x"}, "host"),
    ({"host": "a b"}, "host"),
    ({"host": "nas.lan:22"}, "host"),
    ({"host": "nas.lan/admin"}, "host"),
    ({"host": ""}, "host"),
    ({"host": None}, "host"),
    ({"host": "x" * 256}, "host"),
    ({"type": "nope"}, "type"),
    ({"type": ""}, "type"),
    ({"type": None}, "type"),
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"port": -22}, "port"),
    ({"port": "ssh"}, "port"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 101}, "name"),
    ({"name": None}, "name"),
    ({"owner_id": 1}, "owner_id"),
    ({"id": "aaaaaaaaaaaaaaaa"}, "id"),
    ({"config": "username=admin"}, "config"),
    ({"config": {}}, "config.username"),
    ({"config": {"username": ""}}, "config.username"),
    ({"config": {"username": "admin", "colour": "red"}}, "config.colour"),
    ({"config": {"username": "admin", "auth_method": "magic"}}, "config.auth_method"),
    ({"config": {"username": "admin", "password": 12345}}, "config.password"),
    ({"config": {"username": "admin", "password": "p" * 1025}}, "config.password"),
    ({"config": {"username": "admin", "auth_method": "ssh_key"}}, "config.ssh_key_id"),
    ({"config": {"username": "admin", "auth_method": "ssh_key", "ssh_key_id": 2_000_000_000}}, "config.ssh_key_id"),
    ({"config": {"username": "admin", "ssh_key_id": 99_999_999_999}}, "config.ssh_key_id"),
    ({"config": {"username": "admin", "ssh_key_id": -1}}, "config.ssh_key_id"),
    ({"config": {"username": "admin", "ssh_key_id": "1"}}, "config.ssh_key_id"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES)
def test_invalid_connections_are_refused_with_the_field(make_user: MakeUser, change: Json, field: str) -> None:
    user = make_user()
    body = {"name": "bad", "type": "ssh", "host": "10.0.0.5", "config": {"username": "admin"}, **change}
    assert_error(user.post("/api/connections", json=body), 400, field=field)
    assert listed(user) == []


def test_config_errors_name_the_field_in_the_message(make_user: MakeUser) -> None:
    user = make_user()
    body = {"name": "x", "type": "ssh", "host": "10.0.0.5", "config": {"username": ""}}
    assert_error(
        user.post("/api/connections", json=body),
        400,
        "Invalid config.username: String should have at least 1 character",
        field="config.username",
    )


def test_config_fields_of_other_types_are_refused(make_user: MakeUser) -> None:
    user = make_user()
    cases: list[tuple[str, Json, str]] = [
        ("vnc", {"username": "admin"}, "config.username"),
        ("telnet", {"password": "x"}, "config.password"),
        ("redis", {"db": 16}, "config.db"),
        ("database", {"engine": "oracle"}, "config.engine"),
        ("http", {"scheme": "ftp"}, "config.scheme"),
        ("mediamtx", {"protocol": "smtp"}, "config.protocol"),
        ("tcp_tunnel", {"anything": 1}, "config.anything"),
        ("http", {"path": "/" * 501}, "config.path"),
    ]
    for type_, config, field in cases:
        body = {"name": "bad", "type": type_, "host": "10.0.0.5", "port": 1234, "config": config}
        assert_error(user.post("/api/connections", json=body), 400, field=field)
    assert listed(user) == []


def test_host_is_stored_normalised(make_user: MakeUser) -> None:
    user = make_user()
    assert create(user, host="  NAS.Example.LAN. ")["host"] == "nas.example.lan"
    assert create(user, host="[2001:DB8::1]")["host"] == "2001:db8::1"


def test_a_connection_needs_a_login(base_url: str) -> None:
    assert_error(httpx.get(base_url + "/api/connections", timeout=10), 401)
    assert_error(httpx.post(base_url + "/api/connections", json={"name": "x", "type": "vnc"}, timeout=10), 401)


# -- secrets ---------------------------------------------------------------------------------------
def test_secrets_are_never_returned(make_user: MakeUser) -> None:
    user = make_user()
    password = "pw-canary-" + secrets.token_hex(8)
    private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-canary-" + secrets.token_hex(8)
    body = create(
        user,
        type="ssh",
        config={"username": "admin", "auth_method": "key", "private_key": private_key, "passphrase": password},
    )
    connection_id = body["id"]
    assert body["config"]["has_private_key"] is True and body["config"]["has_passphrase"] is True
    assert body["config"]["has_password"] is False
    responses = [
        user.get("/api/connections"),
        user.get(f"/api/connections/{connection_id}"),
        user.get(f"/api/connections/{connection_id}/connect"),
        user.put(f"/api/connections/{connection_id}", json={"name": "renamed"}),
        user.put(f"/api/connections/{connection_id}", json={"config": {"username": "bob"}}),
        user.post(f"/api/connections/{connection_id}/pin"),
        user.get("/api/activity"),
    ]
    for resp in responses:
        assert resp.status_code == 200, resp.text
        for secret in (password, private_key, "key-canary", "pw-canary"):
            assert secret not in resp.text, (resp.request.url, resp.text)


def test_secrets_are_encrypted_at_rest(portal: PortalServer, make_user: MakeUser, db_dump: Callable[[], bytes]) -> None:
    user = make_user()
    username = "user-canary-" + secrets.token_hex(6)
    password = "pw-canary-" + secrets.token_hex(12)
    token_secret = "token-canary-" + secrets.token_hex(12)
    ssh = create(user, type="ssh", config={"username": username, "password": password})
    proxmox = create(user, type="proxmox", config={"api_token_id": "root@pam!portal", "api_token_secret": token_secret})
    dump = db_dump()
    assert username.encode() in dump  # plain config fields are stored as they are: this is the right database
    for secret in (password, token_secret):
        assert secret.encode() not in dump, f"{secret!r} is stored in plain text"
    assert stored_secrets(portal, ssh["id"]) == {"password": password}
    assert stored_secrets(portal, proxmox["id"]) == {"api_token_secret": token_secret}


def test_update_merges_config_and_keeps_secrets(portal: PortalServer, make_user: MakeUser) -> None:
    user = make_user()
    password = "pw-" + secrets.token_hex(8)
    connection_id = create(user, config={"username": "alice", "password": password, "shell": "/bin/sh"})["id"]

    # omitting the password keeps it, and changing the username keeps has_password
    body = update(user, connection_id, config={"username": "bob"})
    assert body["config"]["username"] == "bob"
    assert body["config"]["shell"] == "/bin/sh"  # fields not sent are kept too
    assert body["config"]["has_password"] is True
    assert stored_secrets(portal, connection_id) == {"password": password}

    # "" (an untouched password input) keeps it as well
    body = update(user, connection_id, config={"password": "", "term": "vt100"})
    assert (body["config"]["has_password"], body["config"]["term"]) == (True, "vt100")
    assert stored_secrets(portal, connection_id) == {"password": password}

    # a new value replaces it
    new_password = "pw-" + secrets.token_hex(8)
    body = update(user, connection_id, config={"password": new_password, "passphrase": "pp"})
    assert (body["config"]["has_password"], body["config"]["has_passphrase"]) == (True, True)
    assert stored_secrets(portal, connection_id) == {"password": new_password, "passphrase": "pp"}

    # null clears a secret, and a plain field
    body = update(user, connection_id, config={"password": None, "shell": None})
    assert body["config"]["has_password"] is False and body["config"]["has_passphrase"] is True
    assert "shell" not in body["config"]
    assert stored_secrets(portal, connection_id) == {"passphrase": "pp"}
    body = update(user, connection_id, config={"passphrase": None})
    assert stored_secrets(portal, connection_id) == {}
    assert get(user, connection_id) == body


def test_update_changes_name_host_and_port(make_user: MakeUser) -> None:
    user = make_user()
    created = create(user, type="vnc", config={"password": "vnc-pw"})
    body = update(user, created["id"], name=" Desk ", host="Desk.LAN", port=5901)
    assert (body["name"], body["host"], body["port"]) == ("Desk", "desk.lan", 5901)
    assert body["config"] == {"has_password": True, "view_only": False}
    assert body["created_at"] == created["created_at"]
    assert datetime.fromisoformat(body["updated_at"]) >= datetime.fromisoformat(created["updated_at"])
    assert update(user, created["id"], port=5902)["host"] == "desk.lan"
    assert update(user, created["id"], host="10.1.1.1")["port"] == 5902


def test_invalid_updates_are_refused_and_change_nothing(make_user: MakeUser) -> None:
    user = make_user()
    before = create(user, config={"username": "alice", "password": "secret"})
    cid = before["id"]
    cases: list[tuple[Json, str | None]] = [
        ({}, None),
        ({"type": "vnc"}, "type"),
        ({"host": "http://x"}, "host"),
        ({"host": "a b"}, "host"),
        ({"host": ""}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"config": {"username": ""}}, "config.username"),
        ({"config": {"username": None}}, "config.username"),
        ({"config": {"colour": "red"}}, "config.colour"),
        ({"config": {"auth_method": "ssh_key"}}, "config.ssh_key_id"),
        ({"config": {"ssh_key_id": 2_000_000_000}}, "config.ssh_key_id"),
        ({"name": "ok", "config": {"colour": "red"}}, "config.colour"),
    ]
    for body, field in cases:
        resp = user.put(f"/api/connections/{cid}", json=body)
        assert_error(resp, 400, field=field)
    assert get(user, cid) == before


# -- pinning and order -----------------------------------------------------------------------------
def test_pin_toggles_and_pinned_connections_come_first_then_by_name(make_user: MakeUser) -> None:
    user = make_user()
    ids = {name: create(user, name=name, type="vnc")["id"] for name in ("beta", "Alpha", "delta", "Charlie", "echo")}
    assert [c["name"] for c in listed(user)] == ["Alpha", "beta", "Charlie", "delta", "echo"]

    for name in ("echo", "Charlie"):
        resp = user.post(f"/api/connections/{ids[name]}/pin")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"is_pinned": True}
    order = listed(user)
    assert [c["name"] for c in order] == ["Charlie", "echo", "Alpha", "beta", "delta"]
    assert [c["is_pinned"] for c in order] == [True, True, False, False, False]
    assert get(user, ids["echo"])["is_pinned"] is True

    assert user.post(f"/api/connections/{ids['Charlie']}/pin").json() == {"is_pinned": False}
    assert [c["name"] for c in listed(user)] == ["echo", "Alpha", "beta", "Charlie", "delta"]
    update(user, ids["echo"], name="aardvark")  # renaming keeps the pin
    assert [c["name"] for c in listed(user)][:2] == ["aardvark", "Alpha"]


# -- connect ---------------------------------------------------------------------------------------
VIEWER_URLS = {
    "ssh": "/terminal/connect",
    "telnet": "/terminal/connect",
    "vnc": "/vnc/connect",
    "rdp": "/vnc/connect",
    "spice": "/spice/connect",
    "proxmox": "/proxmox/connect",
    "http": "/browser",
    "https": "/browser",
    "http_proxy": "/browser",
    "grafana": "/browser",
    "mediamtx": "/media/connect",
    "stream": "/media/connect",
}
NO_VIEWER = ["database", "redis", "mongodb", "elasticsearch", "tcp_tunnel", "custom"]


@pytest.mark.parametrize("type_", sorted(VIEWER_URLS))
def test_connect_names_the_viewer_of_the_routing_table(root: UserClient, make_user: MakeUser, type_: str) -> None:
    user = make_user()
    types = user.get("/api/connections/types").json()["types"]
    created = create(user, type=type_, host="10.0.0.7")
    info = connect(user, created["id"])
    assert set(info) == {"connection", "websocket_url", "viewer", "viewer_url", "ssh_public_key", "info"}
    assert info["viewer_url"] == f"{VIEWER_URLS[type_]}?connection={created['id']}"
    assert info["viewer"] == types[type_]["viewer"]
    expected_ws = f"/ws/user-connection/{created['id']}" if types[type_]["relay"] else None
    assert info["websocket_url"] == expected_ws
    assert info["info"] is None and info["ssh_public_key"] is None
    assert info["connection"] == {k: created[k] for k in ("id", "type", "name", "host", "port", "config")}


def test_connect_to_a_local_terminal(root: UserClient) -> None:
    created = create(root, type="terminal", name="here " + secrets.token_hex(3), config={"shell": "/bin/bash"})
    assert (created["host"], created["port"]) == ("", None)
    info = connect(root, created["id"])
    assert info["viewer_url"] == f"/terminal/connect?connection={created['id']}"
    assert info["websocket_url"] == f"/ws/user-connection/{created['id']}"
    assert info["connection"]["config"] == {"shell": "/bin/bash"}
    assert root.delete(f"/api/connections/{created['id']}").status_code == 200


@pytest.mark.parametrize("type_", NO_VIEWER)
def test_connect_without_a_viewer_gives_the_address(make_user: MakeUser, type_: str) -> None:
    user = make_user()
    created = create(user, type=type_, host="db.lan", port=15432)
    info = connect(user, created["id"])
    assert info["viewer_url"] is None and info["viewer"] is None
    assert info["websocket_url"] == f"/ws/user-connection/{created['id']}"  # a TCP tunnel is still offered
    assert info["info"]["host"] == "db.lan" and info["info"]["port"] == 15432
    assert info["info"]["address"] == "db.lan:15432"
    assert "db.lan:15432" in info["info"]["message"]
    ipv6 = connect(user, create(user, type=type_, host="fd00::5", port=6379)["id"])
    assert ipv6["info"]["address"] == "[fd00::5]:6379"


def test_connect_marks_the_connection_used(make_user: MakeUser) -> None:
    user = make_user()
    created = create(user, type="vnc")
    assert created["last_used_at"] is None
    connect(user, created["id"])
    used = get(user, created["id"])["last_used_at"]
    assert used is not None
    assert datetime.fromisoformat(used) >= datetime.fromisoformat(created["created_at"])


def test_connect_shows_the_public_key_of_the_users_ssh_key(make_user: MakeUser) -> None:
    user = make_user()
    key = user.post("/api/ssh-keys", json={"name": "laptop"})
    assert key.status_code == 201, key.text
    key_id, public_key = key.json()["id"], key.json()["public_key"]
    created = create(user, config={"username": "admin", "auth_method": "ssh_key", "ssh_key_id": key_id})
    assert created["config"]["ssh_key_id"] == key_id
    info = connect(user, created["id"])
    assert info["ssh_public_key"] == public_key
    assert info["connection"]["config"]["ssh_key_id"] == key_id
    assert key.json()["private_key"] not in info["connection"]["config"].values()
    # a password connection has none
    assert connect(user, create(user)["id"])["ssh_public_key"] is None
    # the key can be switched off again
    update(user, created["id"], config={"auth_method": "password", "ssh_key_id": None})
    assert connect(user, created["id"])["ssh_public_key"] is None


def test_another_users_ssh_key_cannot_be_referenced(make_user: MakeUser) -> None:
    owner, other = make_user(), make_user()
    key_id = owner.post("/api/ssh-keys", json={"name": "mine"}).json()["id"]
    body = {"name": "x", "type": "ssh", "host": "10.0.0.5", "config": {"username": "a", "ssh_key_id": key_id}}
    assert_error(other.post("/api/connections", json=body), 400, field="config.ssh_key_id")
    own = create(other)
    assert_error(
        other.put(f"/api/connections/{own['id']}", json={"config": {"ssh_key_id": key_id}}),
        400,
        field="config.ssh_key_id",
    )
    assert get(other, own["id"]) == own
    assert listed(other) == [own]


# -- who may see and change a connection -----------------------------------------------------------
def test_only_the_owner_sees_changes_or_uses_a_connection(make_user: MakeUser) -> None:
    owner = make_user()
    created = create(owner, config={"username": "admin", "password": "pw"})
    cid = created["id"]
    for other in (make_user(), make_user("moderator"), make_user("admin")):
        assert listed(other) == []
        assert_error(other.get(f"/api/connections/{cid}"), 404, "Connection not found")
        assert_error(other.put(f"/api/connections/{cid}", json={"name": "mine now"}), 404, "Connection not found")
        assert_error(other.post(f"/api/connections/{cid}/pin"), 404, "Connection not found")
        assert_error(other.get(f"/api/connections/{cid}/connect"), 404, "Connection not found")
        assert_error(other.delete(f"/api/connections/{cid}"), 404, "Connection not found")
        # the same answer as for an id that does not exist, so ids cannot be confirmed
        assert_error(other.get("/api/connections/AAAAAAAAAAAAAAAA"), 404, "Connection not found")
    assert get(owner, cid) == created
    assert listed(owner) == [created]


def test_the_superadmin_does_not_see_other_users_connections(root: UserClient, make_user: MakeUser) -> None:
    user = make_user()
    created = create(user)
    assert created["id"] not in {c["id"] for c in listed(root)}
    assert_error(root.get(f"/api/connections/{created['id']}"), 404)


def test_only_admins_may_create_a_terminal_connection(make_user: MakeUser) -> None:
    for role in ("user", "moderator"):
        user = make_user(role)
        assert_error(user.post("/api/connections", json={"name": "t", "type": "terminal"}), 403, contains="admin")
        assert listed(user) == []
    admin = make_user("admin")
    created = create(admin, type="terminal")
    assert created["type"] == "terminal" and created["viewer"] == "terminal"


def test_delete_removes_the_connection(make_user: MakeUser) -> None:
    user = make_user()
    keep, gone = create(user, name="keep"), create(user, name="gone")
    resp = user.delete(f"/api/connections/{gone['id']}")
    assert resp.status_code == 200 and resp.json() == {"success": True}
    for path in ("", "/connect"):
        assert_error(user.get(f"/api/connections/{gone['id']}{path}"), 404)
    assert_error(user.put(f"/api/connections/{gone['id']}", json={"name": "back"}), 404)
    assert_error(user.post(f"/api/connections/{gone['id']}/pin"), 404)
    assert_error(user.delete(f"/api/connections/{gone['id']}"), 404)
    assert listed(user) == [keep]


def test_activity_records_creation_and_deletion(make_user: MakeUser) -> None:
    user = make_user()
    name = "act-" + secrets.token_hex(3)
    created = create(user, name=name, type="vnc")
    user.delete(f"/api/connections/{created['id']}").raise_for_status()
    resp = user.get("/api/activity")
    assert resp.status_code == 200, resp.text
    actions = [(a["action"], a["details"]) for a in resp.json()["activities"] if a["user_id"] == user.id]
    assert ("connection_created", f"vnc {name}") in actions
    assert ("connection_deleted", name) in actions
    assert actions.index(("connection_deleted", name)) < actions.index(("connection_created", f"vnc {name}"))


# -- API keys and cookie sessions ------------------------------------------------------------------
def api_key_client(user: UserClient, base_url: str, scopes: str) -> httpx.Client:
    created = user.post("/api/api-keys", json={"name": "conn-" + scopes, "scopes": scopes})
    assert created.status_code == 201, created.text
    return httpx.Client(base_url=base_url, headers={"X-API-Key": created.json()["api_key"]}, timeout=10)


def test_api_keys_need_the_connections_scopes(make_user: MakeUser, base_url: str) -> None:
    user = make_user()
    created = create(user, type="vnc")
    cid = created["id"]
    body = {"name": "via key", "type": "vnc", "host": "10.0.0.9"}
    with api_key_client(user, base_url, "profile:read") as key:
        assert_error(key.get("/api/connections"), 403)
        assert_error(key.get(f"/api/connections/{cid}"), 403)
        assert_error(key.get(f"/api/connections/{cid}/connect"), 403)
        assert_error(key.post("/api/connections", json=body), 403)
    with api_key_client(user, base_url, "connections:read") as key:
        resp = key.get("/api/connections")
        assert resp.status_code == 200 and [c["id"] for c in resp.json()["connections"]] == [cid]
        assert key.get(f"/api/connections/{cid}").status_code == 200
        assert key.get(f"/api/connections/{cid}/connect").status_code == 200
        assert_error(key.post("/api/connections", json=body), 403)
        assert_error(key.put(f"/api/connections/{cid}", json={"name": "no"}), 403)
        assert_error(key.post(f"/api/connections/{cid}/pin"), 403)
        assert_error(key.delete(f"/api/connections/{cid}"), 403)
    with api_key_client(user, base_url, "connections") as key:
        resp = key.post("/api/connections", json=body)
        assert resp.status_code == 201, resp.text
        assert key.delete(f"/api/connections/{resp.json()['id']}").status_code == 200
    assert listed(user)[0]["name"] == created["name"] and len(listed(user)) == 1


def test_cookie_sessions_must_send_the_csrf_token(make_user: MakeUser, base_url: str) -> None:
    user = make_user()
    with httpx.Client(base_url=base_url, timeout=10) as browser:
        login = browser.post("/login", json={"username": user.username, "password": user.password})
        assert login.status_code == 200, login.text
        body = {"name": "from the page", "type": "vnc", "host": "10.0.0.9"}
        assert_error(browser.post("/api/connections", json=body), 403, contains="CSRF")
        assert browser.get("/api/connections").json() == {"connections": []}
        token = {"X-CSRF-Token": browser.cookies["portal_csrf"]}
        created = browser.post("/api/connections", json=body, headers=token)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        assert_error(browser.put(f"/api/connections/{cid}", json={"name": "x"}), 403, contains="CSRF")
        assert_error(browser.post(f"/api/connections/{cid}/pin"), 403, contains="CSRF")
        assert_error(browser.delete(f"/api/connections/{cid}"), 403, contains="CSRF")
        assert browser.get(f"/api/connections/{cid}").json()["name"] == "from the page"
        assert browser.delete(f"/api/connections/{cid}", headers=token).status_code == 200


# -- bounds ----------------------------------------------------------------------------------------
def test_a_user_has_at_most_200_connections(make_user: MakeUser) -> None:
    user = make_user()
    for i in range(200):
        resp = user.post("/api/connections", json={"name": f"c{i}", "type": "vnc", "host": "10.0.0.1"})
        assert resp.status_code == 201, (i, resp.text)
    assert_error(user.post("/api/connections", json={"name": "one more", "type": "vnc", "host": "10.0.0.1"}), 409)
    assert len(listed(user)) == 200


def test_using_or_pinning_a_connection_is_not_an_update(make_user: MakeUser) -> None:
    user = make_user()
    created = create(user, type="vnc")
    connect(user, created["id"])
    user.post(f"/api/connections/{created['id']}/pin").raise_for_status()
    after = get(user, created["id"])
    assert after["last_used_at"] is not None and after["is_pinned"] is True
    assert after["updated_at"] == created["updated_at"]
