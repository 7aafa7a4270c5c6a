"""A cap on request bodies, so a huge or endless upload cannot exhaust memory.

Routes that legitimately take more (uploads) register a larger cap for their path prefix;
those stream their bodies rather than buffering them. A ``*`` in a prefix stands for one path
segment (``/api/sftp/*/upload``), for routes whose ids sit in the middle of the path.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 1024 * 1024


class BodyTooLarge(HTTPException):
    """An HTTPException so that the framework's body parsing lets it through as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body larger than {limit} bytes")


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, default: int = DEFAULT_MAX_BODY, overrides: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.default = default
        ordered = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))
        self.overrides = [(_prefix_pattern(prefix), cap) for prefix, cap in ordered]

    def limit_for(self, path: str) -> int:
        return next((cap for pattern, cap in self.overrides if pattern.match(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for key, value in scope.get("headers") or []:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit or declared < 0:
                    await _too_large(send, limit)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile("[^/]+".join(re.escape(part) for part in prefix.split("*")))


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": f"Request body larger than {limit} bytes", "status": 413, "max_bytes": limit}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
