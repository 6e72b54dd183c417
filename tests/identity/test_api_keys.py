"""API keys and Pay Hero credentials: accepted, refused, revoked, never kept or logged in the clear;
and every call lands in the audit log."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.core.logging import configure_logging
from malipo.db import Database
from malipo.identity.models import AuditLog
from malipo.seed import DemoCredentials, seed_demo


@dataclass
class Served:
    url: str
    demo: DemoCredentials
    logs: io.StringIO
    settings: Settings


@pytest.fixture
def served(settings: Settings, live_server: Any) -> Iterator[Served]:
    settings.audit_flush_seconds = 0.05
    logs = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=logs)
    clock = FrozenClock()
    app = create_app(settings, clock=clock)

    async def seed() -> DemoCredentials:
        db = Database.from_url(settings.resolved_database_url)
        try:
            return await seed_demo(db, clock)
        finally:
            await db.dispose()

    demo = asyncio.run(seed())
    yield Served(live_server(app).url, demo, logs, settings)
    configure_logging(json=True, level="INFO")


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


KEYS = "/api/v1/sandbox/api-keys"


def test_key_bearer_basic_and_payhero_pair_are_accepted(served: Served) -> None:
    demo = served.demo
    for headers in (
        _bearer(demo.sandbox_api_key),
        _basic(demo.sandbox_api_key, ""),
        _basic(demo.payhero_api_username, demo.payhero_api_password),
    ):
        reply = httpx.get(served.url + KEYS, headers=headers)
        assert reply.status_code == 200, reply.text
    listed = httpx.get(served.url + KEYS, headers=_bearer(demo.sandbox_api_key)).json()
    assert [k["prefix"] for k in listed] == [demo.sandbox_api_key[:12]]
    assert all("apiKey" not in k for k in listed), "a listed key never shows its secret"


@pytest.mark.parametrize(
    "headers",
    [
        _bearer("mk_test_" + "A" * 40),  # well formed, unknown
        _bearer("not-a-key"),
        {"Authorization": "Basic !!!not-base64"},
        _basic("no-such-user", "whatever"),
        {"Authorization": "Token abc"},
    ],
)
def test_wrong_credentials_are_401_with_a_challenge(served: Served, headers: dict[str, str]) -> None:
    reply = httpx.get(served.url + KEYS, headers=headers)
    assert reply.status_code == 401
    assert "Bearer" in reply.headers["www-authenticate"]
    assert reply.json()["code"] == "unauthorized"


def test_wrong_payhero_password_is_401(served: Served) -> None:
    reply = httpx.get(served.url + KEYS, headers=_basic(served.demo.payhero_api_username, "wrong-password"))
    assert reply.status_code == 401
    assert reply.json()["detail"] == "invalid API username or password"


def test_revoked_sandbox_key_fails_on_its_very_next_request(served: Served) -> None:
    owner = _bearer(served.demo.sandbox_api_key)
    created = httpx.post(served.url + KEYS, json={"description": "ci"}, headers=owner)
    assert created.status_code == 201, created.text
    new_key = created.json()["apiKey"]
    assert new_key.startswith("mk_test_")
    assert httpx.get(served.url + KEYS, headers=_bearer(new_key)).status_code == 200
    revoked = httpx.delete(f"{served.url}{KEYS}/{created.json()['id']}", headers=owner)
    assert revoked.status_code == 200
    assert revoked.json()["revokedAt"] is not None
    after = httpx.get(served.url + KEYS, headers=_bearer(new_key))
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]
    assert httpx.get(served.url + KEYS, headers=owner).status_code == 200, "other keys keep working"
    # Another key's id is not found, not revoked.
    other = httpx.delete(f"{served.url}{KEYS}/{uuid.uuid4()}", headers=owner)
    assert other.status_code == 404


def _flushed(served: Served, request_ids: list[str], timeout: float = 10.0) -> None:
    """Wait until each request's access-log line is written and its audit entry committed: what they
    would leak is then in the logs and the database files, where the caller looks for it."""

    async def committed() -> set[str]:
        db = Database.from_url(served.settings.resolved_database_url)
        try:
            async with db.transaction() as session:
                return set(await session.scalars(select(AuditLog.request_id)))
        finally:
            await db.dispose()

    deadline = time.monotonic() + timeout
    while True:
        logged = {
            line["request_id"]
            for line in map(json.loads, served.logs.getvalue().splitlines())
            if line.get("event") == "http.request" and "request_id" in line
        }
        if set(request_ids) <= logged and set(request_ids) <= asyncio.run(committed()):
            return
        assert time.monotonic() < deadline, f"requests {request_ids} not logged and audited in {timeout} s"
        time.sleep(0.02)


def test_secrets_are_never_stored_or_logged_in_the_clear(served: Served, db_url: str) -> None:
    demo = served.demo
    ids = [f"secrets-{n}" for n in range(4)]
    created = httpx.post(
        served.url + KEYS, json={}, headers={**_bearer(demo.sandbox_api_key), "X-Request-ID": ids[0]}
    ).json()["apiKey"]
    httpx.get(served.url + KEYS, headers={**_bearer(created), "X-Request-ID": ids[1]})
    payhero = _basic(demo.payhero_api_username, demo.payhero_api_password)
    httpx.get(served.url + KEYS, headers={**payhero, "X-Request-ID": ids[2]})
    # A failed attempt is logged and audited too.
    httpx.get(served.url + KEYS, headers={**_bearer(created + "x"), "X-Request-ID": ids[3]})
    _flushed(served, ids)

    secrets = [demo.sandbox_api_key, created, demo.payhero_api_password, demo.operator_password]
    logs = served.logs.getvalue()
    assert "http.request" in logs
    for secret in secrets:
        assert secret not in logs
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert stored, "the database files were read"
        for secret in secrets:
            assert secret.encode() not in stored


async def test_every_api_call_is_in_the_audit_log(served: Served) -> None:
    demo = served.demo
    ok = httpx.get(served.url + KEYS, headers={**_bearer(demo.sandbox_api_key), "X-Request-ID": "audit-1"})
    denied = httpx.get(
        f"{served.url}/api/v1/clients", headers={**_bearer(demo.sandbox_api_key), "X-Request-ID": "audit-2"}
    )
    anonymous = httpx.get(f"{served.url}/api/v1/clients/{uuid.uuid4()}", headers={"X-Request-ID": "audit-3"})
    assert (ok.status_code, denied.status_code, anonymous.status_code) == (200, 403, 401)

    db = Database.from_url(served.settings.resolved_database_url)
    try:
        entries: dict[str, AuditLog] = {}
        for _ in range(100):
            async with db.transaction() as session:
                entries = {e.request_id: e for e in (await session.scalars(select(AuditLog))).all()}
            if {"audit-1", "audit-2", "audit-3"} <= set(entries):
                break
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()
    first = entries["audit-1"]
    assert (first.method, first.route, first.status) == ("GET", KEYS, 200)
    assert first.principal_type == "api_key"
    assert str(first.api_user_id) == demo.api_user_id
    assert str(first.client_id) == demo.merchant_id
    assert first.mode == "test"
    assert first.ip == "127.0.0.1"
    assert first.latency_ms > 0
    assert (entries["audit-2"].route, entries["audit-2"].status) == ("/api/v1/clients", 403)
    assert entries["audit-3"].route == "/api/v1/clients/{id}"
    assert entries["audit-3"].principal_type is None
    assert entries["audit-3"].status == 401
