"""Login, the JWT registry, registration, invite codes, API keys and 2FA routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import api_keys, invites, totp
from portal.accounts import service as accounts
from portal.accounts.deps import authenticator, ip_of, require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.accounts.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    BackupCodes,
    InviteCode,
    LoginRequest,
    PublicUser,
    RegisterRequest,
    RegisterResponse,
    RevokeTokenRequest,
    Success,
    TokenInfo,
    TokenList,
    TokenResponse,
    TwoFactorCode,
    TwoFactorSetup,
    TwoFactorStatus,
)
from portal.activity.service import record_activity
from portal.core.db import MAX_ID, get_session

router = APIRouter(tags=["accounts"])
Session = Annotated[AsyncSession, Depends(get_session)]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID)]


def public_user(user: accounts.User) -> PublicUser:
    role = Role(user.role)
    return PublicUser(id=user.id, username=user.username, role=role, is_admin=role.at_least(Role.ADMIN))


@router.post("/api/token", response_model=TokenResponse)
async def login(body: LoginRequest, request: Request, session: Session) -> TokenResponse:
    """Exchange username, password (and a 2FA code once enabled) for a JWT."""
    issued = await accounts.check_login(
        session,
        authenticator(request),
        request.app.state.login_policy,
        username=body.username,
        password=body.password,
        totp_code=body.totp_code,
        ip=ip_of(request),
        user_agent=request.headers.get("user-agent"),
    )
    return TokenResponse(
        token=issued.token, token_id=issued.token_id, expires_at=issued.expires_at, user=public_user(issued.user)
    )


@router.get("/api/tokens", response_model=TokenList)
async def list_tokens(
    principal: Annotated[Principal, Depends(require_scope("tokens:read"))], session: Session
) -> TokenList:
    rows = await accounts.list_active_tokens(session, principal.user_id)
    return TokenList(
        tokens=[
            TokenInfo(
                token_id=t.id,
                kind=t.kind,
                created_at=t.created_at,
                last_used_at=t.last_used_at,
                expires_at=t.expires_at,
                current=t.id == principal.token_id,
            )
            for t in rows
        ]
    )


@router.post("/api/token/revoke", response_model=Success)
async def revoke_token(
    body: RevokeTokenRequest,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("tokens:write"))],
    session: Session,
) -> Success:
    await accounts.do_revoke_token(session, authenticator(request), principal.user_id, body.token_id)
    return Success()


@router.post("/api/register", response_model=RegisterResponse, status_code=201)
async def register(body: RegisterRequest, request: Request, session: Session) -> RegisterResponse:
    """Create an account with today's invite code (one account per IP per 24 hours)."""
    user = await accounts.check_register(
        session,
        authenticator(request),
        username=body.username,
        password=body.password,
        invite_code=body.invite_code,
        ip=ip_of(request),
        per_day=request.app.state.settings.registrations_per_ip_per_day,
    )
    return RegisterResponse(id=user.id, username=user.username)


@router.get("/api/invite-code", response_model=InviteCode)
async def invite_code(
    request: Request, _: Annotated[Principal, Depends(require_scope("users:read", Role.ADMIN))]
) -> InviteCode:
    code, expires_at = invites.todays_invite(authenticator(request).keyring)
    return InviteCode(invite_code=code, expires_at=expires_at)


# -- API keys ------------------------------------------------------------------------------------
def _key_out(key: api_keys.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        scopes=key.scopes,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked=key.revoked_at is not None,
        revoked_at=key.revoked_at,
    )


@router.post("/api/api-keys", response_model=ApiKeyCreated, status_code=201)
async def create_api_key(
    body: ApiKeyCreate,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("keys:write"))],
    session: Session,
) -> ApiKeyCreated:
    """The full key is in this response only; it is stored as a hash."""
    created = await api_keys.check_create_key(
        session, authenticator(request), principal, body.name, body.scopes, body.expires_in_days
    )
    row = created.row
    return ApiKeyCreated(
        id=row.id,
        name=row.name,
        api_key=created.key,
        key_prefix=row.key_prefix,
        scopes=row.scopes,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


@router.get("/api/api-keys", response_model=ApiKeyList)
async def list_api_keys(
    principal: Annotated[Principal, Depends(require_scope("keys:read"))], session: Session
) -> ApiKeyList:
    return ApiKeyList(api_keys=[_key_out(k) for k in await api_keys.list_keys(session, principal.user_id)])


@router.post("/api/api-keys/{key_id}/revoke", response_model=ApiKeyOut)
async def revoke_api_key(
    key_id: KeyId,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("keys:write"))],
    session: Session,
) -> ApiKeyOut:
    return _key_out(await api_keys.do_revoke_key(session, authenticator(request), principal, key_id))


@router.delete("/api/api-keys/{key_id}", response_model=Success)
async def delete_api_key(
    key_id: KeyId,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("keys:write"))],
    session: Session,
) -> Success:
    await api_keys.do_delete_key(session, authenticator(request), principal, key_id)
    return Success()


# -- two-factor authentication ------------------------------------------------------------------
@router.get("/api/user/2fa/status", response_model=TwoFactorStatus)
async def two_factor_status(
    principal: Annotated[Principal, Depends(require_scope("profile:read"))], session: Session
) -> TwoFactorStatus:
    user = await accounts.get_user(session, principal.user_id)
    remaining = await totp.backup_codes_remaining(session, user.id) if user.totp_enabled else 0
    return TwoFactorStatus(enabled=user.totp_enabled, backup_codes_remaining=remaining)


@router.post("/api/user/2fa/setup", response_model=TwoFactorSetup)
async def two_factor_setup(
    request: Request, principal: Annotated[Principal, Depends(require_scope("profile:write"))], session: Session
) -> TwoFactorSetup:
    """A new secret, pending until a code from it is verified."""
    user = await accounts.get_user(session, principal.user_id)
    secret = await totp.begin_setup(session, authenticator(request).keyring, user)
    await session.commit()
    uri = totp.provisioning_uri(secret, user.username)
    return TwoFactorSetup(secret=secret, provisioning_uri=uri, qr_svg=totp.qr_svg(uri))


@router.post("/api/user/2fa/verify", response_model=BackupCodes)
async def two_factor_verify(
    body: TwoFactorCode,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("profile:write"))],
    session: Session,
) -> BackupCodes:
    authn = authenticator(request)
    user = await accounts.get_user(session, principal.user_id)
    codes = await totp.do_enable(session, authn.keyring, user, body.code)
    record_activity(
        session, "2fa_enabled", user_id=user.id, username=user.username, details="2FA enabled", ip=ip_of(request)
    )
    await session.commit()
    await authn.invalidate_user(user.id)
    return BackupCodes(backup_codes=codes)


@router.post("/api/user/2fa/disable", response_model=TwoFactorStatus)
async def two_factor_disable(
    body: TwoFactorCode,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("profile:write"))],
    session: Session,
) -> TwoFactorStatus:
    authn = authenticator(request)
    user = await accounts.get_user(session, principal.user_id)
    await totp.do_disable(session, authn.keyring, user, body.code)
    record_activity(
        session, "2fa_disabled", user_id=user.id, username=user.username, details="2FA disabled", ip=ip_of(request)
    )
    await session.commit()
    await authn.invalidate_user(user.id)
    return TwoFactorStatus(enabled=False, backup_codes_remaining=0)
