"""Two-factor authentication: setup, verify, login with TOTP (no replay), backup codes, disable.

Codes are computed with tests/totp_ref.py, independently of the server's TOTP library.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.accounts.support import assert_error, code_at, get_me, http, login, random_ip, settled_step, wrong_code
from tests.conftest import UserClient

MakeUser = Callable[..., UserClient]
BASE32 = re.compile(r"^[A-Z2-7]{32}$")


def status(user: UserClient) -> dict[str, Any]:
    resp = user.get("/api/user/2fa/status")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def setup(user: UserClient) -> dict[str, Any]:
    resp = user.post("/api/user/2fa/setup")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def enable(user: UserClient) -> tuple[str, list[str], int]:
    """Turn 2FA on with the code of the previous step; returns (secret, backup codes, current step)."""
    secret = setup(user)["secret"]
    step = settled_step()
    resp = user.post("/api/user/2fa/verify", json={"code": code_at(secret, step - 1)})
    assert resp.status_code == 200, resp.text
    return secret, resp.json()["backup_codes"], step


def test_status_of_a_user_without_2fa(member: UserClient) -> None:
    assert status(member) == {"enabled": False, "backup_codes_remaining": 0}


def test_setup_then_verify(make_user: MakeUser) -> None:
    user = make_user()
    assert_error(user.post("/api/user/2fa/verify", json={"code": "123456"}), 400, "Start 2FA setup first")
    assert_error(user.post("/api/user/2fa/disable", json={"code": "123456"}), 400, "2FA is not enabled")

    body = setup(user)
    assert set(body) == {"secret", "provisioning_uri", "qr_svg"}
    secret = body["secret"]
    assert BASE32.match(secret), secret
    assert len(base64.b32decode(secret)) * 8 >= 160

    uri = body["provisioning_uri"]
    assert uri.startswith("otpauth://totp/")
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert user.username in unquote(parts.path)
    assert query.get("issuer") == ["Portal"]

    assert "<svg" in body["qr_svg"] and "</svg>" in body["qr_svg"]
    # Pending until verified: nothing changes for login or status yet.
    assert status(user) == {"enabled": False, "backup_codes_remaining": 0}
    # A second setup starts over with a new secret; the first one is void.
    first = secret
    secret = setup(user)["secret"]
    assert secret != first
    step = settled_step()
    assert_error(user.post("/api/user/2fa/verify", json={"code": code_at(first, step)}), 400, field="code")
    assert_error(user.post("/api/user/2fa/verify", json={"code": wrong_code(secret, step)}), 400, field="code")
    for bad in ({}, {"code": 123456}, {"code": "12345"}, {"code": "1" * 33}):
        assert_error(user.post("/api/user/2fa/verify", json=bad), 400, field="code")
    assert status(user)["enabled"] is False


def test_enable_login_replay_backup_codes_and_disable(base_url: str, make_user: MakeUser) -> None:
    user = make_user()
    secret, backup_codes, step = enable(user)
    assert len(backup_codes) == 10 and len(set(backup_codes)) == 10
    assert all(isinstance(c, str) and len(c) >= 8 for c in backup_codes)
    assert status(user) == {"enabled": True, "backup_codes_remaining": 10}
    assert user.get("/api/me").json()["totp_enabled"] is True
    assert user.get("/api/me").status_code == 200  # the session that enabled 2FA stays signed in
    assert_error(user.post("/api/user/2fa/setup"), 409, contains="already enabled")
    assert_error(user.post("/api/user/2fa/verify", json={"code": code_at(secret, step)}), 409)

    # The password alone is no longer enough; the answer says a code is needed.
    no_code = login(base_url, user.username, user.password)
    body = assert_error(no_code, 401, "2FA code required")
    assert body["totp_required"] is True and "token" not in body
    wrong = login(base_url, user.username, user.password, ip=random_ip(), totp_code=wrong_code(secret, step))
    body = assert_error(wrong, 401, "Invalid 2FA code")
    assert body["totp_required"] is True
    # A right code with a wrong password reveals nothing about 2FA.
    body = assert_error(
        login(base_url, user.username, "wrong-password", ip=random_ip(), totp_code=code_at(secret, step)), 401
    )
    assert body == {"error": "Invalid username or password", "status": 401}

    ok = login(base_url, user.username, user.password, totp_code=code_at(secret, step))
    assert ok.status_code == 200, ok.text
    assert get_me(base_url, ok.json()["token"]).status_code == 200
    # The same code again in its 30 s step is a replay; an older step is no better.
    replay = login(base_url, user.username, user.password, ip=random_ip(), totp_code=code_at(secret, step))
    assert_error(replay, 401, "Invalid 2FA code")
    older = login(base_url, user.username, user.password, ip=random_ip(), totp_code=code_at(secret, step - 1))
    assert_error(older, 401, "Invalid 2FA code")

    # A backup code works once, in any case and with or without its dash.
    first = backup_codes[0]
    ok = login(base_url, user.username, user.password, totp_code=first.upper())
    assert ok.status_code == 200, ok.text
    again = login(base_url, user.username, user.password, ip=random_ip(), totp_code=first)
    assert_error(again, 401, "Invalid 2FA code")
    assert status(user) == {"enabled": True, "backup_codes_remaining": 9}

    # Disabling needs a valid code too.
    assert_error(user.post("/api/user/2fa/disable", json={"code": wrong_code(secret, step)}), 400, field="code")
    assert_error(user.post("/api/user/2fa/disable", json={}), 400, field="code")
    assert status(user)["enabled"] is True
    resp = user.post("/api/user/2fa/disable", json={"code": code_at(secret, step + 1)})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"enabled": False, "backup_codes_remaining": 0}
    assert status(user) == {"enabled": False, "backup_codes_remaining": 0}
    assert user.get("/api/me").json()["totp_enabled"] is False

    # Back to password-only login; old backup codes mean nothing now.
    plain = login(base_url, user.username, user.password)
    assert plain.status_code == 200, plain.text
    assert_error(user.post("/api/user/2fa/disable", json={"code": backup_codes[1]}), 400, "2FA is not enabled")


def test_a_backup_code_can_disable_2fa(base_url: str, make_user: MakeUser) -> None:
    user = make_user()
    _secret, backup_codes, _step = enable(user)
    resp = user.post("/api/user/2fa/disable", json={"code": backup_codes[3]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"enabled": False, "backup_codes_remaining": 0}
    assert status(user)["enabled"] is False


def test_2fa_routes_need_authentication(base_url: str) -> None:
    assert_error(http.get(base_url + "/api/user/2fa/status"), 401, "Authentication required")
    assert_error(http.post(base_url + "/api/user/2fa/setup"), 401, "Authentication required")
    assert_error(http.post(base_url + "/api/user/2fa/verify", json={"code": "123456"}), 401)
    assert_error(http.post(base_url + "/api/user/2fa/disable", json={"code": "123456"}), 401)
