"""``/api/ssh-keys``: generate, list, show, delete, and export as ``authorized_keys``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.activity.service import record_activity
from portal.core.db import MAX_ID, get_session
from portal.remote import sshkeys
from portal.remote.models import SshKey
from portal.remote.schemas import Name

router = APIRouter(tags=["ssh keys"])
Session = Annotated[AsyncSession, Depends(get_session)]
Reader = Annotated[Principal, Depends(require_scope("ssh_keys:read"))]
Writer = Annotated[Principal, Depends(require_scope("ssh_keys:write"))]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID)]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    key_type: Literal["ed25519", "rsa"] = "ed25519"


class KeyOut(BaseModel):
    id: int
    name: str
    key_type: str
    public_key: str
    fingerprint: str
    created_at: datetime


class KeyCreated(KeyOut):
    private_key: str = Field(description="shown once; the portal does not keep it")


class KeyList(BaseModel):
    keys: list[KeyOut]


def _out(row: SshKey) -> KeyOut:
    return KeyOut.model_validate(row, from_attributes=True)


@router.post("/api/ssh-keys", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, principal: Writer, session: Session) -> KeyCreated:
    """Generate a key pair (ed25519, or RSA 4096); the private key is in this answer only."""
    made = await sshkeys.check_create_key(session, principal.user_id, body.name, body.key_type)
    record_activity(
        session, "ssh_key_created", user_id=principal.user_id, username=principal.user.username, details=body.name
    )
    await session.commit()
    return KeyCreated(**_out(made.row).model_dump(), private_key=made.private_key)


@router.get("/api/ssh-keys", response_model=KeyList)
async def list_keys(principal: Reader, session: Session) -> KeyList:
    return KeyList(keys=[_out(k) for k in await sshkeys.list_keys(session, principal.user_id)])


@router.get("/api/ssh-keys/authorized", response_class=PlainTextResponse)
async def authorized(principal: Reader, session: Session) -> PlainTextResponse:
    """All your public keys, one per line, ready for ``~/.ssh/authorized_keys``."""
    text = sshkeys.authorized_keys(await sshkeys.list_keys(session, principal.user_id))
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")


@router.get("/api/ssh-keys/{key_id}", response_model=KeyOut)
async def get_key(key_id: KeyId, principal: Reader, session: Session) -> KeyOut:
    return _out(await sshkeys.access_key(session, principal.user_id, key_id))


@router.delete("/api/ssh-keys/{key_id}")
async def delete_key(key_id: KeyId, principal: Writer, session: Session) -> dict[str, bool]:
    row = await sshkeys.access_key(session, principal.user_id, key_id)
    await session.delete(row)
    record_activity(
        session, "ssh_key_deleted", user_id=principal.user_id, username=principal.user.username, details=row.name
    )
    await session.commit()
    return {"success": True}
