"""The local terminal relay: a login shell on the portal host in a fresh PTY, for admins only.

The shell runs as the portal's user, in a session of its own with the PTY as its controlling
terminal (so job control and ^C work), with a small clean environment: the portal's own
environment holds its secrets. When the browser leaves, the shell's process group and its
descendants are hung up, then killed if they linger.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import signal
import struct
import termios
from collections.abc import Callable

import psutil

from portal.accounts.deps import WS_FORBIDDEN
from portal.accounts.roles import Role
from portal.remote.plugins import Relay
from portal.remote.relays.registry import relay
from portal.remote.relays.session import CLOSE_BAD_REQUEST, RelayContext
from portal.remote.relays.terminal import DEFAULT_COLS, DEFAULT_ROWS, READ_SIZE, OutputBuffer, fail, run_terminal
from portal.remote.shells import allowed_shells

EXIT_DRAIN_DELAY = 0.2  # after the shell exited, how long a process still holding the PTY may keep it open
KILL_GRACE = 2.0


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal(slave: int) -> Callable[[], None]:
    """Run in the child before exec: a new session whose controlling terminal is the PTY."""

    def setup() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    return setup


def _environment(shell: str) -> dict[str, str]:
    user = pwd.getpwuid(os.getuid())
    home = user.pw_dir if os.path.isdir(user.pw_dir) else "/"
    env = {
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "HOME": home,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": shell,
        "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "LANG": os.environ.get("LANG") or "C.UTF-8",
    }
    return env


class LocalTerminal:
    """:class:`~portal.remote.relays.terminal.TerminalBackend` over a PTY master."""

    def __init__(self, master: int, proc: asyncio.subprocess.Process) -> None:
        self.master = master
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.output = OutputBuffer(self._pause, self._resume)
        self._reading = False
        self._closed = False
        self._resume()
        self._watcher = asyncio.create_task(self._watch_exit(), name="pty-exit")

    @classmethod
    async def spawn(cls, shell: str) -> LocalTerminal:
        master, slave = os.openpty()
        try:
            _set_size(slave, DEFAULT_COLS, DEFAULT_ROWS)
            os.set_blocking(master, False)
            env = _environment(shell)
            proc = await asyncio.create_subprocess_exec(
                shell,
                "-l",  # a login shell (uvloop ignores an argv[0] of "-bash")
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=env["HOME"],
                preexec_fn=_take_terminal(slave),  # setsid + TIOCSCTTY, nothing else
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(master, proc)

    # -- output ----------------------------------------------------------------------------------
    def _pause(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.master)

    def _resume(self) -> None:
        if not self._reading and not self._closed and not self.output.ended:
            self._reading = True
            self.loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: no process holds the terminal any more
            data = b""
        if data:
            self.output.feed(data)
        else:
            self._pause()
            self.output.end()

    async def _watch_exit(self) -> None:
        """The shell exited but a background process may still hold the PTY open: end anyway."""
        await self.proc.wait()
        await asyncio.sleep(EXIT_DRAIN_DELAY)
        if self.output.ended or self._closed:
            return
        self._pause()
        for _ in range(64):  # what is left in the PTY (a few KiB at most)
            try:
                data = os.read(self.master, READ_SIZE)
            except OSError:
                break
            if not data:
                break
            self.output.feed(data)
        self.output.end()

    async def read(self) -> bytes:
        return await self.output.read()

    # -- input -----------------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._closed and not self.output.ended:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError:
                return
            view = view[written:]

    async def _writable(self) -> None:
        ready: asyncio.Future[None] = self.loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self.loop.add_writer(self.master, wake)
        try:
            await asyncio.wait_for(ready, 1.0)
        except TimeoutError:
            pass
        finally:
            self.loop.remove_writer(self.master)

    def resize(self, cols: int, rows: int) -> None:
        if not self._closed:
            _set_size(self.master, cols, rows)

    # -- the end ---------------------------------------------------------------------------------
    async def close(self) -> None:
        """Hang up the shell's process group and every descendant (jobs have process groups of
        their own), then kill whatever is left after :data:`KILL_GRACE` seconds."""
        if self._closed:
            return
        self._pause()
        self._closed = True
        self.output.end()
        procs = self._processes()
        self._signal(procs, signal.SIGHUP)
        os.close(self.master)
        _, alive = await asyncio.to_thread(psutil.wait_procs, procs, KILL_GRACE)
        if alive:
            self._signal(alive, signal.SIGKILL)
        await self.proc.wait()
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher

    def _processes(self) -> list[psutil.Process]:
        try:
            shell = psutil.Process(self.proc.pid)
            return [shell, *shell.children(recursive=True)]
        except psutil.Error:
            return []

    def _signal(self, procs: list[psutil.Process], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)  # checks the pid was not reused meanwhile


@relay(Relay.PTY)
async def relay_pty(ctx: RelayContext) -> None:
    if not ctx.principal.role.at_least(Role.ADMIN):  # ws.py refuses already; a shell is worth two checks
        await fail(ctx, "Only admins may open a local terminal", WS_FORBIDDEN)
        return
    shells = allowed_shells(ctx.remote.settings)
    requested = ctx.config.get("shell")
    if requested and requested not in shells:
        await fail(ctx, f"Shell {str(requested)[:100]!r} is not allowed; see GET /api/shells", CLOSE_BAD_REQUEST)
        return
    if not shells:
        await fail(ctx, "None of the allowed shells (PORTAL_TERMINAL_SHELLS) exists on this host", CLOSE_BAD_REQUEST)
        return
    try:
        terminal = await LocalTerminal.spawn(requested or shells[0])
    except OSError as exc:
        await fail(ctx, f"Could not start the shell: {exc.strerror or exc}")
        return
    await run_terminal(ctx, terminal)
