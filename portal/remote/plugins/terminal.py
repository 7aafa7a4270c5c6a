"""A shell on the portal host itself, in a local PTY: admins only, shell from an allowed list."""

from __future__ import annotations

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Viewer


class TerminalConfig(PluginConfig):
    shell: str | None = Field(None, max_length=200, description="one of GET /api/shells")


PLUGIN = Plugin(
    type="terminal",
    name="Local Terminal",
    icon="terminal",
    default_port=None,
    config_model=TerminalConfig,
    viewer=Viewer.TERMINAL,
    relay=Relay.PTY,
    category="Servers",
    description="A shell on the portal host (admins only).",
    needs_host=False,
    admin_only=True,
)
