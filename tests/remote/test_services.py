"""``/api/services``: admin-defined services, who sees them, and the live health probe.

The session portal is shared, so every test names its services uniquely and checks for them
(and their absence) in lists rather than comparing whole lists.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.accounts.support import assert_error
from tests.conftest import UserClient
from tests.peers.echo import EchoServer
from tests.portal_server import PortalServer, free_port

MakeUser = Callable[..., UserClient]
Json = dict[str, Any]
USER_FIELDS = {"id", "name", "plugin", "path", "icon", "category", "description", "enabled", "websocket_url"}
ADMIN_FIELDS = USER_FIELDS | {"host", "port", "min_role", "scope", "config"}


def tag() -> str:
    return secrets.token_hex(4)


def create(admin: UserClient, **body: Any) -> Json:
    body.setdefault("name", "svc " + tag())
    body.setdefault("plugin", "vnc")
    if body["plugin"] != "terminal":
        body.setdefault("host", "10.0.0.5")
    resp = admin.post("/api/services", json=body)
    assert resp.status_code == 201, resp.text
    created: Json = resp.json()
    return created


def ids_listed(client: UserClient | httpx.Client) -> set[int]:
    resp = client.get("/api/services")
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"services"}
    return {s["id"] for s in resp.json()["services"]}


def audit(root: UserClient, action: str, service_id: int) -> list[Json]:
    resp = root.get(
        "/api/admin/audit-log", params={"action": action, "target_type": "service", "target_id": str(service_id)}
    )
    assert resp.status_code == 200, resp.text
    entries: list[Json] = resp.json()["entries"]
    return entries


def health(client: UserClient, service_id: int) -> Json:
    resp = client.get(f"/api/services/{service_id}/health")
    assert resp.status_code == 200, resp.text
    body: Json = resp.json()
    assert set(body) == {"healthy", "latency_ms", "detail"}
    return body


def key_client(user: UserClient, base_url: str, scopes: str) -> httpx.Client:
    made = user.post("/api/api-keys", json={"name": "svc", "scopes": scopes})
    assert made.status_code == 201, made.text
    return httpx.Client(base_url=base_url, headers={"X-API-Key": made.json()["api_key"]}, timeout=10)


# -- admin CRUD ------------------------------------------------------------------------------------
def test_admin_creates_a_service_with_a_path_from_its_name(root: UserClient, make_user: MakeUser) -> None:
    admin = make_user("admin")
    t = tag()
    resp = admin.post(
        "/api/services",
        json={
            "name": f"  Home Server {t} ",
            "plugin": "ssh",
            "host": "192.168.1.10",
            "config": {"username": "admin", "password": "pw"},
            "description": "the NAS",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == ADMIN_FIELDS
    assert isinstance(body["id"], int)
    assert body["name"] == f"Home Server {t}"
    assert body["path"] == f"/home-server-{t}"
    assert (body["plugin"], body["host"], body["port"]) == ("ssh", "192.168.1.10", 22)
    assert (body["icon"], body["category"], body["description"]) == ("terminal", "Servers", "the NAS")
    assert body["enabled"] is True and body["min_role"] == "user" and body["scope"] is None
    assert body["websocket_url"] == f"/ws/ssh/{body['id']}"
    assert body["config"] == {
        "username": "admin",
        "auth_method": "password",
        "term": "xterm-256color",
        "has_password": True,
        "has_private_key": False,
        "has_passphrase": False,
    }
    assert admin.get(f"/api/services/{body['id']}").json() == body
    [entry] = audit(root, "service_created", body["id"])
    assert entry["actor_id"] == admin.id and entry["actor_username"] == admin.username
    assert entry["target_label"] == body["name"]
    assert entry["details"] == {"plugin": "ssh", "path": body["path"]}


def test_explicit_paths_icons_and_categories(root: UserClient) -> None:
    t = tag()
    body = create(root, name="Desk", path=f"/Desk-{t}", icon="monitor", category="Office", plugin="vnc")
    assert body["path"] == f"/desk-{t}"  # paths are lowercase
    assert (body["icon"], body["category"], body["port"]) == ("monitor", "Office", 5900)
    tunnel = create(root, plugin="tcp_tunnel", port=5432)
    assert tunnel["websocket_url"] == f"/ws/tunnel/{tunnel['id']}"
    web = create(root, plugin="grafana")
    assert web["websocket_url"] is None and web["port"] == 3000  # the embedded browser needs no relay


def test_paths_from_long_or_exotic_names_are_still_valid(root: UserClient) -> None:
    long_name = "A very long service name " * 4
    body = create(root, name=long_name[:90] + tag())
    assert re.fullmatch(r"/[a-z0-9][a-z0-9_-]{0,63}", body["path"]), body["path"]
    symbols = create(root, name="★ " + tag() + " ★")
    assert re.fullmatch(r"/[0-9a-f]{8}", symbols["path"]), symbols["path"]


def test_a_path_is_used_once(root: UserClient) -> None:
    t = tag()
    first = create(root, name=f"Same {t}")
    assert_error(
        root.post("/api/services", json={"name": f"same {t}", "plugin": "vnc", "host": "h"}), 409, field="path"
    )
    assert_error(
        root.post("/api/services", json={"name": "other", "plugin": "vnc", "host": "h", "path": first["path"].upper()}),
        409,
        field="path",
    )
    second = create(root, name=f"second {t}")
    assert_error(root.put(f"/api/services/{second['id']}", json={"path": first["path"]}), 409, field="path")
    assert root.put(f"/api/services/{second['id']}", json={"path": second["path"]}).status_code == 200  # its own


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"path": "homeserver"}, "path"),
        ({"path": "/"}, "path"),
        ({"path": "/a/b"}, "path"),
        ({"path": "/home server"}, "path"),
        ({"path": "/-home"}, "path"),
        ({"path": "/../admin"}, "path"),
        ({"path": "/" + "a" * 65}, "path"),
        ({"plugin": "nope"}, "plugin"),
        ({"host": "http://x"}, "host"),
        ({"host": "a b"}, "host"),
        ({"host": None}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"name": "   "}, "name"),
        ({"min_role": "owner"}, "min_role"),
        ({"scope": "Lab Access"}, "scope"),
        ({"config": {"colour": "red"}}, "config.colour"),
        ({"owner_id": 1}, "owner_id"),
    ],
)
def test_invalid_services_are_refused(root: UserClient, change: Json, field: str) -> None:
    name = "bad " + tag()
    body = {"name": name, "plugin": "vnc", "host": "10.0.0.5", **change}
    assert_error(root.post("/api/services", json=body), 400, field=field)
    assert name not in root.get("/api/services").text


def test_ssh_services_need_a_username(root: UserClient) -> None:
    body = {"name": "ssh " + tag(), "plugin": "ssh", "host": "10.0.0.5"}
    assert_error(root.post("/api/services", json=body), 400, field="config.username")


def test_admin_updates_a_service_and_secrets_survive(root: UserClient, make_user: MakeUser) -> None:
    admin = make_user("admin")
    password = "vnc-canary-" + tag()
    created = create(admin, plugin="vnc", config={"password": password})
    sid = created["id"]
    resp = admin.put(
        f"/api/services/{sid}",
        json={"name": " Renamed ", "port": 5901, "description": "moved", "config": {"view_only": True}},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["name"], body["port"], body["host"], body["description"]) == ("Renamed", 5901, "10.0.0.5", "moved")
    assert body["config"] == {"has_password": True, "view_only": True}
    assert password not in resp.text
    body = admin.put(f"/api/services/{sid}", json={"config": {"password": ""}}).json()
    assert body["config"]["has_password"] is True
    body = admin.put(f"/api/services/{sid}", json={"config": {"password": None}}).json()
    assert body["config"]["has_password"] is False
    entries = audit(root, "service_updated", sid)  # newest first
    assert [e["details"] for e in entries] == [
        {"fields": ["config"]},
        {"fields": ["config"]},
        {"fields": ["config", "description", "name", "port"]},
    ]
    assert {(e["actor_id"], e["target_label"]) for e in entries} == {(admin.id, "Renamed")}
    assert_error(admin.put(f"/api/services/{sid}", json={}), 400)
    assert_error(admin.put(f"/api/services/{sid}", json={"plugin": "ssh"}), 400, field="plugin")
    assert_error(admin.put(f"/api/services/{sid}", json={"host": "a b"}), 400, field="host")
    assert_error(admin.put(f"/api/services/{sid}", json={"host": ""}), 400, field="host")
    assert admin.get(f"/api/services/{sid}").json()["host"] == "10.0.0.5"


def test_secrets_of_services_are_never_returned_nor_stored_in_clear(
    root: UserClient, make_user: MakeUser, db_dump: Callable[[], bytes]
) -> None:
    password = "svc-canary-" + tag()
    created = create(root, plugin="database", config={"username": "reader", "password": password})
    user = make_user()
    for resp in (
        root.get("/api/services"),
        root.get(f"/api/services/{created['id']}"),
        user.get("/api/services"),
        user.get(f"/api/services/{created['id']}"),
        root.get("/api/admin/audit-log"),
    ):
        assert resp.status_code == 200, resp.text
        assert password not in resp.text
    assert password.encode() not in db_dump()


def test_admin_deletes_a_service(root: UserClient) -> None:
    created = create(root)
    sid = created["id"]
    resp = root.delete(f"/api/services/{sid}")
    assert resp.status_code == 200 and resp.json() == {"success": True}
    assert_error(root.get(f"/api/services/{sid}"), 404, "Service not found")
    assert_error(root.get(f"/api/services/{sid}/health"), 404)
    assert_error(root.put(f"/api/services/{sid}", json={"name": "back"}), 404)
    assert_error(root.delete(f"/api/services/{sid}"), 404)
    assert sid not in ids_listed(root)
    [entry] = audit(root, "service_deleted", sid)
    assert entry["target_label"] == created["name"] and entry["details"] == {"plugin": "vnc"}


@pytest.mark.parametrize("role", ["user", "moderator"])
def test_only_admins_change_services(root: UserClient, make_user: MakeUser, role: str) -> None:
    member = make_user(role)
    created = create(root)
    sid = created["id"]
    body = {"name": "mine", "plugin": "vnc", "host": "10.0.0.5"}
    assert_error(member.post("/api/services", json=body), 403)
    assert_error(member.put(f"/api/services/{sid}", json={"name": "mine"}), 403)
    assert_error(member.delete(f"/api/services/{sid}"), 403)
    assert root.get(f"/api/services/{sid}").json() == created
    assert "mine" not in {s["name"] for s in root.get("/api/services").json()["services"]}


@pytest.mark.parametrize("service_id", ["0", "-1", "99999999999", "abc"])
def test_odd_ids_are_refused_cleanly(root: UserClient, service_id: str) -> None:
    for resp in (
        root.get(f"/api/services/{service_id}"),
        root.get(f"/api/services/{service_id}/health"),
        root.put(f"/api/services/{service_id}", json={"name": "x"}),
        root.delete(f"/api/services/{service_id}"),
    ):
        assert resp.status_code in (400, 404), resp.text
        assert_error(resp, resp.status_code)


# -- who sees what ---------------------------------------------------------------------------------
def test_users_see_enabled_services_their_role_allows(root: UserClient, make_user: MakeUser) -> None:
    for_all = create(root)
    for_mods = create(root, min_role="moderator")
    for_admins = create(root, min_role="admin")
    for_root = create(root, min_role="superadmin")
    disabled = create(root, enabled=False)
    every = {s["id"] for s in (for_all, for_mods, for_admins, for_root, disabled)}
    expected = {
        "user": {for_all["id"]},
        "moderator": {for_all["id"], for_mods["id"]},
        "admin": every,  # admins manage every service, disabled or not
    }
    for role, ids in expected.items():
        client = make_user(role)
        assert ids_listed(client) & every == ids, role
        for service in (for_all, for_mods, for_admins, for_root, disabled):
            resp = client.get(f"/api/services/{service['id']}")
            if service["id"] in ids:
                assert resp.status_code == 200, resp.text
            else:
                assert_error(resp, 404, "Service not found")
    assert ids_listed(root) & every == every


def test_a_disabled_service_is_hidden_from_users(root: UserClient, make_user: MakeUser) -> None:
    user = make_user()
    created = create(root)
    sid = created["id"]
    assert sid in ids_listed(user)
    root.put(f"/api/services/{sid}", json={"enabled": False}).raise_for_status()
    assert sid not in ids_listed(user)
    assert_error(user.get(f"/api/services/{sid}"), 404)
    assert_error(user.get(f"/api/services/{sid}/health"), 404)
    assert root.get(f"/api/services/{sid}").json()["enabled"] is False
    root.put(f"/api/services/{sid}", json={"enabled": True}).raise_for_status()
    assert user.get(f"/api/services/{sid}").status_code == 200


def test_users_get_no_host_port_or_config(root: UserClient, make_user: MakeUser) -> None:
    created = create(root, plugin="vnc", host="192.168.7.7", config={"password": "x"}, scope="lab")
    user = make_user()
    resp = user.get(f"/api/services/{created['id']}")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == USER_FIELDS
    assert body == {k: created[k] for k in USER_FIELDS}
    listed = next(s for s in user.get("/api/services").json()["services"] if s["id"] == created["id"])
    assert listed == body
    assert "192.168.7.7" not in user.get("/api/services").text
    admin_view = make_user("admin").get(f"/api/services/{created['id']}").json()
    assert set(admin_view) == ADMIN_FIELDS and admin_view["host"] == "192.168.7.7"


def test_api_keys_need_services_read_and_the_services_scope(
    root: UserClient, make_user: MakeUser, base_url: str
) -> None:
    plain = create(root)
    lab = create(root, scope="lab")
    lab_read = create(root, scope="lab:read")
    user = make_user()
    assert {plain["id"], lab["id"], lab_read["id"]} <= ids_listed(user)  # a login session holds every scope
    with key_client(user, base_url, "profile:read") as key:
        assert_error(key.get("/api/services"), 403)
        assert_error(key.get(f"/api/services/{plain['id']}"), 403)
        assert_error(key.get(f"/api/services/{plain['id']}/health"), 403)
    with key_client(user, base_url, "lab") as key:
        assert_error(key.get("/api/services"), 403)  # the service's scope alone is not enough
    with key_client(user, base_url, "services:read") as key:
        seen = ids_listed(key)
        assert plain["id"] in seen and lab["id"] not in seen and lab_read["id"] not in seen
        assert_error(key.get(f"/api/services/{lab['id']}"), 404)
        assert_error(key.get(f"/api/services/{lab['id']}/health"), 404)
    with key_client(user, base_url, "services:read,lab") as key:
        assert {plain["id"], lab["id"], lab_read["id"]} <= ids_listed(key)
        assert key.get(f"/api/services/{lab['id']}").status_code == 200
    with key_client(user, base_url, "services:read,lab:read") as key:
        seen = ids_listed(key)
        assert lab_read["id"] in seen and lab["id"] not in seen  # "lab" asks for the whole scope
    with key_client(root, base_url, "services:read") as key:
        assert_error(key.post("/api/services", json={"name": "k", "plugin": "vnc", "host": "h"}), 403)
        assert lab["id"] not in ids_listed(key)
    with key_client(root, base_url, "services") as key:
        made = key.post("/api/services", json={"name": "by key " + tag(), "plugin": "vnc", "host": "h"})
        assert made.status_code == 201, made.text


def test_services_need_a_login(base_url: str) -> None:
    assert_error(httpx.get(base_url + "/api/services", timeout=10), 401)
    assert_error(httpx.post(base_url + "/api/services", json={"name": "x", "plugin": "vnc"}, timeout=10), 401)


# -- health ----------------------------------------------------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    status = 204
    seen: list[tuple[str, str, str]]

    def do_HEAD(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Host", "")))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args: Any) -> None:
        pass


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


HttpServer = Callable[..., tuple[int, list[tuple[str, str, str]]]]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpServer]:
    """``start(status, tls=False)``: an HTTP(S) server on a loopback port answering every request
    with ``status``; returns its port and the (method, path, Host) of every request it got."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, tls: bool = False) -> tuple[int, list[tuple[str, str, str]]]:
        seen: list[tuple[str, str, str]] = []
        handler = type("Handler", (_Recorder,), {"status": status, "seen": seen})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls:
            server.socket = self_signed(tmp_path).wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        servers.append(server)
        return server.server_address[1], seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_health_of_a_listening_tcp_port(root: UserClient, make_user: MakeUser, echo_server: EchoServer) -> None:
    created = create(root, plugin="tcp_tunnel", host="127.0.0.1", port=echo_server.port)
    before = echo_server.connections
    user = make_user()
    body = health(user, created["id"])
    assert body["healthy"] is True
    assert isinstance(body["latency_ms"], int) and 0 <= body["latency_ms"] < 5000
    assert body["detail"] == "TCP connection accepted"
    deadline = time.monotonic() + 5  # the echo server counts the accept in its own thread
    while echo_server.connections == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert echo_server.connections > before  # it really connected


def test_health_of_the_portal_itself_over_http(root: UserClient, portal: PortalServer) -> None:
    created = create(root, plugin="http", host="127.0.0.1", port=portal.port, config={"path": "/health"})
    body = health(root, created["id"])
    assert body["healthy"] is True and isinstance(body["latency_ms"], int)
    assert re.fullmatch(r"HTTP [1-4]\d\d", body["detail"]), body


def test_health_sends_one_http_request_to_the_configured_path(root: UserClient, http_server: HttpServer) -> None:
    port, seen = http_server(204)
    created = create(root, plugin="grafana", host="127.0.0.1", port=port, config={"path": "/api/health"})
    body = health(root, created["id"])
    assert body["healthy"] is True and body["detail"] == "HTTP 204"
    assert seen == [("HEAD", "/api/health", "127.0.0.1")]


def test_https_services_are_probed_over_tls(root: UserClient, http_server: HttpServer) -> None:
    port, seen = http_server(200, tls=True)
    checked = create(root, plugin="https", host="127.0.0.1", port=port)
    body = health(root, checked["id"])
    assert body["healthy"] is False and body["latency_ms"] is None
    assert body["detail"].startswith("TLS error: CERTIFICATE_VERIFY_FAILED"), body
    unchecked = create(root, plugin="https", host="127.0.0.1", port=port, config={"verify_tls": False})
    assert health(root, unchecked["id"])["detail"] == "HTTP 200"
    # Proxmox VE answers on HTTPS only, usually with its own certificate (verify_tls is off by default)
    proxmox = create(root, plugin="proxmox", host="127.0.0.1", port=port)
    assert health(root, proxmox["id"]) | {"latency_ms": 0} == {"healthy": True, "latency_ms": 0, "detail": "HTTP 200"}
    assert [method for method, _, _ in seen] == ["HEAD", "HEAD"]


def test_an_http_server_error_is_unhealthy(root: UserClient, http_server: HttpServer) -> None:
    port, _ = http_server(503)
    created = create(root, plugin="http", host="127.0.0.1", port=port)
    assert health(root, created["id"]) == {"healthy": False, "latency_ms": None, "detail": "HTTP 503"}
    port, _ = http_server(404)
    created = create(root, plugin="http", host="127.0.0.1", port=port)
    assert health(root, created["id"])["detail"] == "HTTP 404"  # it answers: the server is up


def test_a_web_service_that_does_not_speak_http_is_unhealthy(root: UserClient, echo_server: EchoServer) -> None:
    created = create(root, plugin="http", host="127.0.0.1", port=echo_server.port)
    assert health(root, created["id"]) == {"healthy": False, "latency_ms": None, "detail": "not an HTTP server"}


def test_a_closed_port_is_unhealthy(root: UserClient, make_user: MakeUser) -> None:
    created = create(root, plugin="tcp_tunnel", host="127.0.0.1", port=free_port())
    body = health(make_user(), created["id"])
    assert body["healthy"] is False and body["latency_ms"] is None
    assert "connection refused" in body["detail"]
    assert "Errno" not in body["detail"]


def test_a_silent_backend_times_out(root: UserClient) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:  # accepts in the kernel, never answers
        created = create(root, plugin="http", host="127.0.0.1", port=listener.getsockname()[1])
        body = health(root, created["id"])
    assert body == {"healthy": False, "latency_ms": None, "detail": "no answer within 5 s"}


def test_health_never_probes_a_metadata_address(root: UserClient) -> None:
    created = create(root, plugin="http", host="169.254.169.254", port=80)
    body = health(root, created["id"])
    assert body["healthy"] is False and body["latency_ms"] is None
    assert "not allowed" in body["detail"] and "metadata" in body["detail"]


def test_a_local_terminal_service_is_always_healthy(root: UserClient) -> None:
    created = create(root, plugin="terminal")
    assert (created["host"], created["port"]) == ("", None)
    assert health(root, created["id"]) == {"healthy": True, "latency_ms": 0, "detail": "runs on the portal host"}


def test_health_of_a_service_the_user_may_not_use_is_not_found(
    root: UserClient, make_user: MakeUser, echo_server: EchoServer
) -> None:
    user, admin = make_user(), make_user("admin")
    admins_only = create(root, plugin="tcp_tunnel", host="127.0.0.1", port=echo_server.port, min_role="admin")
    roots_only = create(root, plugin="tcp_tunnel", host="127.0.0.1", port=echo_server.port, min_role="superadmin")
    assert_error(user.get(f"/api/services/{admins_only['id']}/health"), 404, "Service not found")
    assert health(admin, admins_only["id"])["healthy"] is True
    # an admin sees and manages a superadmin-only service, but may not use it
    assert admin.get(f"/api/services/{roots_only['id']}").status_code == 200
    assert_error(admin.get(f"/api/services/{roots_only['id']}/health"), 404)
    assert health(root, roots_only["id"])["healthy"] is True
    assert admin.delete(f"/api/services/{roots_only['id']}").status_code == 200
