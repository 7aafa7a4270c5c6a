"""The telnet relay: the JSON terminal protocol over a raw TCP stream.

Option negotiation is what a plain client does (RFC 854/855, answering only when our side's
state changes, so negotiation cannot loop): the server may echo (ECHO) and suppress go-ahead
(SGA); we suppress go-ahead too and report the window size (NAWS) when the server asks for it,
again after every resize. Everything else is refused with DONT/WONT. Commands and
subnegotiations are removed from the output; a literal 0xFF byte is doubled on the way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct

from portal.remote.plugins import Relay
from portal.remote.relays.registry import relay
from portal.remote.relays.session import RelayContext
from portal.remote.relays.terminal import DEFAULT_COLS, DEFAULT_ROWS, READ_SIZE, fail, run_terminal

CONNECT_TIMEOUT = 10.0

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA, NAWS = 1, 3, 31
SERVER_MAY = frozenset({ECHO, SGA})  # options we let the server enable (WILL -> DO)
WE_WILL = frozenset({SGA, NAWS})  # options we enable when asked (DO -> WILL)

_DATA, _IAC, _OPTION, _SB, _SB_IAC, _CR = range(6)
_BARE_CR = re.compile(rb"\r(?!\n)")  # NVT: a carriage return alone is sent as CR NUL


class TelnetStream:
    """Splits the server's stream into terminal output and option negotiation (kept across
    reads: a command may be cut anywhere), and sends our answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.size = (DEFAULT_COLS, DEFAULT_ROWS)
        self.local: set[int] = set()  # options enabled on our side
        self.remote: set[int] = set()  # options enabled on the server's side
        self._state = _DATA
        self._verb = 0

    # -- TerminalBackend -------------------------------------------------------------------------
    async def read(self) -> bytes:
        while True:
            raw = await self.reader.read(READ_SIZE)
            if not raw:
                return b""
            data = self.parse(raw)
            if data:
                return data

    async def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(_BARE_CR.sub(b"\r\x00", data.replace(b"\xff", b"\xff\xff")))
        await self.writer.drain()

    def resize(self, cols: int, rows: int) -> None:
        self.size = (cols, rows)
        if NAWS in self.local:
            self._send_naws()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    # -- the protocol ----------------------------------------------------------------------------
    def parse(self, raw: bytes) -> bytes:
        """The terminal output in ``raw``; negotiation is answered on the way."""
        if self._state == _DATA and IAC not in raw and 0 not in raw:
            if raw.endswith(b"\r"):
                self._state = _CR
            return raw
        out = bytearray()
        for byte in raw:
            state = self._state
            if state == _DATA or state == _CR:
                self._state = _DATA
                if byte == IAC:
                    self._state = _IAC
                elif byte == 0 and state == _CR:
                    pass  # CR NUL is a bare carriage return
                else:
                    out.append(byte)
                    if byte == 13:
                        self._state = _CR
            elif state == _IAC:
                if byte == IAC:
                    out.append(IAC)
                    self._state = _DATA
                elif byte in (DO, DONT, WILL, WONT):
                    self._verb = byte
                    self._state = _OPTION
                elif byte == SB:
                    self._state = _SB
                else:
                    self._state = _DATA  # NOP, GA, AYT…: nothing to show
            elif state == _OPTION:
                self._negotiate(self._verb, byte)
                self._state = _DATA
            elif state == _SB:
                if byte == IAC:
                    self._state = _SB_IAC
            elif state == _SB_IAC:
                self._state = _DATA if byte == SE else _SB
        return bytes(out)

    def _negotiate(self, verb: int, option: int) -> None:
        if verb == WILL:
            if option in SERVER_MAY:
                if option not in self.remote:
                    self.remote.add(option)
                    self._send(DO, option)
            else:
                self._send(DONT, option)
        elif verb == WONT:
            if option in self.remote:
                self.remote.discard(option)
                self._send(DONT, option)
        elif verb == DO:
            if option in WE_WILL:
                if option not in self.local:
                    self.local.add(option)
                    self._send(WILL, option)
                if option == NAWS:
                    self._send_naws()
            else:
                self._send(WONT, option)
        elif verb == DONT and option in self.local:
            self.local.discard(option)
            self._send(WONT, option)

    def _send(self, verb: int, option: int) -> None:
        if not self.writer.is_closing():
            self.writer.write(bytes((IAC, verb, option)))

    def _send_naws(self) -> None:
        body = struct.pack("!HH", *self.size).replace(b"\xff", b"\xff\xff")
        if not self.writer.is_closing():
            self.writer.write(bytes((IAC, SB, NAWS)) + body + bytes((IAC, SE)))


@relay(Relay.TELNET)
async def relay_telnet(ctx: RelayContext) -> None:
    assert ctx.target is not None, "the telnet plugin needs a host"
    target = ctx.target
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.address, target.port, limit=2 * READ_SIZE), CONNECT_TIMEOUT
        )
    except (TimeoutError, OSError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        await fail(ctx, f"Could not connect to {target.host}:{target.port}: {reason}")
        return
    await run_terminal(ctx, TelnetStream(reader, writer))
