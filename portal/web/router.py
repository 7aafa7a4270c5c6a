"""Page routes: login/logout/register forms, the dashboard shell, profile, API keys, chat, admin users.

Pages are shells; their data comes from the JSON API through ``static/js``. The web login sets an
HttpOnly ``SameSite=Lax`` session cookie holding a registered JWT, plus a readable CSRF cookie
that the page scripts echo in ``X-CSRF-Token``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from portal import __version__
from portal.accounts import service as accounts
from portal.accounts.authn import CSRF_COOKIE, SESSION_COOKIE
from portal.accounts.deps import authenticator, ip_of
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.accounts.schemas import LoginRequest
from portal.config import Settings
from portal.core.db import get_session
from portal.core.errors import Forbidden
from portal.core.origin import origin_allowed
from portal.web.nav import nav_for

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
Session = Annotated[AsyncSession, Depends(get_session)]

# npm package -> the directories of it the pages load (empty: the whole package). Mounting only
# what pages use keeps package metadata, sources and tests off the web.
VENDOR_PACKAGES: dict[str, tuple[str, ...]] = {
    "swagger-ui-dist": (),
    "@xterm/xterm": ("lib", "css"),
    "@xterm/addon-fit": ("lib",),
    "@novnc/novnc": ("core", "vendor"),
    "hls.js": (),
}


async def page_principal(request: Request) -> Principal | None:
    """The signed-in user of a page request (cookie session only), or None."""
    state = request.scope.setdefault("state", {})
    result = state.get("auth")
    if result is None and "auth" not in state:
        result = state["auth"] = await authenticator(request).resolve(request.scope)
    if isinstance(result, Principal) and result.via == "cookie":
        return result
    return None


def render(
    request: Request, template: str, principal: Principal | None, active: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        status_code=status_code,
        context={
            "user": principal.user if principal else None,
            "is_admin": bool(principal and principal.role.at_least(Role.ADMIN)),
            "nav": nav_for(principal.role) if principal else [],
            "active": active,
            "version": __version__,
            **context,
        },
    )


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _secure_cookies(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return request.url.scheme == "https"


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard" if await page_principal(request) else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await page_principal(request):
        return RedirectResponse("/dashboard", status_code=303)
    return render(request, "login.html", None, "login")


@router.post("/login")
async def login_submit(body: LoginRequest, request: Request, session: Session) -> Response:
    """The web login: like ``POST /api/token`` but answered with session cookies."""
    if not origin_allowed(request.scope, request.app.state.allowed_origins):
        raise Forbidden("Cross-origin login refused")
    authn = authenticator(request)
    issued = await accounts.check_login(
        session,
        authn,
        request.app.state.login_policy,
        username=body.username,
        password=body.password,
        totp_code=body.totp_code or None,
        ip=ip_of(request),
        user_agent=request.headers.get("user-agent"),
        kind="web",
    )
    response = JSONResponse({"success": True, "redirect": "/dashboard", "expires_at": issued.expires_at.isoformat()})
    max_age = int(authn.jwt_ttl.total_seconds())
    secure = _secure_cookies(request)
    response.set_cookie(
        SESSION_COOKIE, issued.token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )
    response.set_cookie(
        CSRF_COOKIE,
        authn.csrf_token(issued.token_id),
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    """A confirmation page: signing out takes a POST, so another site cannot log users out with a link."""
    principal = await page_principal(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html", principal, "logout")


@router.post("/logout")
async def logout(request: Request, session: Session) -> Response:
    """Revoke the session. Cross-site POSTs carry no session cookie (SameSite=Lax), so no CSRF token is needed."""
    principal = await page_principal(request)
    if principal is not None and principal.token_id:
        try:
            await accounts.do_revoke_token(session, authenticator(request), principal.user_id, principal.token_id)
        except Exception:  # noqa: S110 - already revoked or gone: the cookies go anyway
            pass
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/register")
async def register_page(request: Request) -> Response:
    return render(request, "register.html", None, "register")


def page_view(template: str, active: str, minimum: Role = Role.USER, **context: Any) -> Any:
    """A GET route rendering ``template`` for signed-in users of at least ``minimum`` (others go to /login)."""

    async def view(request: Request) -> Response:
        principal = await page_principal(request)
        if principal is None:
            return _login_redirect(request)
        if not principal.role.at_least(minimum):
            return render(request, "forbidden.html", principal, active, status_code=403)
        return render(request, template, principal, active, **context)

    return view


router.add_api_route("/dashboard", page_view("dashboard.html", "dashboard"), methods=["GET"])
router.add_api_route("/profile", page_view("profile.html", "profile"), methods=["GET"])
router.add_api_route("/keys", page_view("api_keys.html", "keys"), methods=["GET"])
router.add_api_route("/chat", page_view("chat.html", "chat"), methods=["GET"])
router.add_api_route("/admin/users", page_view("admin_users.html", "admin", Role.ADMIN), methods=["GET"])


@router.get("/docs")
async def api_docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Open Relay Portal API",
        swagger_js_url="/static/vendor/swagger-ui-dist/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui-dist/swagger-ui.css",
        swagger_favicon_url="/static/img/favicon.svg",
    )


def vendor_dir(settings: Settings) -> Path:
    """Browser libraries installed from npm (``make`` runs ``npm ci``); never copied into the repo."""
    candidates = [
        settings.data_dir.parent / "node_modules",
        Path.cwd() / "node_modules",
        HERE.parents[1] / "node_modules",
    ]
    return next((c for c in candidates if c.is_dir()), candidates[-1])


def mount_static(app: FastAPI, settings: Settings) -> None:
    # ES modules load only with a JavaScript MIME type (nosniff); not every system maps .mjs.
    mimetypes.add_type("text/javascript", ".mjs")
    mimetypes.add_type("text/javascript", ".js")
    modules = vendor_dir(settings)
    for package, parts in VENDOR_PACKAGES.items():
        for part in parts or ("",):
            path = modules / package / part if part else modules / package
            if path.is_dir():
                url = f"/static/vendor/{package}/{part}".rstrip("/")
                app.mount(url, StaticFiles(directory=str(path)), name=f"vendor-{package}-{part}".rstrip("-"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
