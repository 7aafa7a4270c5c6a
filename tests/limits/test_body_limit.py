"""Request bodies are capped: a huge body is refused with 413 before it is buffered."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.portal_server import PortalServer


def test_declared_oversize_body_is_refused(portal: PortalServer) -> None:
    big = b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'", "password": "x"}'
    resp = httpx.post(portal.base_url + "/api/token", content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json() == {"error": "Request body larger than 1048576 bytes", "status": 413, "max_bytes": 1048576}
    assert "X-RateLimit-Limit" in resp.headers


def test_streamed_oversize_body_is_cut_off(portal: PortalServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'", "password": "x"}'

    resp = httpx.post(portal.base_url + "/api/token", content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json() == {"error": "Request body larger than 1048576 bytes", "status": 413}
    # the server is still fine afterwards
    assert httpx.get(portal.base_url + "/health").json()["status"] == "ok"
