"""Permissions ``(name, httpMethod, routePattern)``: whether a principal holds one, and the defaults.

A permission is an act, by name, served by one or more routes. At start the gateway
makes sure a permission exists for every protected route (``malipo.http.permissions``
lists them) and grants a new permission to the system roles whose default patterns
match it; an operator's later changes to a role are never undone.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, false, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from malipo.core.errors import Forbidden
from malipo.db import Database
from malipo.identity.models import ApiUserPermission, Permission, RolePermission
from malipo.identity.permission_cache import database_decisions, session_decisions
from malipo.identity.principals import Principal
from malipo.identity.service import ensure_system_roles

# Merchant-facing API capabilities, granted to the roles that use the API.
_MERCHANT_API = (
    "Customers.*",
    "Wallet.*",
    "Payments.*",
    "Banks.Read*",
    "Disbursements.*",
    # A merchant's API reads its own batches' reports (`malipo disburse` prints the reconciliation).
    "Reports.Disbursement*",
    "Cards.*",
    "Checkout.*",
    "PaymentLinks.*",
    "Kyc.Documents*",
    "Sms.*",
    "Whatsapp.*",
    "Email.*",
    "Channels.*",
    "PaymentRequests.*",
    "MerchantWallets.*",
    "Payouts.*",
    "Refunds.*",
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
        "Banks.*",
        "Reports.*",
        "Metrics.*",
        "Review.*",
        "RailBalances.*",
        "Reconciliation.*",
        "FraudRules.*",
        "Disbursements.ReadSettings",
        "Disbursements.SetApprovalThreshold",
    ),
    "ClientAdmin": (
        "Account.*",
        "Clients.Read",
        "Clients.ReadApiUserCount",
        "ApiUsers.*",
        "PortalUsers.*",
        "Roles.Read",
        "Reports.*",
        "FraudRules.Read*",
        *_MERCHANT_API,
    ),
    "Developer": _MERCHANT_API,
    "ReadOnly": ("*.Read*", "*.List*", "Account.Logout"),
    # A wallet customer (JWT): its own wallet and details; audiences keep it off everything else.
    "Customer": ("Wallet.*", "Customers.Read"),
}


def default_roles_for(name: str) -> list[str]:
    return [
        role
        for role, patterns in DEFAULT_GRANTS.items()
        if any(fnmatch.fnmatchcase(name, p) for p in patterns)
    ]


async def create_missing_permissions(db: Database, wanted: list[tuple[str, str, str]], now: datetime) -> int:
    """Create each ``(name, method, path)`` not yet defined, with its default grants; return how many
    were new."""
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
    decisions = session_decisions(session)
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
    decisions = database_decisions(db)
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
