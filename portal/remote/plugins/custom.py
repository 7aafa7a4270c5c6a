"""Anything else: a named host and port, shown as an address and reachable by TCP tunnel."""

from __future__ import annotations

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Relay


class CustomConfig(PluginConfig):
    notes: str | None = Field(None, max_length=1000)


PLUGIN = Plugin(
    type="custom",
    name="Custom",
    icon="plug",
    default_port=None,
    config_model=CustomConfig,
    relay=Relay.TCP,
    category="Other",
    description="Any other service: its address, and a TCP tunnel to it.",
)
