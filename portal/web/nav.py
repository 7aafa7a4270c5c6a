"""The dashboard navigation. Each domain adds its tab here when it ships its pages."""

from __future__ import annotations

from dataclasses import dataclass

from portal.accounts.roles import Role


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    href: str
    min_role: Role = Role.USER
    available: bool = True


NAV: list[NavItem] = [
    NavItem("dashboard", "Dashboard", "/dashboard"),
    NavItem("connections", "Connections", "/connections"),
    NavItem("streams", "Streams", "/streams", available=False),
    NavItem("chat", "Chat", "/chat"),
    NavItem("admin", "Admin", "/admin/users", min_role=Role.ADMIN),
]


def nav_for(role: Role) -> list[NavItem]:
    return [item for item in NAV if role.at_least(item.min_role)]
