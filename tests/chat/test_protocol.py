"""``/ws/chat`` transport: authentication, Origin check, connection cap, bad frames, presence."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.chat.conftest import Room
from tests.chat.wsclient import ChatClient, connect
from tests.conftest import UserClient
from tests.portal_server import PortalServer


def test_bearer_auth_greets_with_the_caller(portal: PortalServer, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    with connect(portal.base_url, user.token, wait_connected=False) as client:
        hello = client.recv_json()
    assert hello == {
        "type": "connected",
        "user_id": user.id,
        "username": user.username,
        "display_name": user.username,
        "role": "user",
    }


def test_query_token_auth(portal: PortalServer, moderator: UserClient) -> None:
    user = moderator
    with connect(portal.base_url, user.token, query_token=True, wait_connected=False) as client:
        hello = client.recv_json()
        client.ping()
    assert hello["type"] == "connected"
    assert (hello["user_id"], hello["role"]) == (user.id, "moderator")


def test_session_cookie_auth_with_same_origin(portal: PortalServer, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    resp = httpx.post(portal.base_url + "/login", json={"username": user.username, "password": user.password})
    assert resp.status_code == 200, resp.text
    cookie = f"portal_session={resp.cookies['portal_session']}"
    with connect(portal.base_url, cookie=cookie, origin=portal.base_url, wait_connected=False) as client:
        hello = client.recv_json()
        assert (hello["type"], hello["user_id"]) == ("connected", user.id)
        client.ping()


def test_api_key_auth(portal: PortalServer, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    key = user.post("/api/api-keys", json={"name": "chat-bot"}).json()["api_key"]
    with connect(portal.base_url, headers={"X-API-Key": key}, wait_connected=False) as client:
        hello = client.recv_json()
        client.ping()
    assert (hello["type"], hello["user_id"]) == ("connected", user.id)


def _refusal(base_url: str, **kw: object) -> int | None:
    """The close code of a refused upgrade (the connection must not become usable)."""
    try:
        client = connect(base_url, wait_connected=False, **kw)  # type: ignore[arg-type]
    except InvalidStatus as exc:  # refused at the HTTP level: no close code to read
        pytest.fail(f"upgrade refused with HTTP {exc.response.status_code}, expected a close code")
    with client:
        return client.close_code()


def test_foreign_origin_is_refused_with_4403(portal: PortalServer, root: UserClient) -> None:
    assert _refusal(portal.base_url, token=root.token, origin="http://evil.example") == 4403
    port_mismatch = portal.base_url.rsplit(":", 1)[0] + ":1"
    assert _refusal(portal.base_url, token=root.token, origin=port_mismatch) == 4403


def test_missing_or_bad_credentials_are_refused_with_4401(portal: PortalServer) -> None:
    assert _refusal(portal.base_url) == 4401
    assert _refusal(portal.base_url, token="not-a-token") == 4401


def test_at_most_ten_sockets_per_user(portal: PortalServer, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    sockets = [connect(portal.base_url, user.token) for _ in range(10)]
    try:
        eleventh = connect(portal.base_url, user.token, wait_connected=False)
        with eleventh:
            refused = eleventh.recv_json()
            assert refused["type"] == "error"
            assert "10" in refused["message"], refused
            assert eleventh.close_code() == 4429
        for client in sockets:  # the others are unaffected
            client.ping()
        sockets.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the freed slot becomes usable once the server has seen the close
            retry = connect(portal.base_url, user.token, wait_connected=False)
            first = retry.recv_json()
            if first["type"] == "connected" or time.monotonic() > deadline:
                break
            retry.close()
            time.sleep(0.1)
        sockets.append(retry)
        assert first["type"] == "connected", first
    finally:
        for client in sockets:
            client.close()


BAD_FRAMES: list[tuple[str, str, str | None]] = [
    ("not json at all", "Invalid JSON", None),
    ("[1, 2, 3]", "JSON object", None),
    ('"message"', "JSON object", None),
    (json.dumps({"message": "no type"}), "Unknown message type", None),
    (json.dumps({"type": "fly_to_the_moon"}), "Unknown message type", None),
    (json.dumps({"type": 42}), "Unknown message type", None),
    (json.dumps({"type": "join"}), "channel", "channel"),
    (json.dumps({"type": "join", "channel": 7}), "channel", "channel"),
    (json.dumps({"type": "delete", "message_id": "12"}), "message_id", "message_id"),
    (json.dumps({"type": "react", "message_id": 1}), "emoji", "emoji"),
    (json.dumps({"type": "vote_poll", "poll_id": 1, "option_index": -1}), "option_index", "option_index"),
    (json.dumps({"type": "message", "channel": "general", "message": "hi", "colour": "red"}), "colour", "colour"),
    (json.dumps({"type": "message", "channel": "general", "message": "x" * 100_000}), "too large", None),
]


def test_bad_frames_get_an_error_and_the_connection_stays_usable(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., dict[str, object]]
) -> None:
    user = make_user()
    name = str(channel()["name"])
    client = ws(user)
    for raw, expected, field in BAD_FRAMES:
        client.send_raw(raw)
        error = client.recv_json()
        assert error["type"] == "error", (raw[:80], error)
        assert expected.lower() in error["message"].lower(), (raw[:80], error)
        if field is not None:
            assert error.get("field") == field, (raw[:80], error)
        client.ping()
    client.send_raw(b"\x00\x01binary")
    assert "binary" in client.recv_until("error")["message"].lower()
    # after all that, the connection still does real work
    client.join(name)
    echoed = client.say(name, "still here")
    assert (echoed["user_id"], echoed["channel"]) == (user.id, name)


def test_actions_before_joining_or_on_missing_things_are_errors(
    ws: Callable[..., ChatClient], bystander: UserClient, channel: Callable[..., dict[str, object]]
) -> None:
    client = ws(bystander)
    name = str(channel()["name"])
    client.send_json({"type": "message", "channel": name, "message": "hi"})
    assert client.recv_error()["message"] == "Join the channel first"
    client.send_json({"type": "typing", "channel": name})
    assert client.recv_error()["message"] == "Join the channel first"
    client.send_json({"type": "join", "channel": "no-such-channel"})
    missing = client.recv_error()
    assert (missing["message"], missing["status"], missing["request_type"]) == ("Channel not found", 404, "join")
    client.send_json({"type": "delete", "message_id": 999_999_999})
    assert client.recv_error()["message"] == "Message not found"
    client.send_json({"type": "vote_poll", "poll_id": 999_999_999, "option_index": 0})
    assert client.recv_error()["message"] == "Poll not found"
    client.ping()


def test_join_answers_with_info_history_pins_and_users(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., dict[str, object]]
) -> None:
    created = channel(description="about things", topic="today: tests")
    user = make_user()
    user.put("/api/me/nickname", json={"nickname": "Nick " + user.username[-4:]}).raise_for_status()
    user.put("/api/me/avatar", json={"color": "#3b82f6", "emoji": "🚀"}).raise_for_status()
    fresh = connect_fresh(ws, user)
    frames = fresh.join(str(created["name"]))
    info = frames["channel_info"]
    assert info["type"] == "channel_info"
    assert (info["id"], info["name"], info["description"], info["topic"]) == (
        created["id"],
        created["name"],
        "about things",
        "today: tests",
    )
    assert (info["visibility"], info["mode"], info["can_send"], info["can_moderate"]) == ("public", "open", True, False)
    assert frames["history"]["messages"] == []
    assert frames["history"]["channel"] == created["name"]
    assert frames["pinned_messages"]["messages"] == []
    users = frames["users"]["users"]
    assert users == [
        {
            "user_id": user.id,
            "username": user.username,
            "nickname": "Nick " + user.username[-4:],
            "role": "user",
            "anonymous": False,
            "avatar": {"color": "#3b82f6", "emoji": "🚀", "initials": None},
        }
    ]


def connect_fresh(ws: Callable[..., ChatClient], user: UserClient) -> ChatClient:
    """A socket opened after the user's profile changes (new credentials are resolved)."""
    return ws(user)


def test_user_joined_and_user_left(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., dict[str, object]],
    moderator: UserClient,
) -> None:
    name = str(channel()["name"])
    alice, bob = make_user(), moderator
    a = ws(alice)
    a.join(name)
    b = ws(bob)
    frames = b.join(name)
    assert sorted(u["user_id"] for u in frames["users"]["users"]) == sorted([alice.id, bob.id])
    joined = a.recv_until("user_joined", username=bob.username)
    assert joined == {
        "type": "user_joined",
        "channel": name,
        "channel_id": frames["channel_info"]["id"],
        "user_id": bob.id,
        "username": bob.username,
        "role": "moderator",
        "anonymous": False,
    }
    # a second socket of the same user is not a second arrival
    b2 = ws(bob)
    b2.join(name)
    a.assert_no_frame("user_joined", username=bob.username)
    b2.close()
    a.assert_no_frame("user_left", username=bob.username)
    b.send_json({"type": "leave", "channel": name})
    assert b.recv_until("left")["channel"] == name
    left = a.recv_until("user_left", username=bob.username)
    assert (left["user_id"], left["channel"], left["anonymous"]) == (bob.id, name, False)
    b.join(name)
    a.recv_until("user_joined", username=bob.username)
    b.close()  # disconnecting leaves every joined channel
    assert a.recv_until("user_left", username=bob.username)["channel_id"] == frames["channel_info"]["id"]


def test_typing_reaches_others_at_most_every_two_seconds(room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    started = time.monotonic()
    b.send_json({"type": "typing", "channel": name})
    typing = a.recv_until("typing")
    assert typing == {
        "type": "typing",
        "channel": name,
        "channel_id": typing["channel_id"],
        "user_id": bob.id,
        "username": bob.username,
        "role": "user",
        "anonymous": False,
        "display_name": bob.username,
    }
    b.send_json({"type": "typing", "channel": name})
    b.send_json({"type": "typing", "channel": name})
    a.assert_no_frame("typing", within=max(0.1, 1.5 - (time.monotonic() - started)))
    time.sleep(max(0.0, 2.1 - (time.monotonic() - started)))
    b.send_json({"type": "typing", "channel": name})
    assert a.recv_until("typing")["user_id"] == bob.id


def test_stats_public_counts_users_connected_to_chat(
    portal: PortalServer, root: UserClient, make_user: Callable[..., UserClient]
) -> None:
    user_a, user_b = make_user(), make_user()

    def online() -> int:
        resp = user_a.get("/api/stats/public")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"live_streams", "online_users"}
        assert body["live_streams"] == 0
        return int(body["online_users"])

    def wait_for(predicate: Callable[[int], bool]) -> int:
        deadline = time.monotonic() + 5
        while not predicate(value := online()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return value

    base = online()
    for _ in range(20):  # sockets of earlier tests may still be closing: start from a settled count
        time.sleep(0.15)
        if (now := online()) == base:
            break
        base = now
    a1 = connect(portal.base_url, user_a.token)
    a2 = connect(portal.base_url, user_a.token)  # a second socket is the same user
    b = connect(portal.base_url, user_b.token)
    try:
        assert wait_for(lambda n: n >= base + 2) == base + 2
        a1.close()
        time.sleep(0.3)
        assert online() == base + 2  # user_a is still connected through a2
    finally:
        for client in (a1, a2, b):
            client.close()
    assert wait_for(lambda n: n <= base) == base
    assert httpx.get(portal.base_url + "/api/stats/public").status_code == 401


def test_connection_closed_by_client_mid_flight_does_not_break_the_channel(
    room: Room, make_user: Callable[..., UserClient]
) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    b.send_json({"type": "message", "channel": name, "message": "bye"})
    b.close()
    assert a.recv_until("message", message="bye")["user_id"] == bob.id
    assert a.say(name, "still fine")["user_id"] == alice.id


def test_revoked_token_ends_an_open_connection(portal: PortalServer, make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    client = connect(portal.base_url, user.token)
    with client:
        client.ping()
        token_id = user.get("/api/tokens").json()["tokens"][0]["token_id"]
        assert user.post("/api/token/revoke", json={"token_id": token_id}).json() == {"success": True}
        client.send_json({"type": "ping"})
        assert client.close_code() == 4401


def test_role_changes_apply_to_an_open_connection(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., dict[str, object]],
    root: UserClient,
) -> None:
    name = str(channel()["name"])
    user = make_user()
    client = ws(user)
    client.join(name)
    mid = client.say(name, "pin me later")["id"]
    client.send_json({"type": "pin_message", "message_id": mid})
    assert client.recv_error()["status"] == 403
    assert root.put(f"/api/users/{user.id}/role", json={"role": "moderator"}).status_code == 200
    client.send_json({"type": "pin_message", "message_id": mid})
    assert client.recv_until("message_pinned")["pinned_by"] == user.id
    assert root.put(f"/api/users/{user.id}/role", json={"role": "user"}).status_code == 200
    client.send_json({"type": "unpin_message", "message_id": mid})
    assert client.recv_error()["message"] == "Only moderators can unpin messages"
