"""The SFTP file browser's operations, as plain async functions over an asyncssh ``SFTPClient``.

Every path arrives already checked by :func:`portal.core.paths.check_remote_path` (absolute,
normalised). Files are never held whole in memory except for the text editor's 5 MB reads and
writes: downloads are read chunk by chunk (:func:`iter_file`), uploads are written chunk by chunk
(:mod:`portal.remote.sftp_upload`). SFTP status codes become the portal's errors (missing → 404,
permission → 403, exists / not empty → 409) with the path in the message.
"""

from __future__ import annotations

import asyncio
import posixpath
import stat
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Literal, cast
from urllib.parse import quote

import asyncssh
from pydantic import BaseModel

from portal.core.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from portal.remote.ssh_client import SshError

MAX_ENTRIES = 5000
MAX_TEXT_BYTES = 5 * 1024 * 1024
CHUNK = 64 * 1024
READ_AHEAD = 4  # download reads in flight
MAX_LINK_LOOKUPS = 256  # symlinks whose target type a listing looks up

EntryType = Literal["file", "dir", "symlink", "other"]


class SftpFailed(SshError):
    """The SFTP server refused an operation for a reason it did not name more precisely."""

    default_message = "The SFTP operation failed"


class InsufficientStorage(ApiError):
    status = 507
    default_message = "No space left on the remote server"


class Entry(BaseModel):
    name: str
    path: str
    type: EntryType
    target_type: EntryType | None = None  # what a symlink points to (None: broken or not looked up)
    size: int
    mtime: datetime | None
    permissions: str


class Listing(BaseModel):
    path: str
    parent: str | None
    home: str
    entries: list[Entry]
    truncated: bool


class TextFile(BaseModel):
    path: str
    content: str
    size: int


class Done(BaseModel):
    success: bool = True
    path: str
    size: int | None = None


class Renamed(BaseModel):
    success: bool = True
    old_path: str
    new_path: str


@contextmanager
def sftp_errors(path: str) -> Iterator[None]:
    """Translate what the server answered about ``path`` into the portal's errors."""
    try:
        yield
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        raise NotFound(f"No such file or directory: {path}") from None
    except (asyncssh.SFTPPermissionDenied, asyncssh.SFTPWriteProtect, asyncssh.SFTPCannotDelete):
        raise Forbidden(f"Permission denied: {path}") from None
    except asyncssh.SFTPFileAlreadyExists:
        raise Conflict(f"Already exists: {path}") from None
    except asyncssh.SFTPDirNotEmpty:
        raise Conflict(f"Directory not empty: {path}") from None
    except asyncssh.SFTPNotADirectory:
        raise BadRequest(f"Not a directory: {path}") from None
    except asyncssh.SFTPFileIsADirectory:
        raise BadRequest(f"Is a directory: {path}") from None
    except (asyncssh.SFTPNoSpaceOnFilesystem, asyncssh.SFTPQuotaExceeded):
        raise InsufficientStorage(f"No space left on the remote server for {path}") from None
    except (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection, asyncssh.ConnectionLost, ConnectionError):
        raise SshError("The SSH connection was lost") from None
    except asyncssh.SFTPError as exc:
        raise SftpFailed(f"The SFTP server refused the operation on {path}: {exc.reason or 'failure'}") from None


def entry_type(attrs: asyncssh.SFTPAttrs) -> EntryType:
    mode = attrs.permissions
    if mode is None:
        return {
            asyncssh.FILEXFER_TYPE_DIRECTORY: "dir",
            asyncssh.FILEXFER_TYPE_SYMLINK: "symlink",
            asyncssh.FILEXFER_TYPE_REGULAR: "file",
        }.get(attrs.type, "other")  # type: ignore[return-value]
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file" if stat.S_ISREG(mode) else "other"


def _mtime(attrs: asyncssh.SFTPAttrs) -> datetime | None:
    return datetime.fromtimestamp(attrs.mtime, UTC) if attrs.mtime is not None else None


def _permissions(attrs: asyncssh.SFTPAttrs) -> str:
    return stat.filemode(attrs.permissions) if attrs.permissions is not None else "?---------"


async def home_dir(sftp: asyncssh.SFTPClient) -> str:
    """The server's start directory (the user's home on OpenSSH), against which relative paths resolve."""
    with sftp_errors("."):
        home = await sftp.realpath(".")
    return home if isinstance(home, str) and home.startswith("/") else "/"


async def lstat(sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs:
    with sftp_errors(path):
        return await sftp.lstat(path)


async def stat_of(sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs:
    """The attributes of what ``path`` names, symlinks followed."""
    with sftp_errors(path):
        return await sftp.stat(path)


async def exists(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        await lstat(sftp, path)
    except NotFound:
        return False
    return True


async def list_dir(sftp: asyncssh.SFTPClient, path: str, *, home: str, limit: int = MAX_ENTRIES) -> Listing:
    """Directories first, then by name; at most ``limit`` entries (``truncated`` says when more exist)."""
    if entry_type(await stat_of(sftp, path)) != "dir":
        raise BadRequest(f"Not a directory: {path}")
    entries: list[Entry] = []
    truncated = False
    with sftp_errors(path):
        async for name in sftp.scandir(path.encode()):
            raw = name.filename if isinstance(name.filename, bytes) else str(name.filename).encode()
            if raw in (b".", b".."):
                continue
            if len(entries) >= limit:
                truncated = True
                break
            text = raw.decode("utf-8", errors="replace")
            attrs = name.attrs
            entries.append(
                Entry(
                    name=text,
                    path=posixpath.join(path, text),
                    type=entry_type(attrs),
                    size=attrs.size or 0,
                    mtime=_mtime(attrs),
                    permissions=_permissions(attrs),
                )
            )
    await _resolve_links(sftp, [e for e in entries if e.type == "symlink"][:MAX_LINK_LOOKUPS])
    entries.sort(key=lambda e: (not (e.type == "dir" or e.target_type == "dir"), e.name.casefold(), e.name))
    parent = posixpath.dirname(path) if path != "/" else None
    return Listing(path=path, parent=parent, home=home, entries=entries, truncated=truncated)


async def _resolve_links(sftp: asyncssh.SFTPClient, links: list[Entry]) -> None:
    """Fill ``target_type`` so a browser can open a symlinked directory; the requests are pipelined."""

    async def one(entry: Entry) -> None:
        with suppress(asyncssh.SFTPError):
            entry.target_type = entry_type(await sftp.stat(entry.path))

    await asyncio.gather(*(one(e) for e in links))


async def read_text(sftp: asyncssh.SFTPClient, path: str, *, limit: int = MAX_TEXT_BYTES) -> TextFile:
    """A UTF-8 text file of at most ``limit`` bytes, for the editor."""
    attrs = await stat_of(sftp, path)
    kind = entry_type(attrs)
    if kind == "dir":
        raise BadRequest(f"Is a directory: {path}")
    if kind != "file":
        raise BadRequest(f"Not a regular file: {path}")
    too_large = PayloadTooLarge(
        f"{path} is larger than {limit // (1024 * 1024)} MB: download it instead of opening it as text",
        max_bytes=limit,
    )
    if (attrs.size or 0) > limit:
        raise too_large
    with sftp_errors(path):
        async with sftp.open(path, "rb") as f:
            data = cast(bytes, await f.read(limit + 1))  # binary mode
    if len(data) > limit:
        raise too_large
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{path} is a binary file (not UTF-8 text): download it instead") from None
    if "\x00" in content:
        raise BadRequest(f"{path} is a binary file (it contains NUL bytes): download it instead")
    return TextFile(path=path, content=content, size=len(data))


async def write_text(sftp: asyncssh.SFTPClient, path: str, content: str, *, limit: int = MAX_TEXT_BYTES) -> Done:
    """Create or replace a text file (the editor's save)."""
    data = content.encode("utf-8")
    if len(data) > limit:
        raise PayloadTooLarge(f"Text files are limited to {limit // (1024 * 1024)} MB", max_bytes=limit)
    with suppress(NotFound):
        if entry_type(await stat_of(sftp, path)) == "dir":
            raise BadRequest(f"Is a directory: {path}")
    with sftp_errors(path):
        async with sftp.open(path, "wb") as f:
            await f.write(data)
    return Done(path=path, size=len(data))


async def open_download(sftp: asyncssh.SFTPClient, path: str) -> tuple[asyncssh.SFTPClientFile, int]:
    """An open regular file and its size, for :func:`iter_file`."""
    attrs = await stat_of(sftp, path)
    kind = entry_type(attrs)
    if kind == "dir":
        raise BadRequest(f"Is a directory: {path}")
    if kind != "file":
        raise BadRequest(f"Not a regular file: {path}")
    with sftp_errors(path):
        # block_size=0: one SFTP request per read, so a read cancelled by a client that left
        # leaves no asyncssh helper tasks behind (iter_file does its own read-ahead)
        f = await sftp.open(path, "rb", block_size=0)
    return f, attrs.size or 0


async def iter_file(
    f: asyncssh.SFTPClientFile, size: int, *, chunk: int = CHUNK, depth: int = READ_AHEAD
) -> AsyncIterator[bytes]:
    """``size`` bytes of ``f`` in ``chunk``-sized pieces, in order; stops early if the file shrank.

    ``depth`` reads are in flight while a chunk is being sent, so SFTP round trips overlap each
    other and the HTTP writes; memory stays at ``depth`` chunks whatever the file's size.
    """
    queue: deque[tuple[int, int, asyncio.Future[bytes]]] = deque()
    next_offset = 0

    def fill() -> None:
        nonlocal next_offset
        while len(queue) < depth and next_offset < size:
            length = min(chunk, size - next_offset)
            queue.append((next_offset, length, asyncio.ensure_future(_read(f, length, next_offset))))
            next_offset += length

    try:
        fill()
        while queue:
            offset, length, read = queue.popleft()
            data = await read
            while 0 < len(data) < length:  # a short read before the end: fetch the rest of this chunk
                more = await _read(f, length - len(data), offset + len(data))
                if not more:
                    break
                data += more
            if len(data) < length:
                if data:
                    yield data
                return
            fill()
            yield data
    finally:
        for _, _, read in queue:
            read.cancel()


async def _read(f: asyncssh.SFTPClientFile, size: int, offset: int) -> bytes:
    return cast(bytes, await f.read(size, offset))  # opened in binary mode


def attachment_header(name: str) -> str:
    """``Content-Disposition`` for a download: an ASCII fallback and the exact name (RFC 5987/6266)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%/' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def make_dir(sftp: asyncssh.SFTPClient, path: str) -> Done:
    if await exists(sftp, path):
        raise Conflict(f"Already exists: {path}")
    with sftp_errors(path):
        await sftp.mkdir(path)
    return Done(path=path)


async def rename(sftp: asyncssh.SFTPClient, old_path: str, new_path: str) -> Renamed:
    """Never overwrites: an existing ``new_path`` is a 409 (and SFTP's own rename refuses too)."""
    if old_path == "/":
        raise BadRequest("The root directory cannot be renamed")
    await lstat(sftp, old_path)
    if await exists(sftp, new_path):
        raise Conflict(f"Already exists: {new_path}")
    await stat_of(sftp, posixpath.dirname(new_path))
    with sftp_errors(old_path):
        await sftp.rename(old_path, new_path)
    return Renamed(old_path=old_path, new_path=new_path)


async def delete(sftp: asyncssh.SFTPClient, path: str) -> Done:
    """A file, a symlink (not its target) or an empty directory."""
    if path == "/":
        raise BadRequest("The root directory cannot be deleted")
    if entry_type(await lstat(sftp, path)) != "dir":
        with sftp_errors(path):
            await sftp.remove(path)
        return Done(path=path)
    try:
        with sftp_errors(path):
            await sftp.rmdir(path)
    except SftpFailed:
        if await _has_entries(sftp, path):
            raise Conflict(f"Directory not empty: {path} (delete what it contains first)") from None
        raise
    return Done(path=path)


async def _has_entries(sftp: asyncssh.SFTPClient, path: str) -> bool:
    with sftp_errors(path):
        async for name in sftp.scandir(path.encode()):
            if name.filename not in (b".", b".."):
                return True
    return False


async def replace(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    """Move ``source`` onto ``target``, replacing it: atomic with OpenSSH's posix-rename."""
    with sftp_errors(target):
        try:
            await sftp.posix_rename(source, target)
        except asyncssh.SFTPOpUnsupported:
            with suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(target)
            await sftp.rename(source, target)
