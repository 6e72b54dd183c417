"""Roles, permissions and per-API-user overrides."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, NotFound, ValidationFailed
from malipo.identity.models import ApiUser, ApiUserPermission, Permission, Role, RolePermission
from malipo.identity.permission_cache import permissions_changed
from malipo.identity.principals import Principal
from malipo.identity.requests import PermissionSpec
from malipo.identity.users import get_api_user

SpecT = TypeVar("SpecT", bound=PermissionSpec)


async def _existing_permissions(session: AsyncSession, ids: list[uuid.UUID], field: str) -> list[Permission]:
    unique = list(dict.fromkeys(ids))
    found = {
        p.id: p for p in (await session.scalars(select(Permission).where(Permission.id.in_(unique)))).all()
    }
    missing = [str(i) for i in unique if i not in found]
    if missing:
        raise ValidationFailed.for_field(field, f"unknown permission id(s): {', '.join(missing)}")
    return [found[i] for i in unique]


# -- permissions --------------------------------------------------------------------


async def list_permissions(session: AsyncSession) -> list[Permission]:
    return list(
        (
            await session.scalars(
                select(Permission).order_by(Permission.route_pattern, Permission.http_method)
            )
        ).all()
    )


async def get_permission(session: AsyncSession, permission_id: uuid.UUID) -> Permission:
    permission = await session.get(Permission, permission_id)
    if permission is None:
        raise NotFound(f"no permission {permission_id}")
    return permission


async def _super_admin(session: AsyncSession) -> Role:
    role = await session.scalar(select(Role).where(Role.name == "SuperAdmin"))
    assert role is not None, "system roles are created at start"
    return role


async def create_permissions(
    session: AsyncSession, items: list[SpecT], *, now: datetime
) -> tuple[list[Permission], list[SpecT]]:
    """Create each permission not yet defined for its method and route, granted to SuperAdmin.

    Returns (created, skipped): an existing (method, route) pair is skipped, not an error.
    """
    super_admin = await _super_admin(session)
    existing = {(p.http_method, p.route_pattern) for p in (await session.scalars(select(Permission))).all()}
    created, skipped = [], []
    for item in items:
        key = (item.http_method, item.route_pattern)
        if key in existing:
            skipped.append(item)
            continue
        permission = Permission(
            name=item.name, http_method=item.http_method, route_pattern=item.route_pattern, created_at=now
        )
        session.add(permission)
        await session.flush()
        session.add(RolePermission(role_id=super_admin.id, permission_id=permission.id))
        existing.add(key)
        created.append(permission)
    await session.flush()
    return created, skipped


async def create_permission(session: AsyncSession, item: PermissionSpec, *, now: datetime) -> Permission:
    created, _skipped = await create_permissions(session, [item], now=now)
    if not created:
        raise Conflict(f"a permission for {item.http_method} {item.route_pattern} already exists")
    return created[0]


# -- roles --------------------------------------------------------------------------


async def role_permission_ids(
    session: AsyncSession, role_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {rid: [] for rid in role_ids}
    if role_ids:
        for role_id, permission_id in await session.execute(
            select(RolePermission.role_id, RolePermission.permission_id).where(
                RolePermission.role_id.in_(role_ids)
            )
        ):
            found[role_id].append(permission_id)
    return found


async def list_roles(session: AsyncSession) -> list[Role]:
    return list((await session.scalars(select(Role).order_by(Role.name))).all())


async def get_role(session: AsyncSession, role_id: uuid.UUID) -> Role:
    role = await session.get(Role, role_id)
    if role is None:
        raise NotFound(f"no role {role_id}")
    return role


async def create_role(
    session: AsyncSession, name: str, permission_ids: list[uuid.UUID], *, now: datetime
) -> Role:
    if await session.scalar(select(Role.id).where(Role.name == name)) is not None:
        raise Conflict.for_field("name", f"a role named {name!r} already exists")
    permissions = await _existing_permissions(session, permission_ids, "permissionIds")
    role = Role(name=name, is_system=False, created_at=now)
    session.add(role)
    await session.flush()
    session.add_all(RolePermission(role_id=role.id, permission_id=p.id) for p in permissions)
    await session.flush()
    return role


async def replace_role_permissions(
    session: AsyncSession, role_id: uuid.UUID, permission_ids: list[uuid.UUID]
) -> Role:
    role = await get_role(session, role_id)
    permissions = await _existing_permissions(session, permission_ids, "permissionIds")
    await session.execute(delete(RolePermission).where(RolePermission.role_id == role.id))
    session.add_all(RolePermission(role_id=role.id, permission_id=p.id) for p in permissions)
    permissions_changed(session)
    await session.flush()
    return role


async def add_role_permission(session: AsyncSession, role_id: uuid.UUID, permission_id: uuid.UUID) -> Role:
    role = await get_role(session, role_id)
    await _existing_permissions(session, [permission_id], "permissionID")
    if await session.get(RolePermission, (role.id, permission_id)) is None:
        session.add(RolePermission(role_id=role.id, permission_id=permission_id))
        permissions_changed(session)
    await session.flush()
    return role


async def remove_role_permission(session: AsyncSession, role_id: uuid.UUID, permission_id: uuid.UUID) -> Role:
    role = await get_role(session, role_id)
    link = await session.get(RolePermission, (role.id, permission_id))
    if link is None:
        raise NotFound(f"role {role.name} does not have permission {permission_id}")
    await session.delete(link)
    permissions_changed(session)
    await session.flush()
    return role


# -- API user overrides -------------------------------------------------------------


async def overrides_of(
    session: AsyncSession, api_user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[Permission, bool]]]:
    found: dict[uuid.UUID, list[tuple[Permission, bool]]] = {uid: [] for uid in api_user_ids}
    if api_user_ids:
        rows = await session.execute(
            select(ApiUserPermission.api_user_id, Permission, ApiUserPermission.is_allowed)
            .join(Permission, Permission.id == ApiUserPermission.permission_id)
            .where(ApiUserPermission.api_user_id.in_(api_user_ids))
            .order_by(Permission.route_pattern, Permission.http_method)
        )
        for api_user_id, permission, allowed in rows:
            found[api_user_id].append((permission, allowed))
    return found


async def set_overrides(
    session: AsyncSession, who: Principal, api_user_id: uuid.UUID, overrides: dict[uuid.UUID, bool]
) -> ApiUser:
    """Replace the API user's overrides with ``overrides`` (permission id → allowed)."""
    api_user = await get_api_user(session, who, api_user_id)
    await _existing_permissions(session, list(overrides), "overrides")
    await session.execute(delete(ApiUserPermission).where(ApiUserPermission.api_user_id == api_user.id))
    session.add_all(
        ApiUserPermission(api_user_id=api_user.id, permission_id=pid, is_allowed=allowed)
        for pid, allowed in overrides.items()
    )
    permissions_changed(session)
    await session.flush()
    return api_user
