"""SFTP browser routes over the caller's own SSH connections.

Each request opens its own SSH connection (host key pinned like the terminal's, in the user's
scope) and closes it when the answer is complete; a download keeps it until the last byte is
sent or the client goes away. No SFTP session outlives its request, so nothing is shared
between users or requests.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import asyncssh
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.activity.service import record_activity
from portal.config import Settings
from portal.core.errors import BadRequest, TooManyRequests
from portal.core.paths import check_remote_path
from portal.core.services import Services
from portal.remote import connections as conns
from portal.remote import sftp as files
from portal.remote import ssh_client
from portal.remote.context import remote_of
from portal.remote.sftp_upload import boundary_of, receive_upload

router = APIRouter(prefix="/api/sftp/{connection_id}", tags=["sftp"])
Reader = Annotated[Principal, Depends(require_scope("connections:read"))]
Writer = Annotated[Principal, Depends(require_scope("connections:write"))]
PathQuery = Annotated[str, Query(description="Remote path; relative paths start at the SFTP home directory")]

MULTIPART_OVERHEAD = 64 * 1024
# JSON may escape every byte of the text as \u00XX: six bytes of body per byte of content.
WRITE_BODY_MAX = 6 * files.MAX_TEXT_BYTES + 64 * 1024


class WriteBody(BaseModel):
    path: str = Field(description="Remote file path")
    content: str = Field(description="The whole text of the file (UTF-8, at most 5 MB)")


class PathBody(BaseModel):
    path: str = Field(description="Remote directory path to create")


class RenameBody(BaseModel):
    old_path: str
    new_path: str


class SftpSlots:
    """At most ``limit`` SFTP operations (each with its own SSH connection) per user at once in this
    process, so one user cannot make the portal hold hundreds of SSH sessions."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: dict[int, int] = {}

    def acquire(self, user_id: int) -> None:
        if self._busy.get(user_id, 0) >= self.limit:
            raise TooManyRequests(
                f"Too many file operations at once (at most {self.limit}); try again when one ends", retry_after=1
            )
        self._busy[user_id] = self._busy.get(user_id, 0) + 1

    def release(self, user_id: int) -> None:
        left = self._busy.get(user_id, 0) - 1
        if left > 0:
            self._busy[user_id] = left
        else:
            self._busy.pop(user_id, None)


class SftpSession:
    def __init__(
        self,
        connection: asyncssh.SSHClientConnection,
        client: asyncssh.SFTPClient,
        connection_name: str,
        release: Callable[[], None],
    ) -> None:
        self.connection = connection
        self.client = client
        self.connection_name = connection_name
        self._release: Callable[[], None] | None = release
        self._home: str | None = None

    async def home(self) -> str:
        if self._home is None:
            self._home = await files.home_dir(self.client)
        return self._home

    async def resolve(self, path: str, *, field: str = "path") -> str:
        """``path`` checked and made absolute (the home directory is asked for only when needed)."""
        return check_remote_path(path, "/" if path.startswith("/") else await self.home(), field=field)

    def close(self) -> None:
        """Synchronous, so it also works from a cancelled task (a client that went away)."""
        self.client.exit()
        self.connection.close()
        release, self._release = self._release, None
        if release is not None:
            release()


async def open_session(request: Request, principal: Principal, connection_id: str) -> SftpSession:
    slots: SftpSlots = request.app.state.sftp_slots
    slots.acquire(principal.user_id)
    try:
        return await _open_session(request, principal, connection_id, lambda: slots.release(principal.user_id))
    except BaseException:
        slots.release(principal.user_id)
        raise


async def _open_session(
    request: Request, principal: Principal, connection_id: str, release: Callable[[], None]
) -> SftpSession:
    remote = remote_of(request)
    async with remote.db.sessions() as session:
        row = await conns.access_connection(session, principal, connection_id)
        if row.type != "ssh":
            raise BadRequest("SFTP needs an SSH connection")
        config = conns.full_config(remote.keyring, row)
        host, port, name = row.host, row.port or 22, row.name
        conns.mark_used(row)
        await session.commit()
    target = await remote.targets.resolve(host, port)
    try:
        connection = await ssh_client.connect(remote.db, f"user:{principal.user_id}", principal.user_id, target, config)
    except ssh_client.SshAuthFailed as exc:
        # a 401 would tell the page that its own session ended; this is the remote server's refusal
        raise ssh_client.SshError(exc.message) from None
    try:
        client = await connection.start_sftp_client()
    except (asyncssh.Error, OSError) as exc:
        connection.close()
        raise ssh_client.SshError(f"The server does not offer SFTP: {exc}") from None
    return SftpSession(connection, client, name, release)


@asynccontextmanager
async def sftp_for(request: Request, principal: Principal, connection_id: str) -> AsyncIterator[SftpSession]:
    session = await open_session(request, principal, connection_id)
    try:
        yield session
    finally:
        session.close()


class SftpDownload(StreamingResponse):
    """Streams a remote file and closes its SSH connection afterwards, however the response ends."""

    def __init__(self, session: SftpSession, file: asyncssh.SFTPClientFile, size: int, name: str) -> None:
        super().__init__(
            files.iter_file(file, size),
            media_type="application/octet-stream",
            headers={"Content-Length": str(size), "Content-Disposition": files.attachment_header(name)},
        )
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.session.close()


@router.get("/list", response_model=files.Listing)
async def list_dir(connection_id: str, request: Request, principal: Reader, path: PathQuery = "/") -> files.Listing:
    """A directory's entries, directories first, at most 5,000 (``truncated`` says when there are more)."""
    check_remote_path(path)
    async with sftp_for(request, principal, connection_id) as s:
        home = await s.home()
        return await files.list_dir(s.client, check_remote_path(path, home), home=home)


@router.get("/read", response_model=files.TextFile)
async def read_file(connection_id: str, request: Request, principal: Reader, path: PathQuery) -> files.TextFile:
    """A UTF-8 text file of at most 5 MB, for editing (413 above, 400 for binary files)."""
    check_remote_path(path)
    async with sftp_for(request, principal, connection_id) as s:
        return await files.read_text(s.client, await s.resolve(path))


@router.get(
    "/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file, streamed"}},
)
async def download(connection_id: str, request: Request, principal: Reader, path: PathQuery) -> StreamingResponse:
    """The file as an attachment, read from the server in 64 KiB chunks while it is sent."""
    check_remote_path(path)
    session = await open_session(request, principal, connection_id)
    try:
        target = await session.resolve(path)
        file, size = await files.open_download(session.client, target)
    except BaseException:
        session.close()
        raise
    return SftpDownload(session, file, size, posixpath.basename(target) or "download")


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["path", "file"],
                    "properties": {
                        "path": {"type": "string", "description": "Destination directory (send it before file)"},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


@router.post("/upload", response_model=files.Done, status_code=201, openapi_extra=UPLOAD_BODY)
async def upload(connection_id: str, request: Request, principal: Writer) -> files.Done:
    """Stream one file into the ``path`` directory (replacing a file of the same name once complete)."""
    content_type = request.headers.get("content-type", "")
    boundary_of(content_type)
    settings: Settings = remote_of(request).settings
    async with sftp_for(request, principal, connection_id) as s:
        try:
            done = await receive_upload(
                s.client,
                content_type,
                request.stream(),
                home=await s.home(),
                max_bytes=settings.sftp_max_upload_bytes,
            )
        except ClientDisconnect:
            raise BadRequest("The upload was interrupted") from None
    await _record(request, principal, s, "sftp_upload", f"{done.path} ({done.size} bytes)")
    return done


@router.post("/write", response_model=files.Done)
async def write_file(connection_id: str, body: WriteBody, request: Request, principal: Writer) -> files.Done:
    """Create or replace a text file (at most 5 MB)."""
    check_remote_path(body.path)
    async with sftp_for(request, principal, connection_id) as s:
        done = await files.write_text(s.client, await s.resolve(body.path), body.content)
    await _record(request, principal, s, "sftp_write", done.path)
    return done


@router.post("/mkdir", response_model=files.Done, status_code=201)
async def make_dir(connection_id: str, body: PathBody, request: Request, principal: Writer) -> files.Done:
    check_remote_path(body.path)
    async with sftp_for(request, principal, connection_id) as s:
        done = await files.make_dir(s.client, await s.resolve(body.path))
    await _record(request, principal, s, "sftp_mkdir", done.path)
    return done


@router.post("/rename", response_model=files.Renamed)
async def rename(connection_id: str, body: RenameBody, request: Request, principal: Writer) -> files.Renamed:
    """Rename or move; an existing ``new_path`` is never overwritten (409)."""
    check_remote_path(body.old_path, field="old_path")
    check_remote_path(body.new_path, field="new_path")
    async with sftp_for(request, principal, connection_id) as s:
        old = await s.resolve(body.old_path, field="old_path")
        new = await s.resolve(body.new_path, field="new_path")
        renamed = await files.rename(s.client, old, new)
    await _record(request, principal, s, "sftp_rename", f"{renamed.old_path} -> {renamed.new_path}")
    return renamed


@router.delete("/delete", response_model=files.Done)
async def delete(connection_id: str, request: Request, principal: Writer, path: PathQuery) -> files.Done:
    """A file, a symlink or an empty directory (a non-empty one is a 409)."""
    check_remote_path(path)
    async with sftp_for(request, principal, connection_id) as s:
        done = await files.delete(s.client, await s.resolve(path))
    await _record(request, principal, s, "sftp_delete", done.path)
    return done


async def _record(request: Request, principal: Principal, s: SftpSession, action: str, what: str) -> None:
    """Changes to remote files go to the user's activity feed, naming the connection."""
    async with remote_of(request).db.sessions() as session:
        record_activity(
            session,
            action,
            user_id=principal.user_id,
            username=principal.user.username,
            details=f"{s.connection_name}: {what}",
        )
        await session.commit()


def install_sftp(app: FastAPI, settings: Settings, services: Services) -> None:
    """Routes, and the body caps of the two routes that take more than the default 1 MB."""
    app.include_router(router)
    app.state.sftp_slots = SftpSlots(settings.sftp_max_concurrent_per_user)
    services.body_limits["/api/sftp/*/upload"] = settings.sftp_max_upload_bytes + MULTIPART_OVERHEAD
    services.body_limits["/api/sftp/*/write"] = WRITE_BODY_MAX
