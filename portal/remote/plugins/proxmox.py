"""Proxmox VE: its web UI through the embedded browser's Proxmox viewer."""

from __future__ import annotations

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Secret, Viewer


class ProxmoxConfig(PluginConfig):
    username: str | None = Field(None, max_length=64, description="e.g. root@pam")
    api_token_id: str | None = Field(None, max_length=200)
    api_token_secret: str | None = Secret(max_length=200)
    verify_tls: bool = False


PLUGIN = Plugin(
    type="proxmox",
    name="Proxmox VE",
    icon="server",
    default_port=8006,
    config_model=ProxmoxConfig,
    viewer=Viewer.PROXMOX,
    category="Virtualisation",
    description="Proxmox VE web interface and VM consoles.",
)
