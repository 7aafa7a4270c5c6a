from tests.accounts.support import admin, member, moderator

__all__ = ["admin", "member", "moderator"]
