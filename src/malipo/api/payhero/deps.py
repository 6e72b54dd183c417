"""Who may call the Pay Hero surface: an API user, by its Pay Hero Basic pair or a key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from malipo.api.deps import ClockDep, Session
from malipo.auth.authenticate import authenticate
from malipo.auth.principals import Principal, PrincipalKind
from malipo.core.errors import Forbidden

_API_USERS = frozenset({PrincipalKind.PAYHERO, PrincipalKind.API_KEY})


async def payhero_principal(request: Request, session: Session, clock: ClockDep) -> Principal:
    """The calling API user (its client is active); anyone else is refused."""
    principal = await authenticate(request, session, clock.now())
    if principal.kind not in _API_USERS:
        raise Forbidden("the Pay Hero API is for API users: send your api_username and api_password")
    request.state.principal = principal
    return principal


PayHeroPrincipal = Annotated[Principal, Depends(payhero_principal)]
