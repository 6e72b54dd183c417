"""/api/v1 client routes: register, list, approve, reject, deactivate merchants."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from malipo.accounts.schemas import (
    ApiUserBrief,
    ApiUserCount,
    ClientIn,
    ClientOut,
    ClientWithUsers,
)
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.permissions import CA, OP, CurrentPrincipal, callers
from malipo.http.tags import CLIENTS
from malipo.identity import clients
from malipo.identity.models import ClientStatus

public_router = APIRouter()
router = APIRouter()
RejectReason = Annotated[str, Query(min_length=1, max_length=500, description="Why; sent to the client")]


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
