"""Permissions ``(name, httpMethod, routePattern)`` and the check every protected request passes.

Each protected route — on /api/v1, the Pay Hero surface (/api/v2, /mailer) and
the portal's pages — declares its permission name (the route's ``name``) and
its audience (``callers(...)``), and depends on a guard (``authorize``, or one
registered with ``guard``) that checks both. The same name may serve the same
act on both surfaces (``Channels.Create``). At start the gateway makes sure a
permission exists for every such route and grants a new permission to the
system roles whose default patterns match it; an operator's later changes to
a role are never undone.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import bindparam, event, exists, false, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import aliased

from malipo.auth.authenticate import CSRF_COOKIE, CSRF_HEADER, authenticate
from malipo.core.crypto import constant_time_equal
from malipo.core.errors import Forbidden
from malipo.db import Database
from malipo.http.deps import ClockDep, Session
from malipo.http.routes import EffectiveRoute, effective_routes, route_template
from malipo.identity.models import ApiUserPermission, Permission, RolePermission
from malipo.identity.principals import Audience, Principal
from malipo.identity.service import ensure_system_roles

CALLERS_KEY = "x-callers"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

OP, CA, KEY = Audience.OPERATOR, Audience.CLIENT_ADMIN, Audience.KEY

# Merchant-facing API capabilities, granted to the roles that use the API.
_MERCHANT_API = (
    "Customers.*",
    "Wallet.*",
    "Payments.*",
    "Banks.*",
    "Disbursements.*",
    "Cards.*",
    "Checkout.*",
    "Kyc.Documents*",
    "Sms.*",
    "Whatsapp.*",
    "Email.*",
    "Channels.*",
    "MerchantWallets.*",
    "Payouts.*",
    "Transactions.*",
    "Pricing.Read",
    "Webhooks.*",
    "SandboxKeys.*",
)

DEFAULT_GRANTS: dict[str, tuple[str, ...]] = {
    "SuperAdmin": ("*",),
    "CompanyAdmin": (
        "Account.*",
        "Clients.*",
        "ApiUsers.Read*",
        "PortalUsers.*",
        "Roles.Read",
        "Permissions.Read*",
        "Kyc.Admin*",
        "Pricing.*",
        "Reports.*",
        "Metrics.*",
        "Review.*",
    ),
    "ClientAdmin": (
        "Account.*",
        "Clients.Read",
        "Clients.ReadApiUserCount",
        "ApiUsers.*",
        "PortalUsers.*",
        "Roles.Read",
        "Reports.*",
        *_MERCHANT_API,
    ),
    "Developer": _MERCHANT_API,
    "ReadOnly": ("*.Read*", "*.List*", "Account.Logout"),
    # A wallet customer (JWT): its own wallet and details; audiences keep it off everything else.
    "Customer": ("Wallet.*", "Customers.Read"),
}


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


def default_roles_for(name: str) -> list[str]:
    return [
        role
        for role, patterns in DEFAULT_GRANTS.items()
        if any(fnmatch.fnmatchcase(name, p) for p in patterns)
    ]


async def sync_permissions(db: Database, routes: list[Any], now: datetime) -> int:
    """Create the missing permissions of ``routes`` and their default grants; return how many were new."""
    wanted = protected_routes(routes)
    for _attempt in range(3):
        try:
            async with db.transaction() as session:
                return await _sync(session, wanted, now)
        except IntegrityError:  # another process created the same ones at the same moment
            continue
    return 0


async def _sync(session: AsyncSession, wanted: list[tuple[str, str, str]], now: datetime) -> int:
    roles = await ensure_system_roles(session, now)
    existing = {(p.http_method, p.route_pattern) for p in (await session.scalars(select(Permission))).all()}
    created = 0
    for name, method, path in wanted:
        if (method, path) in existing:
            continue
        permission = Permission(name=name, http_method=method, route_pattern=path, created_at=now)
        session.add(permission)
        await session.flush()
        session.add_all(
            RolePermission(role_id=roles[role].id, permission_id=permission.id)
            for role in default_roles_for(name)
        )
        existing.add((method, path))
        created += 1
    return created


# Built once (it runs on every protected call): the permission of (method, route), whether one
# of the caller's roles grants it, and whether the API user's own overrides deny or grant it.
# A permission is an act, by name; its rows are the routes that serve it (v1 and v2 both create a
# channel, Pay Hero's WhatsApp paths have two spellings): a grant or an override of one row of a
# name counts for all of them, so that no alias or other surface is left open, and a denial wins.
_SAME = aliased(Permission)


def _held(link: Any, *where: Any) -> Any:
    return exists().where(link.permission_id == _SAME.id, _SAME.name == Permission.name, *where)


_PERMISSION_CHECK = select(
    Permission.name,
    _held(RolePermission, RolePermission.role_id.in_(bindparam("role_ids", expanding=True))).label("by_role"),
    _held(
        ApiUserPermission,
        ApiUserPermission.api_user_id == bindparam("api_user_id"),
        ApiUserPermission.is_allowed == false(),
    ).label("denied"),
    _held(
        ApiUserPermission,
        ApiUserPermission.api_user_id == bindparam("api_user_id"),
        ApiUserPermission.is_allowed == true(),
    ).label("granted"),
).where(Permission.http_method == bindparam("method"), Permission.route_pattern == bindparam("route"))


DECISION_TTL = 2.0  # seconds a cached permission decision stands


class _Decisions:
    """Recent permission decisions of one database in this process: most requests need no query.

    An entry lives ``ttl`` seconds. A change to a role's grants or an API user's overrides
    clears the cache when its transaction commits (``permissions_changed``); another
    process sees the change within ``ttl``.
    """

    def __init__(self, ttl: float = DECISION_TTL, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[tuple[Any, ...], tuple[float, str | None, bool]] = {}

    def get(self, key: tuple[Any, ...]) -> tuple[str | None, bool] | None:
        found = self._entries.get(key)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1], found[2]

    def put(self, key: tuple[Any, ...], name: str | None, allowed: bool) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, name, allowed)

    def clear(self) -> None:
        self._entries.clear()


_PERMISSIONS_CHANGED = "permissions_changed"
_CACHE_NAME = "permission_decisions"


def _decisions(session: AsyncSession | OrmSession) -> _Decisions | None:
    database = session.info.get("database")
    if database is None:  # a session made outside Database: no cache
        return None
    found: _Decisions = database.caches.setdefault(_CACHE_NAME, _Decisions())
    return found


def permissions_changed(session: AsyncSession) -> None:
    """Call after changing grants or overrides: cached decisions go when the change commits."""
    session.info[_PERMISSIONS_CHANGED] = True
    decisions = _decisions(session)
    if decisions is not None:
        decisions.clear()


@event.listens_for(OrmSession, "after_commit")
def _clear_decisions_after_commit(session: OrmSession) -> None:
    if session.info.pop(_PERMISSIONS_CHANGED, False):
        decisions = _decisions(session)
        if decisions is not None:
            decisions.clear()


@event.listens_for(OrmSession, "after_soft_rollback")
def _forget_change_after_rollback(session: OrmSession, _previous: Any) -> None:
    session.info.pop(_PERMISSIONS_CHANGED, None)


def _decision_key(principal: Principal, method: str, route_pattern: str) -> tuple[Any, ...]:
    return (method, route_pattern, principal.role_ids, principal.api_user_id)


async def _decide(
    session: AsyncSession, principal: Principal, method: str, route_pattern: str
) -> tuple[str | None, bool]:
    row = (
        await session.execute(
            _PERMISSION_CHECK,
            {
                "method": method,
                "route": route_pattern,
                "role_ids": list(principal.role_ids),
                "api_user_id": principal.api_user_id,
            },
        )
    ).first()
    if row is None:
        return None, False
    return row.name, not row.denied and bool(row.granted or row.by_role)


async def check_permission(
    session: AsyncSession, principal: Principal, method: str, route_pattern: str
) -> None:
    """Raise Forbidden unless the principal holds the permission of ``method route_pattern``.

    Effective permissions are the principal's roles' grants, with an API user's
    own overrides (allow or deny) taking precedence.
    """
    key = _decision_key(principal, method, route_pattern)
    decisions = _decisions(session)
    decision = decisions.get(key) if decisions is not None else None
    if decision is None:
        decision = await _decide(session, principal, method, route_pattern)
        if decisions is not None:
            decisions.put(key, *decision)
    _enforce(decision, method, route_pattern)


async def check_permission_in(db: Database, principal: Principal, method: str, route_pattern: str) -> None:
    """``check_permission`` for a caller that holds no session: the cached decision, or on a
    miss a short transaction of its own (over before this returns)."""
    key = _decision_key(principal, method, route_pattern)
    decisions: _Decisions = db.caches.setdefault(_CACHE_NAME, _Decisions())
    decision = decisions.get(key)
    if decision is None:
        async with db.transaction() as session:
            decision = await _decide(session, principal, method, route_pattern)
        decisions.put(key, *decision)
    _enforce(decision, method, route_pattern)


def _enforce(decision: tuple[str | None, bool], method: str, route_pattern: str) -> None:
    name, allowed = decision
    if name is None:
        raise Forbidden(f"no permission is defined for {method} {route_pattern}")
    if not allowed:
        raise Forbidden(f"missing permission {name} ({method} {route_pattern})", permission=name)


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
