"""Route permissions: who may call each route, and the guards that check it on every request.

Each protected route — on /api/v1, the Pay Hero surface (/api/v2, /mailer) and
the portal's pages — declares its permission name (the route's ``name``) and
its audience (``callers(...)``), and depends on a guard (``authorize``, or one
registered with ``guard``) that checks both. The same name may serve the same
act on both surfaces (``Channels.Create``). At start the gateway makes sure a
permission exists for every such route (``sync_permissions``); the decision
itself (roles, overrides, its cache) is ``malipo.auth.permissions``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from malipo.auth.authenticate import CSRF_COOKIE, CSRF_HEADER, authenticate
from malipo.auth.permissions import check_permission, create_missing_permissions
from malipo.core.crypto import constant_time_equal
from malipo.core.errors import Forbidden
from malipo.db import Database
from malipo.http.deps import ClockDep, Session
from malipo.http.routes import EffectiveRoute, effective_routes, route_template
from malipo.identity.principals import Audience, Principal

CALLERS_KEY = "x-callers"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

OP, CA, KEY = Audience.OPERATOR, Audience.CLIENT_ADMIN, Audience.KEY


def callers(*who: Audience) -> dict[str, Any]:
    """``openapi_extra`` for a route: who may call it (shown in the API reference too)."""
    return {CALLERS_KEY: [w.value for w in who]}


def route_callers(route: APIRoute | EffectiveRoute) -> frozenset[Audience]:
    declared = (route.openapi_extra or {}).get(CALLERS_KEY)
    if declared is None:
        return frozenset(Audience)
    return frozenset(Audience(w) for w in declared)


# The dependencies that check a route's audience and permission: ``authorize`` and the ones
# registered with ``guard`` (the Pay Hero surface's, which authenticate their own way).
_GUARDS: set[Any] = set()
_Check = TypeVar("_Check", bound=Callable[..., Any])


def guard(check: _Check) -> _Check:
    """Register ``check`` (a dependency) as one that calls ``admit``: its routes are protected."""
    _GUARDS.add(check)
    return check


def _depends_on_a_guard(dependant: Any, seen: set[int] | None = None) -> bool:
    seen = seen if seen is not None else set()
    for sub in getattr(dependant, "dependencies", ()):
        if sub.call in _GUARDS:
            return True
        if id(sub) not in seen:
            seen.add(id(sub))
            if _depends_on_a_guard(sub, seen):
                return True
    return False


def is_protected(route: EffectiveRoute) -> bool:
    """Whether a guard checks this route's audience and permission (as a route's or a router's
    dependency, or as a parameter's, at any depth)."""
    if any(getattr(dep, "dependency", None) in _GUARDS for dep in route.dependencies):
        return True
    return _depends_on_a_guard(getattr(route.original, "dependant", None))


def protected_routes(routes: list[Any]) -> list[tuple[str, str, str]]:
    """``(name, method, path)`` of every route, of every surface, that needs a permission."""
    found = []
    for route in effective_routes(routes):
        if is_protected(route):
            found.extend((route.name, method, route.path) for method in sorted(route.methods))
    return found


async def sync_permissions(db: Database, routes: list[Any], now: datetime) -> int:
    """Create the missing permissions of ``routes`` and their default grants; return how many were new."""
    return await create_missing_permissions(db, protected_routes(routes), now)


async def authorize(request: Request, session: Session, clock: ClockDep) -> Principal:
    """Authenticate, then check audience, CSRF (cookie sessions) and the route's permission."""
    principal = await authenticate(request, session, clock.now())
    template = admit(request, principal)
    await check_permission(session, principal, request.method, template)
    return principal


def admit(request: Request, principal: Principal) -> str:
    """Check the route's audience and, for cookie sessions, CSRF; keep the principal on the
    request; answer the route's template, whose permission the caller must check next."""
    request.state.principal = principal
    route: APIRoute = request.scope["route"]
    template = route_template(request.scope) or route.path
    allowed = route_callers(route)
    if principal.audience not in allowed:
        who = ", ".join(sorted(a.name.lower().replace("_", " ") for a in allowed))
        if allowed == {KEY}:
            who += " (an API key, or a Pay Hero api_username and api_password)"
        raise Forbidden(f"{route.name} is only for: {who}", permission=route.name)
    if principal.uses_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or ""
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        expected = principal.csrf_token or ""
        if not (sent and constant_time_equal(sent, expected) and constant_time_equal(cookie, expected)):
            raise Forbidden(
                f"missing or wrong CSRF token: send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER}"
            )
    return template


guard(authorize)

CurrentPrincipal = Annotated[Principal, Depends(authorize)]
