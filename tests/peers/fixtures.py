"""Pytest fixtures for the peers, loaded by ``tests/conftest.py`` (``pytest_plugins``).

Session-scoped servers are shared by every test: add keys to ``ssh_server`` with ``authorize()``
freely, but change nothing else about them; a test that restarts or reconfigures a server takes
its own from a ``make_*`` factory, which stops it at the end of the test. A missing system
dependency skips the test, or fails it under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol, TypeVar

import pytest

from tests.peers.base import PeerUnavailable, in_ci
from tests.peers.echo import EchoServer
from tests.peers.sshd import ClientKey, SshServer, generate_client_key
from tests.peers.vnc import VncServer

FIREHOSE_BYTES = 16 * 1024 * 1024


class _Peer(Protocol):
    def start(self) -> Any: ...
    def stop(self) -> None: ...


P = TypeVar("P", bound=_Peer)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peers: tests of the peer servers themselves (tests/peers)")


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI=true where every system dependency must be installed."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: peer tests must run)", pytrace=False)
    pytest.skip(reason)


def start_peer(peer: P) -> P:
    try:
        peer.start()
    except PeerUnavailable as exc:
        reason = str(exc)
    else:
        return peer
    unavailable(reason)


def _serve(peer: P) -> Iterator[P]:
    start_peer(peer)
    try:
        yield peer
    finally:
        peer.stop()


def _factory(build: Callable[..., P]) -> Iterator[Callable[..., P]]:
    started: list[P] = []

    def make(**options: Any) -> P:
        peer = start_peer(build(**options))
        started.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in reversed(started):
            peer.stop()


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SshServer]:
    """Shared sshd for user ``orptest``; password and key logins, SFTP, PTYs, TCP forwarding."""
    yield from _serve(SshServer())


@pytest.fixture
def make_ssh_server() -> Iterator[Callable[..., SshServer]]:
    """A private sshd per call (``SshServer(**options)``), e.g. for ``rotate_host_key()``."""
    yield from _factory(SshServer)


@pytest.fixture
def ssh_client_key() -> ClientKey:
    """A fresh ed25519 key pair, not yet authorised anywhere."""
    return generate_client_key()


@pytest.fixture(scope="session")
def vnc_server() -> Iterator[VncServer]:
    """Shared 800x600 Xvfb painted ``#ff0000`` behind x11vnc without authentication."""
    yield from _serve(VncServer())


@pytest.fixture(scope="session")
def vnc_server_with_password() -> Iterator[VncServer]:
    """Like ``vnc_server`` but clients must use VNC authentication with ``.password``."""
    yield from _serve(VncServer(password=True))


@pytest.fixture
def make_vnc_server() -> Iterator[Callable[..., VncServer]]:
    """A private VNC server per call (``VncServer(**options)``: password, width, height, color…)."""
    yield from _factory(VncServer)


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    yield from _serve(EchoServer())


@pytest.fixture(scope="session")
def firehose_server() -> Iterator[EchoServer]:
    """Sends each client FIREHOSE_BYTES (16 MiB) of ``firehose_pattern`` as fast as it reads, then closes."""
    yield from _serve(EchoServer(firehose_bytes=FIREHOSE_BYTES))


@pytest.fixture
def make_echo_server() -> Iterator[Callable[..., EchoServer]]:
    """A private echo or firehose server per call (``EchoServer(**options)``), with its own counters."""
    yield from _factory(EchoServer)
