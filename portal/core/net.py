"""The SSRF guard: every outbound HTTP request of the portal goes through :class:`NetGuard`.

A destination is refused unless its scheme is http/https, its port is not one that browsers
refuse (the Fetch standard's "bad ports"), its name is not a local one, and **every** address it
resolves to is public: not private, loopback, link-local, multicast, reserved, unspecified,
shared (100.64/10), a cloud metadata address, nor an IPv6 form that embeds such an IPv4 address
(mapped, compatible, 6to4, Teredo, NAT64).

The name is resolved once, and the connection goes to exactly the address that was checked
(:class:`portal.core.pinning.GuardedTransport` hands httpcore a network backend that only
connects to pinned addresses), so DNS rebinding between the check and the connection cannot
work. The request keeps the host name in the URL, so the ``Host`` header, TLS SNI and
certificate verification all use the name, not the address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx

from portal.core.errors import ApiError, BadRequest
from portal.core.pinning import DEFAULT_PORTS, GuardedTransport, IPAddress

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``; the system resolver unless a test passes its own."""

# https://fetch.spec.whatwg.org/#port-blocking: ports of protocols an HTTP request could be smuggled into.
BLOCKED_PORTS = frozenset(
    {0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104,
     109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526,
     530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045,
     4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}
)  # fmt: skip
BLOCKED_NAMES = frozenset({"localhost", "metadata.google.internal"})
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
TEST_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_NUMERIC_IPV4 = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


class BlockedDestination(BadRequest):
    """The destination is refused by policy (scheme, port, name or address); nothing was sent."""

    default_message = "Destination not allowed"


class UpstreamError(ApiError):
    """The destination was allowed but could not be fetched (unreachable, TLS, protocol, redirects)."""

    status = 502
    default_message = "Could not fetch the destination"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_message = "The destination did not answer in time"


# -- the policy ------------------------------------------------------------------------------------
def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be contacted, or None when it is a public unicast address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(ip):
            reason = blocked_reason(embedded)
            if reason:
                return reason
        if ip.ipv4_mapped or ip in NAT64_NETWORK:
            return None  # pure translations: the embedded IPv4 address decides, and it passed
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in SHARED_NETWORK:
        return "a shared (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if ip in NAT64_NETWORK or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def parse_address(text: str) -> IPAddress | None:
    """An address literal in any form a resolver would accept, or None for a name.

    Besides the canonical forms this catches what ``inet_aton`` accepts: decimal
    (``2130706433``), octal (``0177.0.0.1``), hexadecimal (``0x7f.1``) and short (``127.1``).
    """
    text = text.strip("[]").split("%", 1)[0]
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(text)
    if _NUMERIC_IPV4.match(text):
        with contextlib.suppress(OSError):
            return ipaddress.IPv4Address(socket.inet_aton(text))
    return None


def _name_is_local(host: str) -> bool:
    return host in BLOCKED_NAMES or host.endswith(".localhost")


def _host_allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    for pattern in allow_hosts:
        pattern = pattern.lower().rstrip(".")
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo in the loop's executor: the one place a name becomes addresses."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


class NetGuard:
    """The destination policy of one portal, and the factory of guarded transports.

    ``allow_loopback_ports`` is for tests only (``PORTAL_SSRF_ALLOW_LOOPBACK_PORTS``): it lets
    the literal host ``127.0.0.1`` through on exactly those ports, so tests can serve pages from
    a local server. Any other spelling of loopback, and 127.0.0.1 on other ports, stays refused.
    """

    def __init__(
        self,
        *,
        allow_loopback_ports: Iterable[int] = (),
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_loopback_ports = frozenset(allow_loopback_ports)
        self.resolver = resolver or system_resolver
        self.network_backend = network_backend or httpcore.AnyIOBackend()
        self._ssl_context = ssl_context

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _test_loopback(self, host: str, port: int) -> bool:
        return host == str(TEST_LOOPBACK) and port in self.allow_loopback_ports

    def check_destination(
        self, scheme: str, host: str, port: int | None, allow_hosts: Iterable[str] | None = None
    ) -> Destination:
        """Everything that can be refused without DNS: scheme, port, local names, address literals."""
        scheme = scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise BlockedDestination("Destination not allowed: only http and https URLs can be fetched")
        host = host.lower().rstrip(".")
        if not host:
            raise BlockedDestination("Destination not allowed: the URL has no host")
        port = DEFAULT_PORTS[scheme] if port is None else port
        if allow_hosts is not None and not _host_allowed(host, allow_hosts):
            raise BlockedDestination(f"Destination not allowed: {host} is not an allowed host")
        if self._test_loopback(host, port):
            return Destination(scheme, host, port)
        if port in BLOCKED_PORTS or not 0 < port < 65536:
            raise BlockedDestination(f"Destination not allowed: port {port} is not allowed")
        if "%" in host:
            raise BlockedDestination("Destination not allowed: the host name is not valid")
        literal = parse_address(host)
        if literal is not None:
            reason = blocked_reason(literal)
            if reason:
                raise BlockedDestination(f"Destination not allowed: {host} is {reason}")
        elif _name_is_local(host):
            raise BlockedDestination(f"Destination not allowed: {host} is a local name")
        return Destination(scheme, host, port)

    def check_url(self, url: str, allow_hosts: Iterable[str] | None = None) -> Destination:
        """:meth:`check_destination` for a URL string, before any HTTP library parses it."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise BadRequest("Invalid URL") from None
        if parts.scheme.lower() not in DEFAULT_PORTS:
            raise BlockedDestination("Destination not allowed: only http and https URLs can be fetched")
        return self.check_destination(parts.scheme, unquote(parts.hostname or ""), port, allow_hosts)

    async def resolve_public(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to; refuses when *any* address ``host`` resolves to is not public."""
        host = host.lower().rstrip(".")
        literal = parse_address(host)
        if literal is not None:
            if literal == TEST_LOOPBACK and self._test_loopback(host, port):
                return [literal]
            reason = blocked_reason(literal)
            if reason:
                raise BlockedDestination(f"Destination not allowed: {host} is {reason}")
            return [literal]
        if _name_is_local(host):
            raise BlockedDestination(f"Destination not allowed: {host} is a local name")
        try:
            raw = await self.resolver(host, port)
        except (OSError, ValueError):  # ValueError: a label the IDNA codec refuses (empty, too long)
            raise UpstreamError(f"Could not resolve the host {host}") from None
        addresses: list[IPAddress] = []
        for text in raw:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UpstreamError(f"Could not resolve the host {host}")
        for address in addresses:
            reason = blocked_reason(address)
            if reason:
                raise BlockedDestination(f"Destination not allowed: {host} resolves to {reason}")
        return addresses

    def transport(self, allow_hosts: Iterable[str] | None = None) -> GuardedTransport:
        return GuardedTransport(self, allow_hosts)

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout: float,  # noqa: ASYNC109 - a total deadline, applied with asyncio.timeout below
        method: str = "GET",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        allow_hosts: Iterable[str] | None = None,
        max_redirects: int = MAX_REDIRECTS,
    ) -> FetchResult:
        """One guarded request, redirects followed by hand (each hop checked), body capped.

        The body is **truncated** at ``max_bytes`` (``FetchResult.truncated`` says so) rather
        than refused: callers such as link previews only need its beginning. ``timeout`` bounds
        the whole exchange, resolution and every redirect included. Non-2xx answers are returned,
        not raised. Nothing is sent but the given headers: no cookies, no credentials from the URL.
        """
        hosts = None if allow_hosts is None else tuple(allow_hosts)
        self.check_url(url, hosts)  # a refusal needs no transport (nor its TLS context)
        try:
            async with asyncio.timeout(timeout):
                return await self._fetch(url, max_bytes, timeout, method, headers or {}, content, hosts, max_redirects)
        except TimeoutError:
            raise UpstreamTimeout(f"The destination did not answer within {timeout:g} s") from None

    async def _fetch(
        self,
        url: str,
        max_bytes: int,
        step_timeout: float,
        method: str,
        headers: dict[str, str],
        content: bytes | None,
        allow_hosts: tuple[str, ...] | None,
        max_redirects: int,
    ) -> FetchResult:
        transport = self.transport(allow_hosts)
        outgoing = {"Accept-Encoding": "identity", **headers}
        extensions: dict[str, Any] = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), step_timeout)}
        redirects: list[str] = []
        current = url.strip()
        try:
            for hop in range(max_redirects + 1):
                try:
                    self.check_url(current, allow_hosts)
                    target = httpx.URL(current)
                except BlockedDestination:
                    raise
                except (BadRequest, httpx.InvalidURL):
                    if hop == 0:
                        raise BadRequest("Invalid URL") from None
                    raise UpstreamError("The destination redirected to an invalid URL") from None
                request = httpx.Request(method, target, headers=outgoing, content=content, extensions=extensions)
                response = await transport.handle_async_request(request)
                response.request = request
                try:
                    location = response.headers.get("location")
                    if response.status_code not in REDIRECT_STATUSES or not location:
                        body, truncated = await _read_capped(response, max_bytes)
                        return FetchResult(
                            str(target), response.status_code, response.headers, body, truncated, tuple(redirects)
                        )
                finally:
                    await response.aclose()
                try:
                    following = urljoin(current, location.strip())
                except ValueError:
                    raise UpstreamError("The destination redirected to an invalid URL") from None
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, content = "GET", None
                    outgoing = {
                        k: v for k, v in outgoing.items() if k.lower() not in ("content-type", "content-length")
                    }
                if _origin(following) != _origin(current):
                    outgoing = {k: v for k, v in outgoing.items() if k.lower() not in ("authorization", "cookie")}
                redirects.append(following)
                current = following
            raise UpstreamError(f"Too many redirects (more than {max_redirects})")
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"The destination did not answer within {step_timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Could not fetch the destination: {_describe(exc)}") from None
        finally:
            await transport.aclose()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(parts.scheme.lower())


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "invalid HTTP response"
    return "network error"


# -- the result ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchResult:
    url: str
    """The final URL, after redirects."""
    status: int
    headers: httpx.Headers
    content: bytes
    truncated: bool
    """The body was longer than ``max_bytes`` and was cut there."""
    redirects: tuple[str, ...] = ()

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of body, decoded from gzip/deflate within the same cap."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in response.aiter_raw():
        if size + len(chunk) > max_bytes:
            chunks.append(chunk[: max_bytes - size])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        # Decompressing inside the cap keeps a small compressed bomb from becoming a huge body.
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
        try:
            decoded = decoder.decompress(body, max_bytes)
        except zlib.error:
            raise UpstreamError("The destination sent a body that cannot be decoded") from None
        return decoded, truncated or bool(decoder.unconsumed_tail)
    return body, truncated
