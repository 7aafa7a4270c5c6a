"""Messages at rest: encrypted in the database, deleted by the retention job; user search."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests import aio
from tests.chat.conftest import assert_api_error, channel_name
from tests.chat.wsclient import ChatClient, connect
from tests.conftest import UserClient
from tests.portal_server import PortalServer

Channel = dict[str, Any]


def _database_dump(server: PortalServer) -> bytes:
    """Every byte the server's database holds (SQLite files, or PostgreSQL table contents)."""
    env = server.shared.env()
    if "PORTAL_DATABASE_URL" not in env:
        data = b""
        for suffix in ("", "-wal"):
            path = server.shared.data_dir / f"portal.db{suffix}"
            if path.exists():
                data += path.read_bytes()
        assert data, "no SQLite database found in the data dir"
        return data
    import asyncpg

    async def dump() -> bytes:
        conn = await asyncpg.connect(env["PORTAL_DATABASE_URL"])
        try:
            tables = [
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ]
            chunks = []
            for table in tables:
                for row in await conn.fetch(f'SELECT t::text AS line FROM "{table}" t'):
                    chunks.append(row["line"])
            return "\n".join(chunks).encode()
        finally:
            await conn.close()

    return aio.run(dump())


def test_messages_and_polls_are_encrypted_at_rest(
    portal: PortalServer,
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
) -> None:
    name = channel()["name"]
    secret_text = "plaintext-canary-" + secrets.token_hex(8)
    secret_question = "question-canary-" + secrets.token_hex(8)
    secret_option = "option-canary-" + secrets.token_hex(8)
    edited_text = "edited-canary-" + secrets.token_hex(8)
    user = make_user()
    client = ws(user)
    client.join(name)
    first = client.say(name, secret_text)
    to_edit = client.say(name, "to be edited")
    client.send_json({"type": "edit_message", "message_id": to_edit["id"], "message": edited_text})
    client.recv_until("message_edited")
    client.send_json(
        {"type": "create_poll", "channel": name, "question": secret_question, "options": [secret_option, "other"]}
    )
    client.recv_until("poll_created")
    # the server reads them back fine
    history = [m["message"] for m in client.join(name)["history"]["messages"]]
    assert history == [secret_text, edited_text, secret_question]
    assert first["message"] == secret_text
    dump = _database_dump(portal)
    assert name.encode() in dump  # the dump is of the right database (channel names are not secret)
    for canary in (secret_text, secret_question, secret_option, edited_text, "to be edited"):
        assert canary.encode() not in dump, f"{canary!r} is stored in plain text"


# -- retention ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_retention() -> Iterator[PortalServer]:
    """Messages older than ~1.7 s are deleted by a job running every second."""
    server = PortalServer(
        env={"PORTAL_CHAT_RETENTION_DAYS": "0.00002", "PORTAL_RETENTION_INTERVAL_SECONDS": "1"}
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_retention_job_deletes_old_messages(short_retention: PortalServer) -> None:
    server = short_retention
    token = httpx.post(
        server.base_url + "/api/token", json={"username": server.admin_user, "password": server.admin_password}
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    name = channel_name("retention")
    assert httpx.post(server.base_url + "/api/chat/channels", json={"name": name}, headers=headers).status_code == 201
    with connect(server.base_url, token) as client:
        client.join(name)
        sent = client.say(name, "short-lived")
        sent_at = time.monotonic()
        thread = httpx.get(f"{server.base_url}/api/chat/thread/{sent['id']}", headers=headers)
        assert thread.status_code == 200, thread.text
        assert [m["message"] for m in thread.json()["messages"]] == ["short-lived"]
        deadline = sent_at + 10
        while time.monotonic() < deadline:
            resp = httpx.get(f"{server.base_url}/api/chat/thread/{sent['id']}", headers=headers)
            if resp.status_code == 404:
                break
            time.sleep(0.2)
        assert_api_error(resp, 404)
        assert time.monotonic() - sent_at >= 1.0, "deleted before it was old enough"
        assert client.join(name)["history"]["messages"] == []


# -- user search ---------------------------------------------------------------------------------------
def test_user_search_matches_username_or_nickname(
    make_user: Callable[..., UserClient], bystander: UserClient, base_url: str
) -> None:
    alice, searcher = make_user(), bystander
    tag = secrets.token_hex(3)
    alice.put("/api/me/nickname", json={"nickname": f"Wonder {tag}"}).raise_for_status()
    by_name = searcher.get("/api/chat/users/search", params={"q": alice.username.upper()})
    assert by_name.status_code == 200
    assert by_name.json()["users"] == [{"id": alice.id, "username": alice.username, "nickname": f"Wonder {tag}"}]
    by_nick = searcher.get("/api/chat/users/search", params={"q": f"wONDER {tag}"}).json()["users"]
    assert [u["id"] for u in by_nick] == [alice.id]
    assert set(by_nick[0]) == {"id", "username", "nickname"}  # basic info only
    assert searcher.get("/api/chat/users/search", params={"q": "zz-no-such-" + tag}).json() == {"users": []}
    assert_api_error(searcher.get("/api/chat/users/search"), 400)
    assert_api_error(searcher.get("/api/chat/users/search", params={"q": ""}), 400)
    assert_api_error(httpx.get(base_url + "/api/chat/users/search", params={"q": "a"}), 401)
    many = searcher.get("/api/chat/users/search", params={"q": "u"}).json()["users"]
    assert 0 < len(many) <= 20
