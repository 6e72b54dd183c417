"""Portal sign-in over real HTTP: cookies, lockout, rate limit, CSRF, logout, password reset, hashing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.app import create_app
from malipo.config import Settings
from malipo.core import crypto
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.email.models import MailMessage
from malipo.email.service import list_mail
from malipo.identity import sessions
from malipo.identity.models import PasswordResetToken, PortalUser
from malipo.seed import DemoCredentials, seed_demo

T = TypeVar("T")

LOGIN = "/api/v1/account/login"
LOGOUT = "/api/v1/account/logout"
FORGOT = "/api/v1/account/forgot-password"
RESET = "/api/v1/account/reset-password"
CLIENTS = "/api/v1/clients"
SANDBOX_KEYS = "/api/v1/sandbox/api-keys"

THIRTY_DAYS = 30 * 24 * 3600
NEW_PASSWORD = "Fresh-Correct-Horse-9137"
NINE_CHARACTERS = "Nine-ch4r"
UNKNOWN_EMAIL = "nobody-here@malipo.example"


# -- plumbing ----------------------------------------------------------------------------


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` against the test's database, on an event loop of its own (the tests are sync)."""

    async def run() -> T:
        db = Database.from_url(settings.resolved_database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _in_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction of the test's database."""

    async def run(db: Database) -> T:
        async with db.transaction() as session:
            return await work(session)

    return _with_db(settings, run)


@dataclass
class Gateway:
    url: str
    demo: DemoCredentials
    clock: FrozenClock
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def _serve(settings: Settings, clock: FrozenClock, live_server: Any) -> Gateway:
    """The demo seeded into this test's database, then a fresh app (empty login limiter) serving it."""
    demo = _with_db(settings, lambda db: seed_demo(db, clock))
    server = live_server(create_app(settings, clock=clock))
    return Gateway(server.url, demo, clock, settings)


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its lowest cost: the production cost (~0.5 s a hash here) would make these tests
    crawl, and nothing they check depends on it. The storage test below keeps the real hasher."""
    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    monkeypatch.setattr(crypto, "_hasher", cheap)
    monkeypatch.setattr(sessions, "_DUMMY_HASH", cheap.hash("checked against for unknown emails"))


@pytest.fixture
def gateway(cheap_argon2: None, settings: Settings, clock: FrozenClock, live_server: Any) -> Gateway:
    return _serve(settings, clock, live_server)


@pytest.fixture
def real_gateway(settings: Settings, clock: FrozenClock, live_server: Any) -> Gateway:
    """As ``gateway``, with the production Argon2 parameters."""
    return _serve(settings, clock, live_server)


@pytest.fixture
def sqlite_only(databases: Any) -> None:
    """Skip on other backends before a database is made for the test."""
    if databases.backend != "sqlite":
        pytest.skip("reads the SQLite database file's bytes")


def _login(
    http: httpx.Client, email: str, password: str, *, remember_me: bool | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"username": email, "password": password}
    if remember_me is not None:
        body["rememberMe"] = remember_me
    return http.post(LOGIN, json=body)


def _set_cookies(reply: httpx.Response) -> dict[str, tuple[str, dict[str, str]]]:
    """Each Set-Cookie of ``reply`` by name: its value and its attributes (lower-case names)."""
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for header in reply.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        attributes = {}
        for part in rest:
            key, _, attr_value = part.partition("=")
            attributes[key.strip().lower()] = attr_value.strip()
        found[name] = (value, attributes)
    return found


def _session_token(reply: httpx.Response) -> str:
    return _set_cookies(reply)["malipo_session"][0]


def _with_cookie(gateway: Gateway, token: str) -> httpx.Response:
    """GET an operator route with nothing but the given session cookie (no jar, no CSRF token)."""
    return httpx.get(f"{gateway.url}{CLIENTS}", headers={"Cookie": f"malipo_session={token}"}, timeout=30)


def _mails(settings: Settings, to: str, purpose: str) -> list[MailMessage]:
    async def work(session: AsyncSession) -> list[MailMessage]:
        return [m for m in await list_mail(session, to=to) if m.purpose == purpose]

    return _in_db(settings, work)


def _emailed_reset_token(gateway: Gateway, email: str) -> str:
    """Ask for a reset of ``email`` and read the token from the newest reset mail it queued."""
    with gateway.client() as http:
        assert http.post(FORGOT, json={"email": email}).status_code == 202
    newest = _mails(gateway.settings, email, "password_reset")[0]
    match = re.search(r"reset code: (\S+)", newest.text_body)
    assert match, newest.text_body
    return match.group(1)


def _reset(http: httpx.Client, email: str, token: str, new_password: str) -> httpx.Response:
    return http.post(RESET, json={"email": email, "token": token, "newPassword": new_password})


# -- sign-in -----------------------------------------------------------------------------


def test_login_sets_httponly_lax_session_cookie_for_the_browser_session_or_30_days_and_lists_roles(
    gateway: Gateway,
) -> None:
    demo = gateway.demo
    with gateway.client() as http:
        reply = _login(http, demo.operator_email, demo.operator_password)
    assert reply.status_code == 200, reply.text
    cookies = _set_cookies(reply)
    token, session_attrs = cookies["malipo_session"]
    csrf, csrf_attrs = cookies["malipo_csrf"]
    assert token
    assert "httponly" in session_attrs
    assert session_attrs.get("samesite", "").lower() == "lax"
    assert "secure" not in session_attrs, "no Secure on plain-HTTP loopback"
    for attrs in (session_attrs, csrf_attrs):
        assert "max-age" not in attrs, "without rememberMe the cookie ends with the browser session"
        assert "expires" not in attrs
    assert "httponly" not in csrf_attrs, "the page's script must read the CSRF cookie"
    body = reply.json()
    assert body["roles"] == ["SuperAdmin"]
    assert body["email"] == demo.operator_email
    assert body["clientId"] is None
    assert body["csrfToken"] == csrf

    with gateway.client() as http:
        remembered = _login(http, demo.operator_email, demo.operator_password, remember_me=True)
    assert remembered.status_code == 200, remembered.text
    cookies = _set_cookies(remembered)
    token_30d, session_attrs = cookies["malipo_session"]
    assert token_30d != token
    assert "httponly" in session_attrs
    assert session_attrs.get("samesite", "").lower() == "lax"
    assert "secure" not in session_attrs
    assert abs(int(session_attrs["max-age"]) - THIRTY_DAYS) <= 60
    assert abs(int(cookies["malipo_csrf"][1]["max-age"]) - THIRTY_DAYS) <= 60
    assert remembered.json()["csrfToken"] == cookies["malipo_csrf"][0]

    with gateway.client() as http:
        merchant = _login(http, demo.merchant_admin_email, demo.merchant_admin_password)
    assert merchant.status_code == 200, merchant.text
    assert merchant.json()["roles"] == ["ClientAdmin"]
    assert merchant.json()["clientId"] == demo.merchant_id


def test_wrong_password_and_unknown_email_get_the_same_401(gateway: Gateway) -> None:
    with gateway.client() as http:
        wrong = _login(http, gateway.demo.operator_email, "not-the-password-at-all")
        unknown = _login(http, UNKNOWN_EMAIL, "not-the-password-at-all")
    assert wrong.status_code == unknown.status_code == 401
    assert "malipo_session" not in _set_cookies(wrong)

    def comparable(reply: httpx.Response) -> dict[str, Any]:
        problem = reply.json()
        return {k: problem.get(k) for k in ("type", "title", "status", "detail", "code", "errors")}

    assert comparable(wrong) == comparable(unknown)
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


def test_five_failures_lock_the_account_for_15_minutes_even_against_the_right_password(
    gateway: Gateway,
) -> None:
    demo = gateway.demo
    with gateway.client() as http:
        for attempt in range(5):
            reply = _login(http, demo.operator_email, f"wrong-password-{attempt}")
            assert reply.status_code == 401, (attempt, reply.text)
        locked = _login(http, demo.operator_email, demo.operator_password)
        assert locked.status_code == 403, locked.text
        assert locked.json()["code"] == "account_locked"
        assert "malipo_session" not in _set_cookies(locked)

        gateway.clock.advance(timedelta(minutes=14, seconds=59))
        still = _login(http, demo.operator_email, demo.operator_password)
        assert still.status_code == 403, still.text
        assert still.json()["code"] == "account_locked"

        gateway.clock.advance(timedelta(seconds=2))  # 15 min + 1 s after the fifth failure
        unlocked = _login(http, demo.operator_email, demo.operator_password)
        assert unlocked.status_code == 200, unlocked.text
        assert unlocked.json()["roles"] == ["SuperAdmin"]


def test_21_rapid_attempts_from_one_address_get_429_with_retry_after(gateway: Gateway) -> None:
    with gateway.client() as http:
        for attempt in range(20):
            reply = _login(http, UNKNOWN_EMAIL, "wrong-password")
            assert reply.status_code == 401, (attempt, reply.text)
        limited = _login(http, UNKNOWN_EMAIL, "wrong-password")
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0
        # The limit is checked before the credentials: even the right password waits.
        right = _login(http, gateway.demo.operator_email, gateway.demo.operator_password)
        assert right.status_code == 429
        assert "malipo_session" not in _set_cookies(right)


# -- CSRF and logout ---------------------------------------------------------------------


def test_cookie_session_needs_the_csrf_token_on_unsafe_methods_but_bearer_does_not(
    gateway: Gateway,
) -> None:
    demo = gateway.demo
    body = {"apiUserId": demo.api_user_id, "description": "csrf test"}
    with gateway.client() as http:
        signed = _login(http, demo.operator_email, demo.operator_password)
        assert signed.status_code == 200, signed.text
        csrf = signed.json()["csrfToken"]
        assert http.cookies.get("malipo_csrf") == csrf

        missing = http.post(SANDBOX_KEYS, json=body)
        assert missing.status_code == 403, missing.text
        assert "CSRF" in missing.json()["detail"]

        wrong = http.post(SANDBOX_KEYS, json=body, headers={"X-CSRF-Token": csrf[::-1] + "x"})
        assert wrong.status_code == 403, wrong.text
        assert "CSRF" in wrong.json()["detail"]

        assert http.get(SANDBOX_KEYS).status_code == 200, "a GET needs no token"
        assert http.get(CLIENTS).status_code == 200

        right = http.post(SANDBOX_KEYS, json=body, headers={"X-CSRF-Token": csrf})
        assert right.status_code == 201, right.text
        assert right.json()["apiKey"].startswith("mk_test_")

    bearer = httpx.post(
        f"{gateway.url}{SANDBOX_KEYS}",
        json=body,
        headers={"Authorization": f"Bearer {demo.sandbox_api_key}"},
        timeout=30,
    )
    assert bearer.status_code == 201, bearer.text
    assert bearer.json()["apiKey"].startswith("mk_test_")

    with gateway.client() as http:
        registered = http.post(
            CLIENTS,
            json={
                "clientType": "Company",
                "name": "Pending Traders Ltd",
                "phoneNumber": "+254711000111",
                "emailAddress": "owner@pending-traders.example",
            },
        )
        assert registered.status_code == 201, registered.text
        approve = f"{CLIENTS}/{registered.json()['id']}/approve"
        csrf = _login(http, demo.operator_email, demo.operator_password).json()["csrfToken"]
        assert http.post(approve).status_code == 403
        assert http.post(approve, headers={"X-CSRF-Token": "forged"}).status_code == 403
        assert http.get(f"{CLIENTS}/{registered.json()['id']}").json()["status"] == "Pending"
        approved = http.post(approve, headers={"X-CSRF-Token": csrf})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "Active"


def test_logout_signs_the_old_session_cookie_out(gateway: Gateway) -> None:
    demo = gateway.demo
    with gateway.client() as http:
        signed = _login(http, demo.operator_email, demo.operator_password)
        token, csrf = _session_token(signed), signed.json()["csrfToken"]
        assert _with_cookie(gateway, token).status_code == 200

        refused = http.post(LOGOUT)
        assert refused.status_code == 403, "logout is an unsafe method: it needs the CSRF token"
        assert _with_cookie(gateway, token).status_code == 200

        out = http.post(LOGOUT, headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200, out.text
        assert "malipo_session" in _set_cookies(out), "the reply clears the cookie"
        assert http.get(CLIENTS).status_code == 401

    after = _with_cookie(gateway, token)
    assert after.status_code == 401, after.text


# -- password reset ----------------------------------------------------------------------


def test_forgot_password_answers_alike_for_known_and_unknown_emails_and_mails_only_the_known(
    gateway: Gateway,
) -> None:
    email = gateway.demo.operator_email
    with gateway.client() as http:
        known = http.post(FORGOT, json={"email": email})
        unknown = http.post(FORGOT, json={"email": UNKNOWN_EMAIL})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()

    assert _mails(gateway.settings, UNKNOWN_EMAIL, "password_reset") == []
    [mail] = _mails(gateway.settings, email, "password_reset")
    match = re.search(r"reset code: (\S+)", mail.text_body)
    assert match, mail.text_body
    token = match.group(1)
    assert token in (mail.html_body or "")

    async def stored(session: AsyncSession) -> list[str]:
        return list((await session.scalars(select(PasswordResetToken.token_hash))).all())

    assert _in_db(gateway.settings, stored) == [crypto.sha256_hex(token)], "only the token's hash is kept"


def test_emailed_token_resets_the_password_once_and_signs_out_every_session(gateway: Gateway) -> None:
    demo = gateway.demo
    email, old = demo.operator_email, demo.operator_password
    with gateway.client() as first, gateway.client() as second:
        tokens = [_session_token(_login(c, email, old)) for c in (first, second)]
    assert all(_with_cookie(gateway, t).status_code == 200 for t in tokens)

    reset_token = _emailed_reset_token(gateway, email)
    with gateway.client() as http:
        done = _reset(http, email, reset_token, NEW_PASSWORD)
        assert done.status_code == 200, done.text

        for token in tokens:
            assert _with_cookie(gateway, token).status_code == 401, "every session is signed out"

        assert _login(http, email, old).status_code == 401
        assert _login(http, email, NEW_PASSWORD).status_code == 200

        again = _reset(http, email, reset_token, "Another-Good-Password-77")
        assert again.status_code == 400, again.text
        assert again.json()["code"] == "invalid_reset_token"
        assert _login(http, email, NEW_PASSWORD).status_code == 200, "a spent token changes nothing"


def test_reset_token_is_refused_after_an_hour_and_for_another_user(gateway: Gateway) -> None:
    demo = gateway.demo
    reset_token = _emailed_reset_token(gateway, demo.operator_email)
    gateway.clock.advance(timedelta(minutes=61))
    with gateway.client() as http:
        late = _reset(http, demo.operator_email, reset_token, NEW_PASSWORD)
        assert late.status_code == 400, late.text
        assert late.json()["code"] == "invalid_reset_token"
        assert _login(http, demo.operator_email, NEW_PASSWORD).status_code == 401
        assert _login(http, demo.operator_email, demo.operator_password).status_code == 200

    reset_token = _emailed_reset_token(gateway, demo.operator_email)
    with gateway.client() as http:
        other = _reset(http, demo.merchant_admin_email, reset_token, NEW_PASSWORD)
        assert other.status_code == 400, other.text
        assert other.json()["code"] == "invalid_reset_token"
        assert _login(http, demo.merchant_admin_email, demo.merchant_admin_password).status_code == 200


def test_reset_refuses_a_short_password_or_the_email_and_keeps_the_token(gateway: Gateway) -> None:
    demo = gateway.demo
    email = demo.operator_email
    reset_token = _emailed_reset_token(gateway, email)
    with gateway.client() as http:
        assert len(NINE_CHARACTERS) == 9
        short = _reset(http, email, reset_token, NINE_CHARACTERS)
        assert short.status_code == 422, short.text
        assert [e["field"] for e in short.json()["errors"]] == ["newPassword"]

        same = _reset(http, email, reset_token, email)
        assert same.status_code == 422, same.text
        assert [e["field"] for e in same.json()["errors"]] == ["newPassword"]

        assert _login(http, email, demo.operator_password).status_code == 200, "nothing changed"
        ok = _reset(http, email, reset_token, NEW_PASSWORD)
        assert ok.status_code == 200, "a refused password does not spend the token"
        assert _login(http, email, NEW_PASSWORD).status_code == 200


# -- storage -----------------------------------------------------------------------------


def test_password_hash_is_argon2id(real_gateway: Gateway) -> None:
    gateway = real_gateway
    demo = gateway.demo

    async def hashes(session: AsyncSession) -> dict[str, str]:
        users = (await session.scalars(select(PortalUser))).all()
        return {u.email: u.password_hash for u in users}

    seeded = _in_db(gateway.settings, hashes)
    assert seeded[demo.operator_email].startswith("$argon2id$")
    assert seeded[demo.merchant_admin_email].startswith("$argon2id$")
    assert demo.operator_password not in seeded[demo.operator_email]

    reset_token = _emailed_reset_token(gateway, demo.operator_email)
    with gateway.client() as http:
        assert _reset(http, demo.operator_email, reset_token, NEW_PASSWORD).status_code == 200
    after = _in_db(gateway.settings, hashes)[demo.operator_email]
    assert after.startswith("$argon2id$")
    assert after != seeded[demo.operator_email]


def test_plain_passwords_and_reset_tokens_appear_nowhere_in_the_sqlite_files(
    sqlite_only: None, gateway: Gateway
) -> None:
    demo = gateway.demo
    with gateway.client() as http:
        assert _login(http, demo.operator_email, demo.operator_password).status_code == 200
        assert _login(http, demo.merchant_admin_email, demo.merchant_admin_password).status_code == 200
    reset_token = _emailed_reset_token(gateway, demo.operator_email)
    with gateway.client() as http:
        assert _reset(http, demo.operator_email, reset_token, NEW_PASSWORD).status_code == 200
        assert _login(http, demo.operator_email, NEW_PASSWORD).status_code == 200

    database = make_url(gateway.settings.resolved_database_url).database
    assert database
    path = Path(database)
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
    assert path in files
    content = b"".join(p.read_bytes() for p in files)
    assert demo.operator_email.encode() in content, "sanity: plain columns are readable in these bytes"
    for secret in (demo.operator_password, demo.merchant_admin_password, NEW_PASSWORD, reset_token):
        assert secret.encode() not in content, f"{secret!r} is stored in plain text"
