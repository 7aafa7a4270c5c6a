"""What every peer shares: the "missing dependency" error, free ports, waiting, stopping processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"


class PeerUnavailable(RuntimeError):
    """A system dependency of a peer is missing (a Debian package, root rights).

    Fixtures turn it into a skip, or into a failure under ``CI=true``."""


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_executable(name: str, package: str) -> str:
    """The absolute path of ``name`` (a command or an absolute path), or PeerUnavailable naming the package."""
    found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if not found:
        raise PeerUnavailable(f"{name} is missing: install the Debian package {package} (make system-deps)")
    return found


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PeerUnavailable(f"{what} needs root: run the tests as root (CI does)")


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_banner(host: str, port: int, size: int, timeout: float = 1.0) -> bytes:
    """The first ``size`` bytes a TCP server sends on connect (b"" if it is not answering yet)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            data = b""
            while len(data) < size:
                chunk = s.recv(size - len(data))
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return b""


def wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``ready`` until it is true; fail early (with the log) when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f}s:\n{tail(log)}")
        time.sleep(0.05)


def tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes] | None, *, children: bool = False, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``. With ``children``, every descendant too (sshd's
    per-connection processes start sessions of their own, so a process-group kill misses them)."""
    if proc is None or proc.poll() is not None:
        return
    kids: list[psutil.Process] = []
    if children:
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
    proc.terminate()
    for kid in kids:
        try:
            kid.terminate()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(kids, timeout=timeout)
    for kid in alive:
        try:
            kid.kill()
        except psutil.NoSuchProcess:
            pass
