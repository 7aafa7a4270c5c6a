"""The first superadmin: from ``PORTAL_BOOTSTRAP_ADMIN`` or a password printed once."""

from __future__ import annotations

import logging

from portal.accounts import service as accounts
from portal.accounts.roles import Role
from portal.config import Settings
from portal.core.db import Database
from portal.core.errors import Conflict

log = logging.getLogger("portal.bootstrap")


async def ensure_first_admin(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        if await accounts.count_users(session) > 0:
            return
        if settings.bootstrap_admin and ":" in settings.bootstrap_admin:
            username, password = settings.bootstrap_admin.split(":", 1)
            announce = False
        else:
            username, password = "admin", accounts.generate_password()
            announce = True
        try:
            await accounts.do_create_user(session, username, password, Role.SUPERADMIN)
            await session.commit()
        except Conflict:
            return  # another process created it first
    if announce:
        banner = f"First start: superadmin '{username}' created with password: {password}"
        print("\n" + "=" * len(banner) + "\n" + banner + "\n" + "=" * len(banner) + "\n", flush=True)
    log.info("created superadmin %s", username)
