"""The registry of connection types, filled at import from one module per type (or family)."""

from __future__ import annotations

from portal.remote.plugins import (
    custom,
    data_stores,
    media,
    proxmox,
    rdp,
    spice,
    ssh,
    tcp_tunnel,
    telnet,
    terminal,
    vnc,
    web,
    web_panels,
)
from portal.remote.plugins.base import Plugin, Relay, Viewer

_ALL: list[Plugin] = [
    ssh.PLUGIN,
    terminal.PLUGIN,
    telnet.PLUGIN,
    vnc.PLUGIN,
    rdp.PLUGIN,
    spice.PLUGIN,
    proxmox.PLUGIN,
    tcp_tunnel.PLUGIN,
    *web.PLUGINS,
    *web_panels.PLUGINS,
    *data_stores.PLUGINS,
    *media.PLUGINS,
    custom.PLUGIN,
]
REGISTRY: dict[str, Plugin] = {p.type: p for p in _ALL}
assert len(REGISTRY) == len(_ALL), "duplicate connection type"


def get_plugin(type_: str) -> Plugin | None:
    return REGISTRY.get(type_)


__all__ = ["REGISTRY", "Plugin", "Relay", "Viewer", "get_plugin"]
