"""VNC authentication done by the relay, so a stored VNC password never reaches the browser.

The relay logs in to the VNC server itself (RFB 3.3/3.7/3.8, security type 2 "VNC
Authentication"), then plays a VNC server towards the browser that offers only security type 1
(None) in the protocol version agreed with the backend. From the ClientInit message on, both
sides speak the same RFB session and the relay copies bytes (RFB 6.1-6.3: everything after the
security handshake is independent of the version and of the security type).
"""

from __future__ import annotations

import importlib
import re
import struct
from typing import Protocol

SECURITY_INVALID = 0
SECURITY_NONE = 1
SECURITY_VNC = 2
_VERSION = re.compile(rb"^RFB (\d{3})\.(\d{3})\n$")
_U32 = struct.Struct(">I")
MAX_REASON = 4096


class RfbFailure(Exception):
    """The VNC server or the browser broke the handshake; ``str()`` is a reason fit for a close frame."""


class ByteStream(Protocol):
    async def read_exactly(self, size: int) -> bytes: ...
    async def write(self, data: bytes) -> None: ...


def parse_version(line: bytes) -> int:
    """The minor version the portal speaks for an RFB version line: 3, 7 or 8 (RFB 7.1.1: servers
    announcing other 3.x versions, such as 3.4 or 3.889, are treated as the nearest known one)."""
    match = _VERSION.match(line)
    if match is None or int(match.group(1)) != 3:
        raise RfbFailure(f"not an RFB 3.x peer: {line[:12]!r}")
    minor = int(match.group(2))
    return 8 if minor >= 8 else 7 if minor == 7 else 3


def version_line(minor: int) -> bytes:
    return b"RFB 003.%03d\n" % minor


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """DES-encrypt the 16-byte challenge with the password (first 8 bytes, NUL-padded) as key,
    the bits of each key byte reversed: the historical quirk of RFB's VNC Authentication."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    try:  # DES lives among the "decrepit" algorithms since cryptography 43
        algorithms = importlib.import_module("cryptography.hazmat.decrepit.ciphers.algorithms")
    except ImportError:
        algorithms = importlib.import_module("cryptography.hazmat.primitives.ciphers.algorithms")

    raw = password.encode("latin-1", "replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in raw)
    encryptor = Cipher(algorithms.TripleDES(key * 3), modes.ECB()).encryptor()  # K1 = K2 = K3: single DES  # noqa: S305
    return encryptor.update(challenge) + encryptor.finalize()


async def _reason(stream: ByteStream) -> str:
    (length,) = _U32.unpack(await stream.read_exactly(4))
    return (await stream.read_exactly(min(length, MAX_REASON))).decode("utf-8", "replace").strip()


async def login(backend: ByteStream, password: str) -> int:
    """Authenticate to the VNC server; return the agreed minor version. The server then waits for
    the ClientInit message, which the browser will send."""
    minor = parse_version(await backend.read_exactly(12))
    await backend.write(version_line(minor))
    if minor == 3:
        (chosen,) = _U32.unpack(await backend.read_exactly(4))
        if chosen == SECURITY_INVALID:
            raise RfbFailure(f"VNC server refused the connection: {await _reason(backend)}")
        if chosen not in (SECURITY_NONE, SECURITY_VNC):
            raise RfbFailure(f"VNC server wants security type {chosen}; the portal speaks VNC authentication only")
    else:
        count = (await backend.read_exactly(1))[0]
        if count == 0:
            raise RfbFailure(f"VNC server refused the connection: {await _reason(backend)}")
        offered = list(await backend.read_exactly(count))
        if SECURITY_VNC in offered:
            chosen = SECURITY_VNC
        elif SECURITY_NONE in offered:
            chosen = SECURITY_NONE  # the server needs no password after all
        else:
            raise RfbFailure(f"VNC server offers security types {offered}; the portal speaks VNC authentication (2)")
        await backend.write(bytes((chosen,)))
    if chosen == SECURITY_VNC:
        await backend.write(vnc_auth_response(password, await backend.read_exactly(16)))
    if chosen == SECURITY_VNC or minor == 8:
        (result,) = _U32.unpack(await backend.read_exactly(4))
        if result != 0:
            reason = await _reason(backend) if minor == 8 else ""
            raise RfbFailure("VNC authentication failed" + (f": {reason}" if reason else " (wrong password?)"))
    return minor


async def greet_browser(browser: ByteStream, minor: int) -> None:
    """Play the server's part of the handshake towards the browser, offering security None only."""
    await browser.write(version_line(minor))
    asked = parse_version(await browser.read_exactly(12))
    if asked > minor:
        raise RfbFailure(f"the viewer answered RFB 3.{asked} to an offer of 3.{minor}")
    if asked == 3:
        await browser.write(_U32.pack(SECURITY_NONE))
        return
    await browser.write(bytes((1, SECURITY_NONE)))
    chosen = (await browser.read_exactly(1))[0]
    if chosen != SECURITY_NONE:
        raise RfbFailure(f"the viewer chose security type {chosen}, not None")
    if asked == 8:
        await browser.write(_U32.pack(0))
