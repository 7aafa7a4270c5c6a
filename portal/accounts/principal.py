"""Who is calling: the user snapshot and the credential that proved it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.accounts.roles import Role


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """A read-only copy of a user row; cached with the credential and dropped on any change."""

    id: int
    username: str
    role: Role
    created_at: datetime
    nickname: str | None
    status: str
    status_message: str | None
    avatar_color: str | None
    avatar_emoji: str | None
    avatar_initials: str | None
    anonymous: bool
    totp_enabled: bool

    @classmethod
    def of(cls, user: Any) -> UserSnapshot:
        return cls(
            id=user.id,
            username=user.username,
            role=Role(user.role),
            created_at=user.created_at,
            nickname=user.nickname,
            status=user.status,
            status_message=user.status_message,
            avatar_color=user.avatar_color,
            avatar_emoji=user.avatar_emoji,
            avatar_initials=user.avatar_initials,
            anonymous=user.anonymous,
            totp_enabled=user.totp_enabled,
        )

    @property
    def display_name(self) -> str:
        if self.anonymous:
            return "Anonymous"
        return self.nickname or self.username


@dataclass(frozen=True, slots=True)
class Principal:
    user: UserSnapshot
    via: str  # "jwt" | "cookie" | "api_key"
    scopes: str  # "*" for sessions; the key's scopes for API keys
    token_id: str | None = None
    api_key_id: int | None = None
    expires_at: datetime | None = None

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def role(self) -> Role:
        return self.user.role
