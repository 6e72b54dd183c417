"""/api/v1 permission and role routes: define permissions, build roles from them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, status

from malipo.accounts.schemas import (
    BulkPermissionsOut,
    PermissionIn,
    PermissionOut,
    RoleIn,
    RoleOut,
    RolePermissionAddIn,
    RolePermissionsIn,
)
from malipo.http.deps import ClockDep, Session
from malipo.http.permissions import CA, OP, CurrentPrincipal, callers
from malipo.http.tags import PERMISSIONS, ROLES
from malipo.identity import access
from malipo.identity.models import Role

router = APIRouter()


@router.get(
    "/permissions",
    response_model=list[PermissionOut],
    name="Permissions.List",
    summary="List permissions",
    tags=[PERMISSIONS],
    openapi_extra=callers(OP),
)
async def list_permissions(who: CurrentPrincipal, session: Session) -> list[object]:
    """Every permission: one per protected route, by name, HTTP method and route pattern."""
    return list(await access.list_permissions(session))


@router.post(
    "/permissions", response_model=PermissionOut, status_code=status.HTTP_201_CREATED,
    name="Permissions.Create", summary="Define a permission", tags=[PERMISSIONS],
    openapi_extra=callers(OP),
)  # fmt: skip
async def create_permission(
    body: PermissionIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> object:
    """Define a permission; it is granted to SuperAdmin."""
    return await access.create_permission(session, body, now=clock.now())


_BULK_PERMISSIONS = [
    {"name": "Reports.Export", "httpMethod": "GET", "routePattern": "/api/v1/reports/export"},
    {"name": "Reports.Schedule", "httpMethod": "POST", "routePattern": "/api/v1/reports/schedules"},
]


@router.post(
    "/permissions/bulk",
    response_model=BulkPermissionsOut,
    name="Permissions.CreateBulk",
    summary="Define many permissions at once",
    tags=[PERMISSIONS],
    openapi_extra=callers(OP),
)
async def create_permissions(
    body: Annotated[list[PermissionIn], Body(examples=[_BULK_PERMISSIONS])],
    who: CurrentPrincipal,
    session: Session,
    clock: ClockDep,
) -> BulkPermissionsOut:
    """Define several permissions at once; those that already exist are answered in `skipped`."""
    created, skipped = await access.create_permissions(session, body, now=clock.now())
    return BulkPermissionsOut(created=[PermissionOut.model_validate(p) for p in created], skipped=skipped)


@router.get(
    "/permissions/{id:uuid}",
    response_model=PermissionOut,
    name="Permissions.Read",
    summary="Get a permission",
    tags=[PERMISSIONS],
    openapi_extra=callers(OP),
)
async def get_permission(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> object:
    """One permission, by its id."""
    return await access.get_permission(session, id)


# -- roles ---------------------------------------------------------------------------


async def _role_out(session: Session, found: list[Role]) -> list[RoleOut]:
    ids = await access.role_permission_ids(session, [r.id for r in found])
    return [
        RoleOut(
            id=r.id, name=r.name, description=r.description, is_system=r.is_system, permission_ids=ids[r.id]
        )
        for r in found
    ]


@router.get(
    "/roles",
    response_model=list[RoleOut],
    name="Roles.Read",
    summary="List roles and their permissions",
    tags=[ROLES],
    openapi_extra=callers(OP, CA),
)
async def list_roles(who: CurrentPrincipal, session: Session) -> list[RoleOut]:
    """Every role, with the ids of the permissions it grants."""
    return await _role_out(session, await access.list_roles(session))


@router.post(
    "/roles", response_model=RoleOut, status_code=status.HTTP_201_CREATED, name="Roles.Create",
    summary="Create a role", tags=[ROLES],
    openapi_extra=callers(OP),
)  # fmt: skip
async def create_role(body: RoleIn, who: CurrentPrincipal, session: Session, clock: ClockDep) -> RoleOut:
    """A new role granting the given permissions."""
    role = await access.create_role(session, body.name, body.permission_ids, now=clock.now())
    return (await _role_out(session, [role]))[0]


@router.put(
    "/roles/{roleId:uuid}/permissions",
    response_model=RoleOut,
    name="Roles.ReplacePermissions",
    summary="Replace a role's permissions",
    tags=[ROLES],
    openapi_extra=callers(OP),
)
async def replace_role_permissions(
    roleId: uuid.UUID,
    body: RolePermissionsIn,
    who: CurrentPrincipal,
    session: Session,
) -> RoleOut:
    """Make the role grant exactly these permissions."""
    role = await access.replace_role_permissions(session, roleId, body.permission_ids)
    return (await _role_out(session, [role]))[0]


@router.post(
    "/roles/{roleId:uuid}/permissions",
    response_model=RoleOut,
    name="Roles.AddPermission",
    summary="Grant a permission to a role",
    tags=[ROLES],
    openapi_extra=callers(OP),
)
async def add_role_permission(
    roleId: uuid.UUID,
    body: RolePermissionAddIn,
    who: CurrentPrincipal,
    session: Session,
) -> RoleOut:
    """Grant one more permission (`permissionID`) to the role."""
    role = await access.add_role_permission(session, roleId, body.permission_id)
    return (await _role_out(session, [role]))[0]


@router.delete(
    "/roles/{roleId:uuid}/permissions/{permissionId:uuid}", response_model=RoleOut,
    name="Roles.RemovePermission", summary="Take a permission from a role", tags=[ROLES],
    openapi_extra=callers(OP),
)  # fmt: skip
async def remove_role_permission(
    roleId: uuid.UUID,
    permissionId: uuid.UUID,
    who: CurrentPrincipal,
    session: Session,
) -> RoleOut:
    """Stop the role granting this permission."""
    role = await access.remove_role_permission(session, roleId, permissionId)
    return (await _role_out(session, [role]))[0]
