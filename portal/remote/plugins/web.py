"""Internal web apps opened in the embedded browser: plain HTTP, HTTPS, or through an HTTP proxy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Secret, Viewer


class WebConfig(PluginConfig):
    scheme: Literal["http", "https"] | None = Field(None, description="default: https for the https type")
    path: str = Field("/", max_length=500, description="start page path on the host")
    username: str | None = Field(None, max_length=64, description="HTTP basic auth user")
    password: str | None = Secret(max_length=256, description="HTTP basic auth password")
    verify_tls: bool = True


def web_plugin(type_: str, name: str, default_port: int, description: str, **extra: object) -> Plugin:
    return Plugin(
        type=type_,
        name=name,
        icon=str(extra.pop("icon", "globe")),
        default_port=default_port,
        config_model=WebConfig,
        viewer=Viewer.BROWSER,
        category=str(extra.pop("category", "Web")),
        description=description,
        presets=dict(extra.pop("presets", {})),  # type: ignore[call-overload]
    )


PLUGINS = [
    web_plugin("http", "Web App (HTTP)", 80, "An internal web application over HTTP."),
    web_plugin("https", "Web App (HTTPS)", 443, "An internal web application over HTTPS."),
    web_plugin("http_proxy", "HTTP Proxy", 8080, "Browse through an HTTP proxy on your network."),
]
