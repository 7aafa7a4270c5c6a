"""Request and response models of the accounts routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from portal.accounts.passwords import MAX_LENGTH, MIN_LENGTH
from portal.accounts.roles import Role

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$"
_NICKNAME = re.compile(r"^[A-Za-z0-9 -]{2,32}$")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


class RequestModel(BaseModel):
    """Strict input: wrong types and unknown fields are 400s, not silent coercions."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=False)


Password = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)
# Strict models still take enums from their JSON string values.
RoleName = Annotated[Role, Field(strict=False)]


class LoginRequest(RequestModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)
    totp_code: str | None = Field(default=None, max_length=32)


class PublicUser(BaseModel):
    id: int
    username: str
    role: Role
    is_admin: bool


class TokenResponse(BaseModel):
    token: str
    token_id: str
    expires_at: datetime
    user: PublicUser


class TokenInfo(BaseModel):
    token_id: str
    kind: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    current: bool


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class RevokeTokenRequest(RequestModel):
    token_id: str = Field(min_length=1, max_length=64)


class Success(BaseModel):
    success: bool = True


class RegisterRequest(RequestModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Password
    invite_code: str = Field(min_length=1, max_length=32)


class RegisterResponse(BaseModel):
    id: int
    username: str
    message: str = "Registration successful"


class InviteCode(BaseModel):
    invite_code: str
    expires_at: datetime


class ApiKeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: str = Field(default="*", min_length=1, max_length=500)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    api_key: str
    key_prefix: str
    scopes: str
    created_at: datetime
    expires_at: datetime | None


class ApiKeyOut(BaseModel):
    id: int
    name: str
    key_prefix: str
    scopes: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool
    revoked_at: datetime | None


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyOut]


class Avatar(BaseModel):
    color: str | None
    emoji: str | None
    initials: str | None


class Me(BaseModel):
    id: int
    username: str
    role: Role
    is_admin: bool
    scopes: str
    created_at: datetime
    totp_enabled: bool
    nickname: str | None
    display_name: str
    status: str
    status_message: str | None
    avatar: Avatar
    anonymous: bool


class PasswordChange(RequestModel):
    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Password


class StatusUpdate(RequestModel):
    status: Literal["online", "away", "busy", "dnd", "offline"]
    status_message: str | None = Field(default=None, max_length=100)


class NicknameUpdate(RequestModel):
    nickname: str | None = Field(default=None, max_length=64)

    @field_validator("nickname")
    @classmethod
    def _nickname(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not _NICKNAME.match(value):
            raise ValueError("nickname must be 2-32 letters, digits, spaces or dashes")
        return value


class AvatarUpdate(RequestModel):
    color: str | None = Field(default=None, pattern=r"^#[0-9A-Fa-f]{6}$")
    emoji: str | None = Field(default=None, max_length=16)
    initials: str | None = Field(default=None, max_length=2)

    @field_validator("emoji")
    @classmethod
    def _emoji(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if _ASCII_WORD.search(value) or not all(ord(ch) > 0x7F or ch in "\u200d\ufe0f" for ch in value):
            raise ValueError("emoji must be an emoji character")
        if len(value) > 8:
            raise ValueError("emoji must be a single emoji")
        return value

    @field_validator("initials")
    @classmethod
    def _initials(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.isalnum():
            raise ValueError("initials must be 1-2 letters or digits")
        return value.upper()


class AnonymousUpdate(RequestModel):
    anonymous: bool


class TwoFactorStatus(BaseModel):
    enabled: bool
    backup_codes_remaining: int


class TwoFactorSetup(BaseModel):
    secret: str
    provisioning_uri: str
    qr_svg: str = Field(description="the provisioning URI as an SVG QR code")


class TwoFactorCode(RequestModel):
    code: str = Field(min_length=6, max_length=32)


class BackupCodes(BaseModel):
    enabled: bool = True
    backup_codes: list[str]


class UserCreate(RequestModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Password
    role: RoleName = Role.USER


class RoleUpdate(RequestModel):
    role: RoleName


class PasswordReset(RequestModel):
    new_password: str | None = Field(default=None, min_length=MIN_LENGTH, max_length=MAX_LENGTH)


class PasswordResetDone(BaseModel):
    success: bool = True
    temporary_password: str | None = None


class UserOut(BaseModel):
    id: int
    username: str
    role: Role
    is_admin: bool
    nickname: str | None
    created_at: datetime
    last_login_at: datetime | None
    totp_enabled: bool


class UserList(BaseModel):
    users: list[UserOut]
    total: int
    limit: int
    offset: int
