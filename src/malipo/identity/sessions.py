"""Portal sign-in: cookie sessions, lockout after failed attempts, password reset.

A failed attempt is counted in its own committed transaction (the reply is an
error, which would otherwise roll the count back). After five failures in a
row the account is locked for fifteen minutes, even against the right password.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from limits.aio.storage import Storage
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core import crypto
from malipo.core.errors import Forbidden, MalipoError, RateLimited, Unauthorized, ValidationFailed
from malipo.core.ratelimit import Limit, limit_storage
from malipo.db import Database
from malipo.identity.models import PasswordResetToken, PortalSession, PortalUser, PortalUserRole, Role
from malipo.identity.notices import notify

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
REMEMBER_ME_LIFETIME = timedelta(days=30)
RESET_TOKEN_LIFETIME = timedelta(hours=1)
MIN_PASSWORD_LENGTH = 10
LOGIN_ATTEMPTS_PER_IP_PER_MINUTE = 20

# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = crypto.hash_password(secrets.token_urlsafe(16))


class AccountLocked(Forbidden):
    code = "account_locked"
    title = "The account is locked"


class InvalidResetToken(MalipoError):
    status = 400
    code = "invalid_reset_token"
    title = "The reset token is not valid"


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: PortalUser
    roles: list[str]
    token: str
    csrf_token: str
    expires_at: datetime
    persistent: bool


class LoginRateLimiter:
    """Per-IP limit on sign-in attempts; shared across processes when Redis is configured."""

    def __init__(self, storage: Storage, per_minute: int = LOGIN_ATTEMPTS_PER_IP_PER_MINUTE) -> None:
        self._limit = Limit(storage, f"{per_minute}/minute", "login")

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginRateLimiter:
        return cls(limit_storage(settings.redis_url))

    async def hit(self, ip: str) -> None:
        if not await self._limit.hit(ip):
            raise RateLimited(
                "too many sign-in attempts from this address: wait a minute and try again",
                headers={"Retry-After": "60"},
            )


def check_password_policy(password: str, email: str, field: str = "newPassword") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.for_field(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip().lower() == email.strip().lower():
        raise ValidationFailed.for_field(field, "must not be the email address")


async def _roles_of(session: AsyncSession, user: PortalUser) -> list[str]:
    rows = await session.scalars(
        select(Role.name)
        .join(PortalUserRole, PortalUserRole.role_id == Role.id)
        .where(PortalUserRole.user_id == user.id)
    )
    return sorted(rows.all())


async def sign_in(
    db: Database, *, email: str, password: str, remember_me: bool, ip: str | None, now: datetime
) -> SignedIn:
    email = email.lower()
    async with db.transaction() as session:
        user = await session.scalar(select(PortalUser).where(PortalUser.email == email))
        locked_until = user.locked_until if user is not None else None
    if user is not None and locked_until is not None and locked_until > now:
        minutes = max(1, int((locked_until - now).total_seconds() // 60))
        raise AccountLocked(
            f"too many failed sign-ins: try again in {minutes} minute(s) or reset your password"
        )
    # Argon2 is slow by design; keep it off the event loop.
    stored = user.password_hash if user is not None else _DUMMY_HASH
    valid = await asyncio.to_thread(crypto.verify_password, stored, password)
    if user is None or not valid or not user.is_active:
        if user is not None:
            await _record_failure(db, user, now)
        raise Unauthorized("invalid username or password")
    token = secrets.token_urlsafe(32)
    csrf_token = csrf_token_for(token)
    expires_at = now + (REMEMBER_ME_LIFETIME if remember_me else SESSION_LIFETIME)
    async with db.transaction() as session:
        user = await session.get(PortalUser, user.id, populate_existing=True)
        assert user is not None
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        session.add(
            PortalSession(
                user_id=user.id,
                token_hash=crypto.sha256_hex(token),
                created_at=now,
                expires_at=expires_at,
                ip=ip,
            )
        )
        roles = await _roles_of(session, user)
    return SignedIn(user, roles, token, csrf_token, expires_at, remember_me)


def csrf_token_for(session_token: str) -> str:
    """A session's double-submit CSRF token: an HMAC keyed by the session's own (raw) token, so it is
    stored nowhere and the database, which holds only the token's SHA-256, cannot yield it."""
    return hmac.new(session_token.encode(), b"malipo portal csrf", hashlib.sha256).hexdigest()


async def _record_failure(db: Database, user: PortalUser, now: datetime) -> None:
    async with db.transaction() as session:
        fresh = await session.get(PortalUser, user.id, with_for_update=True, populate_existing=True)
        assert fresh is not None
        fresh.failed_logins += 1
        if fresh.failed_logins >= MAX_FAILED_LOGINS:
            fresh.locked_until = now + LOCKOUT
            fresh.failed_logins = 0


async def sign_out(session: AsyncSession, session_id: object) -> None:
    await session.execute(delete(PortalSession).where(PortalSession.id == session_id))


async def request_password_reset(
    session: AsyncSession, email: str, *, now: datetime, settings: Settings
) -> None:
    """Email a single-use reset token if ``email`` belongs to a portal user; silent otherwise."""
    user = await session.scalar(select(PortalUser).where(PortalUser.email == email.lower()))
    if user is None or not user.is_active:
        return
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=crypto.sha256_hex(token),
            created_at=now,
            expires_at=now + RESET_TOKEN_LIFETIME,
        )
    )
    await notify(
        session,
        "password_reset",
        to=user.email,
        now=now,
        client_id=user.client_id,
        name=user.user_name,
        token=token,
        reset_url=f"{settings.public_url}/portal/reset-password?"
        + urlencode({"email": user.email, "token": token}),
    )


async def reset_password(
    session: AsyncSession, *, email: str, token: str, new_password: str, now: datetime
) -> None:
    """Set a new password with a valid token; the token is then spent and every session signed out."""
    row = (
        await session.execute(
            select(PasswordResetToken, PortalUser)
            .join(PortalUser, PortalUser.id == PasswordResetToken.user_id)
            .where(PasswordResetToken.token_hash == crypto.sha256_hex(token))
            .with_for_update()
        )
    ).first()
    if (
        row is None
        or row.PortalUser.email != email.lower()
        or row.PasswordResetToken.used_at is not None
        or row.PasswordResetToken.expires_at <= now
    ):
        raise InvalidResetToken("the reset token is invalid, already used or expired: ask for a new one")
    reset, user = row
    check_password_policy(new_password, user.email)
    # Every outstanding token of this user is spent, not only the one used.
    await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    reset.used_at = now
    user.password_hash = await asyncio.to_thread(crypto.hash_password, new_password)
    user.failed_logins = 0
    user.locked_until = None
    await session.execute(delete(PortalSession).where(PortalSession.user_id == user.id))
