"""Channels over REST: listing, creation, updates, deletion, clearing, visibility, modes, members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.chat.conftest import JoinAll, assert_api_error, channel_name, create_channel
from tests.chat.wsclient import ChatClient
from tests.conftest import UserClient

Channel = dict[str, Any]


def _listed(user: UserClient) -> dict[str, Channel]:
    resp = user.get("/api/chat/channels")
    assert resp.status_code == 200, resp.text
    return {c["name"]: c for c in resp.json()["channels"]}


def _general_id(user: UserClient) -> int:
    return int(_listed(user)["general"]["id"])


def test_default_general_channel_is_listed_first(bystander: UserClient) -> None:
    resp = bystander.get("/api/chat/channels")
    assert resp.status_code == 200
    channels = resp.json()["channels"]
    general = channels[0]
    assert general["name"] == "general"
    assert general["is_default"] is True
    assert general["is_stream_channel"] is False
    assert (general["visibility"], general["mode"]) == ("public", "open")
    assert general["description"] == "General discussion"
    assert isinstance(general["unread_count"], int)
    assert set(general) >= {"id", "name", "description", "topic", "created_at", "unread_count"}
    assert [c["name"] for c in channels].count("general") == 1


def test_create_channel_shape_and_name_rules(make_user: Callable[..., UserClient]) -> None:
    user = make_user()
    name = channel_name("dev-talk")
    resp = user.post("/api/chat/channels", json={"name": name, "description": "Developers"})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["name"] == name
    assert created["description"] == "Developers"
    assert (created["visibility"], created["mode"], created["is_default"]) == ("public", "open", False)
    assert created["created_by"] == user.id
    assert created["unread_count"] == 0
    assert _listed(user)[name]["id"] == created["id"]
    for bad in ["Upper", "with space", "under_score", "-lead", "trail-", "double--hyphen", "", "x" * 51, "émoji"]:
        assert_api_error(user.post("/api/chat/channels", json={"name": bad}), 400)
    assert_api_error(user.post("/api/chat/channels", json={}), 400)
    assert_api_error(user.post("/api/chat/channels", json={"name": channel_name(), "visibility": "secret"}), 400)
    assert_api_error(user.post("/api/chat/channels", json={"name": channel_name(), "mode": "loud"}), 400)
    assert_api_error(user.post("/api/chat/channels", json={"name": name}), 409, "exists")
    assert_api_error(user.post("/api/chat/channels", json={"name": "general"}), 409)


def test_new_public_channels_are_announced_private_ones_are_not(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], bystander: UserClient
) -> None:
    creator = make_user()
    watcher = ws(bystander)
    watcher.ping()
    public = create_channel(creator, description="for all")
    announced = watcher.recv_until("channel_created")["channel"]
    assert (announced["id"], announced["name"], announced["description"]) == (public["id"], public["name"], "for all")
    assert (announced["visibility"], announced["created_by"]) == ("public", creator.id)
    create_channel(creator, visibility="private")
    watcher.assert_no_frame("channel_created")


def test_only_moderators_create_readonly_channels(bystander: UserClient, moderator: UserClient) -> None:
    user, mod = bystander, moderator
    assert_api_error(user.post("/api/chat/channels", json={"name": channel_name(), "mode": "readonly"}), 403)
    resp = mod.post("/api/chat/channels", json={"name": channel_name(), "mode": "readonly"})
    assert resp.status_code == 201 and resp.json()["mode"] == "readonly"


def test_readonly_channel_refuses_users_but_not_moderators(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    moderator: UserClient,
) -> None:
    created = channel(mode="readonly")
    name = created["name"]
    user, global_mod, chan_mod = make_user(), moderator, make_user()
    resp = root.post(f"/api/chat/channels/{created['id']}/members", json={"user_id": chan_mod.id, "role": "moderator"})
    assert resp.status_code == 201, resp.text
    u, gm, cm = ws(user), ws(global_mod), ws(chan_mod)
    info = u.join(name)["channel_info"]
    assert (info["mode"], info["can_send"], info["can_moderate"]) == ("readonly", False, False)
    assert gm.join(name)["channel_info"]["can_send"] is True
    assert cm.join(name)["channel_info"]["can_moderate"] is True
    u.send_json({"type": "message", "channel": name, "message": "may I?"})
    refused = u.recv_error()
    assert (refused["message"], refused["status"], refused["request_type"]) == (
        "This channel is read-only",
        403,
        "message",
    )
    u.send_json({"type": "create_poll", "channel": name, "question": "q?", "options": ["a", "b"]})
    assert u.recv_error()["message"] == "This channel is read-only"
    assert gm.say(name, "announcement")["user_id"] == global_mod.id
    assert cm.say(name, "channel mod note")["user_id"] == chan_mod.id
    assert u.recv_until("message", message="announcement")["role"] == "moderator"
    u.assert_no_frame("message", message="may I?")
    # nor can they pretend to be typing there; moderators can
    u.send_json({"type": "typing", "channel": name})
    assert u.recv_error()["message"] == "This channel is read-only"
    gm.assert_no_frame("typing", user_id=user.id)
    cm.send_json({"type": "typing", "channel": name})
    assert gm.recv_until("typing", user_id=chan_mod.id)["channel"] == name


def test_unread_count_follows_mark_read(
    ws: Callable[..., ChatClient], make_user: Callable[..., UserClient], channel: Callable[..., Channel]
) -> None:
    created = channel()
    name = created["name"]
    writer, reader = make_user(), make_user()
    w = ws(writer)
    w.join(name)
    ids = [w.say(name, f"m{i}")["id"] for i in range(3)]
    assert _listed(reader)[name]["unread_count"] == 3
    assert _listed(writer)[name]["unread_count"] == 0  # own messages are not unread
    r = ws(reader)
    r.join(name)
    r.send_json({"type": "mark_read", "message_id": ids[1]})
    assert r.recv_until("marked_read") == {"type": "marked_read", "channel_id": created["id"], "message_id": ids[1]}
    assert _listed(reader)[name]["unread_count"] == 1
    r.send_json({"type": "mark_read", "message_id": ids[0]})  # going backwards does not add unread
    r.recv_until("marked_read")
    assert _listed(reader)[name]["unread_count"] == 1
    r.send_json({"type": "mark_read", "message_id": ids[2]})
    r.recv_until("marked_read")
    assert _listed(reader)[name]["unread_count"] == 0
    w.say(name, "one more")
    assert _listed(reader)[name]["unread_count"] == 1


def test_update_and_rename_are_admin_only_and_broadcast(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    moderator: UserClient,
    admin: UserClient,
) -> None:
    created = channel(description="old")
    cid, old_name = created["id"], created["name"]
    user, mod = make_user(), moderator
    new_name = channel_name("renamed")
    for caller in (user, mod):
        assert_api_error(caller.put(f"/api/chat/channels/{cid}", json={"name": new_name}), 403)
    member, bystander = ws(user), ws(mod)
    member.join(old_name)
    resp = admin.put(f"/api/chat/channels/{cid}", json={"name": new_name, "description": "new", "topic": "t"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["name"], resp.json()["description"], resp.json()["topic"]) == (new_name, "new", "t")
    renamed = member.recv_until("channel_renamed")
    assert renamed == {"type": "channel_renamed", "channel_id": cid, "old_name": old_name, "new_name": new_name}
    assert bystander.recv_until("channel_renamed")["new_name"] == new_name  # public: everyone learns it
    assert old_name not in _listed(user) and _listed(user)[new_name]["id"] == cid
    # the joined socket keeps working under the new name
    echoed = member.say(new_name, "after rename")
    assert (echoed["channel"], echoed["channel_id"]) == (new_name, cid)
    member.send_json({"type": "message", "channel": old_name, "message": "old name"})
    assert member.recv_error()["message"] == "Join the channel first"
    assert_api_error(admin.put(f"/api/chat/channels/{cid}", json={}), 400)
    assert_api_error(admin.put(f"/api/chat/channels/{cid}", json={"name": "Bad Name"}), 400)
    assert_api_error(admin.put(f"/api/chat/channels/{cid}", json={"name": "general"}), 409)
    assert_api_error(admin.put("/api/chat/channels/999999999", json={"description": "x"}), 404)
    audit = admin.get("/api/admin/audit-log", params={"action": "channel_updated", "target_id": str(cid)})
    assert audit.status_code == 200
    entry = audit.json()["entries"][0]
    assert (entry["actor_id"], entry["details"]["name"]) == (admin.id, new_name)


def test_default_channel_cannot_be_renamed_deleted_or_made_private(root: UserClient) -> None:
    general = _general_id(root)
    assert_api_error(root.put(f"/api/chat/channels/{general}", json={"name": channel_name()}), 400, "default")
    assert_api_error(root.put(f"/api/chat/channels/{general}", json={"visibility": "private"}), 400)
    assert_api_error(root.delete(f"/api/chat/channels/{general}"), 400, "default")
    assert "general" in _listed(root)


def test_delete_is_admin_only_and_broadcast(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    moderator: UserClient,
    admin: UserClient,
) -> None:
    created = channel()
    cid, name = created["id"], created["name"]
    user, mod = make_user(), moderator
    assert_api_error(user.delete(f"/api/chat/channels/{cid}"), 403)
    assert_api_error(mod.delete(f"/api/chat/channels/{cid}"), 403)
    sock = ws(user)
    sock.join(name)
    mid = sock.say(name, "soon gone")["id"]
    resp = admin.delete(f"/api/chat/channels/{cid}")
    assert resp.status_code == 200 and resp.json() == {"success": True}
    assert sock.recv_until("channel_deleted") == {"type": "channel_deleted", "channel": name, "channel_id": cid}
    assert name not in _listed(user)
    sock.send_json({"type": "message", "channel": name, "message": "anyone?"})
    assert sock.recv_error()["message"] == "Join the channel first"
    sock.send_json({"type": "join", "channel": name})
    assert sock.recv_error()["status"] == 404
    assert_api_error(user.get(f"/api/chat/thread/{mid}"), 404)
    assert_api_error(admin.delete(f"/api/chat/channels/{cid}"), 404)
    audit = admin.get("/api/admin/audit-log", params={"action": "channel_deleted", "target_id": str(cid)})
    assert audit.json()["entries"][0]["target_label"] == name


def test_clear_is_superadmin_only(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    admin: UserClient,
) -> None:
    created = channel()
    cid, name = created["id"], created["name"]
    user = make_user()
    sock = ws(user)
    sock.join(name)
    sock.say(name, "to be cleared")
    assert_api_error(user.post(f"/api/chat/channels/{cid}/clear"), 403)
    assert_api_error(admin.post(f"/api/chat/channels/{cid}/clear"), 403)
    resp = root.post(f"/api/chat/channels/{cid}/clear")
    assert resp.status_code == 200 and resp.json() == {"success": True}
    assert sock.recv_until("channel_cleared") == {"type": "channel_cleared", "channel": name, "channel_id": cid}
    assert sock.join(name)["history"]["messages"] == []
    assert _listed(user)[name]["unread_count"] == 0
    assert root.get("/api/admin/audit-log", params={"action": "channel_cleared"}).json()["entries"][0][
        "target_id"
    ] == str(cid)


# -- private channels and members -------------------------------------------------------------------
def test_private_channel_is_invisible_to_non_members(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    bystander: UserClient,
    admin: UserClient,
) -> None:
    creator, outsider = make_user(), bystander
    created = channel(creator=creator, visibility="private")
    cid, name = created["id"], created["name"]
    assert name in _listed(creator)
    assert name not in _listed(outsider)
    assert name in _listed(admin)  # admins see every channel
    assert_api_error(outsider.get(f"/api/chat/channels/{cid}/members"), 404)
    assert_api_error(outsider.post(f"/api/chat/channels/{cid}/members", json={"user_id": outsider.id}), 404)
    c = ws(creator)
    c.join(name)
    mid = c.say(name, "members only")["id"]
    assert_api_error(outsider.get(f"/api/chat/thread/{mid}"), 404)
    o = ws(outsider)
    o.send_json({"type": "join", "channel": name})
    refused = o.recv_error()
    assert (refused["message"], refused["status"]) == ("Channel not found", 404)
    for frame in (
        {"type": "react", "message_id": mid, "emoji": "👍"},
        {"type": "delete", "message_id": mid},
        {"type": "mark_read", "message_id": mid},
    ):
        o.send_json(frame)
        assert o.recv_error()["status"] == 404, frame
    o.assert_no_frame("message", message="members only")
    assert root.get(f"/api/chat/thread/{mid}").status_code == 200


def test_private_channel_rename_and_delete_are_not_announced_to_outsiders(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    bystander: UserClient,
) -> None:
    member, outsider = make_user(), bystander
    cid = channel(visibility="private")["id"]
    root.post(f"/api/chat/channels/{cid}/members", json={"user_id": member.id}).raise_for_status()
    m, o = ws(member), ws(outsider)
    m.ping()
    o.ping()
    new_name = channel_name("secret")
    root.put(f"/api/chat/channels/{cid}", json={"name": new_name}).raise_for_status()
    assert m.recv_until("channel_renamed")["new_name"] == new_name  # a member learns it without joining
    o.assert_no_frame("channel_renamed")
    root.delete(f"/api/chat/channels/{cid}").raise_for_status()
    assert m.recv_until("channel_deleted")["channel"] == new_name
    o.assert_no_frame("channel_deleted")


def test_making_a_channel_private_removes_joined_outsiders(
    join_all: JoinAll,
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
    root: UserClient,
    admin: UserClient,
) -> None:
    created = channel()
    cid, name = created["id"], created["name"]
    member, outsider = make_user(), make_user()
    root.post(f"/api/chat/channels/{cid}/members", json={"user_id": member.id}).raise_for_status()
    m, o, a = join_all(name, member, outsider, admin)
    resp = root.put(f"/api/chat/channels/{cid}", json={"visibility": "private"})
    assert resp.status_code == 200 and resp.json()["visibility"] == "private"
    assert o.recv_until("removed_from_channel") == {"type": "removed_from_channel", "channel": name, "channel_id": cid}
    m.say(name, "members only now")
    assert a.recv_until("message", message="members only now")["user_id"] == member.id  # admins see every channel
    o.assert_no_frame("message", message="members only now")
    m.assert_no_frame("removed_from_channel", within=0.1)
    o.send_json({"type": "join", "channel": name})
    assert o.recv_error()["status"] == 404


def test_member_can_join_after_being_added_and_not_after_removal(
    ws: Callable[..., ChatClient],
    make_user: Callable[..., UserClient],
    channel: Callable[..., Channel],
) -> None:
    creator, guest = make_user(), make_user()
    created = channel(creator=creator, visibility="private")
    cid, name = created["id"], created["name"]
    g = ws(guest)
    g.send_json({"type": "join", "channel": name})
    assert g.recv_error()["status"] == 404
    resp = creator.post(f"/api/chat/channels/{cid}/members", json={"user_id": guest.id})
    assert resp.status_code == 201 and resp.json() == {"success": True}
    assert name in _listed(guest)
    members = guest.get(f"/api/chat/channels/{cid}/members")
    assert members.status_code == 200
    listed = {m["user_id"]: m for m in members.json()["members"]}
    assert listed[creator.id]["role"] == "moderator" and listed[creator.id]["username"] == creator.username
    assert listed[guest.id]["role"] == "member" and listed[guest.id]["username"] == guest.username
    assert isinstance(listed[guest.id]["added_at"], str)
    c = ws(creator)
    c.join(name)
    frames = g.join(name)
    assert frames["channel_info"]["visibility"] == "private"
    assert g.say(name, "I'm in")["user_id"] == guest.id
    resp = creator.delete(f"/api/chat/channels/{cid}/members/{guest.id}")
    assert resp.status_code == 200 and resp.json() == {"success": True}
    removed = g.recv_until("removed_from_channel")
    assert removed == {"type": "removed_from_channel", "channel": name, "channel_id": cid}
    c.say(name, "after removal")
    g.assert_no_frame("message", message="after removal")
    g.send_json({"type": "message", "channel": name, "message": "still here?"})
    assert g.recv_error()["message"] == "Join the channel first"
    g.send_json({"type": "join", "channel": name})
    assert g.recv_error()["status"] == 404
    assert name not in _listed(guest)
    assert_api_error(creator.delete(f"/api/chat/channels/{cid}/members/{guest.id}"), 404)


def test_member_management_permissions(
    make_user: Callable[..., UserClient], channel: Callable[..., Channel], admin: UserClient, moderator: UserClient
) -> None:
    creator, chan_mod, member, other, outsider = make_user(), make_user(), make_user(), make_user(), make_user()
    global_mod = moderator
    cid = channel(creator=creator, visibility="private")["id"]
    base = f"/api/chat/channels/{cid}/members"

    # the creator adds members and appoints channel moderators
    assert creator.post(base, json={"user_id": chan_mod.id, "role": "moderator"}).status_code == 201
    assert creator.post(base, json={"user_id": member.id}).status_code == 201
    assert_api_error(creator.post(base, json={"user_id": member.id}), 409)
    assert_api_error(creator.post(base, json={"user_id": 999_999_999}), 404)
    assert_api_error(creator.post(base, json={"user_id": other.id, "role": "owner"}), 400)
    # a plain member manages nothing
    assert_api_error(member.post(base, json={"user_id": other.id}), 403)
    assert_api_error(member.delete(f"{base}/{chan_mod.id}"), 403)
    assert_api_error(member.put(f"{base}/{chan_mod.id}", json={"role": "member"}), 403)
    # a channel moderator adds and removes members, but neither appoints nor changes roles
    assert chan_mod.post(base, json={"user_id": other.id}).status_code == 201
    assert_api_error(chan_mod.post(base, json={"user_id": outsider.id, "role": "moderator"}), 403)
    assert_api_error(chan_mod.put(f"{base}/{other.id}", json={"role": "moderator"}), 403)
    assert chan_mod.delete(f"{base}/{other.id}").json() == {"success": True}
    assert_api_error(chan_mod.delete(f"{base}/{creator.id}"), 403)
    # the creator changes roles
    resp = creator.put(f"{base}/{member.id}", json={"role": "moderator"})
    assert resp.status_code == 200 and resp.json() == {"success": True}
    roles = {m["user_id"]: m["role"] for m in creator.get(base).json()["members"]}
    assert roles == {creator.id: "moderator", chan_mod.id: "moderator", member.id: "moderator"}
    assert_api_error(creator.put(f"{base}/{member.id}", json={"role": "admin"}), 400)
    assert_api_error(creator.put(f"{base}/{outsider.id}", json={"role": "member"}), 404)
    # a channel moderator may not remove another channel moderator; the creator may
    assert_api_error(chan_mod.delete(f"{base}/{member.id}"), 403)
    assert creator.delete(f"{base}/{member.id}").status_code == 200
    # the member list is for members and moderators+
    assert chan_mod.get(base).status_code == 200
    assert global_mod.get(base).status_code == 404  # private: not visible to a global moderator
    # an admin does everything
    assert admin.post(base, json={"user_id": outsider.id, "role": "moderator"}).status_code == 201
    assert admin.put(f"{base}/{outsider.id}", json={"role": "member"}).status_code == 200
    assert admin.delete(f"{base}/{outsider.id}").status_code == 200
    audit = admin.get("/api/admin/audit-log", params={"action": "channel_member_added"}).json()["entries"]
    assert any(e["target_id"] == str(outsider.id) and e["details"]["channel_id"] == cid for e in audit)


def test_member_list_of_public_channel_is_for_members_and_moderators(
    make_user: Callable[..., UserClient], channel: Callable[..., Channel], bystander: UserClient, moderator: UserClient
) -> None:
    creator, user, mod = make_user(), bystander, moderator
    cid = channel(creator=creator)["id"]
    assert_api_error(user.get(f"/api/chat/channels/{cid}/members"), 403)
    members = mod.get(f"/api/chat/channels/{cid}/members")
    assert members.status_code == 200
    assert [(m["user_id"], m["role"]) for m in members.json()["members"]] == [(creator.id, "moderator")]
    assert creator.get(f"/api/chat/channels/{cid}/members").status_code == 200


def test_unauthenticated_channel_access_is_refused(base_url: str) -> None:
    import httpx

    resp = httpx.get(base_url + "/api/chat/channels")
    assert_api_error(resp, 401)
    assert_api_error(httpx.post(base_url + "/api/chat/channels", json={"name": channel_name()}), 401)
