"""``portal serve | migrate | users create | invite-code``."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer

from portal.accounts.roles import Role
from portal.config import Settings

app = typer.Typer(help="Open Relay Portal", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="Manage user accounts", no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first")] = True,
    workers: Annotated[int, typer.Option(help="Worker processes (needs PostgreSQL + Redis above 1)")] = 1,
) -> None:
    """Start the portal."""
    import uvicorn

    from portal import migrate as migrations

    settings = Settings()
    if workers > 1 and not settings.redis_url:
        raise typer.BadParameter(
            "several workers share sessions, rate limits and events only through Redis: set PORTAL_REDIS_URL"
        )
    if migrate:
        migrations.upgrade(settings)
    bind_host, bind_port = host or settings.host, port or settings.port
    print(f"Open Relay Portal on http://{bind_host}:{bind_port}  (data: {settings.data_dir.resolve()})", flush=True)
    uvicorn.run(
        "portal.asgi:app",
        host=bind_host,
        port=bind_port,
        workers=workers,
        factory=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        log_level=settings.log_level,
        server_header=False,
        ws_max_size=1024 * 1024,
        # uvicorn's sans-I/O protocol plus direct writes of pre-encoded frames for chat fan-out;
        # no permessage-deflate (per-connection compressor state: no encode-once, tens of KB each)
        ws="portal.core.ws_protocol:PortalWebSocketProtocol",
        ws_per_message_deflate=False,
    )


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest revision."""
    from portal import migrate as migrations

    migrations.upgrade(Settings())
    typer.echo("database is up to date")


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="Role of the new user")] = Role.USER,
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted)")] = None,
) -> None:
    """Create a user account."""
    from portal import migrate as migrations
    from portal.accounts import service as accounts
    from portal.core.db import Database

    settings = Settings()
    migrations.upgrade(settings)
    secret = password or getpass.getpass("Password: ")
    if len(secret) < 8:
        raise typer.BadParameter("password must be at least 8 characters")

    async def run() -> int:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                user = await accounts.do_create_user(session, username, secret, role)
                await session.commit()
                return user.id
        finally:
            await db.dispose()

    user_id = asyncio.run(run())
    typer.echo(f"created {role.value} '{username.lower()}' (id {user_id})")


@app.command("invite-code")
def invite_code() -> None:
    """Print today's registration invite code."""
    from portal.accounts.invites import todays_invite
    from portal.core.crypto import Keyring, load_master_keys

    settings = Settings()
    code, expires = todays_invite(Keyring(load_master_keys(settings.secret_key, settings.data_dir)))
    typer.echo(f"{code}  (valid until {expires.isoformat()})")
