"""A generic TCP tunnel: binary WebSocket frames to and from any TCP service (no web viewer)."""

from __future__ import annotations

from portal.remote.plugins.base import Plugin, PluginConfig, Relay


class TcpTunnelConfig(PluginConfig):
    pass


PLUGIN = Plugin(
    type="tcp_tunnel",
    name="TCP Tunnel",
    icon="link",
    default_port=None,
    config_model=TcpTunnelConfig,
    relay=Relay.TCP,
    category="Tunnels",
    description="Any TCP service, tunnelled over a WebSocket (binary frames).",
)
