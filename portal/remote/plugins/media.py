"""Media servers (MediaMTX and plain stream URLs) opened in the portal's media player."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Secret, Viewer


class MediaConfig(PluginConfig):
    protocol: Literal["hls", "webrtc", "rtsp", "rtmp"] = "hls"
    path: str = Field("/", max_length=500, description="stream path on the media server")
    username: str | None = Field(None, max_length=64)
    password: str | None = Secret(max_length=256)


PLUGINS = [
    Plugin(
        type="mediamtx",
        name="MediaMTX",
        icon="video",
        default_port=8888,
        config_model=MediaConfig,
        viewer=Viewer.MEDIA,
        category="Media",
        description="A MediaMTX server's streams in the media player.",
    ),
    Plugin(
        type="stream",
        name="Media Stream",
        icon="video",
        default_port=8888,
        config_model=MediaConfig,
        viewer=Viewer.MEDIA,
        category="Media",
        description="A live stream URL (HLS, WebRTC) in the media player.",
    ),
]
