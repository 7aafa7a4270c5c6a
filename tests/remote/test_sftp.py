"""``/api/sftp/{id}/…``: the SFTP browser against a real OpenSSH server (tests/peers).

Files the tests create live in the peer's ``scratch`` directory (inside the login user's home,
removed when the peer stops); what the server did is checked on the disk as well as through the
API. Memory is watched on the portal process itself while 20 MB go up and come back down.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import pytest

from tests.accounts.support import assert_error, create_user
from tests.conftest import UserClient
from tests.peers.sshd import SshServer
from tests.portal_server import PortalServer

Json = dict[str, Any]
MB = 1024 * 1024
BIG = 20 * MB
# What the portal may grow by while 20 MB pass through it: chunks, buffers, allocator noise.
RSS_ALLOWANCE = 8 * MB


@pytest.fixture(scope="module", autouse=True)
def no_server_errors(portal: PortalServer) -> Iterator[None]:
    """Nothing in this module may make the portal log a traceback (an unhandled error, a task
    exception nobody retrieved after a client went away…)."""
    start = portal.log_path.stat().st_size if portal.log_path.exists() else 0
    yield
    with portal.log_path.open("rb") as log:
        log.seek(start)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written, written[-4000:]


@pytest.fixture(scope="module")
def owner(base_url: str, root: UserClient) -> Iterator[UserClient]:
    user = create_user(base_url, root)
    user.http.timeout = httpx.Timeout(60)
    yield user
    user.http.close()


def ssh_connection(user: UserClient, server: SshServer, **config: Any) -> str:
    body = {
        "name": "sftp " + secrets.token_hex(3),
        "type": "ssh",
        "host": server.host,
        "port": server.port,
        "config": {"username": server.username, "password": server.password, **config},
    }
    resp = user.post("/api/connections", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@pytest.fixture(scope="module")
def conn(owner: UserClient, ssh_server: SshServer) -> str:
    return ssh_connection(owner, ssh_server)


@pytest.fixture
def work(ssh_server: SshServer) -> Iterator[Path]:
    """A fresh directory of the login user's for one test (under the peer's scratch)."""
    path = ssh_server.scratch / ("t-" + secrets.token_hex(4))
    path.mkdir()
    os.chown(path, ssh_server.home.stat().st_uid, ssh_server.home.stat().st_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sftp(client: UserClient | httpx.Client, method: str, conn_id: str, op: str, **kw: Any) -> httpx.Response:
    http = client.http if isinstance(client, UserClient) else client
    return http.request(method, f"/api/sftp/{conn_id}/{op}", **kw)


def multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart body built by hand: (field name, file name or None, content), in this order."""
    boundary = "b" + secrets.token_hex(8)
    body = b""
    for name, filename, content in parts:
        extra = f'; filename="{filename}"' if filename is not None else ""
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode()
        body += content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def ok(resp: httpx.Response, status: int = 200) -> Json:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    body: Json = resp.json()
    return body


def listing(user: UserClient, conn_id: str, path: str) -> Json:
    return ok(sftp(user, "GET", conn_id, "list", params={"path": path}))


def names(body: Json) -> list[str]:
    return [e["name"] for e in body["entries"]]


def ssh_sessions_from(portal: PortalServer, server: SshServer) -> int:
    """The portal's open TCP connections to the sshd peer."""
    conns = psutil.Process(portal.proc.pid).net_connections(kind="tcp") if portal.proc else []
    return sum(1 for c in conns if c.raddr and c.raddr.port == server.port and c.status == psutil.CONN_ESTABLISHED)


def wait_no_ssh_sessions(portal: PortalServer, server: SshServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while ssh_sessions_from(portal, server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssh_sessions_from(portal, server) == 0, "an SFTP request left its SSH connection open"


class RssPeak:
    """Samples the portal's resident memory every 10 ms in a thread; ``growth`` is peak minus start."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(60_000):  # at most 10 minutes
            self.peak = max(self.peak, self.process.memory_info().rss)
            if self._stop.wait(0.01):
                return

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start


# -- listing -----------------------------------------------------------------------------------
def test_list_home(owner: UserClient, conn: str, ssh_server: SshServer) -> None:
    body = listing(owner, conn, ".")
    home = str(ssh_server.home)
    assert body["path"] == home and body["home"] == home and body["parent"] == os.path.dirname(home)
    assert body["truncated"] is False
    scratch = next(e for e in body["entries"] if e["name"] == ssh_server.scratch.name)
    assert scratch["type"] == "dir" and scratch["path"] == str(ssh_server.scratch)
    assert scratch["permissions"].startswith("d") and len(scratch["permissions"]) == 10
    mtime = datetime.fromisoformat(scratch["mtime"])
    assert mtime.tzinfo is not None and abs(mtime - datetime.now(UTC)).total_seconds() < 3600
    assert listing(owner, conn, "~")["path"] == home


def test_the_default_path_is_the_root(owner: UserClient, conn: str) -> None:
    body = ok(sftp(owner, "GET", conn, "list"))
    assert body["path"] == "/" and body["parent"] is None
    home = next(e for e in body["entries"] if e["name"] == "home")
    assert home == {**home, "type": "dir", "path": "/home"}


def test_listing_sorts_directories_first_and_names_types(
    owner: UserClient, conn: str, ssh_server: SshServer, work: Path
) -> None:
    base = work.relative_to(ssh_server.scratch)
    for name in ("b.txt", "A.txt", "c.txt"):
        ssh_server.write_file(f"{base}/{name}", "x" * 3)
    ssh_server.write_file(f"{base}/zdir/inner", "")
    ssh_server.write_file(f"{base}/Adir/inner", "")
    (work / "link-to-dir").symlink_to(work / "zdir")
    (work / "broken").symlink_to(work / "nowhere")
    body = listing(owner, conn, str(work))
    assert names(body) == ["Adir", "link-to-dir", "zdir", "A.txt", "b.txt", "broken", "c.txt"]
    entries = {e["name"]: e for e in body["entries"]}
    assert entries["b.txt"]["type"] == "file" and entries["b.txt"]["size"] == 3
    assert entries["b.txt"]["permissions"] == "-rw-r--r--"
    assert entries["link-to-dir"]["type"] == "symlink" and entries["link-to-dir"]["target_type"] == "dir"
    assert entries["broken"]["type"] == "symlink" and entries["broken"]["target_type"] is None
    assert entries["zdir"]["target_type"] is None


def test_listing_a_file_is_a_400(owner: UserClient, conn: str, ssh_server: SshServer, work: Path) -> None:
    path = ssh_server.write_file(f"{work.name}/f.txt", "x")
    assert_error(sftp(owner, "GET", conn, "list", params={"path": str(path)}), 400, f"Not a directory: {path}")


# -- mkdir, write, read ------------------------------------------------------------------------
def test_mkdir_write_and_read_back(owner: UserClient, conn: str, work: Path) -> None:
    folder = f"{work}/notes"
    assert ok(sftp(owner, "POST", conn, "mkdir", json={"path": folder}), 201) == {
        "success": True,
        "path": folder,
        "size": None,
    }
    assert (work / "notes").is_dir()
    assert_error(sftp(owner, "POST", conn, "mkdir", json={"path": folder}), 409, f"Already exists: {folder}")
    text = "first line\nzweite Zeile ✓ 日本語\n"
    written = ok(sftp(owner, "POST", conn, "write", json={"path": f"{folder}/a.txt", "content": text}))
    assert written == {"success": True, "path": f"{folder}/a.txt", "size": len(text.encode())}
    assert (work / "notes" / "a.txt").read_text() == text
    read = ok(sftp(owner, "GET", conn, "read", params={"path": f"{folder}/a.txt"}))
    assert read == {"path": f"{folder}/a.txt", "content": text, "size": len(text.encode())}
    ok(sftp(owner, "POST", conn, "write", json={"path": f"{folder}/a.txt", "content": "short"}))
    assert (work / "notes" / "a.txt").read_text() == "short"


def test_paths_are_normalised_and_relative_ones_start_at_home(
    owner: UserClient, conn: str, ssh_server: SshServer, work: Path
) -> None:
    relative = f"{ssh_server.scratch.name}/{work.name}/rel.txt"
    written = ok(sftp(owner, "POST", conn, "write", json={"path": relative, "content": "r"}))
    assert written["path"] == str(work / "rel.txt") and (work / "rel.txt").read_text() == "r"
    dotted = f"{work}/./sub/../rel.txt"
    assert ok(sftp(owner, "GET", conn, "read", params={"path": dotted}))["path"] == str(work / "rel.txt")
    assert ok(sftp(owner, "GET", conn, "read", params={"path": f"/../..{work}//rel.txt"}))["content"] == "r"


def test_mkdir_in_a_missing_directory_is_a_404(owner: UserClient, conn: str, work: Path) -> None:
    assert_error(
        sftp(owner, "POST", conn, "mkdir", json={"path": f"{work}/no/such"}),
        404,
        f"No such file or directory: {work}/no/such",
    )


def test_read_limits_and_binary_files(owner: UserClient, conn: str, ssh_server: SshServer, work: Path) -> None:
    big = ssh_server.write_file(f"{work.name}/big.txt", b"a" * (5 * MB + 1))
    body = assert_error(sftp(owner, "GET", conn, "read", params={"path": str(big)}), 413, contains="larger than 5 MB")
    assert body["max_bytes"] == 5 * MB
    exact = ssh_server.write_file(f"{work.name}/exact.txt", b"b" * (5 * MB))
    assert ok(sftp(owner, "GET", conn, "read", params={"path": str(exact)}))["size"] == 5 * MB
    binary = ssh_server.write_file(f"{work.name}/img.png", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    assert_error(sftp(owner, "GET", conn, "read", params={"path": str(binary)}), 400, contains="binary file")
    nul = ssh_server.write_file(f"{work.name}/nul.txt", b"text\x00more")
    assert_error(sftp(owner, "GET", conn, "read", params={"path": str(nul)}), 400, contains="binary file")
    assert_error(sftp(owner, "GET", conn, "read", params={"path": str(work)}), 400, f"Is a directory: {work}")


def test_write_limits(owner: UserClient, conn: str, work: Path) -> None:
    path = f"{work}/w.txt"
    exact = ok(sftp(owner, "POST", conn, "write", json={"path": path, "content": "é" * (5 * MB // 2)}))
    assert exact["size"] == 5 * MB and (work / "w.txt").stat().st_size == 5 * MB
    body = assert_error(
        sftp(owner, "POST", conn, "write", json={"path": path, "content": "x" * (5 * MB + 1)}), 413, contains="5 MB"
    )
    assert body["max_bytes"] == 5 * MB
    assert_error(
        sftp(owner, "POST", conn, "write", json={"path": str(work), "content": "x"}), 400, contains="directory"
    )
    assert_error(sftp(owner, "POST", conn, "write", json={"path": path}), 400, field="content")


# -- upload and download -----------------------------------------------------------------------
def test_upload_and_download_20_mb_without_buffering(
    owner: UserClient, conn: str, work: Path, portal: PortalServer, ssh_server: SshServer
) -> None:
    assert portal.proc is not None
    data = secrets.token_bytes(BIG)
    digest = hashlib.sha256(data).hexdigest()
    # warm up: the first transfers import code and grow the allocator's pools once
    warm = sftp(owner, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("big.bin", data[:MB])})
    assert ok(warm, 201)["size"] == MB
    assert sftp(owner, "GET", conn, "download", params={"path": f"{work}/big.bin"}).content == data[:MB]
    with RssPeak(portal.proc.pid) as up:
        resp = sftp(owner, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("big.bin", data)})
    assert ok(resp, 201) == {"success": True, "path": f"{work}/big.bin", "size": BIG}
    assert hashlib.sha256((work / "big.bin").read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in work.iterdir()) == ["big.bin"], "the temporary upload file was left behind"
    assert up.growth < RSS_ALLOWANCE, f"the portal grew by {up.growth / MB:.1f} MB during a 20 MB upload"

    hasher = hashlib.sha256()
    received = 0
    with RssPeak(portal.proc.pid) as down:
        with owner.http.stream("GET", f"/api/sftp/{conn}/download", params={"path": f"{work}/big.bin"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-length"] == str(BIG)
            assert stream.headers["content-type"] == "application/octet-stream"
            assert stream.headers["content-disposition"] == (
                "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin"
            )
            for piece in stream.iter_bytes():
                hasher.update(piece)
                received += len(piece)
    assert received == BIG and hasher.hexdigest() == digest
    assert down.growth < RSS_ALLOWANCE, f"the portal grew by {down.growth / MB:.1f} MB during a 20 MB download"
    wait_no_ssh_sessions(portal, ssh_server)


def test_an_abandoned_download_closes_its_ssh_connection(
    owner: UserClient, conn: str, ssh_server: SshServer, work: Path, portal: PortalServer
) -> None:
    ssh_server.write_file(f"{work.name}/big.bin", secrets.token_bytes(BIG))
    # a fresh HTTP connection: one that carried 20 MB before has socket buffers that could hold the file
    with (
        httpx.Client(base_url=portal.base_url, headers=owner.http.headers, timeout=30) as fresh,
        fresh.stream("GET", f"/api/sftp/{conn}/download", params={"path": f"{work}/big.bin"}) as stream,
    ):
        assert stream.status_code == 200
        pieces = stream.iter_raw(64 * 1024)  # kept: a dropped iterator closes the response
        assert next(pieces)
        time.sleep(0.2)
        assert ssh_sessions_from(portal, ssh_server) == 1, "the download should still be streaming"
    wait_no_ssh_sessions(portal, ssh_server)
    assert listing(owner, conn, str(work))["entries"][0]["name"] == "big.bin"


def test_concurrent_operations_per_user_are_capped(ssh_server: SshServer, work: Path) -> None:
    """A portal of its own allowing one SFTP operation per user: a second one waits its turn (429)."""
    ssh_server.write_file(f"{work.name}/big.bin", secrets.token_bytes(BIG))
    with PortalServer(env={"PORTAL_SFTP_MAX_CONCURRENT_PER_USER": "1"}) as server:
        resp = httpx.post(
            server.base_url + "/api/token", json={"username": server.admin_user, "password": server.admin_password}
        )
        token = resp.json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http,
            httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as other,
        ):
            admin = UserClient(0, server.admin_user, server.admin_password, "superadmin", token, http)
            conn_id = ssh_connection(admin, ssh_server)
            with http.stream("GET", f"/api/sftp/{conn_id}/download", params={"path": f"{work}/big.bin"}) as stream:
                assert stream.status_code == 200
                pieces = stream.iter_raw(64 * 1024)
                assert next(pieces)
                busy = assert_error(
                    sftp(other, "GET", conn_id, "list", params={"path": str(work)}), 429, contains="at once"
                )
                assert busy["retry_after"] == 1
            deadline = time.monotonic() + 10  # the slot is free once the abandoned download has closed
            while (resp := sftp(other, "GET", conn_id, "list", params={"path": str(work)})).status_code == 429:
                assert time.monotonic() < deadline, "the slot was never released"
                time.sleep(0.05)
            assert [e["name"] for e in ok(resp)["entries"]] == ["big.bin"]
            # refused operations release their slot too
            assert_error(sftp(other, "GET", conn_id, "read", params={"path": f"{work}/missing"}), 404)
            assert ok(sftp(other, "GET", conn_id, "list", params={"path": str(work)}))["entries"]


def test_download_names_are_safe_and_exact(owner: UserClient, conn: str, ssh_server: SshServer, work: Path) -> None:
    name = 'résumé "final";.txt'
    ssh_server.write_file(f"{work.name}/{name}", "cv")
    resp = sftp(owner, "GET", conn, "download", params={"path": f"{work}/{name}"})
    assert resp.status_code == 200 and resp.content == b"cv"
    disposition = resp.headers["content-disposition"]
    assert disposition == f"attachment; filename=\"r_sum_ _final__.txt\"; filename*=UTF-8''{quote(name, safe='')}"
    assert_error(sftp(owner, "GET", conn, "download", params={"path": str(work)}), 400, f"Is a directory: {work}")
    missing = f"{work}/nope.bin"
    assert_error(
        sftp(owner, "GET", conn, "download", params={"path": missing}), 404, f"No such file or directory: {missing}"
    )


def test_upload_replaces_a_file_and_checks_its_form(
    owner: UserClient, conn: str, ssh_server: SshServer, work: Path
) -> None:
    ssh_server.write_file(f"{work.name}/doc.txt", "old")
    resp = sftp(owner, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("doc.txt", b"new")})
    assert ok(resp, 201)["path"] == f"{work}/doc.txt" and (work / "doc.txt").read_bytes() == b"new"
    # the client's own directories are not the server's
    resp = sftp(owner, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("C:\\x\\..\\n.txt", b"n")})
    assert ok(resp, 201)["path"] == f"{work}/n.txt"
    assert_error(
        sftp(owner, "POST", conn, "upload", files={"file": ("a.txt", b"a")}), 400, field="path", contains="path"
    )
    body, headers = multipart(("path", None, str(work).encode()))
    assert_error(sftp(owner, "POST", conn, "upload", content=body, headers=headers), 400, field="file")
    body, headers = multipart(("file", "late.txt", b"l"), ("path", None, str(work).encode()))
    assert_error(sftp(owner, "POST", conn, "upload", content=body, headers=headers), 400, field="path")
    body, headers = multipart(("path", None, str(work).encode()), ("doc", "d.txt", b"d"))
    assert_error(sftp(owner, "POST", conn, "upload", content=body, headers=headers), 400, field="file")
    body, headers = multipart(("path", None, str(work).encode()), ("file", "1.txt", b"1"), ("file", "2.txt", b"2"))
    assert_error(sftp(owner, "POST", conn, "upload", content=body, headers=headers), 400, "Upload one file per request")
    body, headers = multipart(("path", None, str(work).encode()), ("file", "cut.txt", b"c"))
    assert_error(sftp(owner, "POST", conn, "upload", content=body[:-30], headers=headers), 400)
    assert_error(
        sftp(owner, "POST", conn, "upload", data={"path": f"{work}/none"}, files={"file": ("a.txt", b"a")}),
        404,
        f"No such file or directory: {work}/none",
    )
    assert_error(
        sftp(owner, "POST", conn, "upload", data={"path": f"{work}/doc.txt"}, files={"file": ("a.txt", b"a")}),
        400,
        f"Not a directory: {work}/doc.txt",
    )
    assert_error(
        sftp(owner, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("..", b"a")}),
        400,
        field="filename",
    )
    assert_error(sftp(owner, "POST", conn, "upload", json={"path": str(work)}), 400, contains="multipart/form-data")
    (work / "sub").mkdir()
    assert_error(sftp(owner, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("sub", b"a")}), 409)
    assert sorted(p.name for p in work.iterdir()) == ["doc.txt", "n.txt", "sub"]


def test_uploads_over_the_cap_are_refused_and_leave_nothing(
    ssh_server: SshServer, root: UserClient, work: Path
) -> None:
    """A portal of its own with a 1 MB cap: a declared length over it and a chunked body over it."""
    cap = 1 * MB
    with PortalServer(env={"PORTAL_SFTP_MAX_UPLOAD_BYTES": str(cap)}) as server:
        resp = httpx.post(
            server.base_url + "/api/token", json={"username": server.admin_user, "password": server.admin_password}
        )
        token = resp.json()["token"]
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            admin = UserClient(0, server.admin_user, server.admin_password, "superadmin", token, http)
            conn_id = ssh_connection(admin, ssh_server)
            fits = sftp(
                http, "POST", conn_id, "upload", data={"path": str(work)}, files={"file": ("ok.bin", b"o" * cap)}
            )
            assert ok(fits, 201)["size"] == cap
            body = assert_error(
                sftp(
                    http, "POST", conn_id, "upload", data={"path": str(work)}, files={"file": ("x.bin", b"x" * 2 * cap)}
                ),
                413,
            )
            assert body["max_bytes"] == cap + 64 * 1024

            boundary = "b" + secrets.token_hex(8)

            def chunked() -> Iterator[bytes]:
                yield (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{work}\r\n'
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="y.bin"\r\n\r\n'
                ).encode()
                for _ in range(cap // (16 * 1024) + 1):  # just over the cap, under the body limit
                    yield b"y" * 16 * 1024
                yield f"\r\n--{boundary}--\r\n".encode()

            resp = http.post(
                f"/api/sftp/{conn_id}/upload",
                content=chunked(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert_error(resp, 413, f"Uploads are limited to {cap} bytes")
    deadline = time.monotonic() + 5
    while len(list(work.iterdir())) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(p.name for p in work.iterdir()) == ["ok.bin"]


# -- rename and delete -------------------------------------------------------------------------
def test_rename(owner: UserClient, conn: str, ssh_server: SshServer, work: Path) -> None:
    ssh_server.write_file(f"{work.name}/a.txt", "a")
    ssh_server.write_file(f"{work.name}/b.txt", "b")
    moved = ok(sftp(owner, "POST", conn, "rename", json={"old_path": f"{work}/a.txt", "new_path": f"{work}/c.txt"}))
    assert moved == {"success": True, "old_path": f"{work}/a.txt", "new_path": f"{work}/c.txt"}
    assert (work / "c.txt").read_text() == "a" and not (work / "a.txt").exists()
    assert_error(
        sftp(owner, "POST", conn, "rename", json={"old_path": f"{work}/c.txt", "new_path": f"{work}/b.txt"}),
        409,
        f"Already exists: {work}/b.txt",
    )
    assert (work / "b.txt").read_text() == "b" and (work / "c.txt").read_text() == "a"
    assert_error(
        sftp(owner, "POST", conn, "rename", json={"old_path": f"{work}/gone", "new_path": f"{work}/d"}),
        404,
        f"No such file or directory: {work}/gone",
    )
    assert_error(
        sftp(owner, "POST", conn, "rename", json={"old_path": f"{work}/b.txt", "new_path": f"{work}/no/b.txt"}),
        404,
        f"No such file or directory: {work}/no",
    )
    assert_error(sftp(owner, "POST", conn, "rename", json={"old_path": f"{work}/b.txt"}), 400, field="new_path")


def test_changes_are_in_the_activity_feed(owner: UserClient, conn: str, work: Path) -> None:
    assert owner.get(f"/api/connections/{conn}").json()["last_used_at"] is not None  # earlier tests used it
    name = owner.get(f"/api/connections/{conn}").json()["name"]
    ok(sftp(owner, "POST", conn, "mkdir", json={"path": f"{work}/logged"}), 201)
    ok(sftp(owner, "POST", conn, "write", json={"path": f"{work}/logged/x.txt", "content": "x"}))
    ok(sftp(owner, "POST", conn, "rename", json={"old_path": f"{work}/logged/x.txt", "new_path": f"{work}/y.txt"}))
    ok(sftp(owner, "DELETE", conn, "delete", params={"path": f"{work}/y.txt"}))
    ok(sftp(owner, "GET", conn, "list", params={"path": str(work)}))  # reading is not logged
    feed = owner.get("/api/activity", params={"limit": 10}).json()["activities"]
    mine = [(a["action"], a["details"]) for a in feed if a["action"].startswith("sftp_")][:4]
    assert mine == [
        ("sftp_delete", f"{name}: {work}/y.txt"),
        ("sftp_rename", f"{name}: {work}/logged/x.txt -> {work}/y.txt"),
        ("sftp_write", f"{name}: {work}/logged/x.txt"),
        ("sftp_mkdir", f"{name}: {work}/logged"),
    ]
    assert_error(sftp(owner, "DELETE", conn, "delete", params={"path": f"{work}/y.txt"}), 404)
    assert owner.get("/api/activity", params={"limit": 10}).json()["activities"] == feed  # refusals are not logged


def test_delete(owner: UserClient, conn: str, ssh_server: SshServer, work: Path) -> None:
    ssh_server.write_file(f"{work.name}/f.txt", "f")
    ssh_server.write_file(f"{work.name}/full/inner.txt", "i")
    (work / "empty").mkdir()
    os.chown(work / "empty", ssh_server.home.stat().st_uid, ssh_server.home.stat().st_gid)
    assert ok(sftp(owner, "DELETE", conn, "delete", params={"path": f"{work}/f.txt"}))["path"] == f"{work}/f.txt"
    assert not (work / "f.txt").exists()
    ok(sftp(owner, "DELETE", conn, "delete", params={"path": f"{work}/empty"}))
    assert not (work / "empty").exists()
    assert_error(
        sftp(owner, "DELETE", conn, "delete", params={"path": f"{work}/full"}),
        409,
        contains=f"Directory not empty: {work}/full",
    )
    assert (work / "full" / "inner.txt").exists()
    assert_error(
        sftp(owner, "DELETE", conn, "delete", params={"path": f"{work}/f.txt"}),
        404,
        f"No such file or directory: {work}/f.txt",
    )
    assert_error(sftp(owner, "DELETE", conn, "delete", params={"path": "/"}), 400)
    assert_error(sftp(owner, "DELETE", conn, "delete"), 400, field="path")


# -- errors ------------------------------------------------------------------------------------
def test_missing_paths_are_404s(owner: UserClient, conn: str) -> None:
    for op in ("list", "read", "download"):
        assert_error(sftp(owner, "GET", conn, op, params={"path": "/x"}), 404, "No such file or directory: /x")


def test_permission_denied_is_a_403(owner: UserClient, conn: str, ssh_server: SshServer, work: Path) -> None:
    assert_error(sftp(owner, "GET", conn, "list", params={"path": "/root"}), 403, "Permission denied: /root")
    locked = ssh_server.write_file(f"{work.name}/locked.txt", "secret", mode=0o000)
    assert_error(sftp(owner, "GET", conn, "read", params={"path": str(locked)}), 403, f"Permission denied: {locked}")
    assert_error(sftp(owner, "GET", conn, "download", params={"path": str(locked)}), 403)
    assert_error(
        sftp(owner, "POST", conn, "write", json={"path": "/etc/orp-nope", "content": "x"}), 403, contains="Permission"
    )
    assert_error(sftp(owner, "POST", conn, "mkdir", json={"path": "/orp-nope"}), 403, "Permission denied: /orp-nope")


@pytest.mark.parametrize(
    "bad",
    ["/tmp/a\x00b", "/tmp/a\nb", "/tmp/\x1b[31m", "/tmp/\x7f", "/" + "a/" * 2100, "/tmp/" + "n" * 256],
)
def test_unsafe_paths_are_400s(owner: UserClient, conn: str, bad: str) -> None:
    assert_error(sftp(owner, "GET", conn, "list", params={"path": bad}), 400, field="path")
    assert_error(sftp(owner, "POST", conn, "mkdir", json={"path": bad}), 400, field="path")
    assert_error(sftp(owner, "POST", conn, "rename", json={"old_path": "/tmp", "new_path": bad}), 400, field="new_path")


def test_only_the_owner_may_browse(owner: UserClient, conn: str, base_url: str, root: UserClient, work: Path) -> None:
    other = create_user(base_url, root)
    try:
        assert_error(sftp(other, "GET", conn, "list", params={"path": "/"}), 404, "Connection not found")
        assert_error(sftp(other, "POST", conn, "mkdir", json={"path": f"{work}/x"}), 404, "Connection not found")
        assert_error(
            sftp(other, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("x", b"x")}),
            404,
            "Connection not found",
        )
        assert_error(sftp(root, "GET", conn, "list"), 404, "Connection not found")  # admins too
        assert_error(sftp(owner, "GET", "nope" * 4, "list"), 404, "Connection not found")
    finally:
        other.http.close()
    assert list(work.iterdir()) == []


def test_only_ssh_connections(owner: UserClient) -> None:
    resp = owner.post("/api/connections", json={"name": "v", "type": "vnc", "host": "127.0.0.1", "port": 5900})
    assert resp.status_code == 201, resp.text
    assert_error(sftp(owner, "GET", resp.json()["id"], "list"), 400, "SFTP needs an SSH connection")


def test_ssh_failures_are_502s(
    owner: UserClient, ssh_server: SshServer, make_ssh_server: Callable[..., SshServer]
) -> None:
    wrong = ssh_connection(owner, ssh_server, password="wrong-" + secrets.token_hex(4))
    body = assert_error(sftp(owner, "GET", wrong, "list"), 502, contains="authentication failed")
    assert ssh_server.username in body["error"]

    closed = ssh_connection(owner, ssh_server)
    owner.put(f"/api/connections/{closed}", json={"port": 1}).raise_for_status()
    assert_error(sftp(owner, "GET", closed, "list"), 502, contains="Could not connect to 127.0.0.1:1")

    private = make_ssh_server()
    pinned = ssh_connection(owner, private)
    assert listing(owner, pinned, "/")["path"] == "/"
    private.rotate_host_key()
    assert_error(sftp(owner, "GET", pinned, "list"), 502, contains="host key of 127.0.0.1")


def test_api_keys_need_the_connections_scopes(owner: UserClient, conn: str, base_url: str, work: Path) -> None:
    def key_client(scopes: str) -> httpx.Client:
        created = owner.post("/api/api-keys", json={"name": "sftp-" + scopes, "scopes": scopes})
        assert created.status_code == 201, created.text
        return httpx.Client(base_url=base_url, headers={"X-API-Key": created.json()["api_key"]}, timeout=30)

    with key_client("profile:read") as key:
        assert_error(sftp(key, "GET", conn, "list"), 403, "API key lacks the 'connections:read' scope")
    with key_client("connections:read") as key:
        assert ok(sftp(key, "GET", conn, "list", params={"path": str(work)}))["entries"] == []
        assert_error(
            sftp(key, "POST", conn, "mkdir", json={"path": f"{work}/k"}),
            403,
            "API key lacks the 'connections:write' scope",
        )
        assert_error(sftp(key, "DELETE", conn, "delete", params={"path": str(work)}), 403)
        assert_error(sftp(key, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("k", b"k")}), 403)
    with key_client("connections") as key:
        ok(sftp(key, "POST", conn, "mkdir", json={"path": f"{work}/k"}), 201)
    assert [p.name for p in work.iterdir()] == ["k"]


def test_cookie_sessions_need_the_csrf_token(owner: UserClient, conn: str, base_url: str, work: Path) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as browser:
        login = browser.post("/login", json={"username": owner.username, "password": owner.password})
        assert login.status_code == 200, login.text
        assert ok(sftp(browser, "GET", conn, "list", params={"path": str(work)}))["entries"] == []
        assert_error(
            sftp(browser, "POST", conn, "mkdir", json={"path": f"{work}/c"}), 403, "Missing or invalid CSRF token"
        )
        assert_error(
            sftp(browser, "POST", conn, "upload", data={"path": str(work)}, files={"file": ("c", b"c")}),
            403,
            "Missing or invalid CSRF token",
        )
        assert_error(sftp(browser, "DELETE", conn, "delete", params={"path": str(work)}), 403)
        assert list(work.iterdir()) == []
        csrf = {"X-CSRF-Token": browser.cookies["portal_csrf"]}
        ok(sftp(browser, "POST", conn, "mkdir", json={"path": f"{work}/c"}, headers=csrf), 201)
    assert [p.name for p in work.iterdir()] == ["c"]


def test_requests_leave_no_ssh_connection_open(
    owner: UserClient, conn: str, ssh_server: SshServer, portal: PortalServer, work: Path
) -> None:
    listing(owner, conn, str(work))
    assert_error(sftp(owner, "GET", conn, "read", params={"path": f"{work}/none"}), 404)
    sftp(owner, "GET", conn, "download", params={"path": "/etc/hostname"})
    wait_no_ssh_sessions(portal, ssh_server)


def test_openapi_documents_the_routes(base_url: str) -> None:
    spec = httpx.get(base_url + "/openapi.json").json()
    paths = spec["paths"]
    for op, method in [
        ("list", "get"),
        ("read", "get"),
        ("download", "get"),
        ("upload", "post"),
        ("write", "post"),
        ("mkdir", "post"),
        ("rename", "post"),
        ("delete", "delete"),
    ]:
        assert method in paths[f"/api/sftp/{{connection_id}}/{op}"], op
    upload = paths["/api/sftp/{connection_id}/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(upload["schema"]["required"]) == {"path", "file"}
