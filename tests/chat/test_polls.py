"""Polls over ``/ws/chat``: creation limits, single and multiple votes, anonymous votes,
closing (creator or moderator+), history, and expiry by the background job."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.chat.conftest import EXPIRY_TEST, ExpiringPolls, Room
from tests.chat.wsclient import ChatClient, connect
from tests.conftest import UserClient

Channel = dict[str, Any]


def _poll_frame(
    name: str, question: str = "Favorite language?", options: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "create_poll",
        "channel": name,
        "question": question,
        "options": options if options is not None else ["Python", "JavaScript", "Rust"],
        **extra,
    }


def test_create_poll_broadcasts_message_and_poll(room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    a.send_json(_poll_frame(name, allow_multiple=False, anonymous_votes=False, duration=60))
    event = b.recv_until("poll_created")
    assert a.recv_until("poll_created") == event
    message, poll = event["message"], event["poll"]
    assert (message["type"], message["kind"], message["message"]) == ("message", "poll", "Favorite language?")
    assert (message["user_id"], message["username"], message["channel"]) == (alice.id, alice.username, name)
    closes_at = datetime.fromisoformat(poll["closes_at"])
    assert abs(closes_at - (datetime.now(UTC) + timedelta(minutes=60))) < timedelta(seconds=30)
    assert poll == {
        "id": poll["id"],
        "message_id": message["id"],
        "channel_id": created["id"],
        "creator_id": alice.id,
        "question": "Favorite language?",
        "options": ["Python", "JavaScript", "Rust"],
        "allow_multiple": False,
        "anonymous_votes": False,
        "closes_at": poll["closes_at"],
        "closed": False,
        "votes": {},
        "total_votes": 0,
        "total_voters": 0,
        "voters": {},
    }
    a.send_json(_poll_frame(name, question="No deadline?", options=["a", "b"]))
    assert a.recv_until("poll_created")["poll"]["closes_at"] is None


@pytest.mark.parametrize(
    ("overrides", "field", "contains"),
    [
        ({"options": ["only one"]}, "options", "2"),
        ({"options": [f"o{i}" for i in range(11)]}, "options", "10"),
        ({"options": []}, "options", None),
        ({"question": "q" * 501}, "question", "500"),
        ({"question": ""}, "question", None),
        ({"options": ["fine", "o" * 201]}, "options", "200"),
        ({"options": ["same", "Same"]}, "options", "different"),
        ({"options": ["ok", "   "]}, "options", "blank"),
        ({"duration": 0}, "duration", None),
        ({"duration": "60"}, "duration", None),
        ({"allow_multiple": "yes"}, "allow_multiple", None),
    ],
)
def test_poll_limits(
    ws: Callable[..., ChatClient],
    bystander: UserClient,
    channel: Callable[..., Channel],
    overrides: dict[str, Any],
    field: str,
    contains: str | None,
) -> None:
    name = channel()["name"]
    client = ws(bystander)
    client.join(name)
    client.send_json(_poll_frame(name, **overrides))
    error = client.recv_error()
    assert field in (error.get("field") or "") or field in error["message"], error
    if contains is not None:
        assert contains in error["message"], error
    client.assert_no_frame("poll_created", within=0.2)
    client.ping()


def test_poll_limits_at_the_boundary_are_accepted(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    name = channel()["name"]
    client = ws(make_user())
    client.join(name)
    options = [f"{i}" + "o" * 199 for i in range(10)]
    client.send_json(_poll_frame(name, question="q" * 500, options=options))
    poll = client.recv_until("poll_created")["poll"]
    assert (len(poll["question"]), poll["options"]) == (500, options)


def test_single_choice_vote_moves(room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    a.send_json(_poll_frame(name))
    poll_id = a.recv_until("poll_created")["poll"]["id"]
    b.send_json({"type": "vote_poll", "poll_id": poll_id, "option_index": 0})
    update = a.recv_until("poll_updated")
    assert update == {
        "type": "poll_updated",
        "channel_id": created["id"],
        "poll_id": poll_id,
        "votes": {"0": 1},
        "total_votes": 1,
        "total_voters": 1,
        "voters": {"0": [bob.username]},
    }
    a.send_json({"type": "vote_poll", "poll_id": poll_id, "option_index": 0})
    assert b.recv_until("poll_updated", total_votes=2)["votes"] == {"0": 2}
    b.send_json({"type": "vote_poll", "poll_id": poll_id, "option_index": 2})  # moves bob's vote
    moved = a.recv_until("poll_updated", votes={"0": 1, "2": 1})
    assert (moved["votes"], moved["total_votes"]) == ({"0": 1, "2": 1}, 2)
    assert moved["voters"] == {"0": [alice.username], "2": [bob.username]}
    b.send_json({"type": "vote_poll", "poll_id": poll_id, "option_index": 3})
    error = b.recv_error()
    assert (error["message"], error["field"]) == ("option_index is out of range", "option_index")
    b.send_json({"type": "vote_poll", "poll_id": poll_id, "option_index": 10})
    assert b.recv_error()["field"] == "option_index"


def test_multiple_choice_and_anonymous_votes(room: Room, make_user: Callable[..., UserClient]) -> None:
    alice, bob = make_user(), make_user()
    created, (a, b) = room(alice, bob)
    name = created["name"]
    a.send_json(_poll_frame(name, allow_multiple=True, anonymous_votes=True))
    poll = a.recv_until("poll_created")["poll"]
    assert (poll["allow_multiple"], poll["anonymous_votes"]) == (True, True)
    assert "voters" not in poll
    pid = poll["id"]
    for index in (0, 1):
        b.send_json({"type": "vote_poll", "poll_id": pid, "option_index": index})
        a.recv_until("poll_updated")
    a.send_json({"type": "vote_poll", "poll_id": pid, "option_index": 1})
    update = b.recv_until("poll_updated", total_votes=3)
    assert (update["votes"], update["total_votes"], update["total_voters"]) == ({"0": 1, "1": 2}, 3, 2)
    assert "voters" not in update
    assert bob.username not in str(update) and alice.username not in str(update)
    b.send_json({"type": "vote_poll", "poll_id": pid, "option_index": 0})  # toggles off
    assert a.recv_until("poll_updated", total_votes=2)["votes"] == {"1": 2}


def test_close_poll_by_creator_or_moderator_only(
    ws: Callable[..., ChatClient], room: Room, make_user: Callable[..., UserClient], moderator: UserClient
) -> None:
    creator, other, mod = make_user(), make_user(), moderator
    created, (c, o, m) = room(creator, other, mod)
    name = created["name"]
    c.send_json(_poll_frame(name, question="First?"))
    first = c.recv_until("poll_created")["poll"]["id"]
    c.send_json(_poll_frame(name, question="Second?"))
    second = c.recv_until("poll_created")["poll"]["id"]
    o.send_json({"type": "vote_poll", "poll_id": first, "option_index": 1})
    c.recv_until("poll_updated")
    o.send_json({"type": "close_poll", "poll_id": first})
    refused = o.recv_error()
    assert (refused["message"], refused["status"]) == ("Only the poll's creator or a moderator can close it", 403)
    c.send_json({"type": "close_poll", "poll_id": first})
    closed = o.recv_until("poll_closed")
    assert closed == {
        "type": "poll_closed",
        "channel_id": created["id"],
        "poll_id": first,
        "votes": {"1": 1},
        "total_votes": 1,
        "total_voters": 1,
        "voters": {"1": [other.username]},
    }
    o.send_json({"type": "vote_poll", "poll_id": first, "option_index": 0})
    assert o.recv_error()["message"] == "This poll is closed"
    c.send_json({"type": "close_poll", "poll_id": first})
    assert c.recv_error()["message"] == "This poll is already closed"
    m.send_json({"type": "close_poll", "poll_id": second})
    assert c.recv_until("poll_closed")["poll_id"] == second
    history = {msg["id"]: msg for msg in ws(other).join(name)["history"]["messages"]}
    polls = {msg["poll"]["id"]: msg["poll"] for msg in history.values() if msg["kind"] == "poll"}
    assert polls[first]["closed"] is True and polls[first]["votes"] == {"1": 1}
    assert polls[second]["closed"] is True
    assert polls[first]["options"] == ["Python", "JavaScript", "Rust"]


def test_history_carries_poll_state(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    name = channel()["name"]
    alice, bob = make_user(), make_user()
    a = ws(alice)
    a.join(name)
    a.send_json(_poll_frame(name, question="Tea or coffee?", options=["tea", "coffee"]))
    created = a.recv_until("poll_created")
    a.send_json({"type": "vote_poll", "poll_id": created["poll"]["id"], "option_index": 1})
    a.recv_until("poll_updated")
    messages = ws(bob).join(name)["history"]["messages"]
    assert len(messages) == 1
    item = messages[0]
    assert (item["id"], item["kind"], item["message"]) == (created["message"]["id"], "poll", "Tea or coffee?")
    poll = item["poll"]
    assert (poll["id"], poll["question"], poll["options"]) == (
        created["poll"]["id"],
        "Tea or coffee?",
        ["tea", "coffee"],
    )
    assert (poll["votes"], poll["total_votes"], poll["voters"], poll["closed"]) == (
        {"1": 1},
        1,
        {"1": [alice.username]},
        False,
    )
    # the poll's message cannot be edited into something else
    a.send_json({"type": "edit_message", "message_id": item["id"], "message": "changed"})
    assert a.recv_error()["message"] == "This message cannot be edited"


def test_polls_of_channels_not_joined_are_out_of_reach(
    ws: Callable[..., ChatClient], channel: Callable[..., Channel], admin: UserClient, bystander: UserClient
) -> None:
    private = channel(visibility="private")["name"]
    owner_client = ws(admin)
    owner_client.join(private)
    owner_client.send_json(_poll_frame(private))
    pid = owner_client.recv_until("poll_created")["poll"]["id"]
    outsider = ws(bystander)
    outsider.send_json({"type": "vote_poll", "poll_id": pid, "option_index": 0})
    assert outsider.recv_error()["message"] == "Poll not found"
    outsider.send_json({"type": "close_poll", "poll_id": pid})
    assert outsider.recv_error()["message"] == "Poll not found"
    owner_client.assert_no_frame("poll_updated", within=0.2)


def test_poll_expires_on_its_own(expiring_polls: ExpiringPolls | None) -> None:
    """One-minute polls created at the start of the run close through the expiry job."""
    assert EXPIRY_TEST == "test_poll_expires_on_its_own"
    polls = expiring_polls
    assert polls is not None
    closes_at = datetime.fromisoformat(polls.quiet_poll["closes_at"])
    wait = (closes_at - datetime.now(UTC)).total_seconds()
    if wait > 0:
        time.sleep(wait)
    # the watcher, still connected, is told by the job
    closed = polls.watcher.recv_until("poll_closed", timeout=10, poll_id=polls.watched_poll["id"])
    assert (closed["votes"], closed["total_votes"]) == ({}, 0)
    # nobody was connected to the quiet channel: the job closed that poll all the same
    with connect(polls.server.base_url, polls.creator_token) as creator:
        history = creator.join(polls.quiet_channel)["history"]["messages"]
        poll = next(m["poll"] for m in history if m.get("poll", {}).get("id") == polls.quiet_poll["id"])
        assert (poll["closed"], poll["votes"]) == (True, {"1": 1})
        creator.send_json({"type": "close_poll", "poll_id": polls.quiet_poll["id"]})
        assert creator.recv_error()["message"] == "This poll is already closed"
        creator.send_json({"type": "vote_poll", "poll_id": polls.quiet_poll["id"], "option_index": 0})
        assert creator.recv_error()["message"] == "This poll is closed"
