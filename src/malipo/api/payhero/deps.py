"""Who may call the Pay Hero surface: an API user, by its Pay Hero Basic pair or a key, holding
the route's permission (as on /api/v1: its roles' grants and its own overrides)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from malipo.auth.authenticate import Credential, RecentCallers, authenticate
from malipo.auth.permissions import check_permission, check_permission_in
from malipo.db import Database
from malipo.http.deps import ClockDep, DatabaseDep, Session
from malipo.http.permissions import KEY, admit, callers, guard
from malipo.identity.principals import Principal

# Every Pay Hero route's audience: API users (a Pay Hero pair or a key).
API_USERS = callers(KEY)


@guard
async def payhero_principal(request: Request, session: Session, clock: ClockDep) -> Principal:
    """The calling API user (its client is active), holding the route's permission."""
    principal = await authenticate(request, session, clock.now())
    template = admit(request, principal)
    await check_permission(session, principal, request.method, template)
    return principal


PayHeroPrincipal = Annotated[Principal, Depends(payhero_principal)]


async def payhero_caller(request: Request, db: DatabaseDep, clock: ClockDep) -> Credential:
    """The calling API user as ``payhero_principal`` finds it, without holding a connection.

    For endpoints whose writes go through a group commit: a known Pay Hero pair is taken from
    ``RecentCallers`` and checked again by the batch (``recheck``); anyone else is checked in a
    transaction of its own, over before the endpoint runs. A request waiting for its batch must
    not hold a pooled connection, or enough waiting requests would leave the batch none. The
    permission is checked the same way: a recent decision, or a short transaction of its own.
    """
    recent: RecentCallers = db.caches.setdefault(RECENT_CALLERS, RecentCallers())
    credential = await recent.caller(request, db, clock.now())
    template = admit(request, credential.principal)
    await check_permission_in(db, credential.principal, request.method, template)
    return credential


guard(payhero_caller)


RECENT_CALLERS = "auth.recent_callers"
PayHeroCaller = Annotated[Credential, Depends(payhero_caller)]


def forget_caller(db: Database, credential: Credential) -> None:
    """Drop ``credential`` from the recent callers: its next request is checked from scratch."""
    callers: RecentCallers | None = db.caches.get(RECENT_CALLERS)
    if callers is not None:
        callers.forget(credential)
