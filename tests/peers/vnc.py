"""A real VNC server: Xvfb on a free display, painted one solid colour, shared by x11vnc on loopback."""

from __future__ import annotations

import os
import secrets
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.peers.base import LOOPBACK, free_port, read_banner, require_executable, stop_process, wait_for


def parse_color(color: str) -> tuple[int, int, int]:
    value = color.removeprefix("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


class VncServer:
    """Xvfb (``-screen 0 WxHx24 -nolisten tcp``) + ``x11vnc -rfbport P -listen 127.0.0.1 -forever -shared``.

    The whole screen is ``color`` (set with xsetroot), so a viewer can check it sees the remote
    screen: ``expected_color`` is its (r, g, b). With ``password`` (at most 8 characters, RFB's
    limit; ``password=True`` picks a random one) clients must use VNC authentication, without it
    they get security type None. Attributes: ``host``, ``port``, ``display`` (":N"), ``password``,
    ``width``, ``height``, ``color``, ``expected_color``.
    """

    def __init__(
        self,
        *,
        password: str | bool | None = None,
        width: int = 800,
        height: int = 600,
        color: str = "#ff0000",
        show_cursor: bool = False,
        host: str = LOOPBACK,
    ) -> None:
        if password is True:
            password = secrets.token_hex(4)
        if isinstance(password, str) and not 0 < len(password) <= 8:
            raise ValueError("a VNC password has 1 to 8 characters")
        self.password: str | None = password or None
        self.width, self.height = width, height
        self.color = color
        self.expected_color = parse_color(color)
        self.show_cursor = show_cursor
        self.host = host
        self.port = 0
        self.display = ""
        self.dir = Path()
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._x11vnc: subprocess.Popen[bytes] | None = None

    @property
    def display_number(self) -> int:
        return int(self.display.removeprefix(":"))

    def start(self) -> Self:
        xvfb = require_executable("Xvfb", "xvfb")
        x11vnc = require_executable("x11vnc", "x11vnc")
        xsetroot = require_executable("xsetroot", "x11-xserver-utils")
        self.dir = Path(tempfile.mkdtemp(prefix="orp-vnc-"))
        try:
            self._start_xvfb(xvfb)
            env = {**os.environ, "DISPLAY": self.display}
            subprocess.run([xsetroot, "-solid", self.color], env=env, check=True, capture_output=True, timeout=15)
            for attempt in range(3):
                self.port = free_port(self.host)
                try:
                    self._start_x11vnc(x11vnc)
                    break
                except RuntimeError:
                    stop_process(self._x11vnc)
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self._x11vnc)
        stop_process(self._xvfb)
        self._x11vnc = self._xvfb = None
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in (self.dir / "xvfb.log", self.dir / "x11vnc.log") if p.exists()
        )

    def _start_xvfb(self, xvfb: str) -> None:
        read_fd, write_fd = os.pipe()
        log_path = self.dir / "xvfb.log"
        args = [xvfb, "-displayfd", str(write_fd), "-screen", "0", f"{self.width}x{self.height}x24"]
        args += ["-nolisten", "tcp", "-noreset"]
        try:
            with log_path.open("ab") as log:
                self._xvfb = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                )
            os.close(write_fd)
            write_fd = -1
            number = b""
            deadline = time.monotonic() + 15
            while not number.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
                    raise RuntimeError(f"Xvfb did not report its display in 15s:\n{self.log()}")
                chunk = os.read(read_fd, 16)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited before it was ready:\n{self.log()}")
                number += chunk
            self.display = ":" + number.decode().strip()
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)

    def _start_x11vnc(self, x11vnc: str) -> None:
        log_path = self.dir / "x11vnc.log"
        args = [x11vnc, "-display", self.display, "-rfbport", str(self.port), "-listen", self.host]
        args += ["-noipv6", "-forever", "-shared", "-norc", "-noxdamage", "-nobell", "-nosel"]
        if not self.show_cursor:
            args.append("-nocursor")
        if self.password:
            password_file = self.dir / "vncpasswd"
            password_file.touch(mode=0o600)
            password_file.write_text(self.password + "\n")
            args += ["-passwdfile", str(password_file)]
        else:
            args.append("-nopw")
        with log_path.open("ab") as log:
            self._x11vnc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(
            lambda: read_banner(self.host, self.port, 12).startswith(b"RFB 003.00"),
            what=f"x11vnc on {self.host}:{self.port}",
            timeout=20,
            proc=self._x11vnc,
            log=log_path,
        )
