"""/api/v1 routes of identity: account, clients, API users, permissions, roles, portal users, sandbox keys.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from malipo.accounts.schemas import (
    ApiCredentials,
    ApiKeyOut,
    ApiUserBrief,
    ApiUserCount,
    ApiUserCreated,
    ApiUserIn,
    ApiUserOut,
    ApiUserPermissions,
    BulkPermissionsOut,
    ClientIn,
    ClientOut,
    ClientWithUsers,
    ForgotPasswordIn,
    LoginIn,
    LoginOut,
    PermissionIn,
    PermissionOut,
    PermissionOverride,
    PermissionOverridesIn,
    PortalUserCreated,
    PortalUserIn,
    PortalUserOut,
    ResetPasswordIn,
    RoleIn,
    RoleOut,
    RolePermissionAddIn,
    RolePermissionsIn,
    SandboxKeyCreated,
    SandboxKeyIn,
)
from malipo.auth.authenticate import CSRF_COOKIE, SESSION_COOKIE
from malipo.http.deps import ClockDep, DatabaseDep, Session, SettingsDep
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.schemas import Message
from malipo.http.tags import ACCOUNT, API_USERS, CLIENTS, PERMISSIONS, PORTAL_USERS, ROLES, SANDBOX_KEYS
from malipo.identity import access, clients, sessions, users
from malipo.identity.models import ApiKey, ApiUser, ClientStatus, PortalUser, Role

public_router = APIRouter()
router = APIRouter()

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "testserver"})
RejectReason = Annotated[str, Query(min_length=1, max_length=500, description="Why; sent to the client")]


# -- account -------------------------------------------------------------------------


def _login_limiter(request: Request) -> sessions.LoginRateLimiter:
    return request.app.state.login_limiter  # type: ignore[no-any-return]


@public_router.post(
    "/account/login",
    response_model=LoginOut,
    name="Account.Login",
    summary="Sign in to the portal",
    tags=[ACCOUNT],
)
async def login(
    body: LoginIn, request: Request, response: Response, db: DatabaseDep, clock: ClockDep
) -> LoginOut:
    """Sign a portal user in: sets the session cookie and a CSRF cookie; answers the user's roles."""
    ip = request.client.host if request.client else "unknown"
    await _login_limiter(request).hit(ip)
    signed = await sessions.sign_in(
        db, email=body.username, password=body.password, remember_me=body.remember_me, ip=ip, now=clock.now()
    )
    secure = request.url.hostname not in _LOOPBACK
    max_age = int((signed.expires_at - clock.now()).total_seconds()) if signed.persistent else None
    response.set_cookie(
        SESSION_COOKIE, signed.token, max_age=max_age, httponly=True, secure=secure, samesite="lax"
    )
    response.set_cookie(
        CSRF_COOKIE, signed.csrf_token, max_age=max_age, httponly=False, secure=secure, samesite="lax"
    )
    return LoginOut(
        user_id=signed.user.id,
        user_name=signed.user.user_name,
        email=signed.user.email,
        client_id=signed.user.client_id,
        roles=signed.roles,
        csrf_token=signed.csrf_token,
        expires_at=signed.expires_at,
    )


@router.post(
    "/account/logout",
    response_model=Message,
    name="Account.Logout",
    summary="Sign out of the portal",
    tags=[ACCOUNT],
    openapi_extra=callers(OP, CA),
)
async def logout(who: CurrentPrincipal, session: Session, response: Response) -> Message:
    """End this portal session and clear its cookies."""
    await sessions.sign_out(session, who.session_id)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return Message(message="signed out")


@public_router.post(
    "/account/forgot-password",
    response_model=Message,
    status_code=status.HTTP_202_ACCEPTED,
    name="Account.ForgotPassword",
    summary="Ask for a password reset link",
    tags=[ACCOUNT],
)
async def forgot_password(
    body: ForgotPasswordIn, session: Session, clock: ClockDep, settings: SettingsDep
) -> Message:
    """Email a password reset link to a portal user. The reply is the same whether the address
    belongs to someone or not, so it tells no one who has an account."""
    await sessions.request_password_reset(session, body.email, now=clock.now(), settings=settings)
    return Message(message="If that email belongs to a portal user, a reset link is on its way.")


@public_router.post(
    "/account/reset-password",
    response_model=Message,
    name="Account.ResetPassword",
    summary="Set a new password with a reset token",
    tags=[ACCOUNT],
)
async def reset_password(body: ResetPasswordIn, session: Session, clock: ClockDep) -> Message:
    """Set a new password with the token from the reset email: the token is then spent and every
    session of the user signed out."""
    await sessions.reset_password(
        session, email=body.email, token=body.token, new_password=body.new_password, now=clock.now()
    )
    return Message(message="password changed: sign in with the new one")


# -- clients -------------------------------------------------------------------------


@public_router.post(
    "/clients", response_model=ClientOut, status_code=status.HTTP_201_CREATED, name="Clients.Register",
    summary="Register a merchant", tags=[CLIENTS],
)  # fmt: skip
async def register_client(
    body: ClientIn, session: Session, clock: ClockDep, settings: SettingsDep
) -> ClientOut:
    """Register a merchant: Pending until a CompanyAdmin approves; its admin's credentials are emailed."""
    client = await clients.register_client(session, body, now=clock.now(), settings=settings)
    return ClientOut.model_validate(clients.client_out(client))


async def _with_users(session: Session, found: list[object]) -> list[ClientWithUsers]:
    by_client = await clients.api_users_by_client(session, [c.id for c in found])  # type: ignore[attr-defined]
    return [
        ClientWithUsers(
            **clients.client_out(c),  # type: ignore[arg-type]
            api_user_count=len(by_client[c.id]),  # type: ignore[attr-defined]
            api_users=[ApiUserBrief.model_validate(u) for u in by_client[c.id]],  # type: ignore[attr-defined]
        )
        for c in found
    ]


@router.get(
    "/clients",
    response_model=list[ClientWithUsers],
    name="Clients.List",
    summary="List all clients with their API users",
    tags=[CLIENTS],
    openapi_extra=callers(OP),
)
async def list_clients(who: CurrentPrincipal, session: Session) -> list[ClientWithUsers]:
    """Every client (merchant), with its API users."""
    return await _with_users(session, list(await clients.list_clients(session)))


@router.get(
    "/clients/pending",
    response_model=list[ClientWithUsers],
    name="Clients.ListPending",
    summary="List clients awaiting approval",
    tags=[CLIENTS],
    openapi_extra=callers(OP),
)
async def list_pending_clients(who: CurrentPrincipal, session: Session) -> list[ClientWithUsers]:
    """Clients that registered and wait for operator staff to approve or reject them."""
    return await _with_users(session, list(await clients.list_clients(session, status=ClientStatus.PENDING)))


@router.get(
    "/clients/api-users/count", response_model=ApiUserCount, name="Clients.ReadAllApiUserCount",
    summary="Count the API users of all clients", tags=[CLIENTS],
    openapi_extra=callers(OP),
)  # fmt: skip
async def count_all_api_users(who: CurrentPrincipal, session: Session) -> ApiUserCount:
    """How many API users all clients have together."""
    return ApiUserCount(client_id=None, count=await clients.count_api_users(session))


@router.get(
    "/clients/{id:uuid}",
    response_model=ClientOut,
    name="Clients.Read",
    summary="Get a client",
    tags=[CLIENTS],
    openapi_extra=callers(OP, CA),
)
async def get_client(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> ClientOut:
    """One client. A client's portal users see their own client only (another is a 404)."""
    return ClientOut.model_validate(clients.client_out(await clients.get_client(session, who, id)))


@router.get(
    "/clients/{id:uuid}/api-users/count", response_model=ApiUserCount, name="Clients.ReadApiUserCount",
    summary="Count a client's API users", tags=[CLIENTS],
    openapi_extra=callers(OP, CA),
)  # fmt: skip
async def count_client_api_users(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> ApiUserCount:
    """How many API users a client has."""
    client = await clients.get_client(session, who, id)
    return ApiUserCount(client_id=client.id, count=await clients.count_api_users(session, client.id))


@router.post(
    "/clients/{id:uuid}/approve",
    response_model=ClientOut,
    name="Clients.Approve",
    summary="Approve a pending client",
    tags=[CLIENTS],
    openapi_extra=callers(OP),
)
async def approve_client(
    id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> ClientOut:
    """Activate a Pending client; an Individual gets exactly one API user, its key sent by email."""
    client = await clients.get_client(session, who, id)
    client = await clients.approve_client(session, client, now=clock.now(), settings=settings)
    return ClientOut.model_validate(clients.client_out(client))


@router.post(
    "/clients/{id:uuid}/deactivate",
    response_model=ClientOut,
    name="Clients.Deactivate",
    summary="Deactivate a client",
    tags=[CLIENTS],
    openapi_extra=callers(OP),
)
async def deactivate_client(
    id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ClientOut:
    """Deactivate an Active client; its contact is told by email."""
    client = await clients.deactivate_client(
        session, await clients.get_client(session, who, id), now=clock.now()
    )
    return ClientOut.model_validate(clients.client_out(client))


@router.post(
    "/clients/{id:uuid}/reject",
    response_model=ClientOut,
    name="Clients.Reject",
    summary="Reject a pending client",
    tags=[CLIENTS],
    openapi_extra=callers(OP),
)
async def reject_client(
    id: uuid.UUID, reason: RejectReason, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ClientOut:
    """Reject a Pending client; the `reason` is sent to its contact."""
    client = await clients.get_client(session, who, id)
    client = await clients.reject_client(session, client, reason=reason, now=clock.now())
    return ClientOut.model_validate(clients.client_out(client))


# -- API users -----------------------------------------------------------------------


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


# -- permissions ---------------------------------------------------------------------


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


# -- portal users --------------------------------------------------------------------


def _portal_user_out(user: PortalUser, roles: list[str]) -> PortalUserOut:
    return PortalUserOut(
        id=user.id, user_name=user.user_name, email=user.email, client_id=user.client_id, roles=roles,
        is_active=user.is_active, created_at=user.created_at,
    )  # fmt: skip


@router.post(
    "/portal-users", response_model=PortalUserCreated, status_code=status.HTTP_201_CREATED,
    name="PortalUsers.Create",
    summary="Create a portal user", tags=[PORTAL_USERS], openapi_extra=callers(OP, CA),
)  # fmt: skip
async def create_portal_user(
    body: PortalUserIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> PortalUserCreated:
    """A portal user, its initial password emailed; `generateApiKey` also issues API credentials."""
    user, roles, credentials = await users.create_portal_user(
        session, who, body, now=clock.now(), settings=settings
    )
    return PortalUserCreated(
        portal_user=_portal_user_out(user, roles),
        credentials=ApiCredentials(**credentials) if credentials else None,  # type: ignore[arg-type]
    )


@router.get(
    "/portal-users",
    response_model=list[PortalUserOut],
    name="PortalUsers.List",
    summary="List portal users",
    tags=[PORTAL_USERS],
    openapi_extra=callers(OP, CA),
)
async def list_portal_users(who: CurrentPrincipal, session: Session) -> list[PortalUserOut]:
    """The portal users of your client (operator staff: every portal user)."""
    found = await users.list_portal_users(session, who)
    roles = await users.portal_user_roles(session, [u.id for u in found])
    return [_portal_user_out(u, roles[u.id]) for u in found]


@router.delete(
    "/portal-users/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT, name="PortalUsers.Delete",
    summary="Delete a portal user", tags=[PORTAL_USERS],
    openapi_extra=callers(OP, CA),
)  # fmt: skip
async def delete_portal_user(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> Response:
    """Delete a portal user of your client (operator staff: any); you cannot delete yourself (409)."""
    await users.delete_portal_user(session, who, id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- sandbox keys --------------------------------------------------------------------


@router.get(
    "/sandbox/api-keys",
    response_model=list[ApiKeyOut],
    name="SandboxKeys.List",
    summary="List sandbox keys",
    tags=[SANDBOX_KEYS],
    openapi_extra=callers(OP, CA, KEY),
)
async def list_sandbox_keys(who: CurrentPrincipal, session: Session) -> list[ApiKey]:
    """Sandbox keys (`mk_test_…`) you may see, revoked ones included; the raw keys are never shown
    again."""
    return await users.list_sandbox_keys(session, who)


@router.post(
    "/sandbox/api-keys", response_model=SandboxKeyCreated, status_code=status.HTTP_201_CREATED,
    name="SandboxKeys.Create",
    summary="Create a sandbox key", tags=[SANDBOX_KEYS], openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def create_sandbox_key(
    body: SandboxKeyIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> SandboxKeyCreated:
    """A new sandbox key (`mk_test_…`). The raw key is shown here once; only its hash is kept."""
    issued = await users.create_sandbox_key(
        session, who, description=body.description, api_user_id=body.api_user_id, now=clock.now()
    )
    return SandboxKeyCreated(**ApiKeyOut.model_validate(issued.key).model_dump(), api_key=issued.raw)


@router.delete(
    "/sandbox/api-keys/{id:uuid}",
    response_model=ApiKeyOut,
    name="SandboxKeys.Revoke",
    summary="Revoke a sandbox key",
    tags=[SANDBOX_KEYS],
    openapi_extra=callers(OP, CA, KEY),
)
async def revoke_sandbox_key(
    id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ApiKey:
    """Revoke a sandbox key: it fails on its very next request."""
    return await users.revoke_sandbox_key(session, who, id, now=clock.now())
