"""GET /openapi.json documents every accounts route with its schemas; GET /docs works offline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.support import http

# The "Accounts and access" table of spec/ENDPOINTS.md (the JSON routes; pages are not in the schema).
ACCOUNT_ROUTES = [
    ("post", "/api/token"),
    ("get", "/api/tokens"),
    ("post", "/api/token/revoke"),
    ("post", "/api/register"),
    ("get", "/api/invite-code"),
    ("post", "/api/api-keys"),
    ("get", "/api/api-keys"),
    ("post", "/api/api-keys/{key_id}/revoke"),
    ("delete", "/api/api-keys/{key_id}"),
    ("get", "/api/me"),
    ("post", "/api/me/password"),
    ("put", "/api/me/status"),
    ("put", "/api/me/nickname"),
    ("put", "/api/me/avatar"),
    ("put", "/api/me/anonymous"),
    ("get", "/api/user/2fa/status"),
    ("post", "/api/user/2fa/setup"),
    ("post", "/api/user/2fa/verify"),
    ("post", "/api/user/2fa/disable"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("put", "/api/users/{user_id}/role"),
    ("post", "/api/users/{user_id}/reset-password"),
    ("delete", "/api/users/{user_id}"),
    ("get", "/api/activity"),
    ("get", "/api/admin/audit-log"),
    ("get", "/health"),
]
WITH_BODY = {
    ("post", "/api/token"): "LoginRequest",
    ("post", "/api/token/revoke"): "RevokeTokenRequest",
    ("post", "/api/register"): "RegisterRequest",
    ("post", "/api/api-keys"): "ApiKeyCreate",
    ("post", "/api/me/password"): "PasswordChange",
    ("put", "/api/me/status"): "StatusUpdate",
    ("put", "/api/me/nickname"): "NicknameUpdate",
    ("put", "/api/me/avatar"): "AvatarUpdate",
    ("put", "/api/me/anonymous"): "AnonymousUpdate",
    ("post", "/api/user/2fa/verify"): "TwoFactorCode",
    ("post", "/api/user/2fa/disable"): "TwoFactorCode",
    ("post", "/api/users"): "UserCreate",
    ("put", "/api/users/{user_id}/role"): "RoleUpdate",
}


@pytest.fixture(scope="module")
def spec(base_url: str) -> dict[str, Any]:
    resp = http.get(base_url + "/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    return body


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = spec["components"]["schemas"][name]
    return resolved


def _success(op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    codes = [c for c in op["responses"] if c.startswith("2")]
    assert len(codes) == 1, op["responses"]
    return codes[0], op["responses"][codes[0]]


def test_the_document_describes_this_portal(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Open Relay Portal"
    assert spec["info"]["version"]


@pytest.mark.parametrize(("method", "path"), ACCOUNT_ROUTES)
def test_every_accounts_route_is_documented_with_a_response_schema(
    spec: dict[str, Any], method: str, path: str
) -> None:
    assert path in spec["paths"], sorted(spec["paths"])
    assert method in spec["paths"][path], spec["paths"][path].keys()
    op = spec["paths"][path][method]
    code, response = _success(op)
    schema = response["content"]["application/json"]["schema"]
    resolved = _resolve(spec, schema)
    assert resolved.get("type") == "object" and resolved.get("properties"), (path, resolved)
    if path in ("/api/register", "/api/api-keys", "/api/users") and method == "post":
        assert code == "201"
    else:
        assert code == "200"
    for name in ("{key_id}", "{user_id}"):
        if name in path:
            params = {p["name"]: p for p in op["parameters"]}
            assert params[name.strip("{}")]["in"] == "path"
            assert params[name.strip("{}")]["schema"]["type"] == "integer"


@pytest.mark.parametrize(("method", "path"), sorted(WITH_BODY))
def test_request_bodies_are_documented(spec: dict[str, Any], method: str, path: str) -> None:
    op = spec["paths"][path][method]
    assert op["requestBody"]["required"] is True
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/" + WITH_BODY[(method, path)])
    assert _resolve(spec, schema)["properties"]


def test_documented_shapes_match_the_contract(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["TokenResponse"]["required"]) == {"token", "token_id", "expires_at", "user"}
    assert {"id", "username", "role", "is_admin"} <= set(schemas["PublicUser"]["properties"])
    assert set(schemas["LoginRequest"]["required"]) == {"username", "password"}
    assert "totp_code" in schemas["LoginRequest"]["properties"]
    assert set(schemas["RegisterRequest"]["required"]) == {"username", "password", "invite_code"}
    assert schemas["RegisterRequest"]["properties"]["password"]["minLength"] == 8
    assert "api_key" in schemas["ApiKeyCreated"]["properties"]
    assert "api_key" not in schemas["ApiKeyOut"]["properties"]
    assert {"enabled", "backup_codes_remaining"} <= set(schemas["TwoFactorStatus"]["properties"])
    assert set(schemas["Role"]["enum"]) == {"user", "moderator", "admin", "superadmin"}


def test_the_documented_error_model_is_the_real_one(spec: dict[str, Any]) -> None:
    """Validation failures are 400 {"error", "status", ...}; the schema must not promise FastAPI's 422."""
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
    op = spec["paths"]["/api/token"]["post"]
    error = _resolve(spec, op["responses"]["400"]["content"]["application/json"]["schema"])
    assert {"error", "status"} <= set(error["required"])


def test_activity_limit_bounds_are_documented(spec: dict[str, Any]) -> None:
    params = {p["name"]: p for p in spec["paths"]["/api/activity"]["get"]["parameters"]}
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["schema"]["maximum"] == 50
    assert params["limit"]["schema"]["default"] == 20


def test_docs_page_is_served_without_a_cdn(base_url: str) -> None:
    resp = http.get(base_url + "/docs")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert "/static/vendor/swagger-ui-dist/" in html
    assert "/openapi.json" in html
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs", "googleapis"):
        assert cdn not in html
    # The referenced assets are really there.
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        resp = http.get(base_url + "/static/vendor/swagger-ui-dist/" + asset)
        assert resp.status_code == 200, asset
        assert len(resp.content) > 1000
