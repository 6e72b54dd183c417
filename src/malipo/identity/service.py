"""Identity rules: creating clients, portal users, API users and their credentials.

Raw secrets (passwords, API keys) are returned to the caller once and stored
only as hashes.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core import crypto
from malipo.core.errors import Conflict
from malipo.identity.models import (
    ApiKey,
    ApiUser,
    Client,
    ClientStatus,
    ClientType,
    KeyMode,
    PortalUser,
    PortalUserRole,
    Role,
)

SYSTEM_ROLES: dict[str, str] = {
    "SuperAdmin": "Operator staff with every permission",
    "CompanyAdmin": "Operator staff who approve clients and review KYC",
    "ClientAdmin": "A merchant's administrator",
    "Developer": "A merchant's developer: the API, no user management",
    "ReadOnly": "Reads only",
    "Customer": "A merchant's wallet customer",
}


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    raw: str


@dataclass(frozen=True, slots=True)
class IssuedApiUser:
    api_user: ApiUser
    api_password: str


async def ensure_system_roles(session: AsyncSession, now: datetime) -> dict[str, Role]:
    """The built-in roles, created if missing. Safe to call on every start."""
    existing = {r.name: r for r in (await session.scalars(select(Role))).all()}
    for name, description in SYSTEM_ROLES.items():
        if name not in existing:
            role = Role(name=name, description=description, is_system=True, created_at=now)
            session.add(role)
            existing[name] = role
    await session.flush()
    return existing


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    client_type: ClientType,
    email: str,
    now: datetime,
    status: ClientStatus = ClientStatus.PENDING,
    country: str = "KE",
    currency: str = "KES",
    is_demo: bool = False,
) -> Client:
    client = Client(
        name=name,
        type=client_type,
        email=email.lower(),
        status=status,
        country=country,
        currency=currency,
        is_demo=is_demo,
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    await session.flush()
    return client


async def create_portal_user(
    session: AsyncSession,
    *,
    email: str,
    user_name: str,
    password: str,
    roles: list[Role],
    now: datetime,
    client_id: uuid.UUID | None = None,
    email_field: str = "email",
) -> PortalUser:
    """A portal user with ``roles``. An email already taken is a 409 naming ``email_field``,
    also when two requests race for it (the database's unique index decides)."""
    user = PortalUser(
        email=email.lower(),
        user_name=user_name,
        password_hash=await asyncio.to_thread(crypto.hash_password, password),
        client_id=client_id,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Conflict.for_field(email_field, "a portal user with this email already exists") from None
    session.add_all(PortalUserRole(user_id=user.id, role_id=role.id) for role in roles)
    await session.flush()
    return user


def set_portal_password(user: PortalUser, password: str) -> None:
    user.password_hash = crypto.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None


async def create_api_user(
    session: AsyncSession,
    *,
    client: Client,
    role: Role,
    developer_name: str,
    developer_email: str,
    developer_phone_number: str,
    now: datetime,
) -> IssuedApiUser:
    password = crypto.generate_password(24)
    api_user = ApiUser(
        client_id=client.id,
        role_id=role.id,
        developer_name=developer_name,
        developer_email=developer_email.lower(),
        developer_phone_number=developer_phone_number,
        api_username=secrets.token_hex(10),
        api_password_hash=await asyncio.to_thread(crypto.hash_password, password),
        created_at=now,
    )
    session.add(api_user)
    await session.flush()
    return IssuedApiUser(api_user, password)


def rotate_api_password(api_user: ApiUser) -> str:
    password = crypto.generate_password(24)
    api_user.api_password_hash = crypto.hash_password(password)
    return password


async def issue_api_key(
    session: AsyncSession,
    *,
    api_user: ApiUser,
    mode: KeyMode,
    now: datetime,
    description: str | None = None,
) -> IssuedKey:
    raw, prefix, key_hash = crypto.generate_api_key(mode.value)
    key = ApiKey(
        api_user_id=api_user.id,
        client_id=api_user.client_id,
        mode=mode,
        prefix=prefix,
        key_hash=key_hash,
        description=description,
        created_at=now,
    )
    session.add(key)
    await session.flush()
    return IssuedKey(key, raw)


async def revoke_api_keys(session: AsyncSession, api_user: ApiUser, now: datetime) -> None:
    keys = await session.scalars(
        select(ApiKey).where(ApiKey.api_user_id == api_user.id, ApiKey.revoked_at.is_(None))
    )
    for key in keys:
        key.revoked_at = now
