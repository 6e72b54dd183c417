"""Two merchants racing for one email: one wins, every other gets a 409 naming the field, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from malipo.app import create_app
from malipo.config import Settings


async def test_concurrent_registrations_with_one_email(settings: Settings, live_server: Any) -> None:
    url = live_server(create_app(settings)).url
    body = {
        "clientType": "Company",
        "name": "Same Email Ltd",
        "phoneNumber": "+254711222333",
        "emailAddress": "race@example.com",
    }
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        replies = await asyncio.gather(*(client.post("/api/v1/clients", json=body) for _ in range(8)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] + [409] * 7, [r.text for r in replies if r.status_code not in (201, 409)]
    for reply in replies:
        if reply.status_code == 409:
            assert reply.json()["errors"] == [
                {"field": "emailAddress", "message": "a portal user with this email already exists"}
            ]
