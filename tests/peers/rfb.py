"""A minimal RFB (VNC) client for checking a VNC peer or a relay in front of one.

It speaks RFB 3.8 (3.3/3.7 servers are answered in kind): security None or VNC authentication,
then 32-bit true-colour raw framebuffer reads. The transport is anything with ``sendall(bytes)``
and ``recv(n) -> bytes`` (a socket, or an adapter over a WebSocket).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Protocol, Self

SECURITY_NONE = 1
SECURITY_VNC = 2


class Transport(Protocol):
    def sendall(self, data: bytes, /) -> None: ...
    def recv(self, size: int, /) -> bytes: ...


class RfbError(Exception):
    """The server refused us (bad password, no common security type) or broke the protocol."""


@dataclass(frozen=True)
class ServerInit:
    width: int
    height: int
    name: str


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """DES of the 16-byte challenge with the password as key, each key byte bit-reversed (RFB 7.2.2)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode("latin-1")[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # K1=K2=K3 is single DES
    return encryptor.update(challenge) + encryptor.finalize()


class RfbClient:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.server_version = ""
        self.security_types: list[int] = []
        self.server_init: ServerInit | None = None

    @classmethod
    def connect(cls, host: str, port: int, *, password: str | None = None, timeout: float = 10) -> Self:
        """Open a TCP connection and complete the handshake up to ServerInit."""
        sock = socket.create_connection((host, port), timeout=timeout)
        client = cls(sock)
        try:
            client.handshake(password)
        except BaseException:
            sock.close()
            raise
        return client

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.transport.recv(size - len(data))
            if not chunk:
                raise RfbError(f"connection closed after {len(data)} of {size} bytes")
            data += chunk
        return data

    def handshake(self, password: str | None = None, *, shared: bool = True) -> ServerInit:
        version = self.recv_exactly(12)
        if not version.startswith(b"RFB 003."):
            raise RfbError(f"not an RFB server: {version!r}")
        self.server_version = version.decode().strip()
        minor = min(int(version[8:11]), 8)
        minor = 8 if minor >= 8 else 7 if minor == 7 else 3
        self.transport.sendall(b"RFB 003.%03d\n" % minor)
        if minor == 3:
            self.security_types = [struct.unpack(">I", self.recv_exactly(4))[0]]
            if self.security_types == [0]:
                raise RfbError(self._reason())
            chosen = self.security_types[0]
        else:
            count = self.recv_exactly(1)[0]
            if count == 0:
                raise RfbError(self._reason())
            self.security_types = list(self.recv_exactly(count))
            wanted = SECURITY_VNC if password is not None else SECURITY_NONE
            if wanted not in self.security_types:
                raise RfbError(f"server offers security types {self.security_types}, not {wanted}")
            chosen = wanted
            self.transport.sendall(bytes([chosen]))
        if chosen == SECURITY_VNC:
            if password is None:
                raise RfbError("the server wants a VNC password")
            self.transport.sendall(vnc_auth_response(password, self.recv_exactly(16)))
        if chosen == SECURITY_VNC or minor == 8:
            if struct.unpack(">I", self.recv_exactly(4))[0] != 0:
                raise RfbError(self._reason() if minor == 8 else "authentication failed")
        self.transport.sendall(bytes([1 if shared else 0]))
        width, height = struct.unpack(">HH", self.recv_exactly(4))
        self.recv_exactly(16)  # the server's pixel format; we set our own below
        name = self.recv_exactly(struct.unpack(">I", self.recv_exactly(4))[0]).decode("utf-8", "replace")
        self.server_init = ServerInit(width, height, name)
        # 32 bpp, depth 24, little endian, true colour, 255 per channel, red<<16 green<<8 blue: bytes B G R X
        pixel_format = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        self.transport.sendall(b"\x00\x00\x00\x00" + pixel_format)
        self.transport.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only
        return self.server_init

    def read_rect(self, x: int, y: int, width: int, height: int) -> list[list[tuple[int, int, int]]]:
        """Request a non-incremental update of the rectangle and return its pixels as rows of (r, g, b)."""
        self.transport.sendall(struct.pack(">BBHHHH", 3, 0, x, y, width, height))
        pixels: dict[tuple[int, int], tuple[int, int, int]] = {}
        while any((px, py) not in pixels for py in range(y, y + height) for px in range(x, x + width)):
            message = self.recv_exactly(1)[0]
            if message == 0:
                self._read_update(pixels)
            elif message == 1:  # SetColourMapEntries
                _, _, count = struct.unpack(">xHH", self.recv_exactly(5))
                self.recv_exactly(6 * count)
            elif message == 2:  # Bell
                continue
            elif message == 3:  # ServerCutText
                self.recv_exactly(struct.unpack(">3xI", self.recv_exactly(7))[0])
            else:
                raise RfbError(f"unexpected server message {message}")
        return [[pixels[(px, py)] for px in range(x, x + width)] for py in range(y, y + height)]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        return self.read_rect(x, y, 1, 1)[0][0]

    def _read_update(self, pixels: dict[tuple[int, int], tuple[int, int, int]]) -> None:
        (rects,) = struct.unpack(">xH", self.recv_exactly(3))
        for _ in range(rects):
            rx, ry, rw, rh, encoding = struct.unpack(">HHHHi", self.recv_exactly(12))
            if encoding != 0:
                raise RfbError(f"server sent encoding {encoding} though we asked for Raw only")
            data = self.recv_exactly(rw * rh * 4)
            for row in range(rh):
                for col in range(rw):
                    i = (row * rw + col) * 4
                    pixels[(rx + col, ry + row)] = (data[i + 2], data[i + 1], data[i])

    def _reason(self) -> str:
        return self.recv_exactly(struct.unpack(">I", self.recv_exactly(4))[0]).decode("utf-8", "replace")
