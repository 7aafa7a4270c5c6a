"""Databases, caches and search engines: reached through a TCP tunnel with a local client, so the
portal shows their address instead of a viewer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from portal.remote.plugins.base import Plugin, PluginConfig, Relay, Secret


class DatabaseConfig(PluginConfig):
    engine: Literal["postgresql", "mysql", "mariadb", "mssql", "other"] = "postgresql"
    database: str | None = Field(None, max_length=100)
    username: str | None = Field(None, max_length=64)
    password: str | None = Secret(max_length=256)


class RedisConfig(PluginConfig):
    password: str | None = Secret(max_length=256)
    db: int = Field(0, ge=0, le=15)


class MongoConfig(PluginConfig):
    database: str | None = Field(None, max_length=100)
    username: str | None = Field(None, max_length=64)
    password: str | None = Secret(max_length=256)


class ElasticsearchConfig(PluginConfig):
    username: str | None = Field(None, max_length=64)
    password: str | None = Secret(max_length=256)
    api_key: str | None = Secret(max_length=512)


def _store(type_: str, name: str, port: int, model: type[PluginConfig], description: str) -> Plugin:
    return Plugin(
        type=type_,
        name=name,
        icon="database",
        default_port=port,
        config_model=model,
        relay=Relay.TCP,
        category="Data",
        description=description,
    )


PLUGINS = [
    _store("database", "Database", 5432, DatabaseConfig, "A SQL database (PostgreSQL, MySQL…) over a TCP tunnel."),
    _store("redis", "Redis", 6379, RedisConfig, "A Redis server over a TCP tunnel."),
    _store("mongodb", "MongoDB", 27017, MongoConfig, "A MongoDB server over a TCP tunnel."),
    _store("elasticsearch", "Elasticsearch", 9200, ElasticsearchConfig, "An Elasticsearch cluster."),
]
