"""/api/v1 portal user and sandbox key routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from malipo.accounts.schemas import (
    ApiCredentials,
    ApiKeyOut,
    PortalUserCreated,
    PortalUserIn,
    PortalUserOut,
    SandboxKeyCreated,
    SandboxKeyIn,
)
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.tags import PORTAL_USERS, SANDBOX_KEYS
from malipo.identity import users
from malipo.identity.models import ApiKey, PortalUser

router = APIRouter()


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
