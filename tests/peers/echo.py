"""A threaded TCP server on a free loopback port: an echo server, or a firehose for back-pressure tests.

Threads, not asyncio, so it serves sync and async tests alike without sharing their event loop.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from tests.peers.base import LOOPBACK

_PATTERN = bytes(range(256)) * 256


def firehose_pattern(size: int, offset: int = 0) -> bytes:
    """The bytes a firehose sends at stream positions ``offset .. offset+size`` (byte i is i % 256)."""
    start = offset % 256
    whole = (start + size) // len(_PATTERN) + 1
    return (_PATTERN * whole)[start : start + size]


class EchoServer:
    """Echoes every byte back; with ``firehose_bytes`` it instead sends that many bytes of
    :func:`firehose_pattern` to each client as fast as the client reads, then closes.

    Attributes: ``host``, ``port``, ``address``; counters ``connections`` (accepted so far),
    ``active``, ``bytes_in``, ``bytes_out``; ``finished`` is set each time a firehose connection has
    sent everything.
    """

    def __init__(self, *, firehose_bytes: int | None = None, host: str = LOOPBACK, chunk_size: int = 65536) -> None:
        self.host = host
        self.port = 0
        self.firehose_bytes = firehose_bytes
        self.chunk_size = chunk_size
        self.connections = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._clients)

    def start(self) -> Self:
        listener = socket.create_server((self.host, 0), backlog=128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.add(client)
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            if self.firehose_bytes is None:
                self._echo(client)
            else:
                self._firehose(client, self.firehose_bytes)
        except OSError:
            pass
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()

    def _echo(self, client: socket.socket) -> None:
        while data := client.recv(self.chunk_size):
            client.sendall(data)
            with self._lock:
                self.bytes_in += len(data)
                self.bytes_out += len(data)

    def _firehose(self, client: socket.socket, total: int) -> None:
        sent = 0
        while sent < total:
            chunk = firehose_pattern(min(self.chunk_size, total - sent), sent)
            client.sendall(chunk)
            sent += len(chunk)
            with self._lock:
                self.bytes_out += len(chunk)
        self.finished.set()
        client.shutdown(socket.SHUT_WR)
        while data := client.recv(self.chunk_size):
            with self._lock:
                self.bytes_in += len(data)
