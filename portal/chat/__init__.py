"""Community chat: channels, members, messages, reactions, pins, polls, moderation, automod, /ws/chat."""
