"""Link previews: the OpenGraph card of a URL posted in chat, fetched through the SSRF guard.

The page is fetched with no cookies and no credentials, for at most 5 seconds and its first
1 MB (the ``<head>`` is near the start, so a longer page is cut, not refused). Only HTML is
parsed: any other content type gives a card with just the URL. Cards are cached for
``link_preview_cache_seconds`` (in Redis when configured, so all processes share them) and
failures for a minute, so a slow or refused URL pasted many times costs one attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from typing import Annotated, Any, Protocol
from urllib.parse import urldefrag, urljoin, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from selectolax.lexbor import LexborHTMLParser

from portal import __version__
from portal.accounts.deps import require_scope
from portal.core.errors import ApiError, BadRequest
from portal.core.net import FetchResult, NetGuard, UpstreamError

FETCH_TIMEOUT = 5.0
MAX_BODY = 1024 * 1024
MAX_URL = 2048
NEGATIVE_CACHE_SECONDS = 60
MEMORY_CACHE_ENTRIES = 2048
LIMITS = {"title": 200, "description": 500, "site_name": 100}
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})
REQUEST_HEADERS = {
    "User-Agent": f"OpenRelayPortal/{__version__} (link preview)",
    "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
}

router = APIRouter(tags=["chat"])


class LinkPreview(BaseModel):
    url: str
    title: str | None = None
    description: str | None = None
    image: str | None = None
    site_name: str | None = None


class PreviewUnavailable(ApiError):
    """A failure replayed from the cache with the status it had when it happened."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.status = status


# -- parsing ---------------------------------------------------------------------------------------
def _clean(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or None


def _absolute(base: str, ref: str | None) -> str | None:
    """``ref`` resolved against ``base``, kept only when it is an http(s) URL of sane length."""
    if not ref or not ref.strip():
        return None
    try:
        full = urljoin(base, ref.strip())
        scheme = urlsplit(full).scheme.lower()
    except ValueError:
        return None
    return full if scheme in ("http", "https") and len(full) <= MAX_URL else None


def parse_preview(result: FetchResult) -> dict[str, str | None]:
    """OpenGraph fields with the usual fallbacks (Twitter cards, ``<title>``, meta description)."""
    empty: dict[str, str | None] = dict.fromkeys(("title", "description", "image", "site_name"))
    if result.media_type not in HTML_TYPES:
        return empty
    tree = _parse_html(result.content, result.charset)
    metas: dict[str, str] = {}
    for node in tree.css("meta"):
        attrs = node.attributes
        key = (attrs.get("property") or attrs.get("name") or "").strip().lower()
        value = attrs.get("content")
        if key and value and key not in metas:
            metas[key] = value
    title_node = tree.css_first("title")
    base = result.url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = _absolute(result.url, base_node.attributes.get("href")) or result.url
    image = next(
        (metas[k] for k in ("og:image", "og:image:secure_url", "og:image:url", "twitter:image") if k in metas), None
    )
    return {
        "title": _clean(
            metas.get("og:title") or metas.get("twitter:title") or (title_node.text() if title_node else None),
            LIMITS["title"],
        ),
        "description": _clean(
            metas.get("og:description") or metas.get("twitter:description") or metas.get("description"),
            LIMITS["description"],
        ),
        "image": _absolute(base, image),
        "site_name": _clean(metas.get("og:site_name"), LIMITS["site_name"]),
    }


def _parse_html(content: bytes, charset: str | None) -> LexborHTMLParser:
    if charset:
        try:
            return LexborHTMLParser(content.decode(charset, errors="replace"))
        except LookupError:
            pass
    return LexborHTMLParser(content, encoding=True)  # BOM or <meta charset>, else UTF-8


# -- cache -----------------------------------------------------------------------------------------
Entry = dict[str, Any]
"""``{"preview": {...}}`` or ``{"error": message, "status": N}``."""


class PreviewCache(Protocol):
    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, entry: Entry, ttl: int) -> None: ...
    async def close(self) -> None: ...


class MemoryPreviewCache:
    """Per process, bounded: the least recently used entries go first."""

    def __init__(self, max_entries: int = MEMORY_CACHE_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> Entry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item[1]

    async def set(self, key: str, entry: Entry, ttl: int) -> None:
        self._entries[key] = (time.monotonic() + ttl, entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisPreviewCache:
    """Shared by every portal process; Redis expires the entries."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(url)
        self._prefix = prefix + "link-preview:"

    def _key(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> Entry | None:
        raw = await self._redis.get(self._key(key))
        return json.loads(raw) if raw else None

    async def set(self, key: str, entry: Entry, ttl: int) -> None:
        await self._redis.set(self._key(key), json.dumps(entry), ex=max(1, ttl))

    async def close(self) -> None:
        await self._redis.aclose()


def create_preview_cache(redis_url: str | None, prefix: str) -> PreviewCache:
    return RedisPreviewCache(redis_url, prefix) if redis_url else MemoryPreviewCache()


# -- service ---------------------------------------------------------------------------------------
def _target(url: str) -> str:
    """The URL to fetch and the cache key: http(s) only, without the fragment (never sent anyway)."""
    url = url.strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise BadRequest("Invalid url: not a valid URL", field="url") from None
    if scheme not in ("http", "https"):
        raise BadRequest("Invalid url: only http and https URLs can be previewed", field="url")
    return urldefrag(url).url


class LinkPreviews:
    def __init__(self, guard: NetGuard, cache: PreviewCache, ttl: int) -> None:
        self.guard = guard
        self.cache = cache
        self.ttl = ttl
        self._inflight: dict[str, asyncio.Task[Entry]] = {}

    async def preview(self, url: str) -> LinkPreview:
        key = _target(url)
        entry = await self.cache.get(key)
        if entry is None:
            entry = await self._shared_build(key)
        if "preview" not in entry:
            extra = {"field": "url"} if entry["status"] == 400 else {}
            raise PreviewUnavailable(int(entry["status"]), str(entry["error"]), **extra)
        return LinkPreview(url=url.strip(), **entry["preview"])

    async def _shared_build(self, key: str) -> Entry:
        """One fetch per URL at a time in this process, however many callers ask at once."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._build(key), name="link-preview")
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _build(self, key: str) -> Entry:
        try:
            result = await self.guard.fetch(key, max_bytes=MAX_BODY, timeout=FETCH_TIMEOUT, headers=REQUEST_HEADERS)
            if not 200 <= result.status < 300:
                raise UpstreamError(f"Link preview unavailable: the site answered HTTP {result.status}")
            entry: Entry = {"preview": await asyncio.to_thread(parse_preview, result)}
            ttl = self.ttl
        except ApiError as err:
            entry = {"error": err.message, "status": err.status}
            ttl = min(self.ttl, NEGATIVE_CACHE_SECONDS)
        await self.cache.set(key, entry, ttl)
        return entry

    async def close(self) -> None:
        await self.cache.close()


@router.get("/api/chat/link-preview", response_model=LinkPreview, dependencies=[Depends(require_scope("chat:read"))])
async def link_preview(request: Request, url: Annotated[str, Query(max_length=MAX_URL)]) -> LinkPreview:
    """The OpenGraph card of ``url``; a refused destination is a 400 naming the reason."""
    previews: LinkPreviews = request.app.state.link_previews
    return await previews.preview(url)
