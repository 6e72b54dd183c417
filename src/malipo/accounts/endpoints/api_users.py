"""/api/v1 API user routes: create and list API users, their permission overrides."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from malipo.accounts.schemas import (
    ApiCredentials,
    ApiUserCreated,
    ApiUserIn,
    ApiUserOut,
    ApiUserPermissions,
    PermissionOverride,
    PermissionOverridesIn,
)
from malipo.http.deps import ClockDep, Session
from malipo.http.permissions import CA, OP, CurrentPrincipal, callers
from malipo.http.tags import API_USERS
from malipo.identity import access, users
from malipo.identity.models import ApiUser

router = APIRouter()


def _override_list(items: list[tuple[object, bool]]) -> list[PermissionOverride]:
    return [
        PermissionOverride(
            permission_id=p.id, name=p.name, http_method=p.http_method,  # type: ignore[attr-defined]
            route_pattern=p.route_pattern, is_allowed=allowed,  # type: ignore[attr-defined]
        )
        for p, allowed in items
    ]  # fmt: skip


@router.post(
    "/api-users", response_model=ApiUserCreated, status_code=status.HTTP_201_CREATED, name="ApiUsers.Create",
    summary="Create an API user", tags=[API_USERS],
    openapi_extra=callers(CA),
)  # fmt: skip
async def create_api_user(
    body: ApiUserIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ApiUserCreated:
    """A new API user of your client. Its key and Pay Hero password are shown here once, never again."""
    api_user, key, password = await users.create_api_user(session, who, body, now=clock.now())
    return ApiUserCreated(
        api_user=ApiUserOut.model_validate(api_user),
        credentials=ApiCredentials(
            api_key=key.raw, api_key_mode="live", api_username=api_user.api_username, api_password=password
        ),
    )


@router.get(
    "/api-users",
    response_model=list[ApiUserOut],
    name="ApiUsers.List",
    summary="List API users",
    tags=[API_USERS],
    openapi_extra=callers(OP, CA),
)
async def list_api_users(who: CurrentPrincipal, session: Session) -> list[ApiUser]:
    """The API users of your client (operator staff: of every client)."""
    return await users.list_api_users(session, who)


@router.get(
    "/api-users/permissions", response_model=list[ApiUserPermissions], name="ApiUsers.ReadAllPermissions",
    summary="List every API user's permission overrides", tags=[API_USERS],
    openapi_extra=callers(OP, CA),
)  # fmt: skip
async def all_api_user_permissions(who: CurrentPrincipal, session: Session) -> list[ApiUserPermissions]:
    """Each API user's permission overrides: what is granted or revoked for it on top of its role."""
    found = await users.list_api_users(session, who)
    overrides = await access.overrides_of(session, [u.id for u in found])
    return [
        ApiUserPermissions(
            api_user_id=u.id, developer_name=u.developer_name, overrides=_override_list(overrides[u.id])
        )
        for u in found
    ]


@router.get(
    "/api-users/{apiUserId:uuid}",
    response_model=ApiUserOut,
    name="ApiUsers.Read",
    summary="Get an API user",
    tags=[API_USERS],
    openapi_extra=callers(OP, CA),
)
async def get_api_user(apiUserId: uuid.UUID, who: CurrentPrincipal, session: Session) -> ApiUser:
    """One API user of your client (operator staff: of any client)."""
    return await users.get_api_user(session, who, apiUserId)


@router.put(
    "/api-users/{apiUserId:uuid}/permissions", response_model=list[PermissionOverride],
    name="ApiUsers.UpdatePermissions",
    summary="Replace an API user's permission overrides", tags=[API_USERS], openapi_extra=callers(OP, CA),
)  # fmt: skip
async def set_api_user_permissions(
    apiUserId: uuid.UUID,
    body: PermissionOverridesIn,
    who: CurrentPrincipal,
    session: Session,
) -> list[PermissionOverride]:
    """Replace the API user's overrides: `true` grants a permission its role lacks, `false` revokes."""
    api_user = await access.set_overrides(session, who, apiUserId, body.overrides)
    return _override_list((await access.overrides_of(session, [api_user.id]))[api_user.id])


@router.get(
    "/api-users/{apiUserId:uuid}/permissions", response_model=list[PermissionOverride],
    name="ApiUsers.ReadPermissions",
    summary="Get an API user's permission overrides", tags=[API_USERS], openapi_extra=callers(OP, CA),
)  # fmt: skip
async def get_api_user_permissions(
    apiUserId: uuid.UUID,
    who: CurrentPrincipal,
    session: Session,
) -> list[PermissionOverride]:
    """The permissions granted (`isAllowed: true`) or revoked (`false`) for this API user on top
    of its role."""
    api_user = await users.get_api_user(session, who, apiUserId)
    return _override_list((await access.overrides_of(session, [api_user.id]))[api_user.id])
