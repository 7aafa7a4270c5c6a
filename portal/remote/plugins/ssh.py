"""SSH terminal: password, a pasted private key, or one of the user's stored SSH keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Secret, Viewer


class SshConfig(PluginConfig):
    username: str = Field(min_length=1, max_length=64)
    auth_method: Literal["password", "key", "ssh_key"] = Field(
        "password", description="password, a pasted private key, or a stored SSH key (ssh_key_id)"
    )
    password: str | None = Secret(max_length=1024)
    private_key: str | None = Secret(max_length=16384, description="OpenSSH or PEM private key")
    passphrase: str | None = Secret(max_length=1024)
    ssh_key_id: int | None = Field(None, description="id of one of your SSH keys (auth_method ssh_key)")
    shell: str | None = Field(None, max_length=200, description="command to run instead of the login shell")
    term: str = Field("xterm-256color", max_length=40)


PLUGIN = Plugin(
    type="ssh",
    name="SSH Terminal",
    icon="terminal",
    default_port=22,
    config_model=SshConfig,
    viewer=Viewer.TERMINAL,
    relay=Relay.SSH,
    category="Servers",
    description="Interactive shell over SSH in the browser (xterm.js), with the SFTP file browser.",
)
