"""RDP: relayed as binary frames to the noVNC viewer (the backend is usually an RDP-to-VNC gateway
such as xrdp's VNC side or a Guacamole-free bridge; raw RDP needs a gateway the browser can speak)."""

from __future__ import annotations

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Secret, Viewer


class RdpConfig(PluginConfig):
    username: str | None = Field(None, max_length=64)
    password: str | None = Secret(max_length=256)
    domain: str | None = Field(None, max_length=100)


PLUGIN = Plugin(
    type="rdp",
    name="RDP Desktop",
    icon="monitor",
    default_port=3389,
    config_model=RdpConfig,
    viewer=Viewer.VNC,
    relay=Relay.TCP,
    category="Desktops",
    description="Windows remote desktop through a VNC-speaking gateway, viewed with noVNC.",
)
