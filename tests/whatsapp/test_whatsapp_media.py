"""WhatsApp images and documents end to end: Pay Hero's sendBulk and sendText with IMAGE and DOCUMENT
reach the Cloud API simulator in the Cloud API's shapes and come back delivered; bad media URLs are
refused before anything is queued."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from malipo.config import Settings
from malipo.core.errors import ValidationFailed
from malipo.db import Database
from malipo.whatsapp import service as whatsapp
from malipo.whatsapp.models import WhatsAppBatch, WhatsAppMessage, WhatsAppMessageType, WhatsAppSession
from malipo.whatsapp.service import SEND_JOB
from malipo.whatsapp.tasks import document_filename
from malipo.worker.models import Job
from malipo.worker.registry import enqueue
from tests.fixtures.messaging import Messaging, serve_messaging

MENU = "https://shop.example/menu/today.jpg"
INVOICE = "https://files.shop.example/invoices/INV%2D009%20final.pdf?sig=abc123"


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    served = serve_messaging(settings, live_server)
    assert served.post("/api/v1/whatsapp/sessions", served.a.test, json={"name": "shop"}).status_code == 201
    yield served
    served.http.close()


def _simulated(world: Messaging) -> list[Any]:
    """What the mounted Cloud API simulator received (it is built on its first request)."""
    simulator = world.app.state.messaging_simulators.whatsapp.app
    return [] if simulator is None else list(simulator.state.messages)


def _batch(world: Messaging, batch_id: str) -> dict[str, Any]:
    got = world.get(f"/api/v2/whatspp/batches/{batch_id}", world.a.test)
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]


def _queued(world: Messaging) -> tuple[int, int, int]:
    """WhatsApp messages, batches and send jobs in the database."""

    async def count(db: Database) -> tuple[int, int, int]:
        async with db.transaction() as session:
            messages = await session.scalar(select(func.count()).select_from(WhatsAppMessage))
            batches = await session.scalar(select(func.count()).select_from(WhatsAppBatch))
            jobs = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == SEND_JOB))
            return int(messages or 0), int(batches or 0), int(jobs or 0)

    return world.run(count)  # type: ignore[no-any-return]


def test_an_image_bulk_reaches_the_simulator_as_an_image_and_ends_delivered(world: Messaging) -> None:
    balance = world.service_balance(world.a)
    bulk = world.post(
        "/api/v2/whatspp/sendBulk",
        world.a.test,
        json={
            "message_type": "IMAGE",
            "session": "shop",
            "message": "Hi {name}, today's menu",
            "document_url": MENU,
            "recipients": [{"phone_number": "0712341001", "name": "Amina"}, "0712341002", "nope"],
        },
    )
    assert bulk.status_code == 200, bulk.text
    assert (bulk.json()["accepted"], [r["index"] for r in bulk.json()["rejected"]]) == (2, [2])

    done = world.wait_for(
        lambda: _batch(world, bulk.json()["batch_id"]), lambda b: b["counts"]["delivered"] == 2
    )
    assert (done["message_type"], done["document_url"]) == ("IMAGE", MENU)
    assert {m["message_type"] for m in done["messages"]} == {"IMAGE"}
    assert all(m["message_id"].startswith("wamid.") for m in done["messages"])
    bodies = {m.body["to"]: m.body for m in _simulated(world)}
    assert bodies["254712341001"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "254712341001",
        "type": "image",
        "image": {"link": MENU, "caption": "Hi Amina, today's menu"},
    }
    assert bodies["254712341002"]["image"] == {"link": MENU, "caption": "Hi, today's menu"}
    assert world.service_balance(world.a) == balance  # WhatsApp sends are not charged, media neither


def test_a_document_bulk_sends_link_caption_and_a_filename_from_the_url(world: Messaging) -> None:
    bulk = world.post(
        "/api/v2/whatsapp/sendBulk",
        world.a.test,
        json={
            "message_type": "document",  # Pay Hero's values, in any case
            "session": "shop",
            "message": "Your invoice",
            "document_url": INVOICE,
            "recipients": {"first": "0712342001"},
        },
    )
    assert bulk.status_code == 200, bulk.text

    done = world.wait_for(
        lambda: _batch(world, bulk.json()["batch_id"]), lambda b: b["counts"]["delivered"] == 1
    )
    assert done["message_type"] == "DOCUMENT"
    [sent] = [m.body for m in _simulated(world)]
    assert sent["type"] == "document"
    assert sent["document"] == {
        "link": INVOICE,
        "caption": "Your invoice",
        "filename": "INV-009 final.pdf",
    }
    native = world.get(f"/api/v1/whatsapp/batches/{bulk.json()['batch_id']}", world.a.test)
    assert native.json()["counts"]["delivered"] == 1
    assert (native.json()["messageType"], native.json()["mediaUrl"]) == ("document", INVOICE)

    async def stored(db: Database) -> tuple[Any, ...]:
        async with db.transaction() as session:
            found = await session.scalar(select(WhatsAppMessage))
            assert found is not None
            raw = (await session.execute(text("SELECT media_url, message_type FROM whatsapp_messages"))).one()
            return found.message_type, found.media_url, raw.message_type, raw.media_url

    kind, url, raw_kind, raw_url = world.run(stored)
    assert (kind, url, raw_kind) == ("document", INVOICE, "document")
    assert "shop.example" not in raw_url  # encrypted at rest, like the body


def test_send_text_takes_an_image_too_and_text_ignores_a_document_url(world: Messaging) -> None:
    image = world.post(
        "/api/v2/whatspp/sendText",
        world.a.test,
        json={"session": "shop", "phone_number": "0712343001", "message_type": "IMAGE", "document_url": MENU},
    )
    assert image.status_code == 200, image.text
    plain = world.post(
        "/api/v2/whatspp/sendText",
        world.a.test,
        json={"session": "shop", "phone_number": "0712343002", "message": "Karibu", "document_url": "junk"},
    )
    assert plain.status_code == 200, plain.text

    received = world.wait_for(lambda: [m.body for m in _simulated(world)], lambda got: len(got) == 2)
    by_number = {body["to"]: body for body in received}
    assert by_number["254712343001"]["image"] == {"link": MENU}  # no message: no caption
    assert by_number["254712343002"]["text"]["body"] == "Karibu"

    async def stored(db: Database) -> dict[str, tuple[str | None, str | None]]:
        async with db.transaction() as session:
            rows = (await session.scalars(select(WhatsAppMessage))).all()
            return {m.phone_number: (m.message_type, m.media_url) for m in rows}

    assert world.run(stored) == {"+254712343001": ("image", MENU), "+254712343002": ("text", None)}


@pytest.mark.parametrize(
    ("path", "change", "field", "words"),
    [
        ("sendBulk", {"message_type": "IMAGE"}, "document_url", "required when message_type is IMAGE"),
        ("sendBulk", {"message_type": "DOCUMENT", "document_url": "  "}, "document_url", "required"),
        ("sendBulk", {"message_type": "IMAGE", "document_url": "menu.jpg"}, "document_url", "absolute"),
        (
            "sendBulk",
            {"message_type": "IMAGE", "document_url": "ftp://x.example/a.jpg"},
            "document_url",
            "http",
        ),
        (
            "sendBulk",
            {"message_type": "DOCUMENT", "document_url": "https:///a.pdf"},
            "document_url",
            "absolute",
        ),
        (
            "sendText",
            {"message_type": "DOCUMENT", "document_url": "https://a.example/a b.pdf"},
            "document_url",
            "URL",
        ),
        (
            "sendBulk",
            {"message_type": "IMAGE", "document_url": MENU, "message": "x" * 1025},
            "message",
            "1024",
        ),
        ("sendBulk", {"message_type": "VIDEO", "document_url": MENU}, "message_type", "IMAGE"),
        (
            "sendBulk",
            {"message_type": "IMAGE", "document_url": "https://x.example/" + "a" * 2000},
            "document_url",
            "2000",
        ),
    ],
    ids=[
        "image-without-url",
        "blank-url",
        "relative-url",
        "ftp-url",
        "no-host",
        "space-in-url-sendText",
        "caption-too-long",
        "unknown-type",
        "url-too-long",
    ],
)
def test_a_bad_media_request_is_a_400_naming_the_field_and_nothing_is_queued_or_charged(
    world: Messaging, path: str, change: dict[str, Any], field: str, words: str
) -> None:
    balance = world.service_balance(world.a)
    body: dict[str, Any] = {"session": "shop", "message": "Menu"} | change
    if path == "sendBulk":
        body["recipients"] = ["0712344001", "0712344002"]
    else:
        body["phone_number"] = "0712344001"

    refused = world.post(f"/api/v2/whatspp/{path}", world.a.test, json=body)

    assert refused.status_code == 400, refused.text
    reply = refused.json()
    assert set(reply) == {"error_code", "error_message", "status_code"}
    assert (reply["error_code"], reply["status_code"]) == ("invalid_argument", 400)
    assert reply["error_message"].startswith(f"{field}:")
    assert words in reply["error_message"]
    assert _queued(world) == (0, 0, 0)
    assert world.service_balance(world.a) == balance


def test_a_queued_image_without_its_url_fails_for_good_instead_of_being_sent(world: Messaging) -> None:
    """The service never queues one; a row that lost its URL is failed by the job, not sent as text."""

    async def queue(db: Database) -> Any:
        async with db.transaction() as session:
            found = await session.scalar(select(WhatsAppSession).where(WhatsAppSession.name == "shop"))
            assert found is not None
            now = world.clock.now()
            message = WhatsAppMessage(
                client_id=world.a.client_id, mode="test", session_id=found.id, phone_number="+254712345001",
                body="caption", message_type="image", media_url=None, status="queued", attempts=0,
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(message)
            await session.flush()
            enqueue(session, SEND_JOB, {"id": str(message.id)}, now=now)
            return message.id

    message_id = world.run(queue)

    async def read(db: Database) -> WhatsAppMessage:
        async with db.transaction() as session:
            found = await session.get(WhatsAppMessage, message_id)
            assert found is not None
            return found

    failed = world.wait_for(lambda: world.run(read), lambda m: m.status == "failed")
    assert failed.error == "image message without a media URL"
    assert _simulated(world) == []


# -- the rules, without a server -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://shop.example/invoices/INV-009.pdf", "INV-009.pdf"),
        ("https://shop.example/a/Q3%20report.pdf?sig=x#p2", "Q3 report.pdf"),
        ("https://shop.example/files/", None),
        ("https://shop.example", None),
        ("https://shop.example/evil%0Aname.pdf", "evilname.pdf"),
    ],
)
def test_a_document_is_named_after_its_url_s_last_path_segment(url: str, name: str | None) -> None:
    assert document_filename(url) == name


def test_check_content_keeps_a_text_as_is_and_a_blank_caption_as_none() -> None:
    assert whatsapp.check_content("TEXT", "Hi", "not a url") == whatsapp.Content(
        WhatsAppMessageType.TEXT, "Hi", None
    )
    assert whatsapp.check_content("image", "   ", MENU) == whatsapp.Content(
        WhatsAppMessageType.IMAGE, "", MENU
    )
    with pytest.raises(ValidationFailed) as caught:
        whatsapp.check_content("TEXT", " ", None)
    assert caught.value.errors[0].field == "message"
    with pytest.raises(ValidationFailed) as caught:
        whatsapp.check_content("DOCUMENT", "x", "http://[::1/a.pdf", media_field="document_url")
    assert caught.value.errors[0].field == "document_url"
