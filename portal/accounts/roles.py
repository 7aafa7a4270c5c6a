"""The role ladder: superadmin > admin > moderator > user."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"
    SUPERADMIN = "superadmin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.USER: 0, Role.MODERATOR: 1, Role.ADMIN: 2, Role.SUPERADMIN: 3}


def is_admin(role: str) -> bool:
    return Role(role).at_least(Role.ADMIN)
