"""Blocking over REST and ``/ws/chat``: the blocker never receives the blocked user's messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tests.chat.conftest import Room, assert_api_error
from tests.chat.wsclient import ChatClient
from tests.conftest import UserClient


def test_block_list_over_rest(make_user: Callable[..., UserClient]) -> None:
    me, bob, carol = make_user(), make_user(), make_user()
    assert me.get("/api/blocks").json() == {"blocked_users": []}
    for target in (bob, carol):
        resp = me.post(f"/api/blocks/{target.id}")
        assert resp.status_code == 200 and resp.json() == {"success": True}
    assert me.post(f"/api/blocks/{bob.id}").json() == {"success": True}  # idempotent
    listed = me.get("/api/blocks").json()["blocked_users"]
    assert [(b["id"], b["username"]) for b in listed] == [(bob.id, bob.username), (carol.id, carol.username)]
    assert all(datetime.fromisoformat(b["blocked_at"]) for b in listed)
    assert bob.get("/api/blocks").json() == {"blocked_users": []}  # scoped to the caller
    assert_api_error(me.post(f"/api/blocks/{me.id}"), 400, "yourself")
    assert_api_error(me.post("/api/blocks/999999999"), 404)
    assert me.delete(f"/api/blocks/{bob.id}").json() == {"success": True}
    assert [b["id"] for b in me.get("/api/blocks").json()["blocked_users"]] == [carol.id]


def test_blocked_users_messages_never_reach_the_blocker(
    ws: Callable[..., ChatClient], room: Room, make_user: Callable[..., UserClient]
) -> None:
    me, pest, friend = make_user(), make_user(), make_user()
    created, (m, p, f) = room(me, pest, friend)
    name = created["name"]
    before = p.say(name, "before the block")
    m.recv_until("message", message="before the block")
    assert me.post(f"/api/blocks/{pest.id}").json() == {"success": True}
    m.ping()  # the block list change has reached my socket
    p.say(name, "you can't hear me")
    assert f.recv_until("message", message="you can't hear me")["user_id"] == pest.id
    m.assert_no_frame("message", message="you can't hear me")
    f.say(name, "friend talks")
    assert m.recv_until("message", message="friend talks")["user_id"] == friend.id
    # neither their reactions, typing, nor polls get through
    mine = m.say(name, "mine")
    p.send_json({"type": "react", "message_id": mine["id"], "emoji": "👎"})
    assert f.recv_until("reaction_update")["user_id"] == pest.id
    m.assert_no_frame("reaction_update")
    p.send_json({"type": "typing", "channel": name})
    f.recv_until("typing", user_id=pest.id)
    m.assert_no_frame("typing")
    p.send_json({"type": "create_poll", "channel": name, "question": "Am I blocked?", "options": ["y", "n"]})
    f.recv_until("poll_created")
    m.assert_no_frame("poll_created")
    # the pest still hears me: blocking only filters what the blocker receives
    assert p.recv_until("message", message="mine")["user_id"] == me.id
    # history is filtered on the server too, for fresh sockets
    history = [msg["message"] for msg in ws(me).join(name)["history"]["messages"]]
    assert "you can't hear me" not in history and "before the block" not in history and "Am I blocked?" not in history
    assert "friend talks" in history and "mine" in history
    assert before["id"] not in [msg["id"] for msg in ws(me).join(name)["history"]["messages"]]
    # unblocking restores delivery and history
    assert me.delete(f"/api/blocks/{pest.id}").json() == {"success": True}
    m.ping()
    p.say(name, "back again")
    assert m.recv_until("message", message="back again")["user_id"] == pest.id
    assert "you can't hear me" in [msg["message"] for msg in ws(me).join(name)["history"]["messages"]]


def test_block_and_unblock_over_the_websocket(room: Room, make_user: Callable[..., UserClient]) -> None:
    me, pest = make_user(), make_user()
    created, (m, m2, p) = room(me, me, pest)
    name = created["name"]
    m.send_json({"type": "block_user", "user_id": pest.id})
    assert m.recv_until("user_blocked") == {"type": "user_blocked", "user_id": pest.id, "username": pest.username}
    assert [b["id"] for b in me.get("/api/blocks").json()["blocked_users"]] == [pest.id]
    m2.ping()
    p.say(name, "hidden from both of your sockets")
    m.assert_no_frame("message")
    m2.assert_no_frame("message", within=0.1)
    m.send_json({"type": "block_user", "user_id": me.id})
    assert m.recv_error()["message"] == "You cannot block yourself"
    m.send_json({"type": "block_user", "user_id": 999_999_999})
    assert m.recv_error()["status"] == 404
    m.send_json({"type": "unblock_user", "user_id": pest.id})
    assert m.recv_until("user_unblocked") == {"type": "user_unblocked", "user_id": pest.id, "username": pest.username}
    m2.ping()
    p.say(name, "visible again")
    assert m.recv_until("message", message="visible again")["user_id"] == pest.id
    assert m2.recv_until("message", message="visible again")["user_id"] == pest.id
    assert me.get("/api/blocks").json() == {"blocked_users": []}


def test_unread_counts_leave_out_blocked_authors(room: Room, make_user: Callable[..., UserClient]) -> None:
    me, pest, friend = make_user(), make_user(), make_user()
    created, (p, f) = room(pest, friend)
    name = created["name"]
    assert me.post(f"/api/blocks/{pest.id}").json() == {"success": True}
    p.say(name, "noise")
    p.say(name, "more noise")
    f.say(name, "signal")

    def unread() -> int:
        return next(c["unread_count"] for c in me.get("/api/chat/channels").json()["channels"] if c["name"] == name)

    assert unread() == 1
    assert me.delete(f"/api/blocks/{pest.id}").json() == {"success": True}
    assert unread() == 3


def test_reply_previews_of_blocked_users_are_masked(
    ws: Callable[..., ChatClient], room: Room, make_user: Callable[..., UserClient]
) -> None:
    me, pest, friend = make_user(), make_user(), make_user()
    created, (m, p, f) = room(me, pest, friend)
    name = created["name"]
    quoted = p.say(name, "something rude")
    assert me.post(f"/api/blocks/{pest.id}").json() == {"success": True}
    m.ping()
    reply = f.say(name, "replying to the pest", reply_to=quoted["id"])
    assert reply["reply_preview"]["message"] == "something rude"  # the friend sees the quote
    live = m.recv_until("message", message="replying to the pest")
    assert live["reply_preview"] == {"id": quoted["id"], "username": "Blocked user", "message": "", "blocked": True}
    assert p.recv_until("message", message="replying to the pest")["reply_preview"]["message"] == "something rude"
    history = {msg["id"]: msg for msg in ws(me).join(name)["history"]["messages"]}
    assert history[reply["id"]]["reply_preview"]["blocked"] is True
    assert "something rude" not in str(history)
    thread = me.get(f"/api/chat/thread/{reply['id']}").json()["messages"]
    assert [t["id"] for t in thread] == [reply["id"]] and "something rude" not in str(thread)
    assert [t["id"] for t in friend.get(f"/api/chat/thread/{reply['id']}").json()["messages"]] == [
        quoted["id"],
        reply["id"],
    ]
