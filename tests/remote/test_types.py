"""``GET /api/connections/types``: every connection type of the issue, with a JSON Schema form."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.accounts.support import assert_error
from tests.conftest import UserClient

# type -> default port (None: no port, e.g. the local terminal or a tunnel to any port)
EXPECTED_PORTS: dict[str, int | None] = {
    "ssh": 22,
    "terminal": None,
    "telnet": 23,
    "vnc": 5900,
    "rdp": 3389,
    "spice": 5900,
    "proxmox": 8006,
    "tcp_tunnel": None,
    "http": 80,
    "https": 443,
    "http_proxy": 8080,
    "home_assistant": 8123,
    "grafana": 3000,
    "portainer": 9443,
    "truenas": 443,
    "pfsense": 443,
    "jupyter": 8888,
    "prometheus": 9090,
    "database": 5432,
    "redis": 6379,
    "mongodb": 27017,
    "elasticsearch": 9200,
    "mediamtx": 8888,
    "stream": 8888,
    "custom": None,
}
# the seed's routing table: type -> viewer page
VIEWERS = {
    "ssh": "terminal",
    "terminal": "terminal",
    "telnet": "terminal",
    "vnc": "vnc",
    "rdp": "vnc",
    "spice": "spice",
    "proxmox": "proxmox",
    "http": "browser",
    "https": "browser",
    "http_proxy": "browser",
    "mediamtx": "media",
    "stream": "media",
    "database": None,
    "redis": None,
    "mongodb": None,
    "elasticsearch": None,
    "tcp_tunnel": None,
    "custom": None,
}
PANELS = ("home_assistant", "grafana", "portainer", "truenas", "pfsense", "jupyter", "prometheus")
SECRET_NAME = re.compile(r"password|passphrase|secret|private_key|api_key|token$")
MakeUser = Callable[..., UserClient]


def types_of(client: UserClient | httpx.Client) -> dict[str, dict[str, Any]]:
    resp = client.get("/api/connections/types")
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"types"}
    types: dict[str, dict[str, Any]] = resp.json()["types"]
    return types


@pytest.fixture(scope="module")
def all_types(root: UserClient) -> dict[str, dict[str, Any]]:
    return types_of(root)


def test_admins_see_every_type_of_the_issue(all_types: dict[str, dict[str, Any]]) -> None:
    assert set(all_types) == set(EXPECTED_PORTS)


@pytest.mark.parametrize("type_", sorted(EXPECTED_PORTS))
def test_each_type_describes_itself(all_types: dict[str, dict[str, Any]], type_: str) -> None:
    described = all_types[type_]
    assert described["plugin"] == type_
    assert isinstance(described["name"], str) and described["name"].strip()
    assert isinstance(described["icon"], str) and re.fullmatch(r"[a-z][a-z0-9-]*", described["icon"])
    assert described["default_port"] == EXPECTED_PORTS[type_]
    assert isinstance(described["description"], str) and described["description"]
    if type_ in PANELS:
        assert described["viewer"] == "browser"
    else:
        assert described["viewer"] == VIEWERS[type_]


@pytest.mark.parametrize("type_", sorted(EXPECTED_PORTS))
def test_config_schema_is_a_json_schema_object_with_secrets_write_only(
    all_types: dict[str, dict[str, Any]], type_: str
) -> None:
    described = all_types[type_]
    schema = described["config_schema"]
    assert schema["type"] == "object"
    assert isinstance(schema["properties"], dict)
    assert schema.get("additionalProperties") is False  # unknown fields are refused, so say so
    for name in schema.get("required", []):
        assert name in schema["properties"]
    secrets = set(described["secret_fields"])
    assert secrets <= set(schema["properties"])
    for name, prop in schema["properties"].items():
        assert isinstance(prop, dict) and prop.get("title"), (type_, name)
        if name in secrets:
            assert prop["writeOnly"] is True, (type_, name)
            assert prop["format"] == "password", (type_, name)
            assert "default" not in prop or prop["default"] is None, (type_, name)
        else:
            assert not prop.get("writeOnly"), (type_, name)
            assert not SECRET_NAME.search(name), f"{type_}.{name} looks secret but is not marked writeOnly"


def test_types_that_carry_credentials_mark_them_secret(all_types: dict[str, dict[str, Any]]) -> None:
    secret_fields = {t: set(d["secret_fields"]) for t, d in all_types.items()}
    assert secret_fields["ssh"] == {"password", "private_key", "passphrase"}
    assert secret_fields["proxmox"] == {"api_token_secret"}
    assert secret_fields["elasticsearch"] == {"password", "api_key"}
    for type_ in ("vnc", "rdp", "spice", "http", "https", "database", "redis", "mongodb", "mediamtx", *PANELS):
        assert "password" in secret_fields[type_], type_
    for type_ in ("terminal", "telnet", "tcp_tunnel", "custom"):
        assert secret_fields[type_] == set(), type_


def test_ssh_form_needs_a_username_and_offers_three_auth_methods(all_types: dict[str, dict[str, Any]]) -> None:
    schema = all_types["ssh"]["config_schema"]
    assert schema["required"] == ["username"]
    assert schema["properties"]["auth_method"]["enum"] == ["password", "key", "ssh_key"]
    assert schema["properties"]["auth_method"]["default"] == "password"
    assert "ssh_key_id" in schema["properties"]


def test_web_panel_presets_fill_in_port_path_and_scheme(all_types: dict[str, dict[str, Any]]) -> None:
    expected = {
        "home_assistant": ("/", "http"),
        "grafana": ("/", "http"),
        "portainer": ("/", "https"),
        "truenas": ("/ui/", "https"),
        "pfsense": ("/", "https"),
        "jupyter": ("/lab", "http"),
        "prometheus": ("/graph", "http"),
    }
    for type_, (path, scheme) in expected.items():
        presets = all_types[type_]["presets"]
        assert presets == {"port": EXPECTED_PORTS[type_], "config": {"path": path, "scheme": scheme}}, type_
        assert all_types[type_]["config_schema"] == all_types["http"]["config_schema"]


def test_terminal_is_shown_to_admins_only(make_user: MakeUser, all_types: dict[str, dict[str, Any]]) -> None:
    assert all_types["terminal"]["admin_only"] is True
    assert all_types["terminal"]["needs_host"] is False
    for role in ("user", "moderator"):
        seen = types_of(make_user(role))
        assert "terminal" not in seen, role
        assert set(seen) == set(EXPECTED_PORTS) - {"terminal"}
        assert seen["ssh"] == all_types["ssh"]
    assert "terminal" in types_of(make_user("admin"))


def test_types_need_a_login_and_the_connections_read_scope(make_user: MakeUser, base_url: str) -> None:
    assert_error(httpx.get(base_url + "/api/connections/types", timeout=10), 401)
    user = make_user()
    for scopes, status in (("profile:read", 403), ("connections:read", 200), ("connections", 200)):
        created = user.post("/api/api-keys", json={"name": "types", "scopes": scopes})
        assert created.status_code == 201, created.text
        with httpx.Client(base_url=base_url, headers={"X-API-Key": created.json()["api_key"]}, timeout=10) as key:
            resp = key.get("/api/connections/types")
            assert resp.status_code == status, (scopes, resp.text)
            if status == 200:
                assert "terminal" not in resp.json()["types"] and "ssh" in resp.json()["types"]
