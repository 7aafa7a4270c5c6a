"""SPICE VM consoles: binary frames relayed to the SPICE server of a hypervisor."""

from __future__ import annotations

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Secret, Viewer


class SpiceConfig(PluginConfig):
    password: str | None = Secret(max_length=256)


PLUGIN = Plugin(
    type="spice",
    name="SPICE Console",
    icon="monitor",
    default_port=5900,
    config_model=SpiceConfig,
    viewer=Viewer.SPICE,
    relay=Relay.TCP,
    category="Desktops",
    description="Virtual machine consoles over SPICE.",
)
