"""Who may call the Pay Hero surface: an API user, by its Pay Hero Basic pair or a key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from malipo.api.deps import ClockDep, DatabaseDep, Session
from malipo.auth.authenticate import Credential, RecentCallers, authenticate
from malipo.auth.principals import Principal, PrincipalKind
from malipo.core.errors import Forbidden
from malipo.db import Database

_API_USERS = frozenset({PrincipalKind.PAYHERO, PrincipalKind.API_KEY})


async def payhero_principal(request: Request, session: Session, clock: ClockDep) -> Principal:
    """The calling API user (its client is active); anyone else is refused."""
    return _admit(request, await authenticate(request, session, clock.now()))


def _admit(request: Request, principal: Principal) -> Principal:
    """``principal`` if it is an API user (kept on the request for idempotency and audit)."""
    if principal.kind not in _API_USERS:
        raise Forbidden("the Pay Hero API is for API users: send your api_username and api_password")
    request.state.principal = principal
    return principal


PayHeroPrincipal = Annotated[Principal, Depends(payhero_principal)]


async def payhero_caller(request: Request, db: DatabaseDep, clock: ClockDep) -> Credential:
    """The calling API user as ``payhero_principal`` finds it, without holding a connection.

    For endpoints whose writes go through a group commit: a known Pay Hero pair is taken from
    ``RecentCallers`` and checked again by the batch (``recheck``); anyone else is checked in a
    transaction of its own, over before the endpoint runs. A request waiting for its batch must
    not hold a pooled connection, or enough waiting requests would leave the batch none.
    """
    callers: RecentCallers = db.caches.setdefault(RECENT_CALLERS, RecentCallers())
    credential = await callers.caller(request, db, clock.now())
    _admit(request, credential.principal)
    return credential


RECENT_CALLERS = "auth.recent_callers"
PayHeroCaller = Annotated[Credential, Depends(payhero_caller)]


def forget_caller(db: Database, credential: Credential) -> None:
    """Drop ``credential`` from the recent callers: its next request is checked from scratch."""
    callers: RecentCallers | None = db.caches.get(RECENT_CALLERS)
    if callers is not None:
        callers.forget(credential)
