"""Messages over ``/ws/chat``: sending, display names, anonymity, replies, edits, deletion,
reactions, pins, history, threads and the per-user message rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.chat.conftest import JoinAll, Room, assert_api_error
from tests.chat.wsclient import ChatClient
from tests.conftest import UserClient
from tests.timing import fresh_window

Channel = dict[str, Any]
SLOW_DOWN = "Slow down! You're sending messages too fast."


def _iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def test_message_frame_carries_author_profile(room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    alice.put("/api/me/nickname", json={"nickname": "Ali " + alice.username[-3:]}).raise_for_status()
    alice.put("/api/me/avatar", json={"color": "#3b82f6", "emoji": "🚀"}).raise_for_status()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    a.send_json({"type": "message", "channel": name, "message": "Hello!"})
    received = b.recv_until("message")
    echoed = a.recv_until("message")
    assert echoed == received
    assert isinstance(received["id"], int)
    _iso(received["created_at"])
    assert received == {
        "type": "message",
        "id": received["id"],
        "channel": name,
        "channel_id": created["id"],
        "user_id": alice.id,
        "username": alice.username,
        "nickname": "Ali " + alice.username[-3:],
        "role": "user",
        "anonymous": False,
        "avatar": {"color": "#3b82f6", "emoji": "🚀", "initials": None},
        "message": "Hello!",
        "kind": "text",
        "image_url": None,
        "reply_to": None,
        "created_at": received["created_at"],
        "edited_at": None,
        "reactions": {},
        "pinned": False,
    }
    # without a nickname the username is all there is
    plain = b.say(name, "hi")
    assert (plain["username"], plain["nickname"], plain["avatar"]) == (bob.username, None, None)


def test_message_length_and_emptiness(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    name = channel()["name"]
    client = ws(make_user())
    client.join(name)
    longest = "a" * 4000
    assert client.say(name, longest)["message"] == longest
    client.send_json({"type": "message", "channel": name, "message": "b" * 4001})
    too_long = client.recv_error()
    assert too_long["field"] == "message" and "4000" in too_long["message"]
    client.send_json({"type": "message", "channel": name, "message": "   "})
    empty = client.recv_error()
    assert (empty["message"], empty["status"], empty.get("field")) == (
        "A message needs text or an image",
        400,
        "message",
    )
    client.assert_no_frame("message", where=lambda f: f["message"].startswith("b"))


def test_anonymous_mode_is_stored_per_message(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    name = channel()["name"]
    ghost, watcher = make_user(), make_user()
    ghost.put("/api/me/nickname", json={"nickname": "Ghosty " + ghost.username[-3:]}).raise_for_status()
    ghost.put("/api/me/avatar", json={"color": "#000000"}).raise_for_status()
    resp = ghost.put("/api/me/anonymous", json={"anonymous": True})
    assert resp.status_code == 200 and resp.json()["anonymous"] is True
    g, w = ws(ghost), ws(watcher)
    assert g.join(name)["users"]["users"][0]["anonymous"] is True
    w.join(name)
    g.send_json({"type": "message", "channel": name, "message": "who am I?"})
    seen = w.recv_until("message", message="who am I?")
    assert (seen["username"], seen["user_id"], seen["nickname"], seen["avatar"], seen["anonymous"]) == (
        "Anonymous",
        None,
        None,
        None,
        True,
    )
    own = g.recv_until("message", message="who am I?")
    assert (own["user_id"], own["anonymous"], own["username"]) == (ghost.id, True, "Anonymous")
    assert ghost.username not in str(seen)

    ghost.put("/api/me/anonymous", json={"anonymous": False}).raise_for_status()
    g2 = ws(ghost)
    g2.join(name)
    named = g2.say(name, "it was me")
    assert (named["anonymous"], named["user_id"], named["nickname"]) == (
        False,
        ghost.id,
        "Ghosty " + ghost.username[-3:],
    )
    history = {m["message"]: m for m in ws(watcher).join(name)["history"]["messages"]}
    assert (history["who am I?"]["anonymous"], history["who am I?"]["user_id"]) == (True, None)
    assert history["who am I?"]["username"] == "Anonymous"
    assert history["it was me"]["username"] == ghost.username
    own_history = {m["message"]: m for m in ws(ghost).join(name)["history"]["messages"]}
    assert (own_history["who am I?"]["anonymous"], own_history["who am I?"]["user_id"]) == (True, ghost.id)


def test_anonymous_mode_applies_to_an_open_connection(room: Room, make_user: Callable[..., UserClient]) -> None:
    ghost, watcher = make_user(), make_user()
    created, (g, w) = room(ghost, watcher)
    name = created["name"]
    ghost.put("/api/me/anonymous", json={"anonymous": True}).raise_for_status()
    g.send_json({"type": "message", "channel": name, "message": "switched on while connected"})
    seen = w.recv_until("message", message="switched on while connected")
    assert (seen["anonymous"], seen["user_id"], seen["username"]) == (True, None, "Anonymous")
    g.send_json({"type": "typing", "channel": name})
    typing = w.recv_until("typing")
    assert (typing["user_id"], typing["username"], typing["display_name"]) == (None, "Anonymous", "Anonymous")
    ghost.put("/api/me/anonymous", json={"anonymous": False}).raise_for_status()
    g.send_json({"type": "message", "channel": name, "message": "and off again"})
    assert w.recv_until("message", message="and off again")["user_id"] == ghost.id


def test_reply_carries_a_preview_truncated_to_100_chars(room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    long_text = "L" * 60 + " " + "x" * 100
    parent = a.say(name, long_text)
    short = a.say(name, "Hello!")
    b.send_json({"type": "message", "channel": name, "message": "Nice!", "reply_to": parent["id"]})
    reply = a.recv_until("message", message="Nice!")
    assert reply["reply_to"] == parent["id"]
    preview = reply["reply_preview"]
    assert (preview["id"], preview["username"]) == (parent["id"], alice.username)
    assert len(preview["message"]) <= 100
    assert preview["message"] != long_text
    assert long_text.startswith(preview["message"].rstrip("…")) and len(preview["message"].rstrip("…")) >= 90
    b.send_json({"type": "message", "channel": name, "message": "short one", "reply_to": short["id"]})
    short_reply = a.recv_until("message", message="short one")
    assert short_reply["reply_preview"] == {"id": short["id"], "username": alice.username, "message": "Hello!"}
    history = {m["message"]: m for m in b.join(name)["history"]["messages"]}
    assert history["Nice!"]["reply_preview"] == preview
    assert "reply_preview" not in history["Hello!"]


def test_reply_to_must_be_in_the_same_channel(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    first, second = channel()["name"], channel()["name"]
    client = ws(make_user())
    client.join(first)
    client.join(second)
    elsewhere = client.say(first, "in the first channel")
    client.send_json({"type": "message", "channel": second, "message": "cross", "reply_to": elsewhere["id"]})
    error = client.recv_error()
    assert (error["message"], error["status"], error.get("field")) == (
        "reply_to must be a message in the same channel",
        400,
        "reply_to",
    )
    client.send_json({"type": "message", "channel": second, "message": "ghost", "reply_to": 999_999_999})
    assert client.recv_error()["field"] == "reply_to"
    client.assert_no_frame("message", message="cross")


def test_delete_permissions(
    join_all: JoinAll,
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    moderator: UserClient,
) -> None:
    created = channel()
    cid, name = created["id"], created["name"]
    author, other, chan_mod, global_mod = make_user(), make_user(), make_user(), moderator
    root.post(
        f"/api/chat/channels/{cid}/members", json={"user_id": chan_mod.id, "role": "moderator"}
    ).raise_for_status()
    a, o, cm, gm = join_all(name, author, other, chan_mod, global_mod)
    ids = [a.say(name, f"msg {i}")["id"] for i in range(3)]
    # a user cannot delete someone else's message
    o.send_json({"type": "delete", "message_id": ids[0]})
    refused = o.recv_error()
    assert (refused["message"], refused["status"], refused["request_type"]) == (
        "You can only delete your own messages",
        403,
        "delete",
    )
    a.assert_no_frame("message_deleted", within=0.3)
    # the author deletes their own
    a.send_json({"type": "delete", "message_id": ids[0]})
    deleted = o.recv_until("message_deleted")
    assert deleted == {"type": "message_deleted", "message_id": ids[0], "channel_id": cid, "deleted_by": author.id}
    # a channel moderator and a global moderator delete anyone's
    cm.send_json({"type": "delete", "message_id": ids[1]})
    assert a.recv_until("message_deleted", message_id=ids[1])["deleted_by"] == chan_mod.id
    gm.send_json({"type": "delete", "message_id": ids[2]})
    assert a.recv_until("message_deleted", message_id=ids[2])["deleted_by"] == global_mod.id
    assert [m["id"] for m in o.join(name)["history"]["messages"] if m["id"] in ids] == []
    a.send_json({"type": "delete", "message_id": ids[0]})
    assert a.recv_error()["message"] == "Message not found"
    # moderators' deletions are audited
    entries = global_mod.get("/api/admin/audit-log", params={"action": "message_deleted"}).json()["entries"]
    by_target = {e["target_id"]: e for e in entries}
    assert by_target[str(ids[1])]["actor_id"] == chan_mod.id
    assert by_target[str(ids[2])]["actor_id"] == global_mod.id
    assert by_target[str(ids[2])]["details"]["author_id"] == author.id
    assert str(ids[0]) not in by_target  # deleting one's own message is not moderation


def test_reactions_toggle(ws: Callable[..., ChatClient], room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    mid = a.say(name, "react to me")["id"]
    b.send_json({"type": "react", "message_id": mid, "emoji": "👍"})
    added = a.recv_until("reaction_update")
    assert added == {
        "type": "reaction_update",
        "message_id": mid,
        "channel_id": created["id"],
        "emoji": "👍",
        "user_id": bob.id,
        "username": bob.username,
        "action": "add",
    }
    a.send_json({"type": "react", "message_id": mid, "emoji": "👍"})
    assert b.recv_until("reaction_update", user_id=alice.id)["action"] == "add"
    history = {m["id"]: m for m in ws(alice).join(name)["history"]["messages"]}
    assert history[mid]["reactions"] == {"👍": {"count": 2, "users": [bob.username, alice.username]}}
    b.send_json({"type": "react", "message_id": mid, "emoji": "👍"})
    removed = a.recv_until("reaction_update", user_id=bob.id)
    assert (removed["action"], removed["emoji"]) == ("remove", "👍")
    history = {m["id"]: m for m in ws(bob).join(name)["history"]["messages"]}
    assert history[mid]["reactions"] == {"👍": {"count": 1, "users": [alice.username]}}
    for bad in ("abc", "", "👍 👍", "x" * 40):
        b.send_json({"type": "react", "message_id": mid, "emoji": bad})
        assert b.recv_error()["field"] == "emoji", bad


def test_edit_own_message_only(room: Room, make_user: Callable[..., UserClient], moderator: UserClient) -> None:
    alice, bob, mod = make_user(), make_user(), moderator
    created, (a, b, m) = room(alice, bob, mod)
    name = created["name"]
    mid = a.say(name, "typo hree")["id"]
    a.send_json({"type": "edit_message", "message_id": mid, "message": "typo here"})
    edited = b.recv_until("message_edited")
    assert edited == {
        "type": "message_edited",
        "message_id": mid,
        "channel_id": created["id"],
        "new_text": "typo here",
        "edited_at": edited["edited_at"],
    }
    _iso(edited["edited_at"])
    for intruder in (b, m):  # not even a moderator edits someone else's words
        intruder.send_json({"type": "edit_message", "message_id": mid, "message": "hijacked"})
        refused = intruder.recv_error()
        assert (refused["message"], refused["status"]) == ("You can only edit your own messages", 403)
    a.assert_no_frame("message_edited", new_text="hijacked", within=0.3)
    a.send_json({"type": "edit_message", "message_id": mid, "message": ""})
    assert a.recv_error()["field"] == "message"
    history = {m["id"]: m for m in b.join(name)["history"]["messages"]}
    assert history[mid]["message"] == "typo here"
    assert history[mid]["edited_at"] == edited["edited_at"]


@pytest.mark.skip(reason="the 5-minute edit window cannot be waited out in a fast suite")
def test_edit_after_five_minutes_is_refused() -> None:
    raise AssertionError("not run")


def test_pin_and_unpin_are_for_moderators(
    ws: Callable[..., ChatClient],
    join_all: JoinAll,
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    moderator: UserClient,
) -> None:
    created = channel()
    cid, name = created["id"], created["name"]
    user, mod, chan_mod = make_user(), moderator, make_user()
    root.post(
        f"/api/chat/channels/{cid}/members", json={"user_id": chan_mod.id, "role": "moderator"}
    ).raise_for_status()
    u, m, cm = join_all(name, user, mod, chan_mod)
    mid = u.say(name, "Important info")["id"]
    other = u.say(name, "Also important")["id"]
    u.send_json({"type": "pin_message", "message_id": mid})
    refused = u.recv_error()
    assert (refused["message"], refused["status"]) == ("Only moderators can pin messages", 403)
    m.send_json({"type": "pin_message", "message_id": mid})
    pinned = u.recv_until("message_pinned")
    assert pinned == {
        "type": "message_pinned",
        "message_id": mid,
        "channel_id": cid,
        "pinned_by": mod.id,
        "pinned_by_username": mod.username,
        "pinned_at": pinned["pinned_at"],
    }
    _iso(pinned["pinned_at"])
    m.send_json({"type": "pin_message", "message_id": mid})
    assert m.recv_error()["message"] == "Message is already pinned"
    cm.send_json({"type": "pin_message", "message_id": other})
    assert u.recv_until("message_pinned", message_id=other)["pinned_by"] == chan_mod.id
    frames = ws(user).join(name)
    pins = frames["pinned_messages"]["messages"]
    assert [p["id"] for p in pins] == [mid, other]
    assert pins[0] == {
        "id": mid,
        "username": user.username,
        "message": "Important info",
        "pinned_by": mod.id,
        "pinned_by_username": mod.username,
        "pinned_at": pinned["pinned_at"],
    }
    assert {m_["id"]: m_["pinned"] for m_ in frames["history"]["messages"]} == {mid: True, other: True}
    u.send_json({"type": "unpin_message", "message_id": mid})
    assert u.recv_error()["message"] == "Only moderators can unpin messages"
    m.send_json({"type": "unpin_message", "message_id": mid})
    assert u.recv_until("message_unpinned") == {"type": "message_unpinned", "message_id": mid, "channel_id": cid}
    m.send_json({"type": "unpin_message", "message_id": mid})
    assert m.recv_error()["message"] == "Message is not pinned"
    assert [p["id"] for p in ws(user).join(name)["pinned_messages"]["messages"]] == [other]


def test_history_paging(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    name = channel()["name"]
    writers = [ws(make_user()) for _ in range(2)]
    ids = []
    for i in range(8):
        client = writers[i % 2]
        if i < 2:
            client.join(name)
        ids.append(client.say(name, f"n{i}")["id"])
    reader = writers[0]
    reader.send_json({"type": "history", "channel": name, "limit": 3})
    page = reader.recv_until("history")
    assert [m["id"] for m in page["messages"]] == ids[-3:]
    assert page["has_more"] is True
    reader.send_json({"type": "history", "channel": name, "before_id": ids[-3], "limit": 3})
    assert [m["id"] for m in reader.recv_until("history")["messages"]] == ids[-6:-3]
    reader.send_json({"type": "history", "channel": name, "before_id": ids[2], "limit": 50})
    last = reader.recv_until("history")
    assert [m["id"] for m in last["messages"]] == ids[:2] and last["has_more"] is False
    reader.send_json({"type": "history", "channel": name, "limit": 500})
    assert reader.recv_error()["field"] == "limit"


def test_thread_returns_the_reply_chain_oldest_first(room: Room, make_user: Callable[..., UserClient]) -> None:
    users = [make_user() for _ in range(5)]
    created, clients = room(*users)
    name = created["name"]
    unrelated = clients[4].say(name, "unrelated")["id"]  # nobody sends more than 5 (the rate limit)
    chain: list[int] = []
    for i in range(22):
        extra = {"reply_to": chain[-1]} if chain else {}
        chain.append(clients[i % 5].say(name, f"link {i}", **extra)["id"])
    reader = users[0]
    resp = reader.get(f"/api/chat/thread/{chain[2]}")
    assert resp.status_code == 200, resp.text
    thread = resp.json()["messages"]
    assert [m["id"] for m in thread] == chain[:3]
    assert [m["message"] for m in thread] == ["link 0", "link 1", "link 2"]
    assert thread[0]["reply_to"] is None and thread[1]["reply_to"] == chain[0]
    assert thread[2]["username"] == users[2].username and "created_at" in thread[2]
    deep = reader.get(f"/api/chat/thread/{chain[-1]}").json()["messages"]
    assert len(deep) == 20
    assert [m["id"] for m in deep] == chain[-20:]
    single = reader.get(f"/api/chat/thread/{unrelated}").json()["messages"]
    assert [m["id"] for m in single] == [unrelated]
    assert_api_error(reader.get("/api/chat/thread/999999999"), 404)


def test_message_rate_limit_is_five_per_five_seconds(
    room: Room, make_user: Callable[..., UserClient], bystander: UserClient
) -> None:
    spammer, watcher = make_user(), bystander
    created, (s, w) = room(spammer, watcher)
    name = created["name"]
    fresh_window(5, 4)
    started = time.monotonic()
    for i in range(5):
        s.send_json({"type": "message", "channel": name, "message": f"burst {i}"})
    s.send_json({"type": "message", "channel": name, "message": "one too many"})
    error = s.recv_error()
    assert (error["message"], error["request_type"], error["status"]) == (SLOW_DOWN, "message", 429)
    assert 0 < error["retry_after"] <= 5
    for i in range(5):
        assert w.recv_until("message", message=f"burst {i}")["user_id"] == spammer.id
    w.assert_no_frame("message", message="one too many")
    s.send_json({"type": "create_poll", "channel": name, "question": "spam?", "options": ["a", "b"]})
    assert s.recv_error()["message"] == SLOW_DOWN  # polls count as messages
    history = [m["message"] for m in w.join(name)["history"]["messages"]]
    assert history == [f"burst {i}" for i in range(5)]
    # other users are not slowed down by the spammer
    assert w.say(name, "I can still talk")["user_id"] == watcher.id
    assert time.monotonic() - started < 5, "the burst must fit in one window for this test to mean anything"
    time.sleep(max(0.0, 5.2 - (time.monotonic() - started)))
    assert s.say(name, "after the window")["user_id"] == spammer.id


def test_anonymous_author_is_not_revealed_by_deletions_or_polls(
    room: Room, make_user: Callable[..., UserClient], bystander: UserClient
) -> None:
    ghost = make_user()
    ghost.put("/api/me/anonymous", json={"anonymous": True}).raise_for_status()
    created, (g, w) = room(ghost, bystander)
    name = created["name"]
    secret = g.say(name, "anonymous and then gone")
    g.send_json({"type": "delete", "message_id": secret["id"]})
    deleted = w.recv_until("message_deleted", message_id=secret["id"])
    assert deleted["deleted_by"] != ghost.id, deleted
    g.send_json({"type": "create_poll", "channel": name, "question": "Who asks?", "options": ["me", "you"]})
    created = w.recv_until("poll_created")
    assert created["message"]["user_id"] is None and created["message"]["anonymous"] is True
    assert created["poll"]["creator_id"] != ghost.id, created["poll"]
    own = g.recv_until("poll_created")
    history = w.join(name)["history"]["messages"]
    poll = next(m["poll"] for m in history if m["kind"] == "poll")
    assert (poll["id"], poll["creator_id"]) == (own["poll"]["id"], None)
    # the author still owns the poll
    g.send_json({"type": "close_poll", "poll_id": own["poll"]["id"]})
    assert w.recv_until("poll_closed")["poll_id"] == own["poll"]["id"]
