"""Users blocking users: the blocker never receives the blocked user's messages (chat and DMs)."""
