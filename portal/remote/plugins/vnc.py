"""VNC: RFB relayed as binary frames to noVNC. With a stored password the relay does the VNC
authentication itself and noVNC sees a server without one (the password never reaches the browser);
without, noVNC authenticates."""

from __future__ import annotations

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Secret, Viewer


class VncConfig(PluginConfig):
    password: str | None = Secret(
        max_length=256, description="VNC password, used by the portal's relay to log in (never sent to the browser)"
    )
    view_only: bool = Field(False, description="do not send keyboard and mouse input")


PLUGIN = Plugin(
    type="vnc",
    name="VNC Desktop",
    icon="monitor",
    default_port=5900,
    config_model=VncConfig,
    viewer=Viewer.VNC,
    relay=Relay.TCP,
    category="Desktops",
    description="Remote desktop over VNC in the browser (noVNC).",
)
