"""A real OpenSSH server on a free loopback port, with its own config, host key and authorized keys.

Logins go to the system user ``orptest`` (created when missing, as root) with a random password.
Several test runs on one machine share that user: the first live run sets the password and later
runs that overlap it reuse it, so one run never changes the password under another.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.peers.base import (
    LOOPBACK,
    free_port,
    read_banner,
    require_executable,
    require_root,
    stop_process,
    wait_for,
)

SSHD = "/usr/sbin/sshd"
LOGIN_USER = "orptest"
STATE_DIR = Path("/run/orp-test-peers")
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class LoginUser:
    name: str
    password: str
    home: Path
    uid: int
    gid: int


@functools.cache
def login_user(name: str = LOGIN_USER) -> LoginUser:
    """Create the system user if missing and give it this run's password (see the module doc)."""
    require_root("the sshd peer (it creates the login user and runs sshd with privilege separation)")
    useradd = require_executable("useradd", "passwd")
    chpasswd = require_executable("chpasswd", "passwd")
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    with open(STATE_DIR / "mutex", "a") as mutex:
        fcntl.flock(mutex, fcntl.LOCK_EX)
        created = False
        try:
            pwd.getpwnam(name)
        except KeyError:
            comment = "Open Relay Portal test peer"
            subprocess.run([useradd, "-m", "-s", "/bin/bash", "-c", comment, name], check=True, capture_output=True)
            created = True
        lease = _lease(name)
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        password_file = STATE_DIR / f"{name}.password"
        if alone or created or not password_file.exists():
            password = "orp-" + secrets.token_urlsafe(18)
            subprocess.run([chpasswd], input=f"{name}:{password}\n".encode(), check=True, capture_output=True)
            password_file.touch(mode=0o600)
            password_file.write_text(password)
        else:
            password = password_file.read_text().strip()
        fcntl.flock(lease, fcntl.LOCK_SH)
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    if not home.is_dir():  # the user survived a wiped /home
        home.mkdir(mode=0o755, parents=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    return LoginUser(name, password, home, entry.pw_uid, entry.pw_gid)


@functools.cache
def _lease(name: str) -> IO[str]:
    """A file this process keeps a shared lock on while it may use the user's password."""
    return open(STATE_DIR / f"{name}.lease", "a")


def _openssh_version(sshd: str) -> tuple[int, int]:
    out = subprocess.run([sshd, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def fingerprint(public_key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line (``ssh-ed25519 AAAA... comment``)."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class SshServer:
    """``sshd -D -e -f <own config>`` on 127.0.0.1.

    Attributes for tests: ``host``, ``port``, ``username``, ``password``, ``home`` (the user's home),
    ``scratch`` (a fresh directory in it owned by the user, removed on stop), ``host_public_key``,
    ``host_key_fingerprint``, ``known_hosts_line``, ``authorized_keys_path``.
    """

    def __init__(self, *, username: str = LOGIN_USER, host: str = LOOPBACK, extra_config: tuple[str, ...] = ()) -> None:
        self.host = host
        self.port = 0
        self.username = username
        self.password = ""
        self.home = Path()
        self.scratch = Path()
        self.extra_config = extra_config
        self.dir = Path()
        self.host_public_key = ""
        self.host_key_fingerprint = ""
        self._user: LoginUser | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def authorized_keys_path(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def start(self) -> Self:
        require_executable(SSHD, "openssh-server")
        require_executable("ssh-keygen", "openssh-client")
        user = self._user = login_user(self.username)
        self.password, self.home = user.password, user.home
        self.dir = Path(tempfile.mkdtemp(prefix="orp-sshd-"))
        self.dir.chmod(0o755)  # sshd reads the authorized keys file as the login user
        self.authorized_keys_path.write_text("")
        self.authorized_keys_path.chmod(0o644)
        self.scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.home))
        os.chown(self.scratch, user.uid, user.gid)
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self._new_host_key()
        for attempt in range(3):
            self.port = free_port(self.host)
            self._write_config()
            try:
                self._launch()
                return self
            except RuntimeError as exc:
                if attempt == 2 or "Address already in use" not in str(exc):
                    self.stop()
                    raise
        return self

    def stop(self) -> None:
        stop_process(self._proc, children=True)
        self._proc = None
        if self.scratch != Path() and self.scratch.exists():
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def authorize(self, public_key_line: str) -> None:
        """Accept a client key (an OpenSSH public key line) for the login user from now on."""
        with self.authorized_keys_path.open("a") as f:
            f.write(public_key_line.strip() + "\n")

    def revoke_all_keys(self) -> None:
        self.authorized_keys_path.write_text("")

    def rotate_host_key(self) -> str:
        """Restart sshd on the same port with a new host key; open sessions are dropped.
        Returns the new fingerprint."""
        stop_process(self._proc, children=True)
        self._new_host_key()
        self._launch()
        return self.host_key_fingerprint

    def write_file(self, relative: str, content: bytes | str, mode: int = 0o644) -> Path:
        """Create a file under ``scratch`` owned by the login user (so SFTP can read, change and delete it)."""
        assert self._user is not None, "start() first"
        path = self.scratch / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [*reversed(path.relative_to(self.scratch).parents)][1:]:
            os.chown(self.scratch / parent, self._user.uid, self._user.gid)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)
        os.chown(path, self._user.uid, self._user.gid)
        return path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _new_host_key(self) -> None:
        for path in (self.host_key_path, self.host_key_path.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "orp-test-host", "-f", str(self.host_key_path)],
            check=True,
            capture_output=True,
        )
        key_type, blob = self.host_key_path.with_suffix(".pub").read_text().split()[:2]
        self.host_public_key = f"{key_type} {blob}"
        self.host_key_fingerprint = fingerprint(self.host_public_key)

    def _write_config(self) -> None:
        lines = [
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            f"AllowUsers {self.username}",
            "UsePAM no",
            "PasswordAuthentication yes",
            "PubkeyAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "PermitEmptyPasswords no",
            "StrictModes no",
            "AllowAgentForwarding no",
            "AllowTcpForwarding yes",
            "X11Forwarding no",
            "PermitTTY yes",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "LogLevel VERBOSE",
            "LoginGraceTime 30",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "Subsystem sftp internal-sftp",
            "SetEnv LANG=C.UTF-8",  # what PAM's /etc/default/locale gives a Debian login; UsePAM is off
        ]
        if _openssh_version(SSHD) >= (9, 8):
            lines.append("PerSourcePenalties no")  # wrong-password tests must not lock 127.0.0.1 out
        lines += self.extra_config
        (self.dir / "sshd_config").write_text("\n".join(lines) + "\n")

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: read_banner(self.host, self.port, 8).startswith(b"SSH-2.0-"),
            what=f"sshd on {self.host}:{self.port}",
            timeout=15,
            proc=self._proc,
            log=self.log_path,
        )


@dataclass(frozen=True)
class ClientKey:
    """An ed25519 client key pair: ``private_openssh`` (OpenSSH PEM text), ``public_line``, ``fingerprint``."""

    private_openssh: str
    public_line: str
    fingerprint: str


def generate_client_key(comment: str = "orp-test-client") -> ClientKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_line = f"{public.decode()} {comment}"
    return ClientKey(private, public_line, fingerprint(public_line))
