"""A seeded merchant's every way in, and how to present one for an operation of the OpenAPI document.

``seed`` creates the demo operator and merchant (an approved client whose API user has
the Developer role: every merchant API permission), then signs in over HTTP as a real
client would: the operator and the merchant's admin in the portal, a wallet customer with
the API key.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from malipo.api.openapi import (
    API_KEY,
    CSRF_COOKIE_SCHEME,
    CSRF_HEADER_SCHEME,
    CUSTOMER_JWT,
    PAYHERO_BASIC,
    PORTAL_SESSION,
)
from malipo.auth.authenticate import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from malipo.core.clock import SystemClock
from malipo.db import Database
from malipo.seed import DemoCredentials, seed_demo

Requirement = dict[str, list[str]]

# Operations that can take away the credentials a fuzzing run uses, in the order to run them
# (after everything else): each may spoil the ones after it (the calling key revoked, the API
# user's or the Developer role's grants taken, the merchant rejected or deactivated, a signed-in
# portal user deleted, the operator signed out), never the ones before.
REVOKERS = [
    ("DELETE", "/api/v1/sandbox/api-keys/{id}"),
    ("PUT", "/api/v1/api-users/{apiUserId}/permissions"),
    ("PUT", "/api/v1/roles/{roleId}/permissions"),
    ("DELETE", "/api/v1/roles/{roleId}/permissions/{permissionId}"),
    ("POST", "/api/v1/clients/{id}/reject"),
    ("POST", "/api/v1/clients/{id}/deactivate"),
    ("DELETE", "/api/v1/portal-users/{id}"),
    ("POST", "/api/v1/account/logout"),
]


@dataclass(frozen=True)
class PortalSession:
    token: str
    csrf: str


@dataclass
class Request:
    """What to send: the credentials of one security requirement."""

    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Credentials:
    demo: DemoCredentials
    customer_token: str
    customer_id: str
    operator: PortalSession
    merchant_admin: PortalSession

    @property
    def api_key(self) -> str:
        return self.demo.sandbox_api_key

    @property
    def payhero(self) -> tuple[str, str]:
        return self.demo.payhero_api_username, self.demo.payhero_api_password

    def present(self, requirement: Requirement, callers: list[str] | None = None) -> Request:
        """The headers and cookies that satisfy ``requirement`` (every scheme it names).

        A portal session is the operator's where the operation admits operators, else the
        merchant admin's.
        """
        session = self.operator if callers is None or "op" in callers else self.merchant_admin
        sent = Request()
        for scheme in requirement:
            if scheme == API_KEY:
                sent.headers["Authorization"] = f"Bearer {self.api_key}"
            elif scheme == PAYHERO_BASIC:
                pair = ":".join(self.payhero).encode()
                sent.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            elif scheme == CUSTOMER_JWT:
                sent.headers["Authorization"] = f"Bearer {self.customer_token}"
            elif scheme == PORTAL_SESSION:
                sent.cookies[SESSION_COOKIE] = session.token
            elif scheme == CSRF_COOKIE_SCHEME:
                sent.cookies[CSRF_COOKIE] = session.csrf
            elif scheme == CSRF_HEADER_SCHEME:
                sent.headers[CSRF_HEADER] = session.csrf
            else:
                raise AssertionError(f"no credential for the security scheme {scheme!r}")
        return sent


def _sign_in(url: str, email: str, password: str) -> PortalSession:
    reply = httpx.post(f"{url}/api/v1/account/login", json={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    return PortalSession(reply.cookies[SESSION_COOKIE], reply.json()["csrfToken"])


def seed(url: str, database_url: str) -> Credentials:
    """Seed the demo into the database of the server at ``url``, then sign everyone in."""

    async def run() -> DemoCredentials:
        db = Database.from_url(database_url)
        try:
            return await seed_demo(db, SystemClock())
        finally:
            await db.dispose()

    demo = asyncio.run(run())
    key = {"Authorization": f"Bearer {demo.sandbox_api_key}"}
    customer = {"email": f"fuzz-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery"}
    registered = httpx.post(f"{url}/api/v1/customers/register", json=customer, headers=key)
    assert registered.status_code == 201, registered.text
    token = httpx.post(f"{url}/api/v1/customers/login", json=customer, headers=key)
    assert token.status_code == 200, token.text
    return Credentials(
        demo=demo,
        customer_token=token.json()["accessToken"],
        customer_id=registered.json()["id"],
        operator=_sign_in(url, demo.operator_email, demo.operator_password),
        merchant_admin=_sign_in(url, demo.merchant_admin_email, demo.merchant_admin_password),
    )


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(METHOD, path, operation)`` of every operation the document lists."""
    methods = {"get", "put", "post", "delete", "patch"}
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]
