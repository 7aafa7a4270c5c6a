"""Telnet: the terminal protocol over a plain TCP stream (option negotiation refused politely)."""

from __future__ import annotations

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Viewer


class TelnetConfig(PluginConfig):
    pass


PLUGIN = Plugin(
    type="telnet",
    name="Telnet",
    icon="terminal",
    default_port=23,
    config_model=TelnetConfig,
    viewer=Viewer.TERMINAL,
    relay=Relay.TELNET,
    category="Servers",
    description="Legacy devices and switches speaking telnet.",
)
