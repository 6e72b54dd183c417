"""API users, portal users and sandbox keys, always within the caller's client.

Operators (no client) see every client's users; anyone else sees only their
own client's, and another client's object is a 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core import crypto
from malipo.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from malipo.identity import service
from malipo.identity.models import ApiKey, ApiUser, Client, KeyMode, PortalUser, PortalUserRole, Role
from malipo.identity.notices import notify
from malipo.identity.principals import Principal, PrincipalKind
from malipo.identity.requests import ApiUserDetails, PortalUserDetails

OPERATOR_ROLES = frozenset({"SuperAdmin", "CompanyAdmin"})


async def _client_of(session: AsyncSession, who: Principal) -> Client:
    if who.client_id is None:
        raise Forbidden("operator staff belong to no client: this acts on a client's own users")
    client = await session.get(Client, who.client_id)
    assert client is not None
    return client


async def api_user_by_id(session: AsyncSession, api_user_id: uuid.UUID | None) -> ApiUser | None:
    """The API user ``api_user_id`` (a caller's), or None if there is none."""
    return await session.get(ApiUser, api_user_id) if api_user_id is not None else None


async def _assignable_role(session: AsyncSession, role_id: uuid.UUID, field: str) -> Role:
    role = await session.get(Role, role_id)
    if role is None:
        raise ValidationFailed.for_field(field, f"no role {role_id}")
    if role.name in OPERATOR_ROLES:
        raise ValidationFailed.for_field(field, f"the {role.name} role is for operator staff only")
    return role


# -- API users ----------------------------------------------------------------------


async def create_api_user(
    session: AsyncSession, who: Principal, body: ApiUserDetails, *, now: datetime
) -> tuple[ApiUser, service.IssuedKey, str]:
    """A new API user of the caller's client, with a live key and Pay Hero credentials (shown once)."""
    client = await _client_of(session, who)
    role = await _assignable_role(session, body.role_id, "roleId")
    issued = await service.create_api_user(
        session,
        client=client,
        role=role,
        developer_name=body.developer_name,
        developer_email=body.developer_email,
        developer_phone_number=body.developer_phone_number,
        now=now,
    )
    key = await service.issue_api_key(session, api_user=issued.api_user, mode=KeyMode.LIVE, now=now)
    return issued.api_user, key, issued.api_password


async def list_api_users(session: AsyncSession, who: Principal) -> list[ApiUser]:
    query = select(ApiUser).order_by(ApiUser.created_at)
    if not who.is_operator:
        query = query.where(ApiUser.client_id == who.client_id)
    return list((await session.scalars(query)).all())


async def get_api_user(session: AsyncSession, who: Principal, api_user_id: uuid.UUID) -> ApiUser:
    api_user = await session.get(ApiUser, api_user_id)
    if api_user is None or not who.sees_client(api_user.client_id):
        raise NotFound(f"no API user {api_user_id}")
    return api_user


# -- portal users -------------------------------------------------------------------


async def _roles_by_name(session: AsyncSession, names: Sequence[str]) -> list[Role]:
    found = {r.name: r for r in (await session.scalars(select(Role).where(Role.name.in_(names)))).all()}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationFailed.for_field("roles", f"unknown role(s): {', '.join(missing)}")
    return [found[n] for n in dict.fromkeys(names)]


async def create_portal_user(
    session: AsyncSession, who: Principal, body: PortalUserDetails, *, now: datetime, settings: Settings
) -> tuple[PortalUser, list[str], dict[str, Any] | None]:
    """A portal user in the caller's client (or operator staff, when an operator asks for operator roles).

    The initial password goes out by email; with ``generateApiKey`` an API user
    with the same name is created too and its credentials returned once.
    """
    roles = await _roles_by_name(session, body.roles)
    wants_operator_roles = any(r.name in OPERATOR_ROLES for r in roles)
    if wants_operator_roles and not who.is_super_admin:
        raise Forbidden("only a SuperAdmin creates operator staff")
    if wants_operator_roles and body.generate_api_key:
        raise ValidationFailed.for_field("generateApiKey", "operator staff have no API key")
    client_id = None if wants_operator_roles else who.client_id
    if client_id is None and not wants_operator_roles:
        raise ValidationFailed.for_field("roles", "operator staff need the SuperAdmin or CompanyAdmin role")
    email = body.email.lower()
    password = crypto.generate_password()
    user = await service.create_portal_user(
        session,
        email=email,
        user_name=body.user_name,
        password=password,
        roles=roles,
        client_id=client_id,
        now=now,
    )
    client = await session.get(Client, client_id) if client_id else None
    await notify(
        session,
        "client_registered",
        to=email,
        now=now,
        client_id=client_id,
        client_name=client.name if client else "malipo",
        login_email=email,
        temporary_password=password,
        portal_url=f"{settings.public_url}/portal",
    )
    credentials = None
    if body.generate_api_key:
        assert client is not None
        role = next((r for r in roles if r.name not in OPERATOR_ROLES), roles[0])
        issued = await service.create_api_user(
            session, client=client, role=role, developer_name=body.user_name, developer_email=email,
            developer_phone_number=client.phone_number or "", now=now,
        )  # fmt: skip
        key = await service.issue_api_key(session, api_user=issued.api_user, mode=KeyMode.LIVE, now=now)
        credentials = {
            "api_key": key.raw,
            "api_key_mode": "live",
            "api_username": issued.api_user.api_username,
            "api_password": issued.api_password,
        }
    return user, [r.name for r in roles], credentials


async def portal_user_roles(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = {uid: [] for uid in user_ids}
    if user_ids:
        rows = await session.execute(
            select(PortalUserRole.user_id, Role.name)
            .join(Role, Role.id == PortalUserRole.role_id)
            .where(PortalUserRole.user_id.in_(user_ids))
            .order_by(Role.name)
        )
        for user_id, name in rows:
            found[user_id].append(name)
    return found


async def list_portal_users(session: AsyncSession, who: Principal) -> list[PortalUser]:
    query = select(PortalUser).order_by(PortalUser.created_at)
    if not who.is_operator:
        query = query.where(PortalUser.client_id == who.client_id)
    return list((await session.scalars(query)).all())


async def delete_portal_user(session: AsyncSession, who: Principal, user_id: uuid.UUID) -> None:
    user = await session.get(PortalUser, user_id)
    if (
        user is None
        or not who.sees_client(user.client_id)
        or (user.client_id is None and not who.is_operator)
    ):
        raise NotFound(f"no portal user {user_id}")
    if who.kind == PrincipalKind.PORTAL and user.id == who.id:
        raise Conflict("you cannot delete yourself")
    await session.delete(user)


# -- sandbox keys -------------------------------------------------------------------


def _sandbox_scope(who: Principal) -> Any:
    if who.kind != PrincipalKind.PORTAL:
        return ApiKey.api_user_id == who.id
    if who.is_operator:
        return ApiKey.mode == KeyMode.TEST  # operators see every sandbox key
    return ApiKey.client_id == who.client_id


async def list_sandbox_keys(session: AsyncSession, who: Principal) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.mode == KeyMode.TEST, _sandbox_scope(who)).order_by(ApiKey.created_at)
    return list((await session.scalars(query)).all())


async def create_sandbox_key(
    session: AsyncSession,
    who: Principal,
    *,
    description: str | None,
    api_user_id: uuid.UUID | None,
    now: datetime,
) -> service.IssuedKey:
    """A new sandbox key (``mk_test_…``), for the calling API user or an API user of the caller's client."""
    if who.kind != PrincipalKind.PORTAL:
        if api_user_id not in (None, who.id):
            raise ValidationFailed.for_field(
                "apiUserId", "an API key can only create keys for its own API user"
            )
        api_user = await session.get(ApiUser, who.id)
    elif api_user_id is not None:
        api_user = await get_api_user(session, who, api_user_id)
    else:
        if who.client_id is None:
            raise ValidationFailed.for_field("apiUserId", "operators must name the API user the key is for")
        api_user = await session.scalar(
            select(ApiUser).where(ApiUser.client_id == who.client_id).order_by(ApiUser.created_at).limit(1)
        )
        if api_user is None:
            raise Conflict("this client has no API user yet: create one first (POST /api/v1/api-users)")
    assert api_user is not None
    return await service.issue_api_key(
        session, api_user=api_user, mode=KeyMode.TEST, description=description, now=now
    )


async def revoke_sandbox_key(
    session: AsyncSession, who: Principal, key_id: uuid.UUID, *, now: datetime
) -> ApiKey:
    key = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.mode == KeyMode.TEST, _sandbox_scope(who))
    )
    if key is None:
        raise NotFound(f"no sandbox key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now
    return key
