"""Plugging the chat into the application: state, routes, jobs, uploads and statistics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from portal.blocks.router import router as blocks_router
from portal.chat import channels, link_preview, uploads
from portal.chat.moderation_router import router as moderation_router
from portal.chat.realtime import ChatRealtime
from portal.chat.router import router as chat_router
from portal.chat.service import Chat
from portal.chat.ws import on_internal_event
from portal.chat.ws import router as ws_router
from portal.config import Settings
from portal.core.services import Services


def install_chat(app: FastAPI, settings: Settings, services: Services) -> Chat:
    realtime = ChatRealtime(services.hub, services.presence)
    chat = Chat(
        db=services.db,
        keyring=services.keyring,
        realtime=realtime,
        limiter=services.limiter,
        message_rate=settings.chat_message_rate,
        uploads_dir=settings.uploads_dir / "chat",
        retention_days=settings.chat_retention_days,
    )

    async def internal(sock: Any, event: dict[str, Any]) -> None:
        await on_internal_event(chat, sock, event)

    realtime.on_internal = internal
    app.state.chat = chat
    previews = link_preview.LinkPreviews(
        services.net,
        link_preview.create_preview_cache(settings.redis_url, settings.redis_prefix),
        ttl=settings.link_preview_cache_seconds,
    )
    app.state.link_previews = previews
    services.shutdown.append(previews.close)
    for router in (chat_router, uploads.router, link_preview.router, moderation_router, blocks_router, ws_router):
        app.include_router(router)
    chat.uploads_dir.mkdir(parents=True, exist_ok=True)
    app.mount(uploads.URL_PREFIX.rstrip("/"), StaticFiles(directory=str(chat.uploads_dir)), name="chat-uploads")

    async def ensure_default() -> None:
        async with services.db.sessions() as session:
            await channels.ensure_default_channel(session)

    async def online_users() -> int:
        return len(await realtime.online_users())

    services.startup.append(ensure_default)
    services.stat_providers["online_users"] = online_users
    services.body_limits["/api/chat/upload"] = uploads.MAX_BYTES + 64 * 1024
    services.jobs.every(settings.poll_check_interval_seconds, "close-expired-polls", chat.close_expired_polls)
    services.jobs.every(settings.retention_interval_seconds, "chat-retention", chat.apply_retention)
    return chat
