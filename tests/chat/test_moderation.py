"""Moderation: sanctions (timeout, mute, ban), the audit log, and auto-moderation rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.chat.conftest import Room, assert_api_error
from tests.chat.wsclient import ChatClient
from tests.conftest import UserClient

Channel = dict[str, Any]
SANCTIONS = "/api/chat/moderation/sanctions"
RULES = "/api/admin/automod/rules"


def _audit(user: UserClient, action: str, **params: Any) -> list[dict[str, Any]]:
    resp = user.get("/api/admin/audit-log", params={"action": action, **params})
    assert resp.status_code == 200, resp.text
    entries: list[dict[str, Any]] = resp.json()["entries"]
    assert all(e["action"] == action for e in entries)
    return entries


def _sanction(mod: UserClient, **body: Any) -> dict[str, Any]:
    resp = mod.post(SANCTIONS, json=body)
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


# -- sanctions --------------------------------------------------------------------------------------
def test_timeout_blocks_sending_until_lifted(
    room: Room, make_user: Callable[..., UserClient], moderator: UserClient, bystander: UserClient
) -> None:
    mod, user, watcher = moderator, make_user(), bystander
    created, (u, w) = room(user, watcher)
    name = created["name"]
    earlier = u.say(name, "said before the timeout")
    sanction = _sanction(mod, user_id=user.id, kind="timeout", duration_minutes=10, reason="cool down")
    expires = datetime.fromisoformat(sanction["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(minutes=10))) < timedelta(seconds=30)
    assert sanction == {
        "id": sanction["id"],
        "user_id": user.id,
        "username": user.username,
        "kind": "timeout",
        "channel_id": None,
        "reason": "cool down",
        "created_by": mod.id,
        "created_at": sanction["created_at"],
        "expires_at": sanction["expires_at"],
        "lifted_at": None,
        "active": True,
    }
    u.send_json({"type": "message", "channel": name, "message": "let me talk"})
    refused = u.recv_error()
    assert refused["message"].startswith("You are timed out until ") and refused["status"] == 403
    u.send_json({"type": "create_poll", "channel": name, "question": "q?", "options": ["a", "b"]})
    assert u.recv_error()["message"].startswith("You are timed out")
    u.send_json({"type": "edit_message", "message_id": earlier["id"], "message": "rewritten while timed out"})
    assert u.recv_error()["message"].startswith("You are timed out")
    w.assert_no_frame("message_edited", within=0.2)
    w.assert_no_frame("message", message="let me talk", within=0.2)
    assert u.join(name)["channel_info"]["name"] == name  # reading is still allowed
    listed = mod.get(SANCTIONS, params={"user_id": user.id}).json()["sanctions"]
    assert [s["id"] for s in listed] == [sanction["id"]]
    entry = _audit(mod, "user_timeout", target_id=str(user.id))[0]
    assert (entry["actor_id"], entry["target_label"], entry["details"]["minutes"]) == (mod.id, user.username, 10)

    lifted = mod.delete(f"{SANCTIONS}/{sanction['id']}")
    assert lifted.status_code == 200
    assert (lifted.json()["active"], lifted.json()["lifted_at"] is not None) == (False, True)
    assert mod.get(SANCTIONS, params={"user_id": user.id}).json()["sanctions"] == []
    assert [s["id"] for s in mod.get(SANCTIONS, params={"user_id": user.id, "active": False}).json()["sanctions"]] == [
        sanction["id"]
    ]
    assert w.recv_until("message", message=u.say(name, "free again")["message"])["user_id"] == user.id
    assert _audit(mod, "user_untimeout", target_id=str(user.id))[0]["actor_id"] == mod.id


def test_mute_globally_or_in_one_channel(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    moderator: UserClient,
) -> None:
    muted_in, other = channel(), channel()
    mod, user, user2 = moderator, make_user(), make_user()
    u = ws(user)
    u.join(muted_in["name"])
    u.join(other["name"])
    _sanction(mod, user_id=user.id, kind="mute", channel_id=muted_in["id"], duration_minutes=5)
    u.send_json({"type": "message", "channel": muted_in["name"], "message": "muted?"})
    assert u.recv_error()["message"].startswith("You are muted")
    assert u.say(other["name"], "fine elsewhere")["user_id"] == user.id
    everywhere = _sanction(mod, user_id=user2.id, kind="mute")  # no channel, no expiry
    assert (everywhere["channel_id"], everywhere["expires_at"]) == (None, None)
    u2 = ws(user2)
    u2.join(other["name"])
    u2.send_json({"type": "message", "channel": other["name"], "message": "muted everywhere?"})
    error = u2.recv_error()
    assert (error["message"], error["status"]) == ("You are muted", 403)
    assert _audit(mod, "user_mute", target_id=str(user2.id))[0]["details"]["channel_id"] is None


def test_ban_keeps_a_user_out_of_one_channel(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    moderator: UserClient,
) -> None:
    banned_from, other = channel(), channel()
    mod, user = moderator, make_user()
    u = ws(user)
    u.join(banned_from["name"])
    assert_api_error(mod.post(SANCTIONS, json={"user_id": user.id, "kind": "ban"}), 400, "channel_id")
    ban = _sanction(mod, user_id=user.id, kind="ban", channel_id=banned_from["id"], reason="spam")
    # the ban takes the user out of the channel at once
    removed = u.recv_until("removed_from_channel")
    assert removed == {"type": "removed_from_channel", "channel": banned_from["name"], "channel_id": banned_from["id"]}
    with_mod = ws(mod)
    with_mod.join(banned_from["name"])
    with_mod.say(banned_from["name"], "the banned user no longer hears this")
    u.assert_no_frame("message", message="the banned user no longer hears this")
    u.send_json({"type": "message", "channel": banned_from["name"], "message": "still here"})
    assert u.recv_error()["message"] == "Join the channel first"
    fresh = ws(user)
    fresh.send_json({"type": "join", "channel": banned_from["name"]})
    refused = fresh.recv_error()
    assert (refused["message"], refused["status"], refused["request_type"]) == (
        "You are banned from this channel",
        403,
        "join",
    )
    assert fresh.join(other["name"])["channel_info"]["id"] == other["id"]
    assert fresh.say(other["name"], "hello other")["user_id"] == user.id
    entry = _audit(mod, "user_ban", target_id=str(user.id))[0]
    assert (entry["details"]["channel_id"], entry["details"]["reason"]) == (banned_from["id"], "spam")
    mod.delete(f"{SANCTIONS}/{ban['id']}").raise_for_status()
    assert fresh.join(banned_from["name"])["channel_info"]["id"] == banned_from["id"]
    assert _audit(mod, "user_unban", target_id=str(user.id))[0]["actor_id"] == mod.id


def test_sanction_permissions_and_validation(
    make_user: Callable[..., UserClient], bystander: UserClient, moderator: UserClient, admin: UserClient
) -> None:
    user, other, mod, mod2 = bystander, make_user(), moderator, make_user("moderator")
    body = {"user_id": other.id, "kind": "timeout", "duration_minutes": 5}
    assert_api_error(user.post(SANCTIONS, json=body), 403)
    assert_api_error(user.get(SANCTIONS), 403)
    assert_api_error(mod.post(SANCTIONS, json={**body, "user_id": mod.id}), 403, "yourself")
    assert_api_error(mod.post(SANCTIONS, json={**body, "user_id": mod2.id}), 403, "equal or higher")
    assert_api_error(mod.post(SANCTIONS, json={**body, "user_id": admin.id}), 403)
    assert_api_error(mod.post(SANCTIONS, json={"user_id": other.id, "kind": "timeout"}), 400, "duration")
    assert_api_error(mod.post(SANCTIONS, json={**body, "kind": "exile"}), 400)
    assert_api_error(mod.post(SANCTIONS, json={**body, "duration_minutes": 0}), 400)
    assert_api_error(mod.post(SANCTIONS, json={**body, "user_id": 999_999_999}), 404)
    assert_api_error(mod.post(SANCTIONS, json={**body, "kind": "ban", "channel_id": 999_999_999}), 404)
    assert_api_error(mod.delete(f"{SANCTIONS}/999999999"), 404)
    assert admin.post(SANCTIONS, json={**body, "user_id": mod2.id}).status_code == 201  # higher role
    assert mod.post(SANCTIONS, json=body).status_code == 201
    assert_api_error(user.get("/api/admin/audit-log"), 403)


def test_audit_log_filters_by_action(make_user: Callable[..., UserClient], moderator: UserClient) -> None:
    mod, target = moderator, make_user()
    _sanction(mod, user_id=target.id, kind="mute", duration_minutes=1)
    _sanction(mod, user_id=target.id, kind="timeout", duration_minutes=1)
    entries = mod.get("/api/admin/audit-log", params={"target_id": str(target.id)}).json()["entries"]
    assert {"user_mute", "user_timeout"} <= {e["action"] for e in entries}
    only = _audit(mod, "user_mute", target_id=str(target.id))
    assert len(only) == 1
    assert (only[0]["actor_username"], only[0]["target_type"]) == (mod.username, "user")
    assert _audit(mod, "no_such_action") == []


# -- auto-moderation ----------------------------------------------------------------------------------
@pytest.fixture
def automod(root: UserClient) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create automod rules (global to the server) and delete them after the test."""
    made: list[int] = []

    def create(**body: Any) -> dict[str, Any]:
        resp = root.post(RULES, json={"name": f"rule-{len(made)}", **body})
        assert resp.status_code == 201, resp.text
        rule: dict[str, Any] = resp.json()
        made.append(rule["id"])
        return rule

    yield create
    for rule_id in made:
        root.delete(f"{RULES}/{rule_id}")


def test_automod_rule_crud_is_admin_only(admin: UserClient, moderator: UserClient) -> None:
    mod = moderator
    assert_api_error(mod.get(RULES), 403)
    assert_api_error(mod.post(RULES, json={"name": "x", "kind": "regex", "config": {"pattern": "x"}}), 403)
    resp = admin.post(
        RULES,
        json={
            "name": "no swearing",
            "kind": "blocked_words",
            "config": {"words": ["Darn", " heck "]},
            "enabled": False,
        },
    )
    assert resp.status_code == 201, resp.text
    rule = resp.json()
    try:
        assert rule == {
            "id": rule["id"],
            "name": "no swearing",
            "kind": "blocked_words",
            "config": {"words": ["darn", "heck"]},
            "action": "delete",
            "timeout_minutes": 5,
            "enabled": False,
            "created_at": rule["created_at"],
        }
        assert rule["id"] in [r["id"] for r in admin.get(RULES).json()["rules"]]
        updated = admin.put(
            f"{RULES}/{rule['id']}", json={"action": "timeout", "timeout_minutes": 2, "config": {"words": ["blast"]}}
        )
        assert updated.status_code == 200, updated.text
        assert (updated.json()["action"], updated.json()["timeout_minutes"], updated.json()["config"]) == (
            "timeout",
            2,
            {"words": ["blast"]},
        )
        assert_api_error(mod.put(f"{RULES}/{rule['id']}", json={"enabled": True}), 403)
        assert_api_error(mod.delete(f"{RULES}/{rule['id']}"), 403)
        for bad in (
            {"name": "b", "kind": "regex", "config": {"pattern": "("}},
            {"name": "b", "kind": "regex", "config": {}},
            {"name": "b", "kind": "blocked_words", "config": {"words": "darn"}},
            {"name": "b", "kind": "link_limit", "config": {"max": -1}},
            {"name": "b", "kind": "mention_limit", "config": {"max": "2"}},
            {"name": "b", "kind": "caps_ratio", "config": {"ratio": 1.5}},
            {"name": "b", "kind": "telepathy", "config": {}},
            {"name": "b", "kind": "regex", "config": {"pattern": "x"}, "action": "ban"},
        ):
            assert_api_error(admin.post(RULES, json=bad), 400)
        assert_api_error(admin.put(f"{RULES}/{rule['id']}", json={"config": {"words": []}}), 400)
        assert _audit(admin, "automod_rule_created")[0]["target_id"] == str(rule["id"])
    finally:
        assert admin.delete(f"{RULES}/{rule['id']}").json() == {"success": True}
    assert rule["id"] not in [r["id"] for r in admin.get(RULES).json()["rules"]]
    assert_api_error(admin.delete(f"{RULES}/{rule['id']}"), 404)


@pytest.mark.parametrize(
    ("kind", "config", "bad", "fine"),
    [
        ("blocked_words", {"words": ["frobnicate"]}, "you FROBNICATE it", "frobnicated is a different word"),
        ("regex", {"pattern": r"\bcode-\d{4}\b"}, "the code-1234 leaked", "code-12 is too short"),
        ("link_limit", {"max": 1}, "http://a.example and https://b.example", "only https://a.example"),
        ("mention_limit", {"max": 2}, "@alice @bob @carol look", "@alice @bob look"),
        ("caps_ratio", {"ratio": 0.7, "min_length": 10}, "THIS IS SHOUTING LOUDLY", "SHORT OK and calm text"),
    ],
)
def test_automod_rules_stop_messages_before_they_are_saved(
    ws: Callable[..., ChatClient],
    room: Room,
    make_user: Callable[..., UserClient],
    automod: Callable[..., dict[str, Any]],
    root: UserClient,
    bystander: UserClient,
    kind: str,
    config: dict[str, Any],
    bad: str,
    fine: str,
) -> None:
    rule = automod(kind=kind, config=config)
    user, watcher, mod = make_user(), bystander, make_user("moderator")
    created, (u, w, m) = room(user, watcher, mod)
    name = created["name"]
    u.send_json({"type": "message", "channel": name, "message": bad})
    refused = u.recv_error()
    assert refused["message"].startswith("Message blocked by auto-moderation"), refused
    assert (refused["status"], refused["request_type"]) == (403, "message")
    w.assert_no_frame("message", message=bad)
    assert w.recv_until("message", message=u.say(name, fine)["message"])["user_id"] == user.id
    assert m.say(name, bad)["user_id"] == mod.id  # moderators bypass automod
    assert bad not in [
        msg["message"] for msg in ws(watcher).join(name)["history"]["messages"] if msg["user_id"] == user.id
    ]
    # editing a clean message into a forbidden one is stopped the same way
    clean = u.say(name, "innocent words")
    u.send_json({"type": "edit_message", "message_id": clean["id"], "message": bad})
    assert u.recv_error()["message"].startswith("Message blocked by auto-moderation")
    w.assert_no_frame("message_edited", within=0.2)
    entry = _audit(root, "automod_triggered", target_id=str(user.id))[0]
    assert (entry["actor_id"], entry["actor_username"], entry["target_label"]) == (None, "automod", user.username)
    assert (entry["details"]["rule_id"], entry["details"]["channel_id"], entry["details"]["action"]) == (
        rule["id"],
        created["id"],
        "delete",
    )
    assert _audit(root, "automod_triggered", target_id=str(mod.id)) == []


def test_automod_checks_polls_and_can_time_out(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    automod: Callable[..., dict[str, Any]],
    root: UserClient,
) -> None:
    name = channel()["name"]
    rule = automod(kind="blocked_words", config={"words": ["zorblax"]}, action="timeout", timeout_minutes=3)
    user = make_user()
    u = ws(user)
    u.join(name)
    u.send_json({"type": "create_poll", "channel": name, "question": "Best?", "options": ["zorblax", "other"]})
    assert u.recv_error()["message"].startswith("Message blocked by auto-moderation")
    u.send_json({"type": "message", "channel": name, "message": "a clean message"})
    assert u.recv_error()["message"].startswith("You are timed out")
    sanctions = root.get(SANCTIONS, params={"user_id": user.id}).json()["sanctions"]
    assert [(s["kind"], s["created_by"], s["reason"]) for s in sanctions] == [
        ("timeout", None, f"automod: {rule['name']}")
    ]
    expires = datetime.fromisoformat(sanctions[0]["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(minutes=3))) < timedelta(seconds=30)
    assert _audit(root, "automod_triggered", target_id=str(user.id))[0]["details"]["action"] == "timeout"
    assert _audit(root, "user_timeout", target_id=str(user.id))[0]["actor_username"] == "automod"
