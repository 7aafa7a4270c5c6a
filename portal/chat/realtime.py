"""Delivery of chat events to connected sockets, across processes.

Events are serialised once by the publisher and travel through the hub as text; each process
frames each event once (one WebSocket frame for all its recipients) and fans it out to its own
sockets joined to the channel, skipping sockets whose user blocked the sender. Anonymous messages
carry a second rendering for the author's own sockets (with their ``user_id``), since everyone
else must not learn who wrote them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from portal.core.hub import Hub
from portal.core.presence import Presence
from portal.core.ws import Outbox, dumps, text_frame

ALL_TOPIC = "chat:all"
ONLINE_KEY = "chat"


def channel_topic(channel_id: int) -> str:
    return f"channel:{channel_id}"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def presence_key(channel_id: int) -> str:
    return f"chat:channel:{channel_id}"


@dataclass(eq=False)
class ChatSocket:
    """One connected ``/ws/chat`` client."""

    user_id: int
    username: str
    outbox: Outbox
    blocked: set[int] = field(default_factory=set)
    channels: dict[int, str] = field(default_factory=dict)  # joined channel id -> name

    def deliver(
        self, frame: bytes, own: bytes | None, sender: int | None, masked: tuple[int, bytes] | None = None
    ) -> None:
        """Send an event already framed (:func:`text_frame`); ``own`` is the author's rendering,
        ``masked`` (user id, frame) the rendering for those who blocked the user it quotes."""
        if sender is not None and sender in self.blocked:
            return
        if own is not None and sender == self.user_id:
            frame = own
        elif masked is not None and masked[0] in self.blocked:
            frame = masked[1]
        self.outbox.send_frame(frame)


class ChatRealtime:
    def __init__(self, hub: Hub, presence: Presence) -> None:
        self.hub = hub
        self.presence = presence
        self._by_channel: dict[int, set[ChatSocket]] = defaultdict(set)
        self._by_user: dict[int, set[ChatSocket]] = defaultdict(set)
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self.on_internal: Callable[[ChatSocket, dict[str, Any]], Awaitable[None]] | None = None

    # -- publishing ----------------------------------------------------------------------------
    async def to_channel(
        self,
        channel_id: int,
        event: dict[str, Any],
        *,
        sender: int | None = None,
        own: dict[str, Any] | None = None,
        masked: tuple[int, dict[str, Any]] | None = None,
    ) -> None:
        """``masked`` is (quoted user id, event) for sockets whose user blocked the quoted user."""
        payload: dict[str, Any] = {"p": dumps(event), "o": dumps(own) if own else None, "s": sender}
        if masked is not None:
            payload["m"] = [masked[0], dumps(masked[1])]
        await self.hub.publish(channel_topic(channel_id), payload)

    async def to_user(self, user_id: int, event: dict[str, Any]) -> None:
        await self.hub.publish(user_topic(user_id), {"p": dumps(event), "o": None, "s": None, "e": event})

    async def to_everyone(self, event: dict[str, Any]) -> None:
        await self.hub.publish(ALL_TOPIC, {"p": dumps(event), "o": None, "s": None, "e": event})

    # -- local sockets -------------------------------------------------------------------------
    def local_sockets(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def sockets_of(self, user_id: int) -> set[ChatSocket]:
        return set(self._by_user.get(user_id, ()))

    def sockets_in(self, channel_id: int) -> set[ChatSocket]:
        return set(self._by_channel.get(channel_id, ()))

    async def connect(self, sock: ChatSocket) -> None:
        first = not self._by_user
        self._by_user[sock.user_id].add(sock)
        if first:
            self._subscribe(ALL_TOPIC)
        if len(self._by_user[sock.user_id]) == 1:
            self._subscribe(user_topic(sock.user_id))
        await self.presence.add(ONLINE_KEY, sock.user_id)

    async def disconnect(self, sock: ChatSocket) -> list[int]:
        """Forget the socket; returns the channels the user has now left entirely."""
        left = [cid for cid in list(sock.channels) if await self.leave(sock, cid)]
        mine = self._by_user.get(sock.user_id)
        if mine is not None:
            mine.discard(sock)
            if not mine:
                del self._by_user[sock.user_id]
                self._drop(user_topic(sock.user_id))
        if not self._by_user:
            self._drop(ALL_TOPIC)
        await self.presence.remove(ONLINE_KEY, sock.user_id)
        return left

    async def join(self, sock: ChatSocket, channel_id: int, name: str) -> bool:
        """Subscribe the socket to a channel; True when the user just became present in it."""
        if channel_id in sock.channels:
            sock.channels[channel_id] = name
            return False
        sock.channels[channel_id] = name
        members = self._by_channel[channel_id]
        if not members:
            self._subscribe(channel_topic(channel_id))
        members.add(sock)
        return await self.presence.add(presence_key(channel_id), sock.user_id)

    async def leave(self, sock: ChatSocket, channel_id: int) -> bool:
        """True when the user is now gone from the channel (their last socket left it)."""
        if sock.channels.pop(channel_id, None) is None:
            return False
        members = self._by_channel.get(channel_id)
        if members is not None:
            members.discard(sock)
            if not members:
                del self._by_channel[channel_id]
                self._drop(channel_topic(channel_id))
        return await self.presence.remove(presence_key(channel_id), sock.user_id)

    async def online_in(self, channel_id: int) -> set[int]:
        return await self.presence.members(presence_key(channel_id))

    async def online_users(self) -> set[int]:
        return await self.presence.members(ONLINE_KEY)

    # -- hub plumbing --------------------------------------------------------------------------
    def _subscribe(self, topic: str) -> None:
        if topic not in self._unsubscribe:
            self._unsubscribe[topic] = self.hub.subscribe(topic, self._on_event)

    def _drop(self, topic: str) -> None:
        remove = self._unsubscribe.pop(topic, None)
        if remove is not None:
            remove()

    async def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        text, own, sender = event["p"], event.get("o"), event.get("s")
        targets: Iterable[ChatSocket]
        if topic.startswith("channel:"):
            targets = self._by_channel.get(int(topic.split(":", 1)[1]), ())
        elif topic.startswith("user:"):
            targets = self._by_user.get(int(topic.split(":", 1)[1]), ())
        else:
            targets = [s for socks in self._by_user.values() for s in socks]
        internal = event.get("e") if str(event.get("e", {}).get("type", "")).startswith("_") else None
        if internal is not None:
            if self.on_internal is not None:
                for sock in list(targets):
                    await self.on_internal(sock, internal)
            return
        frame = text_frame(text.encode())
        own_frame = text_frame(own.encode()) if own is not None else None
        masked = (int(event["m"][0]), text_frame(event["m"][1].encode())) if event.get("m") else None
        for sock in list(targets):
            sock.deliver(frame, own_frame, sender, masked)
