"""Conventions of every route: the JSON error model, rate-limit headers, /health, authentication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.accounts.support import assert_error, bearer, http, random_ip
from tests.conftest import UserClient

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def assert_rate_headers(resp: httpx.Response) -> None:
    for name in RATE_HEADERS:
        assert name in resp.headers, (resp.request.url, dict(resp.headers))
        assert resp.headers[name].isdigit(), (name, resp.headers[name])
    assert int(resp.headers["X-RateLimit-Remaining"]) <= int(resp.headers["X-RateLimit-Limit"])
    reset = int(resp.headers["X-RateLimit-Reset"])
    assert datetime.now(UTC).timestamp() - 5 <= reset <= datetime.now(UTC).timestamp() + 3600


def test_health(base_url: str) -> None:
    resp = http.get(base_url + "/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None
    assert abs(stamp - datetime.now(UTC)) < timedelta(seconds=30)
    assert set(body) <= {"status", "timestamp", "version"}
    assert_rate_headers(resp)


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/api/users/1/nope", "/api/me/x"])
def test_unknown_routes_are_json_404s(base_url: str, path: str) -> None:
    resp = http.get(base_url + path, follow_redirects=False)
    assert_error(resp, 404, "Not found")
    assert_rate_headers(resp)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/health"), ("PATCH", "/api/me"), ("GET", "/api/token"), ("PUT", "/api/register"),
     ("POST", "/api/users/1")],
)
def test_wrong_methods_are_json_405s(base_url: str, method: str, path: str) -> None:
    resp = http.request(method, base_url + path)
    assert_error(resp, 405, "Method not allowed")
    assert "Allow" in resp.headers
    assert_rate_headers(resp)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/me"), ("GET", "/api/tokens"), ("GET", "/api/api-keys"), ("POST", "/api/api-keys"),
     ("GET", "/api/users"), ("GET", "/api/activity"), ("GET", "/api/admin/audit-log"), ("GET", "/api/invite-code"),
     ("PUT", "/api/me/status"), ("DELETE", "/api/users/1")],
)
def test_missing_auth_is_a_json_401(base_url: str, method: str, path: str) -> None:
    resp = http.request(method, base_url + path, json={})
    assert_error(resp, 401, "Authentication required")
    assert_rate_headers(resp)


def test_every_kind_of_answer_carries_rate_limit_headers(base_url: str, member: UserClient) -> None:
    answers = [
        member.get("/api/me"),  # 200
        member.get("/api/users"),  # 403
        member.post("/api/api-keys", json={"name": ""}),  # 400
        http.get(base_url + "/api/me", headers=bearer("garbage")),  # 401
        http.post(base_url + "/api/token", json={"username": "ghost-x", "password": "nope"},
                  headers={"X-Forwarded-For": random_ip()}),  # 401, auth bucket
        http.get(base_url + "/login"),  # a page
    ]
    assert [r.status_code for r in answers] == [200, 403, 400, 401, 401, 200]
    for resp in answers:
        assert_rate_headers(resp)


def test_authenticated_callers_have_their_own_budget(base_url: str, member: UserClient, admin: UserClient) -> None:
    first = member.get("/api/me")
    second = member.get("/api/me")
    assert int(second.headers["X-RateLimit-Remaining"]) < int(first.headers["X-RateLimit-Remaining"])
    other = admin.get("/api/me")
    assert int(other.headers["X-RateLimit-Limit"]) == int(first.headers["X-RateLimit-Limit"])


def test_a_framework_422_never_escapes(base_url: str, member: UserClient) -> None:
    for resp in (
        member.put("/api/me/status", content=b"status=away", headers={"Content-Type": "text/plain"}),
        member.get("/api/activity", params={"limit": "many"}),
        member.put("/api/me/avatar", json={"color": ["#ffffff"]}),
    ):
        body = assert_error(resp, 400)
        assert "detail" not in body
        assert isinstance(body["field"], str) and body["field"]
        assert isinstance(body["details"], list) and body["details"][0]["field"] == body["field"]


def test_errors_do_not_leak_internals(base_url: str, root: UserClient) -> None:
    resp = root.put("/api/users/2147483648/role", json={"role": "user"})
    assert_error(resp, 400, field="user_id")
    assert "Traceback" not in resp.text and "sqlalchemy" not in resp.text.lower()


def test_security_headers(base_url: str) -> None:
    resp = http.get(base_url + "/health")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
