"""Turning a request's credentials into a Principal, or a clear 401/403.

Accepted, in this order:
- ``Authorization: Bearer mk_live_…|mk_test_…`` — an API key;
- ``Authorization: Bearer <JWT>`` — a wallet customer's token (from ``/customers/login``);
- ``Authorization: Basic`` — an API user's Pay Hero pair ``api_username:api_password``,
  or an API key as the username with an empty password (Stripe's convention);
- the portal session cookie.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from fastapi import Request
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.crypto import API_KEY_PREFIXES, sha256_hex, verify_password
from malipo.core.errors import Forbidden, MalipoError, Unauthorized
from malipo.db import Database
from malipo.identity.models import (
    ApiKey,
    ApiUser,
    Client,
    ClientStatus,
    KeyMode,
    PortalSession,
    PortalUser,
    PortalUserRole,
    Role,
)
from malipo.identity.principals import Principal, PrincipalKind
from malipo.identity.sessions import csrf_token_for

SESSION_COOKIE = "malipo_session"
CSRF_COOKIE = "malipo_csrf"
CSRF_HEADER = "X-CSRF-Token"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="malipo", Basic realm="malipo"'}


class ClientNotActive(Forbidden):
    code = "client_not_active"
    title = "The client is not active"


def _unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers=dict(_CHALLENGE))


def require_active_client(client: Client) -> None:
    """Refuse every credential of a client that is not Active, saying why."""
    if client.status == ClientStatus.ACTIVE:
        return
    reasons = {
        ClientStatus.PENDING: "this client is awaiting approval by the operator",
        ClientStatus.REJECTED: "this client's registration was rejected: "
        + (client.rejection_reason or "no reason given"),
        ClientStatus.DEACTIVATED: "this client has been deactivated by the operator",
    }
    raise ClientNotActive(
        reasons.get(ClientStatus(client.status), "this client is not active"), clientStatus=client.status
    )


class _VerifiedSecrets:
    """Remembers recent successful Argon2 checks, so Basic auth costs a hash once, not per request.

    Keyed by the stored hash too: a rotated password misses the cache at once. Concurrent
    checks of the same pair share one hash computation (a burst of requests from a client
    that just started would otherwise run Argon2 once each, holding their connections).
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._running: dict[tuple[str, str], asyncio.Future[bool]] = {}

    async def verify(self, stored_hash: str, password: str) -> bool:
        key = (stored_hash, sha256_hex(password))
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        # Argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        check = asyncio.ensure_future(asyncio.to_thread(verify_password, stored_hash, password))
        self._running[key] = check
        try:
            matches = await asyncio.shield(check)
        finally:
            self._running.pop(key, None)
        if matches:
            self._seen[key] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return matches


verified_secrets = _VerifiedSecrets()


@dataclass(frozen=True, slots=True)
class Credential:
    """A caller as checked against the database, and what ``recheck`` checks again later."""

    principal: Principal
    # The stored hash a Pay Hero pair's password matched (None for other ways in: nothing to recheck).
    password_hash: str | None = None


async def authenticate(request: Request, session: AsyncSession, now: datetime) -> Principal:
    return (await authenticate_credential(request, session, now)).principal


async def authenticate_credential(request: Request, session: AsyncSession, now: datetime) -> Credential:
    header = request.headers.get("authorization")
    if header:
        scheme, _, credentials = header.partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer":
            if not credentials.startswith("mk_") and _JWT_SHAPE.fullmatch(credentials):
                return Credential(await by_customer_token(request, session, credentials, now))
            return Credential(await by_api_key(session, credentials))
        if scheme == "basic":
            username, password = _decode_basic(credentials)
            if password == "" and username.startswith(tuple(API_KEY_PREFIXES.values())):
                return Credential(await by_api_key(session, username))
            return await _payhero_pair(session, username, password)
        raise _unauthorized(f"unsupported Authorization scheme {scheme!r}: use Bearer or Basic")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return Credential(await by_session(session, cookie, now))
    raise _unauthorized(
        "authentication required: send Authorization: Bearer <API key>, HTTP Basic credentials, or sign in"
    )


class RecentCallers:
    """Pay Hero Basic pairs already checked, by their Authorization header's SHA-256.

    For endpoints whose writes go through a group commit: a known caller's request reads nothing
    before its batch, and the batch checks every caller again in its own transaction
    (``recheck``: API user active, client active, password unchanged), so a disabled user or a
    changed password is refused at once all the same. Other ways in are checked each time.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._seen: OrderedDict[str, Credential] = OrderedDict()

    async def caller(self, request: Request, db: Database, now: datetime) -> Credential:
        header = request.headers.get("authorization") or ""
        key = sha256_hex(header) if header[:6].lower() == "basic " else None
        found = self._seen.get(key) if key is not None else None
        if found is not None:
            self._seen.move_to_end(key)  # type: ignore[arg-type]
            return found
        async with db.sessionmaker() as session, session.begin():
            credential = await authenticate_credential(request, session, now)
        if key is not None and credential.password_hash is not None:
            self._seen[key] = credential
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return credential

    def forget(self, credential: Credential) -> None:
        for key in [key for key, seen in self._seen.items() if seen == credential]:
            del self._seen[key]


async def recheck(session: AsyncSession, credentials: list[Credential]) -> list[MalipoError | None]:
    """Whether each Pay Hero caller is still allowed in, read in ``session``'s transaction: None,
    or the error ``authenticate`` would give now. One query for all of them."""
    wanted = {c.principal.id for c in credentials if c.password_hash is not None}
    rows = {}
    if wanted:
        found = await session.execute(
            select(
                ApiUser.id,
                ApiUser.api_password_hash,
                ApiUser.is_active,
                Client.status,
                Client.rejection_reason,
            )
            .join(Client, ApiUser.client_id == Client.id)
            .where(ApiUser.id.in_(wanted))
        )
        rows = {row.id: row for row in found}
    answers: list[MalipoError | None] = []
    for credential in credentials:
        row = rows.get(credential.principal.id)
        if credential.password_hash is None:
            answers.append(None)
        elif row is None or row.api_password_hash != credential.password_hash:
            answers.append(_unauthorized("invalid API username or password"))
        elif not row.is_active:
            answers.append(_unauthorized("this API user has been disabled"))
        else:
            try:
                require_active_client(Client(status=row.status, rejection_reason=row.rejection_reason))
            except ClientNotActive as exc:
                answers.append(exc)
            else:
                answers.append(None)
    return answers


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise _unauthorized("malformed Basic credentials: expected username:password")
    return username, password


# Built once: this runs on every API call, and building the expression costs more than running it.
_KEY_LOOKUP = (
    select(
        ApiKey.id.label("key_id"),
        ApiKey.mode,
        ApiKey.revoked_at,
        ApiUser.id.label("api_user_id"),
        ApiUser.role_id,
        ApiUser.is_active,
        Role.name.label("role_name"),
        Client.id.label("client_id"),
        Client.status.label("client_status"),
        Client.rejection_reason,
    )
    .join(ApiUser, ApiKey.api_user_id == ApiUser.id)
    .join(Client, ApiUser.client_id == Client.id)
    .join(Role, ApiUser.role_id == Role.id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


async def by_api_key(session: AsyncSession, raw_key: str) -> Principal:
    if not raw_key.startswith(tuple(API_KEY_PREFIXES.values())):
        raise _unauthorized("not a malipo API key: keys start with mk_live_ or mk_test_")
    row = (await session.execute(_KEY_LOOKUP, {"key_hash": sha256_hex(raw_key)})).first()
    if row is None or row.revoked_at is not None:
        raise _unauthorized("API key not recognised or revoked")
    if not row.is_active:
        raise _unauthorized("this API user has been disabled")
    require_active_client(Client(status=row.client_status, rejection_reason=row.rejection_reason))
    return Principal(
        kind=PrincipalKind.API_KEY,
        id=row.api_user_id,
        client_id=row.client_id,
        role_ids=(row.role_id,),
        role_names=frozenset({row.role_name}),
        mode=KeyMode(row.mode),
        api_key_id=row.key_id,
    )


async def by_payhero_credentials(session: AsyncSession, username: str, password: str) -> Principal:
    return (await _payhero_pair(session, username, password)).principal


async def _payhero_pair(session: AsyncSession, username: str, password: str) -> Credential:
    row = (
        await session.execute(
            select(ApiUser, Client, Role.name)
            .join(Client, ApiUser.client_id == Client.id)
            .join(Role, ApiUser.role_id == Role.id)
            .where(ApiUser.api_username == username)
        )
    ).first()
    # Same reply whether the username or the password is wrong.
    if row is None or not await verified_secrets.verify(row.ApiUser.api_password_hash, password):
        raise _unauthorized("invalid API username or password")
    api_user, client, role_name = row
    if not api_user.is_active:
        raise _unauthorized("this API user has been disabled")
    require_active_client(client)
    principal = Principal(
        kind=PrincipalKind.PAYHERO,
        id=api_user.id,
        client_id=client.id,
        role_ids=(api_user.role_id,),
        role_names=frozenset({role_name}),
        mode=KeyMode.LIVE,
    )
    return Credential(principal, api_user.api_password_hash)


# -- wallet customers (JWT) ------------------------------------------------------------

CUSTOMER_JWT_ISSUER = "malipo"
CUSTOMER_JWT_TYPE = "customer"
CUSTOMER_JWT_ALGORITHM = "HS256"
CUSTOMER_ROLE = "Customer"
CUSTOMER_TOKEN_TTL = timedelta(minutes=15)  # how long a customer token is good for, at most
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class CustomerCaller:
    """What a customer token is checked against: the customer it names, and that customer's client."""

    id: uuid.UUID
    client_id: uuid.UUID
    mode: str
    client: Client


CustomerLookup = Callable[[AsyncSession, uuid.UUID], Awaitable[CustomerCaller | None]]
# The customers domain (above auth) owns the table; it registers how to read a customer here.
_customer_lookups: list[CustomerLookup] = []


def register_customer_lookup(lookup: CustomerLookup) -> None:
    """Let ``by_customer_token`` find the customer a token names (the customers domain calls this)."""
    _customer_lookups[:] = [lookup]


async def _customer_role_id(request: Request, session: AsyncSession) -> uuid.UUID | None:
    # Role ids never change: looked up once per app (one app, one database).
    cached: uuid.UUID | None = getattr(request.app.state, "customer_role_id", None)
    if cached is None:
        cached = await session.scalar(select(Role.id).where(Role.name == CUSTOMER_ROLE))
        if cached is not None:
            request.app.state.customer_role_id = cached
    return cached


async def by_customer_token(request: Request, session: AsyncSession, token: str, now: datetime) -> Principal:
    secret = request.app.state.settings.secret_key.get_secret_value()
    try:
        # Expiry is checked below against the injectable clock, not the system's.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[CUSTOMER_JWT_ALGORITHM],
            issuer=CUSTOMER_JWT_ISSUER,
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iss", "sub", "typ"]},
        )
        customer_id = uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise _unauthorized("invalid customer token: log in again") from None
    expires = claims["exp"]
    # An integer (not a bool, a string or a float such as 1e30 or 1e400 read as infinity) no
    # further off than a token issued now would be: a token is never good for longer.
    if (
        claims["typ"] != CUSTOMER_JWT_TYPE
        or type(expires) is not int
        or expires - now.timestamp() > CUSTOMER_TOKEN_TTL.total_seconds()
    ):
        raise _unauthorized("invalid customer token: log in again")
    if now.timestamp() >= expires:
        raise _unauthorized("your customer token has expired: log in again")
    if not _customer_lookups:
        raise RuntimeError("no customer lookup registered: import malipo.customers.service")
    customer = await _customer_lookups[0](session, customer_id)
    if customer is None or str(customer.client_id) != str(claims.get("client_id")):
        raise _unauthorized("this customer no longer exists: log in again")
    require_active_client(customer.client)
    role_id = await _customer_role_id(request, session)
    return Principal(
        kind=PrincipalKind.CUSTOMER,
        id=customer.id,
        client_id=customer.client_id,
        role_ids=(role_id,) if role_id is not None else (),
        role_names=frozenset({CUSTOMER_ROLE}),
        mode=KeyMode(customer.mode),
    )


async def by_session(session: AsyncSession, raw_token: str, now: datetime) -> Principal:
    row = (
        await session.execute(
            select(PortalSession, PortalUser)
            .join(PortalUser, PortalSession.user_id == PortalUser.id)
            .where(PortalSession.token_hash == sha256_hex(raw_token))
        )
    ).first()
    if row is None or row.PortalSession.expires_at <= now:
        raise _unauthorized("your session has expired or was signed out: sign in again")
    portal_session, user = row
    if not user.is_active:
        raise _unauthorized("this portal user has been disabled")
    if user.client_id is not None:
        client = await session.get(Client, user.client_id)
        if client is not None:
            require_active_client(client)
    roles = (
        await session.execute(
            select(Role.id, Role.name)
            .join(PortalUserRole, PortalUserRole.role_id == Role.id)
            .where(PortalUserRole.user_id == user.id)
        )
    ).all()
    return Principal(
        kind=PrincipalKind.PORTAL,
        id=user.id,
        client_id=user.client_id,
        role_ids=tuple(r.id for r in roles),
        role_names=frozenset(r.name for r in roles),
        session_id=portal_session.id,
        csrf_token=csrf_token_for(raw_token),
    )
