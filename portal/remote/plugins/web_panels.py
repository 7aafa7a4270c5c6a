"""Presets for well-known self-hosted web panels: each is an embedded-browser type with its
usual port, path and scheme filled in, so the quick-add form needs only the host."""

from __future__ import annotations

from portal.remote.plugins.web import web_plugin

PANELS = [
    ("home_assistant", "Home Assistant", 8123, "/", "http", "home"),
    ("grafana", "Grafana", 3000, "/", "http", "chart"),
    ("portainer", "Portainer", 9443, "/", "https", "box"),
    ("truenas", "TrueNAS", 443, "/ui/", "https", "database"),
    ("pfsense", "pfSense", 443, "/", "https", "shield"),
    ("jupyter", "Jupyter", 8888, "/lab", "http", "book"),
    ("prometheus", "Prometheus", 9090, "/graph", "http", "chart"),
]

PLUGINS = [
    web_plugin(
        type_,
        name,
        port,
        f"{name} web interface in the embedded browser.",
        icon=icon,
        category="Web panels",
        presets={"port": port, "config": {"path": path, "scheme": scheme}},
    )
    for type_, name, port, path, scheme, icon in PANELS
]
