"""Rate limits: the auth bucket per IP, the API bucket per user, headers, 429 shape, configuration."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.portal_server import ROOT, PortalServer
from tests.timing import fresh_window


def _ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


@pytest.fixture(scope="module")
def limited() -> Iterator[PortalServer]:
    """A portal with small, configured limits: 4 auth requests and 6 API requests a minute."""
    server = PortalServer(env={"PORTAL_RATE_LIMIT_AUTH": "4/minute", "PORTAL_RATE_LIMIT_API": "6/minute"}).start()
    try:
        yield server
    finally:
        server.stop()


def _token(server: PortalServer, ip: str) -> str:
    resp = httpx.post(
        server.base_url + "/api/token",
        json={"username": server.admin_user, "password": server.admin_password},
        headers={"X-Forwarded-For": ip},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def test_auth_bucket_is_per_ip_and_answers_429_with_retry_after(limited: PortalServer) -> None:
    ip, other_ip = _ip(), _ip()
    url = limited.base_url + "/api/token"
    fresh_window(60, 15)
    remaining = []
    for _ in range(4):
        resp = httpx.post(url, json={"username": "nobody", "password": "x"}, headers={"X-Forwarded-For": ip})
        assert resp.status_code == 401
        assert resp.headers["X-RateLimit-Limit"] == "4"
        remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
    assert remaining == [3, 2, 1, 0]
    blocked = httpx.post(url, json={"username": "nobody", "password": "x"}, headers={"X-Forwarded-For": ip})
    assert blocked.status_code == 429
    body = blocked.json()
    assert body["status"] == 429 and "error" in body
    assert 1 <= body["retry_after"] <= 60
    assert blocked.headers["Retry-After"] == str(body["retry_after"])
    assert blocked.headers["X-RateLimit-Remaining"] == "0"
    # Registration shares the auth bucket of that IP.
    reg = httpx.post(
        limited.base_url + "/api/register",
        json={"username": "someone", "password": "long-enough", "invite_code": "x"},
        headers={"X-Forwarded-For": ip},
    )
    assert reg.status_code == 429
    # Another address is not affected.
    ok = httpx.post(url, json={"username": "nobody", "password": "x"}, headers={"X-Forwarded-For": other_ip})
    assert ok.status_code == 401
    assert ok.json()["error"] == "Invalid username or password"


def test_api_bucket_is_per_user_not_per_ip(limited: PortalServer) -> None:
    shared_ip = _ip()
    token_a = _token(limited, _ip())
    token_b = _token(limited, _ip())
    fresh_window(60, 15)
    headers_a = {"Authorization": f"Bearer {token_a}", "X-Forwarded-For": shared_ip}
    headers_b = {"Authorization": f"Bearer {token_b}", "X-Forwarded-For": shared_ip}
    # Both tokens are root's: one user, one bucket — whichever token is used.
    seen = []
    for i in range(6):
        resp = httpx.get(limited.base_url + "/api/me", headers=headers_a if i % 2 else headers_b)
        assert resp.status_code == 200, resp.text
        assert resp.json()["username"] == limited.admin_user
        seen.append(int(resp.headers["X-RateLimit-Remaining"]))
    assert seen == [5, 4, 3, 2, 1, 0]
    blocked = httpx.get(limited.base_url + "/api/me", headers=headers_a)
    assert blocked.status_code == 429
    assert blocked.json()["retry_after"] >= 1
    # Anonymous callers from the same IP have their own (per-IP) bucket.
    anon = httpx.get(limited.base_url + "/health", headers={"X-Forwarded-For": shared_ip})
    assert anon.status_code == 200
    assert anon.json()["status"] == "ok"
    assert anon.headers["X-RateLimit-Limit"] == "6"


def test_unauthenticated_api_requests_are_limited_per_ip(limited: PortalServer) -> None:
    ip = _ip()
    fresh_window(60, 15)
    statuses = [httpx.get(limited.base_url + "/api/me", headers={"X-Forwarded-For": ip}).status_code for _ in range(7)]
    assert statuses == [401] * 6 + [429]


def test_defaults_are_10_auth_and_60_api_per_minute() -> None:
    with PortalServer(env={"PORTAL_RATE_LIMIT_AUTH": "10/minute", "PORTAL_RATE_LIMIT_API": "60/minute"}) as server:
        auth = httpx.post(server.base_url + "/api/token", json={"username": "x", "password": "y"})
        assert auth.headers["X-RateLimit-Limit"] == "10"
        api = httpx.get(server.base_url + "/health")
        assert api.headers["X-RateLimit-Limit"] == "60"
    # and those are the values used when nothing is configured
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from portal.config import Settings; s=Settings(); print(s.rate_limit_auth, s.rate_limit_api)",
        ],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.split() == ["10/minute", "60/minute"]


def test_invalid_rate_configuration_is_refused_at_start() -> None:
    server = PortalServer(env={"PORTAL_RATE_LIMIT_API": "lots"})
    with pytest.raises(RuntimeError) as err:
        server.start(timeout=20)
    assert "rate_limit_api" in str(err.value)
    server.stop()
