"""Splitting a plugin config into plain fields and encrypted secrets, and redacting it for output."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from portal.core.crypto import Keyring
from portal.core.errors import BadRequest, validation_message
from portal.remote.plugins.base import Plugin


def load_config(keyring: Keyring, config_json: str, secrets_enc: str | None) -> dict[str, Any]:
    """The full config, secrets included: only for relays and the merge of an update."""
    config: dict[str, Any] = json.loads(config_json or "{}")
    if secrets_enc:
        config.update(json.loads(keyring.decrypt(secrets_enc)))
    return config


def merge_config(plugin: Plugin, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` over ``current``: a secret sent as "" keeps its stored value (forms leave
    password inputs empty), null clears a field, anything else replaces it."""
    merged = dict(current)
    for key, value in changes.items():
        if key in plugin.secret_fields and value == "":
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def validate_config(plugin: Plugin, config: dict[str, Any]) -> dict[str, Any]:
    try:
        model = plugin.config_model.model_validate(config)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "config", *e["loc"])} for e in exc.errors()]
        message, details = validation_message(errors)
        raise BadRequest(message, field=details[0]["field"] if details else "config") from None
    return model.model_dump(exclude_none=True)


def split_config(plugin: Plugin, keyring: Keyring, config: dict[str, Any]) -> tuple[str, str | None]:
    plain = {k: v for k, v in config.items() if k not in plugin.secret_fields}
    secret = {k: v for k, v in config.items() if k in plugin.secret_fields and v not in (None, "")}
    return json.dumps(plain, separators=(",", ":")), keyring.encrypt(json.dumps(secret)) if secret else None


def redact_config(plugin: Plugin, config: dict[str, Any]) -> dict[str, Any]:
    """What a client may see: plain fields, and ``has_<field>`` for every secret field."""
    shown = {k: v for k, v in config.items() if k not in plugin.secret_fields}
    for name in sorted(plugin.secret_fields):
        shown[f"has_{name}"] = bool(config.get(name))
    return shown
