"""The SSRF guard, in process: address policy, odd address spellings, pinning, redirects, caps.

Nothing here touches the network except a loopback HTTP server. Every destination that is not
loopback is handled by :class:`FakeNetwork` (scripted answers, every connection recorded) or by
:class:`NoNetwork` (fails the test if a connection is even attempted), and by resolvers that
answer from a table, so the refused cases prove the guard refused *before* connecting.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpcore
import httpx
import pytest

from portal.core.errors import BadRequest
from portal.core.net import (
    BlockedDestination,
    NetGuard,
    UpstreamError,
    UpstreamTimeout,
    blocked_reason,
    parse_address,
)
from tests import aio

T = TypeVar("T")
PUBLIC = "93.184.216.34"  # a public address: only ever "reached" through FakeNetwork
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return aio.run(main())


# -- fakes -----------------------------------------------------------------------------------------
class FakeStream(httpcore.AsyncNetworkStream):
    def __init__(self, chunks: list[bytes], stall: float = 0.0) -> None:
        self.chunks = list(chunks)
        self.stall = stall
        self.sent = b""
        self.server_hostname: str | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.stall:
            await asyncio.sleep(self.stall)
        return self.chunks.pop(0) if self.chunks else b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sent += buffer

    async def aclose(self) -> None:
        return None

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self.server_hostname = server_hostname
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


Script = Callable[[str, int], list[bytes]]


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """Answers every connection from ``script(address, port)`` and records it."""

    def __init__(self, script: Script, stall: float = 0.0) -> None:
        self.script = script
        self.stall = stall
        self.connects: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        stream = FakeStream(self.script(host, port), self.stall)
        self.streams.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class NoNetwork(FakeNetwork):
    def __init__(self) -> None:
        super().__init__(lambda host, port: [])

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        pytest.fail(f"the guard tried to connect to {host}:{port}")


class TableResolver:
    """A resolver answering from a table; each answer may change from one call to the next."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = {name: list(answers) for name, answers in table.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answers = self.table.get(host)
        if not answers:
            raise OSError(f"unknown host {host}")
        return answers.pop(0) if len(answers) > 1 else answers[0]


def http_response(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)), **(headers or {})}
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def offline_guard(resolver: TableResolver | None = None) -> tuple[NetGuard, NoNetwork]:
    network = NoNetwork()
    return NetGuard(resolver=resolver or TableResolver({}), network_backend=network), network


# -- the address policy ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.1.2.3", "private"),
        ("198.18.0.1", "private"),
        ("192.0.2.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("::10.0.0.1", "private"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
        ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 of 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),
    ],
)
def test_non_public_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    found = blocked_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found, (address, found)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "2002:808:808::1", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.1",
        "0x7f000001",
        "127.1",
        "0x7f.0.0.1",
        "017700000001",
        "[::ffff:127.0.0.1]",
    ],
)
def test_every_spelling_of_loopback_is_read_as_an_address(spelling: str) -> None:
    address = parse_address(spelling)
    assert address is not None and blocked_reason(address) == "a loopback address"


@pytest.mark.parametrize("name", ["example.com", "localhost", "1.2.3.4.example", "deadbeef.example", "0x7g.1"])
def test_names_are_not_read_as_addresses(name: str) -> None:
    assert parse_address(name) is None


# -- refusals before any connection ----------------------------------------------------------------
PRIVATE_TARGETS = [
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "https://10.0.0.1:8443/",
    "http://[::ffff:10.0.0.1]/",
    "http://[2002:c0a8:101::1]/",
    "http://0xa000001/",  # 10.0.0.1 in hex
    "http://012.0.0.1/",  # 10.0.0.1 in octal
    "http://167772161/",  # 10.0.0.1 in decimal
]
LOOPBACK_TARGETS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://app.localhost/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://metadata.google.internal/computeMetadata/v1/",
]
OTHER_REFUSALS = [
    "ftp://example.com/file",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "gopher://example.com/",
    "http:///nohost",
    "http://example.com:25/",
    "http://example.com:22/",
]


@pytest.mark.parametrize("url", PRIVATE_TARGETS + LOOPBACK_TARGETS + OTHER_REFUSALS)
def test_refused_destinations_are_never_connected_to(url: str) -> None:
    resolver = TableResolver({"example.com": [[PUBLIC]]})
    guard, network = offline_guard(resolver)
    with pytest.raises(BlockedDestination) as info:
        run(guard.fetch(url, max_bytes=1000, timeout=2))
    assert info.value.status == 400
    assert info.value.message.startswith("Destination not allowed: "), info.value.message
    assert network.connects == []
    assert resolver.calls == []  # refused from the URL alone, before any DNS


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.0.0.7"], "private"),
        (["169.254.169.254"], "metadata"),
        (["::1"], "loopback"),
        (["::ffff:192.168.0.1"], "private"),
        ([PUBLIC, "10.0.0.7"], "private"),  # one bad address is enough
        ([PUBLIC_V6, "fe80::1%eth0"], "link-local"),
    ],
)
def test_a_name_resolving_to_any_non_public_address_is_refused(answers: list[str], reason: str) -> None:
    resolver = TableResolver({"intranet.example": [answers]})
    guard, network = offline_guard(resolver)
    with pytest.raises(BlockedDestination) as info:
        run(guard.fetch("http://intranet.example/", max_bytes=1000, timeout=2))
    assert info.value.message.startswith("Destination not allowed: intranet.example resolves to a")
    assert reason in info.value.message
    assert network.connects == []


def test_resolve_public_checks_every_address() -> None:
    guard, _ = offline_guard(TableResolver({"multi.example": [[PUBLIC, PUBLIC_V6, PUBLIC]]}))
    addresses = run(guard.resolve_public("multi.example", 443))
    assert [str(a) for a in addresses] == [PUBLIC, PUBLIC_V6]


def test_an_unresolvable_name_is_an_upstream_error_not_a_connection() -> None:
    guard, network = offline_guard()
    with pytest.raises(UpstreamError) as info:
        run(guard.fetch("http://nowhere.example/", max_bytes=1000, timeout=2))
    assert info.value.status == 502
    assert network.connects == []


def test_allow_hosts_restricts_further_but_never_relaxes_the_address_check() -> None:
    resolver = TableResolver({"hooks.example": [["10.0.0.9"]], "other.example": [[PUBLIC]]})
    guard, network = offline_guard(resolver)
    with pytest.raises(BlockedDestination, match="not an allowed host"):
        run(guard.fetch("http://other.example/", max_bytes=10, timeout=2, allow_hosts=["*.hooks.example"]))
    with pytest.raises(BlockedDestination, match="private"):
        run(guard.fetch("http://hooks.example/", max_bytes=10, timeout=2, allow_hosts=["hooks.example"]))
    assert network.connects == []


# -- pinning ---------------------------------------------------------------------------------------
def test_the_connection_goes_to_the_checked_address_even_if_dns_changes_its_answer() -> None:
    """DNS rebinding: the first answer is public, every later one loopback. Only the first is used."""
    resolver = TableResolver({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    network = FakeNetwork(
        lambda host, port: (
            [http_response(302, headers={"Location": "/second"})]
            if len(network.connects) == 1
            else [http_response(200, b"<title>ok</title>")]
        )
    )
    guard = NetGuard(resolver=resolver, network_backend=network)
    result = run(guard.fetch("http://rebind.example/first", max_bytes=1000, timeout=2))
    assert result.status == 200 and result.content == b"<title>ok</title>"
    assert result.url == "http://rebind.example/second"
    assert network.connects == [(PUBLIC, 80), (PUBLIC, 80)]
    assert resolver.calls == ["rebind.example"]  # resolved once, then pinned
    for stream in network.streams:
        assert b"\r\nHost: rebind.example\r\n" in stream.sent, stream.sent


def test_a_second_resolution_is_never_consulted_by_the_connection() -> None:
    """The network backend never sees the name: it is handed only the pinned address."""
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    network = FakeNetwork(lambda host, port: [http_response(200, b"x"), http_response(200, b"y")])
    guard = NetGuard(resolver=resolver, network_backend=network)

    async def two_requests() -> None:
        transport = guard.transport()
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            assert (await client.get("http://rebind.example/a")).status_code == 200
            assert (await client.get("http://rebind.example/b")).status_code == 200

    run(two_requests())
    assert network.connects and all(host == PUBLIC for host, _ in network.connects)
    assert next(answers) == ["127.0.0.1"]  # only one of the three answers was ever asked for


def test_tls_uses_the_host_name_for_sni_while_connecting_to_the_pinned_address() -> None:
    network = FakeNetwork(lambda host, port: [http_response(200, b"secure")])
    guard = NetGuard(resolver=TableResolver({"tls.example": [[PUBLIC]]}), network_backend=network)
    result = run(guard.fetch("https://tls.example/page", max_bytes=1000, timeout=2))
    assert result.content == b"secure"
    assert network.connects == [(PUBLIC, 443)]
    assert network.streams[0].server_hostname == "tls.example"
    assert b"\r\nHost: tls.example\r\n" in network.streams[0].sent


def test_an_unpinned_connection_is_impossible_through_the_transport() -> None:
    """Even a caller that bypasses fetch() cannot reach a refused address with the transport."""
    network = FakeNetwork(lambda host, port: [http_response(200)])
    guard = NetGuard(resolver=TableResolver({"evil.example": [["10.1.1.1"]]}), network_backend=network)

    async def direct() -> None:
        async with httpx.AsyncClient(transport=guard.transport(), trust_env=False, follow_redirects=True) as client:
            await client.get("http://evil.example/")

    with pytest.raises(BlockedDestination):
        run(direct())
    assert network.connects == []


# -- redirects -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://localhost/admin",
        "http://0177.0.0.1/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://internal.example/",
    ],
)
def test_every_redirect_hop_is_checked_before_it_is_followed(location: str) -> None:
    resolver = TableResolver({"start.example": [[PUBLIC]], "internal.example": [["192.168.7.7"]]})
    network = FakeNetwork(lambda host, port: [http_response(302, headers={"Location": location})])
    guard = NetGuard(resolver=resolver, network_backend=network)
    with pytest.raises(BlockedDestination):
        run(guard.fetch("http://start.example/", max_bytes=1000, timeout=2))
    assert network.connects == [(PUBLIC, 80)]  # the first hop only


def test_redirects_stop_after_five_hops() -> None:
    network = FakeNetwork(lambda host, port: [http_response(302, headers={"Location": f"/hop{len(network.connects)}"})])
    guard = NetGuard(resolver=TableResolver({"loop.example": [[PUBLIC]]}), network_backend=network)
    with pytest.raises(UpstreamError, match="Too many redirects"):
        run(guard.fetch("http://loop.example/", max_bytes=1000, timeout=2))
    assert len(network.connects) == 6  # the request and five redirects


@pytest.mark.parametrize("location", ["http://[::1/", "http://exa mple.com/", "http://[fe80::1%25eth0]/"])
def test_a_redirect_to_an_unusable_url_is_an_upstream_error_or_a_refusal(location: str) -> None:
    network = FakeNetwork(lambda host, port: [http_response(302, headers={"Location": location})])
    guard = NetGuard(resolver=TableResolver({"start.example": [[PUBLIC]]}), network_backend=network)
    with pytest.raises((UpstreamError, BlockedDestination)):
        run(guard.fetch("http://start.example/", max_bytes=1000, timeout=2))
    assert network.connects == [(PUBLIC, 80)]


def test_a_redirect_to_another_host_drops_credentials_and_cookies() -> None:
    network = FakeNetwork(
        lambda host, port: (
            [http_response(302, headers={"Location": "http://b.example/"})]
            if len(network.connects) == 1
            else [http_response(200, b"done")]
        )
    )
    resolver = TableResolver({"a.example": [[PUBLIC]], "b.example": [["8.8.4.4"]]})
    guard = NetGuard(resolver=resolver, network_backend=network)
    headers = {"Authorization": "Bearer secret", "Cookie": "s=1", "User-Agent": "t"}
    run(guard.fetch("http://a.example/", max_bytes=1000, timeout=2, headers=headers))
    first, second = (s.sent.lower() for s in network.streams)
    assert b"authorization: bearer secret" in first and b"cookie: s=1" in first
    assert b"authorization" not in second and b"cookie" not in second and b"user-agent: t" in second
    assert network.connects == [(PUBLIC, 80), ("8.8.4.4", 80)]


# -- body cap, decoding, timeout -------------------------------------------------------------------
def test_the_body_is_truncated_at_max_bytes() -> None:
    raw = http_response(200, b"a" * (3 * 1024 * 1024))
    network = FakeNetwork(lambda host, port: [raw[i : i + 65536] for i in range(0, len(raw), 65536)])
    guard = NetGuard(resolver=TableResolver({"big.example": [[PUBLIC]]}), network_backend=network)
    result = run(guard.fetch("http://big.example/", max_bytes=100_000, timeout=5))
    assert result.truncated and len(result.content) == 100_000


def test_a_compressed_bomb_is_decoded_only_up_to_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    network = FakeNetwork(lambda host, port: [http_response(200, bomb, {"Content-Encoding": "gzip"})])
    guard = NetGuard(resolver=TableResolver({"bomb.example": [[PUBLIC]]}), network_backend=network)
    result = run(guard.fetch("http://bomb.example/", max_bytes=1024 * 1024, timeout=5))
    assert result.truncated and len(result.content) == 1024 * 1024
    assert b"accept-encoding: identity" in network.streams[0].sent.lower()


def test_the_total_timeout_bounds_a_stalling_server() -> None:
    network = FakeNetwork(lambda host, port: [http_response(200, b"late")], stall=10)
    guard = NetGuard(resolver=TableResolver({"slow.example": [[PUBLIC]]}), network_backend=network)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as info:
        run(guard.fetch("http://slow.example/", max_bytes=1000, timeout=0.5))
    assert time.monotonic() - started < 2
    assert info.value.status == 504


def test_an_invalid_url_is_a_bad_request() -> None:
    guard, network = offline_guard()
    with pytest.raises(BadRequest):
        run(guard.fetch("http://[::1/", max_bytes=10, timeout=1))
    assert network.connects == []


# -- the test-only loopback allowance, against a real loopback server -------------------------------
class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host", "")))
        body = b"<title>local</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def loopback_server() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_loopback_allowance_covers_only_the_literal_127_0_0_1_on_listed_ports(
    loopback_server: tuple[int, list[tuple[str, str]]],
) -> None:
    port, seen = loopback_server
    guard = NetGuard(allow_loopback_ports={port})
    result = run(guard.fetch(f"http://127.0.0.1:{port}/page", max_bytes=1000, timeout=3))
    assert result.content == b"<title>local</title>"
    assert seen == [("/page", f"127.0.0.1:{port}")]
    for url in [
        f"http://localhost:{port}/",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://127.1:{port}/",
        f"http://127.0.0.2:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::1]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/",
    ]:
        with pytest.raises(BlockedDestination):
            run(guard.fetch(url, max_bytes=1000, timeout=3))
    with pytest.raises(BlockedDestination):  # no allowance at all by default
        run(NetGuard().fetch(f"http://127.0.0.1:{port}/", max_bytes=1000, timeout=3))
    assert seen == [("/page", f"127.0.0.1:{port}")]
