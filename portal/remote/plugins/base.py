"""What a connection type declares: its form (a Pydantic model turned into JSON Schema), which
fields are secret, the page that views it and the relay that carries its traffic."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Viewer(StrEnum):
    TERMINAL = "terminal"
    VNC = "vnc"
    SPICE = "spice"
    PROXMOX = "proxmox"
    BROWSER = "browser"
    MEDIA = "media"


class Relay(StrEnum):
    SSH = "ssh"  # JSON terminal protocol over an SSH session
    TELNET = "telnet"  # JSON terminal protocol over a raw TCP telnet stream
    PTY = "pty"  # JSON terminal protocol over a local PTY (admins only)
    TCP = "tcp"  # binary frames to and from a TCP backend (VNC, RDP, SPICE, tunnels)


VIEWER_PATHS: dict[Viewer, str] = {
    Viewer.TERMINAL: "/terminal/connect",
    Viewer.VNC: "/vnc/connect",
    Viewer.SPICE: "/spice/connect",
    Viewer.PROXMOX: "/proxmox/connect",
    Viewer.BROWSER: "/browser",
    Viewer.MEDIA: "/media/connect",
}


class PluginConfig(BaseModel):
    """Base of every plugin's config model: unknown fields are refused, so typos surface."""

    model_config = ConfigDict(extra="forbid")


def Secret(default: Any = None, **kwargs: Any) -> Any:
    """A config field that is encrypted at rest and never returned (``has_<field>`` instead)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra.update({"secret": True, "writeOnly": True, "format": "password"})
    return Field(default, json_schema_extra=extra, **kwargs)


class EmptyConfig(PluginConfig):
    pass


@dataclass(frozen=True)
class Plugin:
    type: str
    name: str
    icon: str
    default_port: int | None
    config_model: builtins.type[PluginConfig] = EmptyConfig
    viewer: Viewer | None = None
    relay: Relay | None = None
    category: str = "Other"
    description: str = ""
    needs_host: bool = True
    admin_only: bool = False
    presets: dict[str, Any] = field(default_factory=dict)

    @property
    def secret_fields(self) -> frozenset[str]:
        return frozenset(
            name
            for name, info in self.config_model.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        )

    def config_schema(self) -> dict[str, Any]:
        return self.config_model.model_json_schema()

    def viewer_url(self, connection_id: str) -> str | None:
        if self.viewer is None:
            return None
        return f"{VIEWER_PATHS[self.viewer]}?connection={connection_id}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "icon": self.icon,
            "default_port": self.default_port,
            "plugin": self.type,
            "category": self.category,
            "description": self.description,
            "viewer": self.viewer.value if self.viewer else None,
            "relay": self.relay.value if self.relay else None,
            "needs_host": self.needs_host,
            "admin_only": self.admin_only,
            "secret_fields": sorted(self.secret_fields),
            "presets": self.presets,
            "config_schema": self.config_schema(),
        }
