"""The authorisation matrix, generated from the app's own routes.

For every protected /api/v1 route: no credentials is 401; a caller without the
route's permission is 403 naming it; and a route with an object id in its path
answers 404 for another client's object. A route added later without a check,
or with a tenant id the matrix does not know, fails here.

Wallet customers (JWTs) all share the Customer role, so a customer without a
route's permission exists only once that role has lost its permissions: the
customer routes' 403s are checked last, after emptying the role.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from malipo.api.routes import effective_routes
from malipo.app import create_app
from malipo.auth.permissions import DECISION_TTL, authorize, protected_routes, route_callers
from malipo.auth.principals import Audience
from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.customers import service as customers
from malipo.db import Database
from malipo.identity import service
from malipo.identity.models import (
    ApiKey,
    ApiUserPermission,
    ClientStatus,
    ClientType,
    KeyMode,
    Permission,
    Role,
    RolePermission,
)
from tests.messaging.helpers import messaging_objects

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
# Routes that act on another tenant's object, and which of client B's objects to name.
TENANT_OBJECTS = {
    "/api/v1/clients/{id}": {"id": "client"},
    "/api/v1/clients/{id}/api-users/count": {"id": "client"},
    "/api/v1/api-users/{apiUserId}": {"apiUserId": "api_user"},
    "/api/v1/api-users/{apiUserId}/permissions": {"apiUserId": "api_user"},
    "/api/v1/portal-users/{id}": {"id": "portal_user"},
    "/api/v1/sandbox/api-keys/{id}": {"id": "sandbox_key"},
    "/api/v1/customers/{id}": {"id": "customer"},
    "/api/v1/sms/{id}": {"id": "sms"},
    "/api/v1/sms/batches/{id}": {"id": "sms_batch"},
    "/api/v1/whatsapp/batches/{id}": {"id": "whatsapp_batch"},
    "/api/v1/channels/{id}": {"id": "channel"},
    "/api/v1/channels/{id}/deactivate": {"id": "channel"},
    "/api/v1/channels/{id}/activate": {"id": "channel"},
    "/api/v1/clients/{id}/pricing": {"id": "client"},
}
# A body that passes validation, so the request reaches the tenancy check.
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/api/v1/api-users/{apiUserId}/permissions"): {"overrides": {}},
}


@dataclass
class Caller:
    headers: dict[str, str]
    cookies: dict[str, str]


@dataclass
class World:
    url: str
    # Holds no permission at all, one caller per audience.
    powerless: dict[Audience, Caller]
    # Client A's callers holding every permission.
    mighty: dict[Audience, Caller]
    client_b: dict[str, uuid.UUID | int]
    db_url: str


async def _build(
    db: Database, clock: FrozenClock, app: Any, secret: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two active clients; in client A, callers with no permission and with all of them."""
    from malipo.auth.permissions import sync_permissions

    now = clock.now()
    await sync_permissions(db, app.routes, now)
    made: dict[str, Any] = {}
    async with db.transaction() as session:
        roles = await service.ensure_system_roles(session, now)
        nothing = Role(name="Nothing", is_system=False, created_at=now)
        everything = Role(name="Everything", is_system=False, created_at=now)
        session.add_all([nothing, everything])
        await session.flush()
        all_ids = (await session.scalars(select(Permission.id))).all()
        session.add_all(RolePermission(role_id=everything.id, permission_id=pid) for pid in all_ids)
        for tag in ("a", "b"):
            client = await service.create_client(
                session, name=f"Client {tag}", client_type=ClientType.COMPANY, email=f"{tag}@example.com",
                status=ClientStatus.ACTIVE, now=now,
            )  # fmt: skip
            made[f"client_{tag}"] = client.id
            for role, label in ((nothing, "powerless"), (everything, "mighty")):
                user = await service.create_portal_user(
                    session, email=f"{label}-{tag}@example.com", user_name=label,
                    password="correct horse battery", roles=[role], client_id=client.id, now=now,
                )  # fmt: skip
                made[f"portal_{label}_{tag}"] = user.id
                issued = await service.create_api_user(
                    session, client=client, role=roles["Developer"] if label == "mighty" else nothing,
                    developer_name=label, developer_email=f"dev-{label}-{tag}@example.com",
                    developer_phone_number="+254700000001", now=now,
                )  # fmt: skip
                if label == "mighty":  # overrides grant the API user every permission
                    session.add_all(
                        ApiUserPermission(api_user_id=issued.api_user.id, permission_id=pid, is_allowed=True)
                        for pid in all_ids
                    )
                key = await service.issue_api_key(
                    session, api_user=issued.api_user, mode=KeyMode.TEST, now=now
                )
                made[f"key_{label}_{tag}"] = key.raw
                made[f"api_user_{label}_{tag}"] = issued.api_user.id
                made[f"sandbox_key_{label}_{tag}"] = key.key.id
                # Sandbox customers, like the keys: tenancy, not mode, is what hides B's from A.
                customer = await customers.create_customer(
                    session, client=client, mode=KeyMode.TEST, email=f"cust-{label}-{tag}@example.com",
                    password="correct horse battery", full_name=label, now=now,
                )  # fmt: skip
                made[f"customer_{label}_{tag}"] = customer.id
                made[f"customer_token_{label}_{tag}"] = customers.issue_customer_token(
                    customer, secret=secret, now=now
                ).token
        # A paybill channel of each client (channel ids are integers).
        channel = await collections.create_channel(
            session, collections.acting_for(client.id, "test"), channel_type="paybill", short_code="522522",
            account_number=None, description=f"Paybill {tag}", now=now,
        )  # fmt: skip
        made[f"channel_{tag}"] = channel.id
        # An SMS, an SMS batch and a WhatsApp batch of each client.
        for kind, object_id in (await messaging_objects(session, client.id, now)).items():
            made[f"{kind}_{tag}"] = object_id
        for label, role in (("powerless", nothing), ("mighty", everything)):
            await service.create_portal_user(
                session, email=f"op-{label}@example.com", user_name=label, password="correct horse battery",
                roles=[role], now=now,
            )  # fmt: skip
    tenant_b = {
        "client": made["client_b"],
        "api_user": made["api_user_mighty_b"],
        "portal_user": made["portal_mighty_b"],
        "sandbox_key": made["sandbox_key_mighty_b"],
        "customer": made["customer_mighty_b"],
        "channel": made["channel_b"],
        "sms": made["sms_b"],
        "sms_batch": made["sms_batch_b"],
        "whatsapp_batch": made["whatsapp_batch_b"],
    }
    return made, tenant_b


def _sign_in(url: str, email: str) -> Caller:
    reply = httpx.post(
        f"{url}/api/v1/account/login", json={"username": email, "password": "correct horse battery"}
    )
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return Caller(
        {"X-CSRF-Token": csrf}, {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf}
    )


@pytest.fixture
def world(settings: Settings, live_server: Any) -> World:
    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    db = Database.from_url(settings.resolved_database_url)

    async def build() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            assert settings.secret_key is not None
            return await _build(db, clock, app, settings.secret_key.get_secret_value())
        finally:
            await db.dispose()

    made, tenant_b = asyncio.run(build())
    url = live_server(app).url

    def key(raw: str) -> Caller:
        return Caller({"Authorization": f"Bearer {raw}"}, {})

    return World(
        url=url,
        powerless={
            Audience.KEY: key(made["key_powerless_a"]),
            Audience.CLIENT_ADMIN: _sign_in(url, "powerless-a@example.com"),
            Audience.OPERATOR: _sign_in(url, "op-powerless@example.com"),
            # Powerless only once the Customer role is emptied: test_matrix does that last.
            Audience.CUSTOMER: key(made["customer_token_powerless_a"]),
        },
        mighty={
            Audience.KEY: key(made["key_mighty_a"]),
            Audience.CLIENT_ADMIN: _sign_in(url, "mighty-a@example.com"),
            Audience.CUSTOMER: key(made["customer_token_mighty_a"]),
        },
        client_b=tenant_b,
        db_url=settings.resolved_database_url,
    )


def _routes() -> list[tuple[str, str, str]]:
    app = create_app(Settings(inprocess_worker=False))
    return protected_routes(app.routes)


def _callers_of(path: str, method: str) -> frozenset[Audience]:
    app = create_app(Settings(inprocess_worker=False))
    for route in effective_routes(app.routes):
        if route.path == path and method in route.methods:
            return route_callers(route)  # type: ignore[arg-type]
    raise AssertionError(f"no route {method} {path}")


def _fill(path: str, values: dict[str, uuid.UUID | int] | None = None) -> str:
    return PARAM.sub(lambda m: str((values or {}).get(m.group(1), uuid.uuid4())), path)


def _call(
    world: World,
    method: str,
    path: str,
    caller: Caller | None,
    values: dict[str, uuid.UUID | int] | None = None,
):
    body = VALID_BODIES.get((method, path), {} if method in ("POST", "PUT", "PATCH") else None)
    return httpx.request(
        method,
        world.url + _fill(path, values),
        json=body,
        headers=caller.headers if caller else {},
        cookies=caller.cookies if caller else {},
    )


def test_every_api_v1_route_is_protected_except_the_public_ones() -> None:
    app = create_app(Settings(inprocess_worker=False))
    public = {
        (r.path, m)
        for r in effective_routes(app.routes)
        if r.path.startswith("/api/v1")
        and not any(getattr(d, "dependency", None) is authorize for d in r.dependencies)
        for m in r.methods
    }
    assert public == {
        ("/api/v1/account/login", "POST"),
        ("/api/v1/account/forgot-password", "POST"),
        ("/api/v1/account/reset-password", "POST"),
        ("/api/v1/clients", "POST"),
    }
    assert len(_routes()) >= 30


async def _empty_customer_role(db_url: str) -> None:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            role_id = await session.scalar(select(Role.id).where(Role.name == "Customer"))
            assert role_id is not None
            await session.execute(delete(RolePermission).where(RolePermission.role_id == role_id))
    finally:
        await db.dispose()


def test_matrix(world: World) -> None:
    problems: list[str] = []
    customer_routes: list[tuple[str, str, str]] = []
    for name, method, path in _routes():
        label = f"{method} {path}"
        anonymous = _call(world, method, path, None)
        if anonymous.status_code != 401:
            problems.append(f"{label}: anonymous got {anonymous.status_code}, not 401")

        audiences = _callers_of(path, method)
        for audience in audiences:
            if audience == Audience.CUSTOMER:  # checked last: see the module's docstring
                customer_routes.append((name, method, path))
                continue
            reply = _call(world, method, path, world.powerless[audience])
            if reply.status_code != 403 or reply.json().get("permission") != name:
                problems.append(
                    f"{label}: {audience.value} without {name} got {reply.status_code} {reply.text[:120]}"
                )

        if not PARAM.search(path):
            continue
        tenant_audiences = audiences - {Audience.OPERATOR}
        if not tenant_audiences:
            continue  # operator-only: operators act across clients by design
        if path not in TENANT_OBJECTS:
            problems.append(f"{label}: has an id in its path; add it to TENANT_OBJECTS")
            continue
        values = {param: world.client_b[kind] for param, kind in TENANT_OBJECTS[path].items()}
        for audience in tenant_audiences:
            reply = _call(world, method, path, world.mighty[audience], values)
            if reply.status_code != 404:
                problems.append(
                    f"{label}: {audience.value} of client A reached client B's object: {reply.status_code}"
                )

    assert customer_routes, "no route is for wallet customers"
    asyncio.run(_empty_customer_role(world.db_url))
    # Changed behind the server's back, as another process would: its cached decisions
    # may stand for up to their lifetime (permissions.DECISION_TTL), no longer.
    time.sleep(DECISION_TTL + 0.1)
    for name, method, path in customer_routes:
        reply = _call(world, method, path, world.powerless[Audience.CUSTOMER])
        if reply.status_code != 403 or reply.json().get("permission") != name:
            problems.append(
                f"{method} {path}: cust without {name} got {reply.status_code} {reply.text[:100]}"
            )
    assert problems == [], "\n".join(problems)


async def test_overrides_grant_and_revoke_on_top_of_the_role(db: Database, settings: Settings) -> None:
    """A Developer may list sandbox keys; a revoke override takes that away, a grant gives back."""
    from malipo.seed import seed_demo

    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    from malipo.auth.permissions import sync_permissions

    await sync_permissions(db, app.routes, clock.now())
    demo = await seed_demo(db, clock)
    async with db.transaction() as session:
        permission = await session.scalar(
            select(Permission).where(
                Permission.http_method == "GET", Permission.route_pattern == "/api/v1/sandbox/api-keys"
            )
        )
        key = await session.scalar(select(ApiKey).where(ApiKey.api_user_id == uuid.UUID(demo.api_user_id)))
    assert permission is not None
    assert key is not None
    from tests.fixtures.servers import LiveServer

    with LiveServer(app) as server:
        headers = {"Authorization": f"Bearer {demo.sandbox_api_key}"}
        assert httpx.get(f"{server.url}/api/v1/sandbox/api-keys", headers=headers).status_code == 200
        operator = _sign_in_with(server.url, demo.operator_email, demo.operator_password)
        put = httpx.put(
            f"{server.url}/api/v1/api-users/{demo.api_user_id}/permissions",
            json={"overrides": {str(permission.id): False}},
            headers=operator.headers,
            cookies=operator.cookies,
        )
        assert put.status_code == 200, put.text
        denied = httpx.get(f"{server.url}/api/v1/sandbox/api-keys", headers=headers)
        assert denied.status_code == 403
        assert denied.json()["permission"] == "SandboxKeys.List"
        assert "SandboxKeys.List" in denied.json()["detail"]
        unknown = httpx.put(
            f"{server.url}/api/v1/api-users/{demo.api_user_id}/permissions",
            json={"overrides": {str(uuid.uuid4()): True}},
            headers=operator.headers,
            cookies=operator.cookies,
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "overrides"


def _sign_in_with(url: str, email: str, password: str) -> Caller:
    reply = httpx.post(f"{url}/api/v1/account/login", json={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return Caller(
        {"X-CSRF-Token": csrf}, {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf}
    )
