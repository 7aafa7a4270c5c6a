"""The SSH terminal relay: an interactive shell (or the connection's ``shell`` command) in a PTY
on the SSH server, spoken to the browser in the JSON terminal protocol.

Output is taken from the channel by a session object rather than asyncssh's streams: stdout and
stderr land in one bounded buffer (a PTY merges them anyway), and when the browser falls behind
the channel is paused, so asyncssh stops widening the SSH window and the server stops sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncssh

from portal.core.errors import ApiError
from portal.remote import ssh_client
from portal.remote.plugins import Relay
from portal.remote.relays.registry import relay
from portal.remote.relays.session import RelayContext
from portal.remote.relays.terminal import DEFAULT_COLS, DEFAULT_ROWS, OutputBuffer, fail, run_terminal

log = logging.getLogger(__name__)


class _ShellSession(asyncssh.SSHClientSession[bytes]):
    """asyncssh's callbacks for one session channel, feeding an :class:`OutputBuffer`."""

    def __init__(self) -> None:
        self.channel: asyncssh.SSHClientChannel[bytes] | None = None
        self.output = OutputBuffer(self._pause, self._resume)
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.channel = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.output.feed(data)

    def eof_received(self) -> bool:
        self.output.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.output.end()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _pause(self) -> None:
        if self.channel is not None:
            self.channel.pause_reading()

    def _resume(self) -> None:
        if self.channel is not None:
            self.channel.resume_reading()

    async def drained(self) -> None:
        await self._writable.wait()


class SshTerminal:
    """:class:`~portal.remote.relays.terminal.TerminalBackend` over one SSH session channel."""

    def __init__(
        self, conn: asyncssh.SSHClientConnection, channel: asyncssh.SSHClientChannel[bytes], session: _ShellSession
    ) -> None:
        self.conn = conn
        self.channel = channel
        self.session = session

    async def read(self) -> bytes:
        return await self.session.output.read()

    async def write(self, data: bytes) -> None:
        if self.session.output.ended or self.channel.is_closing():
            return
        self.channel.write(data)
        await self.session.drained()

    def resize(self, cols: int, rows: int) -> None:
        if not self.channel.is_closing():
            self.channel.change_terminal_size(cols, rows)

    async def close(self) -> None:
        self.channel.close()
        self.conn.close()
        await self.conn.wait_closed()


async def open_shell(ctx: RelayContext, conn: asyncssh.SSHClientConnection) -> SshTerminal:
    command = ctx.config.get("shell") or None
    term = ctx.config.get("term") or "xterm-256color"
    channel, session = await conn.create_session(
        _ShellSession,
        command,
        term_type=term,
        term_size=(DEFAULT_COLS, DEFAULT_ROWS),
        encoding=None,
    )
    assert isinstance(session, _ShellSession)
    return SshTerminal(conn, channel, session)


@relay(Relay.SSH)
async def relay_ssh(ctx: RelayContext) -> None:
    """Connect (authentication and host key pinning live in :mod:`portal.remote.ssh_client`),
    open the shell, relay until one side ends."""
    assert ctx.target is not None, "the ssh plugin needs a host"
    try:
        conn = await ssh_client.connect(
            ctx.remote.db, ctx.known_hosts_scope, ctx.principal.user_id, ctx.target, ctx.config
        )
    except ApiError as err:
        await fail(ctx, err.message)
        return
    except Exception:  # a bug, or the database failing: the browser still gets an answer
        log.exception("ssh relay: connecting to %s:%s failed", ctx.target.host, ctx.target.port)
        await fail(ctx, "SSH connection failed (internal error)")
        return
    try:
        terminal = await open_shell(ctx, conn)
    except (asyncssh.Error, OSError) as exc:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 5)
        reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
        await fail(ctx, f"The SSH server refused a shell: {reason}")
        return
    await run_terminal(ctx, terminal)
