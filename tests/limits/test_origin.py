"""The Origin rule shared by CSRF checks and every WebSocket upgrade."""

from __future__ import annotations

import pytest

from portal.core.origin import origin_allowed


def _scope(host: str | None, origin: str | None) -> dict[str, object]:
    headers = []
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "headers": headers}


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        ("portal.example.com", None, True),  # non-browser client
        ("portal.example.com", "https://portal.example.com", True),
        ("portal.example.com", "http://portal.example.com", True),
        ("portal.example.com:8443", "https://portal.example.com:8443", True),
        ("portal.example.com", "https://portal.example.com:443", True),
        ("127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("portal.example.com", "https://evil.example", False),
        ("portal.example.com", "https://portal.example.com.evil.example", False),
        ("portal.example.com", "https://evil.example/portal.example.com", False),
        ("127.0.0.1:8000", "http://127.0.0.1:8001", False),
        ("portal.example.com", "null", False),
        ("portal.example.com", "file://", False),
        ("portal.example.com", "chrome-extension://abc", False),
        (None, "https://portal.example.com", False),
    ],
)
def test_origin_rule(host: str | None, origin: str | None, allowed: bool) -> None:
    assert origin_allowed(_scope(host, origin)) is allowed


def test_configured_public_url_is_allowed_behind_a_proxy() -> None:
    scope = _scope("127.0.0.1:8000", "https://portal.example.com")
    assert origin_allowed(scope) is False
    assert origin_allowed(scope, ["https://portal.example.com"]) is True
    assert origin_allowed(scope, ["http://portal.example.com"]) is False
