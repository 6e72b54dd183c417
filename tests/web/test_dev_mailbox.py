"""The dev mailbox shows the operator the mail kept when no SMTP server is configured."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.seed import DemoCredentials, seed_demo


def test_operator_reads_stored_mail_others_cannot(settings: Settings, live_server: Any) -> None:
    settings.inprocess_worker = True
    settings.worker_poll_seconds = 0.05
    clock = FrozenClock()

    async def seed() -> DemoCredentials:
        db = Database.from_url(settings.resolved_database_url)
        try:
            return await seed_demo(db, clock)
        finally:
            await db.dispose()

    demo = asyncio.run(seed())
    url = live_server(create_app(settings, clock=clock)).url
    registered = httpx.post(
        f"{url}/api/v1/clients",
        json={
            "clientType": "Company",
            "name": "Duka <b>Bora</b>",
            "phoneNumber": "+254711000111",
            "emailAddress": "duka@example.com",
        },
    )
    assert registered.status_code == 201, registered.text

    assert httpx.get(f"{url}/portal/dev/mailbox").status_code == 401
    key = {"Authorization": f"Bearer {demo.sandbox_api_key}"}
    as_key = httpx.get(f"{url}/portal/dev/mailbox", headers=key)
    assert as_key.status_code == 403

    credentials = {"username": demo.operator_email, "password": demo.operator_password}
    login = httpx.post(f"{url}/api/v1/account/login", json=credentials)
    page = httpx.get(f"{url}/portal/dev/mailbox", cookies=login.cookies)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "duka@example.com" in page.text
    assert "Your malipo portal account" in page.text
    assert "<b>Bora</b>" not in page.text, "the client's name is escaped"
