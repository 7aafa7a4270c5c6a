"""Chat request models: REST bodies and the client frames of ``/ws/chat``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CHANNEL_NAME = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_MESSAGE = 4000
ChannelName = Annotated[str, Field(min_length=1, max_length=50, pattern=CHANNEL_NAME)]
Emoji = Annotated[str, Field(min_length=1, max_length=32)]


class Frame(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Body(Frame):
    pass


# -- REST ------------------------------------------------------------------------------------------
class ChannelCreate(Body):
    name: ChannelName
    description: str = Field(default="", max_length=200)
    topic: str = Field(default="", max_length=200)
    visibility: Literal["public", "private"] = "public"
    mode: Literal["open", "readonly"] = "open"


class ChannelUpdate(Body):
    name: ChannelName | None = None
    description: str | None = Field(default=None, max_length=200)
    topic: str | None = Field(default=None, max_length=200)
    visibility: Literal["public", "private"] | None = None
    mode: Literal["open", "readonly"] | None = None


class ChannelOut(BaseModel):
    id: int
    name: str
    description: str
    topic: str
    visibility: str
    mode: str
    is_default: bool
    is_stream_channel: bool
    created_by: int | None
    created_at: datetime
    unread_count: int = 0


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class MemberAdd(Body):
    user_id: int
    role: Literal["member", "moderator"] = "member"


class MemberRole(Body):
    role: Literal["member", "moderator"]


class MemberOut(BaseModel):
    user_id: int
    username: str
    role: str
    added_at: datetime


class MemberList(BaseModel):
    members: list[MemberOut]


class Success(BaseModel):
    success: bool = True


class UserHit(BaseModel):
    id: int
    username: str
    nickname: str | None


class UserSearch(BaseModel):
    users: list[UserHit]


class SanctionCreate(Body):
    user_id: int
    kind: Literal["timeout", "mute", "ban"]
    channel_id: int | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 365)
    reason: str = Field(default="", max_length=200)


class SanctionOut(BaseModel):
    id: int
    user_id: int
    username: str | None
    kind: str
    channel_id: int | None
    reason: str
    created_by: int | None
    created_at: datetime
    expires_at: datetime | None
    lifted_at: datetime | None
    active: bool


class SanctionList(BaseModel):
    sanctions: list[SanctionOut]


class AutomodRuleIn(Body):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["blocked_words", "regex", "link_limit", "mention_limit", "caps_ratio"]
    config: dict[str, object] = Field(default_factory=dict)
    action: Literal["delete", "timeout"] = "delete"
    timeout_minutes: int = Field(default=5, ge=1, le=10080)
    enabled: bool = True


class AutomodRuleUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    config: dict[str, object] | None = None
    action: Literal["delete", "timeout"] | None = None
    timeout_minutes: int | None = Field(default=None, ge=1, le=10080)
    enabled: bool | None = None


class AutomodRuleOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, object]
    action: str
    timeout_minutes: int
    enabled: bool
    created_at: datetime


class AutomodRuleList(BaseModel):
    rules: list[AutomodRuleOut]


# -- /ws/chat client frames ------------------------------------------------------------------------
class JoinFrame(Frame):
    channel: str = Field(min_length=1, max_length=50)


class MessageFrame(Frame):
    channel: str = Field(min_length=1, max_length=50)
    message: str = Field(default="", max_length=MAX_MESSAGE)
    reply_to: int | None = None
    image_url: str | None = Field(default=None, max_length=200)


class MessageIdFrame(Frame):
    message_id: int


class ReactFrame(Frame):
    message_id: int
    emoji: Emoji

    @field_validator("emoji")
    @classmethod
    def _emoji(cls, value: str) -> str:
        if any(ch.isspace() or ord(ch) < 32 for ch in value) or all(ch.isascii() for ch in value):
            raise ValueError("emoji must be an emoji character")
        return value


class EditFrame(Frame):
    message_id: int
    message: str = Field(min_length=1, max_length=MAX_MESSAGE)


class TypingFrame(Frame):
    channel: str = Field(min_length=1, max_length=50)


class UserFrame(Frame):
    user_id: int


class CreatePollFrame(Frame):
    channel: str = Field(min_length=1, max_length=50)
    question: str = Field(min_length=1, max_length=500)
    options: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=2, max_length=10)
    allow_multiple: bool = False
    anonymous_votes: bool = False
    duration: int | None = Field(default=None, ge=1, le=60 * 24 * 30)


class VotePollFrame(Frame):
    poll_id: int
    option_index: int = Field(ge=0, le=9)


class PollIdFrame(Frame):
    poll_id: int


class PingFrame(Frame):
    pass


class HistoryFrame(Frame):
    channel: str = Field(min_length=1, max_length=50)
    before_id: int | None = None
    limit: int = Field(default=50, ge=1, le=100)
