"""WhatsApp status webhook URLs: their token is derived from the session's id with the secret key and
stored nowhere; Meta's verify and the status callbacks work with it, a forged one is refused, and a
URL given out before tokens were derived (only its hash kept) still works."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from malipo.config import Settings
from malipo.core.crypto import sha256_hex
from malipo.db import Database
from malipo.whatsapp.models import WhatsAppMessage, WhatsAppSession
from tests.fixtures.messaging import Messaging, serve_messaging


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    served = serve_messaging(settings, live_server)
    yield served
    served.http.close()


def _verify(url: str, verify_token: str) -> httpx.Response:
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "1158201444"}
    return httpx.get(url, params=params)


def _delivered(message_id: str) -> dict[str, Any]:
    status = {"id": message_id, "status": "delivered", "recipient_id": "254712341234"}
    return {"entry": [{"changes": [{"value": {"statuses": [status]}}]}]}


def _forged(token: str) -> str:
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def test_a_cloud_sessions_webhook_token_is_stored_nowhere_and_still_verifies_and_updates(
    world: Messaging,
) -> None:
    a = world.a
    created = world.post(
        "/api/v1/whatsapp/sessions",
        a.test,
        json={"name": "meta", "backend": "cloud", "phoneNumberId": "1234567890", "accessToken": "EAAG-x"},
    )
    assert created.status_code == 201, created.text
    url = created.json()["webhookUrl"]
    prefix = f"{world.url}/callbacks/whatsapp/"
    assert url.startswith(prefix)
    token = url.removeprefix(prefix)
    listed = world.get("/api/v1/whatsapp/sessions", a.test).json()
    assert [s["webhookUrl"] for s in listed] == [url], "the list shows the same working URL"

    async def stored(db: Database) -> list[str]:
        async with db.transaction() as session:
            rows = (await session.execute(text("SELECT * FROM whatsapp_sessions"))).all()
            return [str(value) for row in rows for value in row]

    values = world.run(stored)
    assert values, "the session is stored"
    assert not any(token in value or token[32:] in value for value in values), "the token is stored"

    # Meta's subscription check: the verify token is the URL's own token.
    verified = _verify(url, token)
    assert (verified.status_code, verified.text) == (200, "1158201444")
    assert _verify(f"{prefix}{_forged(token)}", _forged(token)).status_code == 404
    assert _verify(url, _forged(token)).status_code == 404
    other_id = uuid.uuid4().hex
    assert _verify(f"{prefix}{other_id}{token[32:]}", f"{other_id}{token[32:]}").status_code == 404

    async def sent_message(db: Database) -> uuid.UUID:
        async with db.transaction() as session:
            found = await session.scalar(select(WhatsAppSession).where(WhatsAppSession.name == "meta"))
            assert found is not None
            message = WhatsAppMessage(
                client_id=found.client_id, mode="live", session_id=found.id, backend="cloud",
                phone_number="+254712341234", body="hi", message_type="text", status="sent",
                gateway_message_id="wamid.at-rest-1", attempts=1, created_at=world.clock.now(),
                updated_at=world.clock.now(), sent_at=world.clock.now(),
            )  # fmt: skip
            session.add(message)
            await session.flush()
            return message.id

    message_id = world.run(sent_message)

    async def status_of(db: Database) -> str:
        async with db.transaction() as session:
            found = await session.get(WhatsAppMessage, message_id)
            assert found is not None
            return found.status

    forged = httpx.post(f"{prefix}{_forged(token)}", json=_delivered("wamid.at-rest-1"))
    assert forged.status_code == 404
    assert world.run(status_of) == "sent", "a forged token changes nothing"
    hook = httpx.post(url, json=_delivered("wamid.at-rest-1"))
    assert hook.status_code == 200, hook.text
    assert hook.json() == {"received": 1, "updated": 1}
    assert world.run(status_of) == "delivered"


def test_a_webhook_url_given_out_before_tokens_were_derived_keeps_working(world: Messaging) -> None:
    legacy = "kept-from-before-0009-Zq3"

    async def add_legacy(db: Database) -> None:
        async with db.transaction() as session:
            session.add(
                WhatsAppSession(
                    client_id=world.a.client_id, name="old", backend="cloud", phone_number_id="99",
                    legacy_webhook_token_hash=sha256_hex(legacy), created_at=world.clock.now(),
                    updated_at=world.clock.now(),
                )
            )  # fmt: skip

    world.run(add_legacy)
    prefix = f"{world.url}/callbacks/whatsapp/"
    assert _verify(f"{prefix}{legacy}", legacy).status_code == 200
    assert _verify(f"{prefix}{legacy}x", f"{legacy}x").status_code == 404
    assert httpx.post(f"{prefix}{legacy}", json=_delivered("wamid.unknown")).status_code == 200
    assert httpx.post(f"{prefix}{legacy}x", json=_delivered("wamid.unknown")).status_code == 404
