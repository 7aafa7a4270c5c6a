"""Auto-moderation: admin-defined rules checked before a message is saved (moderators bypass).

Rule kinds and their ``config``:
- ``blocked_words``: ``{"words": ["..."]}`` — whole words, case-insensitive
- ``regex``: ``{"pattern": "..."}`` — Python regex, case-insensitive, searched with a length cap
- ``link_limit``: ``{"max": N}`` — at most N links
- ``mention_limit``: ``{"max": N}`` — at most N @mentions
- ``caps_ratio``: ``{"ratio": 0.7, "min_length": 10}`` — share of upper-case letters
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.chat.models import AutomodRule
from portal.core.errors import BadRequest, NotFound

_LINK = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_.-]{2,32}")
_MAX_PATTERN = 200
_MAX_WORDS = 500


@dataclass(frozen=True)
class AutomodHit:
    rule: AutomodRule
    reason: str


def validate_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Normalise a rule's config or raise BadRequest naming the problem."""
    try:
        if kind == "blocked_words":
            words = config.get("words")
            if not isinstance(words, list) or not words or len(words) > _MAX_WORDS:
                raise ValueError(f"config.words must be a list of 1-{_MAX_WORDS} words")
            cleaned = sorted({str(w).strip().lower() for w in words if str(w).strip()})
            if not cleaned or any(len(w) > 100 for w in cleaned):
                raise ValueError("config.words must hold words of 1-100 characters")
            return {"words": cleaned}
        if kind == "regex":
            pattern = config.get("pattern")
            if not isinstance(pattern, str) or not pattern or len(pattern) > _MAX_PATTERN:
                raise ValueError(f"config.pattern must be a regex of 1-{_MAX_PATTERN} characters")
            re.compile(pattern)
            return {"pattern": pattern}
        if kind in ("link_limit", "mention_limit"):
            limit = config.get("max")
            if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 100:
                raise ValueError("config.max must be an integer from 0 to 100")
            return {"max": limit}
        if kind == "caps_ratio":
            ratio = config.get("ratio", 0.7)
            min_length = config.get("min_length", 10)
            if not isinstance(ratio, int | float) or not 0 < float(ratio) <= 1:
                raise ValueError("config.ratio must be a number in (0, 1]")
            if not isinstance(min_length, int) or not 1 <= min_length <= 4000:
                raise ValueError("config.min_length must be an integer from 1 to 4000")
            return {"ratio": float(ratio), "min_length": min_length}
    except re.error as exc:
        raise BadRequest(f"Invalid regex: {exc}", field="config.pattern") from exc
    except ValueError as exc:
        raise BadRequest(str(exc), field="config") from exc
    raise BadRequest("Unknown rule kind", field="kind")


def check_rule(rule: AutomodRule, text: str) -> str | None:
    """The reason the rule fires on ``text``, or None."""
    config = json.loads(rule.config)
    if rule.kind == "blocked_words":
        lowered = text.lower()
        for word in config["words"]:
            if re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", lowered):
                return "blocked word"
    elif rule.kind == "regex":
        if re.search(config["pattern"], text[:4000], re.IGNORECASE):
            return "matched a blocked pattern"
    elif rule.kind == "link_limit":
        if len(_LINK.findall(text)) > config["max"]:
            return f"more than {config['max']} links"
    elif rule.kind == "mention_limit":
        if len(_MENTION.findall(text)) > config["max"]:
            return f"more than {config['max']} mentions"
    elif rule.kind == "caps_ratio":
        letters = [c for c in text if c.isalpha()]
        if len(letters) >= config["min_length"]:
            upper = sum(1 for c in letters if c.isupper())
            if upper / len(letters) >= config["ratio"]:
                return "too many capital letters"
    return None


async def evaluate(session: AsyncSession, text: str) -> AutomodHit | None:
    rules = (
        await session.scalars(select(AutomodRule).where(AutomodRule.enabled.is_(True)).order_by(AutomodRule.id))
    ).all()
    for rule in rules:
        reason = check_rule(rule, text)
        if reason:
            return AutomodHit(rule, reason)
    return None


async def list_rules(session: AsyncSession) -> list[AutomodRule]:
    return list((await session.scalars(select(AutomodRule).order_by(AutomodRule.id).limit(500))).all())


async def get_rule(session: AsyncSession, rule_id: int) -> AutomodRule:
    rule = await session.get(AutomodRule, rule_id)
    if rule is None:
        raise NotFound("Rule not found")
    return rule
