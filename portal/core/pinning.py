"""Connecting only to checked addresses: the httpx transport under :class:`portal.core.net.NetGuard`.

The transport asks the guard to check each request's destination and to resolve its name once,
then hands httpcore a network backend that connects to those addresses and nothing else. The URL
keeps the host name, so the ``Host`` header, TLS SNI and certificate checks use the name while
the socket goes to the pinned address: a DNS answer that changes after the check is never used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Protocol

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}
Pins = dict[tuple[str, int], tuple[IPAddress, ...]]


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the guard checked for that (host, port); never resolves a name."""

    def __init__(self, pins: Pins, inner: httpcore.AsyncNetworkBackend) -> None:
        self._pins = pins
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise httpcore.ConnectError(f"no checked address for {host}:{port}")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Checker(Protocol):
    """What the transport needs from the policy (:class:`portal.core.net.NetGuard`)."""

    network_backend: httpcore.AsyncNetworkBackend

    @property
    def ssl_context(self) -> ssl.SSLContext: ...

    def check_destination(
        self, scheme: str, host: str, port: int | None, allow_hosts: Iterable[str] | None = None
    ) -> object: ...

    async def resolve_public(self, host: str, port: int) -> list[IPAddress]: ...


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that checks each request's destination and pins its address.

    Each (host, port) is resolved once per transport and connected to at the checked address
    from then on, so use one transport per task (a fetch, a delivery, a proxied session) rather
    than one for the process. With ``httpx.AsyncClient(transport=..., trust_env=False)`` every
    redirect hop is checked too; ``trust_env=False`` matters: proxies from the environment
    would otherwise bypass this transport.
    """

    def __init__(self, guard: Checker, allow_hosts: Iterable[str] | None = None) -> None:
        self._guard = guard
        self._allow_hosts = None if allow_hosts is None else tuple(allow_hosts)
        self._pins: Pins = {}
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=guard.ssl_context,
            network_backend=_PinnedBackend(self._pins, guard.network_backend),
            http1=True,
            http2=False,
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        self._guard.check_destination(url.scheme, host, url.port, self._allow_hosts)
        key = (host, url.port or DEFAULT_PORTS[url.scheme])
        if key not in self._pins:
            self._pins[key] = tuple(await self._guard.resolve_public(host, key[1]))
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


# Most specific first: the first match decides which httpx error an httpcore error becomes.
_ERROR_MAP: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's errors as httpx's, the way httpx's own transport reports them."""
    try:
        yield
    except Exception as exc:
        for source, target in _ERROR_MAP:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise
