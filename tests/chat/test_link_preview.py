"""``GET /api/chat/link-preview`` against a real portal and real local pages.

The portal under test may reach 127.0.0.1 on exactly one port (``PORTAL_SSRF_ALLOW_LOOPBACK_PORTS``,
the test-only allowance), where :class:`PageServer` serves OpenGraph pages and counts every
request. A second local server on another port must never be reached. Destinations outside
loopback are only ever used in refused cases, and those are first shown, in process, to be
refused before any connection (:func:`assert_refused_offline`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from portal.core.net import BlockedDestination
from tests.core.test_net_guard import offline_guard, run
from tests.portal_server import PortalServer

PREVIEW = "/api/chat/link-preview"
MB = 1024 * 1024

Route = Callable[[BaseHTTPRequestHandler], None]


def send(
    handler: BaseHTTPRequestHandler, body: bytes, content_type: str = "text/html; charset=utf-8", status: int = 200
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def og_page(title: str, *, description: str = "", image: str = "", site: str = "", extra: str = "") -> bytes:
    metas = [f'<meta property="og:title" content="{title}">']
    if description:
        metas.append(f'<meta property="og:description" content="{description}">')
    if image:
        metas.append(f'<meta property="og:image" content="{image}">')
    if site:
        metas.append(f'<meta property="og:site_name" content="{site}">')
    head = "\n".join(metas)
    return (
        f"<!doctype html><html><head><title>Not the OG title</title>{head}</head><body>{extra}</body></html>".encode()
    )


class PageServer:
    """A threaded HTTP server on 127.0.0.1 that records every request it receives."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append({"path": self.path, "headers": dict(self.headers)})
                route = outer.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    send(self, b"not here", "text/plain", 404)
                else:
                    route(self)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.notes: dict[str, Any] = {}
        self.server.notes = self.notes  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the pages -------------------------------------------------------------------------------------
def page_og(h: BaseHTTPRequestHandler) -> None:
    send(
        h,
        og_page(
            "Local OG Title",
            description="A page served by the test",
            image="https://cdn.example/card.png",
            site="Local Site",
        ),
    )


def page_title_only(h: BaseHTTPRequestHandler) -> None:
    send(
        h,
        b"<html><head><title>\n  Fallback   Title \n</title>"
        b'<meta name="description" content="  Fallback description  "></head><body>x</body></html>',
    )


def page_relative_image(h: BaseHTTPRequestHandler) -> None:
    send(h, og_page("Relative", image="/images/card.png?size=large"))


def page_long(h: BaseHTTPRequestHandler) -> None:
    send(h, og_page("T" * 1000, description="word " * 2000, site="S" * 500))


def page_windows_1252(h: BaseHTTPRequestHandler) -> None:
    send(h, '<html><head><meta charset="windows-1252"><title>Café</title></head></html>'.encode("cp1252"), "text/html")


def page_huge(h: BaseHTTPRequestHandler) -> None:
    """A head with OG tags, then an endless body (HTTP/1.0, no length): only the cap can stop the read."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.end_headers()
    filler = b"<p>" + b"x" * 65536 + b"</p>\n"
    notes: dict[str, Any] = h.server.notes  # type: ignore[attr-defined]
    notes["huge_written"] = 0
    try:
        h.wfile.write(og_page("Huge Page", description="endless").replace(b"</body></html>", b""))
        for _ in range(3000):  # ~200 MB if nobody stops reading
            h.wfile.write(filler)
            notes["huge_written"] += len(filler)
    except OSError:
        pass
    finally:
        notes["huge_done"] = True


def page_late_tags(h: BaseHTTPRequestHandler) -> None:
    filler = b"<!-- " + b"y" * (MB + 100_000) + b" -->"
    send(h, b"<html><head>" + filler + b'<meta property="og:title" content="Too Late"></head></html>')


def page_slow(h: BaseHTTPRequestHandler) -> None:
    time.sleep(10)
    try:
        send(h, og_page("Slow"))
    except OSError:
        return


def page_image(h: BaseHTTPRequestHandler) -> None:
    send(h, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")


def page_server_error(h: BaseHTTPRequestHandler) -> None:
    send(h, og_page("Error page"), status=500)


def redirect_to(location: Callable[[], str]) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location())
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forbidden() -> Iterator[PageServer]:
    """A loopback server on a port the portal is not allowed to reach: it must never see a request."""
    server = PageServer({"/": page_og, "/stolen": page_og})
    yield server
    server.close()


@pytest.fixture(scope="module")
def pages(forbidden: PageServer) -> Iterator[PageServer]:
    server = PageServer()
    server.routes.update(
        {
            "/og": page_og,
            "/title-only": page_title_only,
            "/relative-image": page_relative_image,
            "/long": page_long,
            "/cp1252": page_windows_1252,
            "/huge": page_huge,
            "/late": page_late_tags,
            "/slow": page_slow,
            "/image": page_image,
            "/error": page_server_error,
            "/to-og": redirect_to(lambda: "/og?via=redirect"),
            "/to-forbidden": redirect_to(lambda: f"{forbidden.base}/stolen"),
            "/to-metadata": redirect_to(lambda: "http://169.254.169.254/latest/meta-data/"),
            "/to-localhost": redirect_to(lambda: f"http://localhost:{server.port}/og"),
            "/to-file": redirect_to(lambda: "file:///etc/passwd"),
        }
    )
    yield server
    server.close()


@pytest.fixture(scope="module")
def guarded_portal(pages: PageServer) -> Iterator[PortalServer]:
    server = PortalServer(env={"PORTAL_SSRF_ALLOW_LOOPBACK_PORTS": str(pages.port)}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def member(guarded_portal: PortalServer) -> Iterator[httpx.Client]:
    base = guarded_portal.base_url
    root = httpx.post(
        base + "/api/token", json={"username": guarded_portal.admin_user, "password": guarded_portal.admin_password}
    )
    assert root.status_code == 200, root.text
    username, password = "lp" + secrets.token_hex(4), "pw-" + secrets.token_hex(8)
    made = httpx.post(
        base + "/api/users",
        json={"username": username, "password": password, "role": "user"},
        headers={"Authorization": f"Bearer {root.json()['token']}"},
    )
    assert made.status_code == 201, made.text
    token = httpx.post(base + "/api/token", json={"username": username, "password": password}).json()["token"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20) as client:
        yield client


def unique(path: str) -> str:
    """A path with a fresh query string, so each test starts with a cold cache."""
    return f"{path}?t={secrets.token_hex(4)}"


def preview(client: httpx.Client, url: str) -> httpx.Response:
    return client.get(PREVIEW, params={"url": url})


def assert_error(resp: httpx.Response, status: int, contains: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and contains.lower() in body["error"].lower(), body
    return body


# -- previews --------------------------------------------------------------------------------------
def test_preview_returns_the_opengraph_fields(member: httpx.Client, pages: PageServer) -> None:
    url = pages.base + unique("/og")
    resp = preview(member, url)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "url": url,
        "title": "Local OG Title",
        "description": "A page served by the test",
        "image": "https://cdn.example/card.png",
        "site_name": "Local Site",
    }


def test_fallbacks_are_the_title_element_and_meta_description(member: httpx.Client, pages: PageServer) -> None:
    body = preview(member, pages.base + unique("/title-only")).json()
    assert body["title"] == "Fallback Title"
    assert body["description"] == "Fallback description"
    assert body["image"] is None and body["site_name"] is None


def test_a_relative_image_is_made_absolute(member: httpx.Client, pages: PageServer) -> None:
    body = preview(member, pages.base + unique("/relative-image")).json()
    assert body["image"] == pages.base + "/images/card.png?size=large"


def test_long_texts_are_trimmed(member: httpx.Client, pages: PageServer) -> None:
    body = preview(member, pages.base + unique("/long")).json()
    assert len(body["title"]) <= 200 and body["title"].endswith("…")
    assert len(body["description"]) <= 500
    assert len(body["site_name"]) <= 100


def test_the_declared_charset_is_honoured(member: httpx.Client, pages: PageServer) -> None:
    assert preview(member, pages.base + unique("/cp1252")).json()["title"] == "Café"


def test_non_html_gives_a_card_with_only_the_url(member: httpx.Client, pages: PageServer) -> None:
    url = pages.base + unique("/image")
    resp = preview(member, url)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"url": url, "title": None, "description": None, "image": None, "site_name": None}


def test_a_redirect_within_the_allowed_page_is_followed(member: httpx.Client, pages: PageServer) -> None:
    url = pages.base + unique("/to-og")
    body = preview(member, url).json()
    assert body["url"] == url and body["title"] == "Local OG Title"
    assert pages.hits("/og?via=redirect") >= 1


def test_the_second_call_is_served_from_the_cache(member: httpx.Client, pages: PageServer) -> None:
    path = unique("/og")
    first = preview(member, pages.base + path)
    second = preview(member, pages.base + path)
    third = preview(member, pages.base + path + "#fragment")  # fragments are not part of the key
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json() == second.json()
    assert third.json()["title"] == "Local OG Title"
    assert pages.hits(path) == 1


def test_no_cookies_or_credentials_go_upstream(member: httpx.Client, pages: PageServer) -> None:
    path = unique("/og")
    member.get(PREVIEW, params={"url": pages.base + path}, headers={"Cookie": "portal_session=secret"})
    (request,) = [r for r in pages.requests if r["path"] == path]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert "cookie" not in headers and "authorization" not in headers and "x-api-key" not in headers
    assert headers["user-agent"].startswith("OpenRelayPortal/")
    assert headers["host"] == f"127.0.0.1:{pages.port}"


def test_a_huge_page_is_cut_at_one_megabyte_and_answered_fast(member: httpx.Client, pages: PageServer) -> None:
    started = time.monotonic()
    resp = preview(member, pages.base + unique("/huge"))
    assert time.monotonic() - started < 4
    assert resp.status_code == 200, resp.text
    assert resp.json()["title"] == "Huge Page"
    deadline = time.monotonic() + 5
    while not pages.notes.get("huge_done") and time.monotonic() < deadline:
        time.sleep(0.05)
    # The portal hung up after 1 MB: the server could only fill the socket buffers, not send 200 MB.
    assert pages.notes.get("huge_done") and pages.notes["huge_written"] < 32 * MB, pages.notes


def test_tags_after_the_first_megabyte_are_not_read(member: httpx.Client, pages: PageServer) -> None:
    resp = preview(member, pages.base + unique("/late"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["title"] is None


def test_a_slow_page_times_out_in_about_five_seconds_and_the_failure_is_cached(
    member: httpx.Client, pages: PageServer
) -> None:
    path = unique("/slow")
    started = time.monotonic()
    resp = preview(member, pages.base + path)
    elapsed = time.monotonic() - started
    assert_error(resp, 504, "did not answer")
    assert 4.5 <= elapsed < 7, elapsed
    started = time.monotonic()
    again = preview(member, pages.base + path)
    assert time.monotonic() - started < 1
    assert_error(again, 504, "did not answer")
    assert pages.hits(path) == 1


def test_an_error_page_is_a_bad_gateway(member: httpx.Client, pages: PageServer) -> None:
    assert_error(preview(member, pages.base + unique("/error")), 502, "HTTP 500")


# -- refusals --------------------------------------------------------------------------------------
def assert_refused(client: httpx.Client, url: str, *servers: PageServer) -> dict[str, Any]:
    before = [len(s.requests) for s in servers]
    body = assert_error(preview(client, url), 400, "not allowed")
    assert body.get("field") == "url", body
    assert [len(s.requests) for s in servers] == before
    return body


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://app.localhost/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_loopback_in_any_spelling_is_refused(
    member: httpx.Client, pages: PageServer, forbidden: PageServer, url: str
) -> None:
    assert_refused(member, url, pages, forbidden)


@pytest.mark.parametrize(
    "template",
    [
        "http://localhost:{port}/og",
        "http://2130706433:{port}/og",
        "http://0177.0.0.1:{port}/og",
        "http://0x7f000001:{port}/og",
        "http://127.1:{port}/og",
        "http://127.0.0.2:{port}/og",
        "http://[::ffff:127.0.0.1]:{port}/og",
        "http://[::1]:{port}/og",
        "http://0.0.0.0:{port}/og",
    ],
)
def test_the_test_allowance_is_only_the_literal_127_0_0_1(
    member: httpx.Client, pages: PageServer, forbidden: PageServer, template: str
) -> None:
    """Even on the allowed port, every other spelling of loopback is refused."""
    assert_refused(member, template.format(port=pages.port), pages, forbidden)


def test_127_0_0_1_on_another_port_is_refused(member: httpx.Client, pages: PageServer, forbidden: PageServer) -> None:
    body = assert_refused(member, forbidden.base + "/", pages, forbidden)
    assert "loopback" in body["error"]
    assert forbidden.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://100.64.0.1/", "shared"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
    ],
)
def test_private_ranges_are_refused_before_connecting(
    member: httpx.Client, pages: PageServer, forbidden: PageServer, url: str, reason: str
) -> None:
    guard, network = offline_guard()
    with pytest.raises(BlockedDestination):  # the same code, in process: refused with no connection at all
        run(guard.fetch(url, max_bytes=1000, timeout=2))
    assert network.connects == []
    body = assert_refused(member, url, pages, forbidden)
    assert reason in body["error"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/file", "file:///etc/passwd", "javascript:alert(1)", "data:text/html,<b>x</b>", "/og"]
)
def test_only_http_and_https_urls_are_accepted(member: httpx.Client, pages: PageServer, url: str) -> None:
    before = len(pages.requests)
    body = assert_error(preview(member, url), 400, "only http and https")
    assert body["field"] == "url"
    assert len(pages.requests) == before


def test_missing_or_oversized_url_is_a_400_naming_the_field(member: httpx.Client) -> None:
    assert assert_error(member.get(PREVIEW), 400, "url")["field"] == "url"
    assert assert_error(preview(member, "http://a.example/" + "x" * 2100), 400, "url")["field"] == "url"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/to-forbidden", "loopback"),
        ("/to-metadata", "metadata"),
        ("/to-localhost", "local name"),
        ("/to-file", "http"),
    ],
)
def test_a_redirect_to_a_refused_destination_is_stopped_at_the_hop(
    member: httpx.Client, pages: PageServer, forbidden: PageServer, path: str, reason: str
) -> None:
    first = unique(path)
    body = assert_error(preview(member, pages.base + first), 400, "not allowed")
    assert reason in body["error"], body
    assert pages.hits(first) == 1  # the allowed page was asked, the hop was not followed
    assert forbidden.requests == []
    assert pages.hits("/og") == 0  # /to-localhost points back at this server under another name


# -- access ----------------------------------------------------------------------------------------
def test_an_anonymous_caller_is_refused(guarded_portal: PortalServer, pages: PageServer) -> None:
    before = len(pages.requests)
    resp = httpx.get(guarded_portal.base_url + PREVIEW, params={"url": pages.base + "/og"})
    assert_error(resp, 401, "")
    assert len(pages.requests) == before


def test_an_api_key_without_the_chat_scope_is_refused(member: httpx.Client, pages: PageServer) -> None:
    created = member.post("/api/api-keys", json={"name": "no-chat", "scopes": "profile:read"})
    assert created.status_code == 201, created.text
    resp = httpx.get(
        str(member.base_url) + PREVIEW,
        params={"url": pages.base + unique("/og")},
        headers={"X-API-Key": created.json()["api_key"]},
    )
    assert_error(resp, 403, "chat:read")
