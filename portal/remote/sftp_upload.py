"""Uploads streamed from the HTTP request straight into a remote file.

The multipart body is fed through python-multipart's streaming parser as it arrives, and the
file's bytes are written to the SFTP server before the next piece of the body is read: nothing
is spooled to memory or disk, and a slow SFTP server slows the client down (TCP back-pressure)
instead of making the portal buffer. The ``path`` field (the destination directory) must come
before the file part, which is what browsers and HTTP libraries send when it is appended first.

The file is written under a temporary name in the destination directory and moved over the
final name only once complete, so an interrupted or refused upload never leaves a truncated
file behind (nor replaces a good one).
"""

from __future__ import annotations

import asyncio
import posixpath
import secrets
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import asyncssh
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from portal.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from portal.core.paths import MAX_NAME_BYTES, check_file_name, check_remote_path
from portal.remote import sftp as files

FILE_FIELD = "file"
PATH_FIELD = "path"
MAX_FIELD_BYTES = 16 * 1024
MAX_FIELDS = 8
WRITE_BATCH = 256 * 1024  # asyncssh splits one write into pipelined SFTP requests


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """The parser's synchronous callbacks record events, in order, for the awaiting loop to handle:
    ``("field", name, value)``, ``("start", part)``, ``("data", bytes)``, ``("end",)``."""

    def __init__(self) -> None:
        self.part = _Part()
        self.events: list[tuple[Any, ...]] = []
        self.header_name = b""
        self.header_value = b""
        self.field_count = 0

    def take(self) -> list[tuple[Any, ...]]:
        events, self.events = self.events, []
        return events

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers.append((self.header_name.lower(), self.header_value))
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self.part.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise BadRequest("Every form part needs a name")
        self.part.name = _decode(options[b"name"])
        if b"filename" in options:
            self.part.filename = _decode(options[b"filename"])
            self.events.append(("start", self.part))
        else:
            self.field_count += 1
            if self.field_count > MAX_FIELDS:
                raise BadRequest("Too many form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.filename is not None:
            self.events.append(("data", data[start:end]))
            return
        if len(self.part.data) + end - start > MAX_FIELD_BYTES:
            raise BadRequest(f"The form field {self.part.name!r} is too long", field=self.part.name)
        self.part.data += data[start:end]

    def on_part_end(self) -> None:
        if self.part.filename is not None:
            self.events.append(("end",))
        else:
            self.events.append(("field", self.part.name, _decode(bytes(self.part.data))))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise BadRequest("Send the upload as multipart/form-data with the fields path and file")
    return options[b"boundary"]


class _RemoteFile:
    """The file being written: a temporary name until :meth:`commit` moves it into place."""

    def __init__(self, sftp: asyncssh.SFTPClient, directory: str, name: str, max_bytes: int) -> None:
        self.sftp = sftp
        self.target = posixpath.join(directory, name)
        stem = name.encode()[: MAX_NAME_BYTES - 24].decode(errors="ignore")
        self.temp = posixpath.join(directory, f".{stem}.upload-{secrets.token_hex(4)}")
        self.max_bytes = max_bytes
        self.size = 0
        self.buffer = bytearray()
        self.offset = 0  # where the next batch goes
        self.in_flight: asyncio.Future[None] | None = None
        self.file: asyncssh.SFTPClientFile | None = None
        self.finished = False

    async def open(self) -> None:
        with files.sftp_errors(self.target):
            self.file = await self.sftp.open(self.temp, "xb")

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"Uploads are limited to {self.max_bytes} bytes", max_bytes=self.max_bytes)
        self.buffer += piece

    async def write_batch(self) -> None:
        """Once a batch is full, write it while the next one is read from the client.

        At most two batches are in memory: a full one waits for the one in flight to land.
        """
        if len(self.buffer) >= WRITE_BATCH:
            await self._send()

    async def _send(self) -> None:
        await self._settle()
        if self.buffer and self.file is not None:
            data = bytes(self.buffer)
            self.buffer.clear()
            self.in_flight = asyncio.ensure_future(self._write(self.file, data, self.offset))
            self.offset += len(data)

    async def _settle(self) -> None:
        if self.in_flight is not None:
            flight, self.in_flight = self.in_flight, None
            await flight

    async def _write(self, file: asyncssh.SFTPClientFile, data: bytes, offset: int) -> None:
        with files.sftp_errors(self.target):
            await file.write(data, offset)

    async def finish(self) -> None:
        """All bytes are written; the file keeps its temporary name until :meth:`commit`."""
        await self._send()
        await self._settle()
        if self.file is not None:
            with files.sftp_errors(self.target):
                await self.file.close()
            self.file = None
        self.finished = True

    async def commit(self) -> None:
        await files.replace(self.sftp, self.temp, self.target)

    async def abort(self) -> None:
        """Best effort: the connection may be the thing that failed."""
        with suppress(Exception):
            await self._settle()  # at most one batch; cancelling would orphan asyncssh's own tasks
        with suppress(Exception):
            if self.file is not None:
                await self.file.close()
        with suppress(Exception):
            await self.sftp.remove(self.temp)


async def receive_upload(
    sftp: asyncssh.SFTPClient, content_type: str, body: AsyncIterator[bytes], *, home: str, max_bytes: int
) -> files.Done:
    """Parse the multipart ``body`` and stream its one file into the ``path`` directory."""
    collector = _Collector()
    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
        },
    )
    fields: dict[str, str] = {}
    remote: _RemoteFile | None = None
    committed = False
    try:
        async for chunk in body:
            try:
                parser.write(chunk)
            except FormParserError:
                raise BadRequest("Invalid multipart data") from None
            for event in collector.take():
                if event[0] == "field":
                    fields[event[1]] = event[2]
                elif event[0] == "start":
                    if remote is not None:
                        raise BadRequest("Upload one file per request")
                    remote = await _start(sftp, event[1], fields, home=home, max_bytes=max_bytes)
                elif event[0] == "data" and remote is not None:
                    remote.add(event[1])
                elif event[0] == "end" and remote is not None:
                    await remote.finish()
            if remote is not None and not remote.finished:
                await remote.write_batch()
        try:
            parser.finalize()
        except FormParserError:
            raise BadRequest("Invalid multipart data") from None
        if remote is None:
            raise BadRequest("No file in the upload: send it in the form field 'file'", field=FILE_FIELD)
        if not remote.finished:
            raise BadRequest("The upload ended in the middle of the file")
        await remote.commit()
        committed = True
        return files.Done(path=remote.target, size=remote.size)
    finally:
        if remote is not None and not committed:
            await remote.abort()


async def _start(
    sftp: asyncssh.SFTPClient, part: _Part, fields: dict[str, str], *, home: str, max_bytes: int
) -> _RemoteFile:
    if part.name != FILE_FIELD:
        raise BadRequest(f"Send the file in the form field 'file', not {part.name!r}", field=FILE_FIELD)
    if PATH_FIELD not in fields:
        raise BadRequest("Send the path field (the destination directory) before the file", field=PATH_FIELD)
    directory = check_remote_path(fields[PATH_FIELD], home)
    name = check_file_name(part.filename or "")
    if files.entry_type(await files.stat_of(sftp, directory)) != "dir":
        raise BadRequest(f"Not a directory: {directory}", field=PATH_FIELD)
    remote = _RemoteFile(sftp, directory, name, max_bytes)
    try:
        existing = await files.stat_of(sftp, remote.target)
    except NotFound:
        existing = None
    if existing is not None and files.entry_type(existing) == "dir":
        raise Conflict(f"A directory of that name exists: {remote.target}")
    await remote.open()
    return remote
