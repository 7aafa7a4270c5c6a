"""Request and response models of the services and connections routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Display names are stripped before their length is checked, so "   " is refused, not stored as "".
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionCreate(Body):
    name: Name
    type: str = Field(min_length=1, max_length=32)
    host: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    config: dict[str, Any] = Field(default_factory=dict)


class ConnectionUpdate(Body):
    name: Name | None = None
    host: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    config: dict[str, Any] | None = None


class ConnectionOut(BaseModel):
    id: str
    name: str
    type: str
    host: str
    port: int | None
    config: dict[str, Any]
    is_pinned: bool
    icon: str
    viewer: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


class ConnectionList(BaseModel):
    connections: list[ConnectionOut]


class PinOut(BaseModel):
    is_pinned: bool


class ConnectInfo(BaseModel):
    connection: dict[str, Any]
    websocket_url: str | None
    viewer: str | None
    viewer_url: str | None
    ssh_public_key: str | None = None
    info: dict[str, Any] | None = Field(None, description="for types without a web viewer: what to show instead")


class HostKeyOut(BaseModel):
    pinned: bool
    key_type: str | None = None
    fingerprint: str | None = None
    public_key: str | None = None
    pinned_at: datetime | None = None


class HostKeyForgotten(BaseModel):
    removed: bool


class TypesOut(BaseModel):
    types: dict[str, dict[str, Any]]


Role = Literal["user", "moderator", "admin", "superadmin"]


class ServiceCreate(Body):
    name: Name
    plugin: str = Field(min_length=1, max_length=32)
    host: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    path: str | None = Field(None, max_length=65)
    icon: str | None = Field(None, max_length=32)
    category: str | None = Field(None, max_length=50)
    description: str | None = Field(None, max_length=500)
    enabled: bool = True
    min_role: Role = "user"
    scope: str | None = Field(None, max_length=64, pattern=r"^[a-z][a-z0-9_-]*(:(read|write|\*))?$")
    config: dict[str, Any] = Field(default_factory=dict)


class ServiceUpdate(Body):
    name: Name | None = None
    host: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    path: str | None = Field(None, max_length=65)
    icon: str | None = Field(None, max_length=32)
    category: str | None = Field(None, max_length=50)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None
    min_role: Role | None = None
    scope: str | None = Field(None, max_length=64, pattern=r"^[a-z][a-z0-9_-]*(:(read|write|\*))?$")
    config: dict[str, Any] | None = None


class ServiceOut(BaseModel):
    id: int
    name: str
    plugin: str
    path: str
    icon: str
    category: str
    description: str
    enabled: bool
    websocket_url: str | None
    host: str | None = None
    port: int | None = None
    min_role: str | None = None
    scope: str | None = None
    config: dict[str, Any] | None = None


class ServiceList(BaseModel):
    services: list[ServiceOut]


class Health(BaseModel):
    healthy: bool
    latency_ms: int | None
    detail: str


class Success(BaseModel):
    success: bool = True
