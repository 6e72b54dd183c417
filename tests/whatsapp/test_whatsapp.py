"""WhatsApp end to end: sessions, Pay Hero's sendText and sendBulk, bulk from a CSV, the Cloud API
simulator answering and posting status webhooks back to malipo."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from malipo.config import Settings
from malipo.db import Database
from malipo.whatsapp.models import WhatsAppMessage
from tests.fixtures.messaging import Messaging, serve_messaging


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    served = serve_messaging(settings, live_server)
    yield served
    served.http.close()


def _simulated(world: Messaging) -> list[Any]:
    """What the mounted Cloud API simulator received."""
    return list(world.app.state.messaging_simulators.whatsapp.app.state.messages)


def test_sessions_sends_and_bulk_reach_the_simulator_and_their_statuses_come_back(world: Messaging) -> None:
    a, b = world.a, world.b
    created = world.post("/api/v1/whatsapp/sessions", a.test, json={"name": "shop"})
    assert created.status_code == 201, created.text
    assert created.json()["backend"] == "simulator"
    cloud = world.post(
        "/api/v1/whatsapp/sessions",
        a.test,
        json={
            "name": "meta",
            "backend": "cloud",
            "phoneNumberId": "1234567890",
            "accessToken": "EAAG-secret-token",
        },
    )
    assert cloud.status_code == 201, cloud.text
    assert "EAAG-secret-token" not in cloud.text
    assert cloud.json()["webhookUrl"].startswith(f"{world.url}/callbacks/whatsapp/")
    half = world.post("/api/v1/whatsapp/sessions", a.test, json={"name": "x", "backend": "cloud"})
    assert half.status_code == 422
    listed = world.get("/api/v1/whatsapp/sessions", a.test).json()
    assert [s["name"] for s in listed] == ["meta", "shop"]
    assert world.get("/api/v1/whatsapp/sessions", b.test).json() == []

    # sendText, under Pay Hero's spelling and the corrected one.
    for path in ("/api/v2/whatspp/sendText", "/api/v2/whatsapp/sendText"):
        sent = world.post(
            path, a.test, json={"message": "Karibu!", "phone_number": "0712341234", "session": "shop"}
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["success"] is True
    unknown = world.post(
        "/api/v2/whatspp/sendText",
        a.test,
        json={"message": "hi", "phone_number": "0712341234", "session": "nope"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "not_found"
    assert "'nope'" in unknown.json()["error_message"]
    # Another merchant's session name means nothing to B.
    assert (
        world.post(
            "/api/v2/whatspp/sendText",
            b.test,
            json={"message": "hi", "phone_number": "0712341234", "session": "shop"},
        ).status_code
        == 404
    )
    bad_number = world.post(
        "/api/v2/whatspp/sendText", a.test, json={"message": "hi", "phone_number": "12", "session": "shop"}
    )
    assert bad_number.status_code == 400
    assert "phone_number" in bad_number.json()["error_message"]

    bulk = world.post(
        "/api/v2/whatspp/sendBulk",
        a.test,
        json={
            "message_type": "TEXT",
            "session": "shop",
            "message": "Hi {name}, your order is ready",
            "recipients": [
                "0712341234",
                {"phone_number": "0712340009", "name": "Amina"},  # accepted, then a failed webhook
                "not-a-number",
                "+254712340001",  # refused by the Cloud API: undeliverable
            ],
        },
    )
    assert bulk.status_code == 200, bulk.text
    assert (bulk.json()["success"], bulk.json()["accepted"]) == (True, 3)
    assert [(r["index"], r["phone_number"]) for r in bulk.json()["rejected"]] == [(2, "not-a-number")]
    batch_id = bulk.json()["batch_id"]

    def batch() -> dict[str, Any]:
        got = world.get(f"/api/v2/whatspp/batches/{batch_id}", a.test)
        assert got.status_code == 200, got.text
        return got.json()

    done = world.wait_for(batch, lambda b: b["counts"]["delivered"] == 1 and b["counts"]["failed"] == 2)
    assert done["session"] == "shop"
    by_number = {m["phone_number"]: m for m in done["messages"]}
    assert by_number["+254712341234"]["message_id"].startswith("wamid.")
    assert by_number["+254712340001"]["error"].startswith("131026")
    assert by_number["+254712340009"]["error"].startswith("131026")
    bodies = {m.body["to"]: m.body["text"]["body"] for m in _simulated(world) if m.http_status == 200}
    assert bodies["254712340009"] == "Hi Amina, your order is ready"
    assert bodies["254712341234"] in ("Hi, your order is ready", "Karibu!")
    assert world.get(f"/api/v2/whatspp/batches/{batch_id}", b.test).status_code == 404
    assert world.get(f"/api/v1/whatsapp/batches/{batch_id}", b.test).status_code == 404
    native = world.get(f"/api/v1/whatsapp/batches/{batch_id}", a.test)
    assert native.status_code == 200
    assert native.json()["counts"] == {"queued": 0, "sent": 0, "delivered": 1, "failed": 2}
    assert (native.json()["messageType"], native.json()["mediaUrl"]) == ("text", None)

    document = world.post(
        "/api/v2/whatsapp/sendBulk",
        a.test,
        json={"message_type": "DOCUMENT", "session": "shop", "message": "x", "recipients": ["0712341234"]},
    )
    assert document.status_code == 400
    assert "message_type" in document.json()["error_message"]

    async def backends(db: Database) -> set[str | None]:
        async with db.transaction() as session:
            return set((await session.scalars(select(WhatsAppMessage.backend))).all())

    assert world.run(backends) == {"simulator"}  # sandbox keys never leave the simulator


def test_bulk_from_a_csv_uses_the_name_column_and_throttled_sends_are_retried(world: Messaging) -> None:
    a = world.a
    assert world.post("/api/v1/whatsapp/sessions", a.test, json={"name": "shop"}).status_code == 201
    csv_body = "Phone Number,Name\n0712341111,Baraka\nnot-a-phone,Bad\n+254712342222,\n"
    sent = world.post(
        "/api/v1/whatsapp/bulk-csv",
        {**a.test, "Content-Type": "text/csv"},
        params={"session": "shop", "message": "Habari {name}!"},
        content=csv_body.encode(),
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == 2
    assert [(r["index"], r["phoneNumber"]) for r in sent.json()["rejected"]] == [(3, "not-a-phone")]

    def batch() -> dict[str, Any]:
        return world.get(f"/api/v1/whatsapp/batches/{sent.json()['batchId']}", a.test).json()

    world.wait_for(batch, lambda b: b["counts"]["delivered"] == 2)
    bodies = {m.body["to"]: m.body["text"]["body"] for m in _simulated(world)}
    assert bodies == {"254712341111": "Habari Baraka!", "254712342222": "Habari!"}

    empty = world.post(
        "/api/v1/whatsapp/bulk-csv",
        {**a.test, "Content-Type": "text/csv"},
        params={"session": "shop", "message": "x"},
    )
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "body"
    unknown_hook = httpx.post(f"{world.url}/callbacks/whatsapp/not-a-token", json={"entry": []})
    assert unknown_hook.status_code == 404

    # A throttled send (the simulator's ...0002) is retried.
    sent = world.post(
        "/api/v2/whatspp/sendText",
        a.test,
        json={"message": "hi", "phone_number": "0712340002", "session": "shop"},
    )
    assert sent.status_code == 200

    async def message(db: Database) -> WhatsAppMessage:
        async with db.transaction() as session:
            found = await session.scalar(
                select(WhatsAppMessage).where(WhatsAppMessage.phone_number == "+254712340002")
            )
            assert found is not None
            return found

    first = world.wait_for(lambda: world.run(message), lambda m: m.error is not None)
    assert (first.status, first.attempts) == ("queued", 1)
    assert first.error.startswith("130429")
    world.wait_for(world.running_jobs, lambda running: running == 0)
    world.advance(700)
    second = world.wait_for(lambda: world.run(message), lambda m: m.attempts == 2)
    assert second.status == "queued"
