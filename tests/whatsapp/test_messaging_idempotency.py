"""Idempotency-Key on Pay Hero's messaging sends: WhatsApp sendText and sendBulk (both spellings) and
the mailer's send. A retry with the same key and body answers the first reply and sends nothing
again; the same key with another body is refused; a request that failed leaves the key free."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from malipo.config import Settings
from malipo.db import Database
from malipo.email.models import MerchantEmail
from malipo.whatsapp.models import WhatsAppMessage
from malipo.worker.models import Job
from tests.fixtures.messaging import Messaging, serve_messaging
from tests.fixtures.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    # The test SMTP server is on loopback, registered with live credentials: the operator allows it.
    served = serve_messaging(settings, live_server, smtp_allow_private=True)
    yield served
    served.http.close()


def _simulated(world: Messaging) -> list[Any]:
    """What the mounted Cloud API simulator received (it is built on its first request)."""
    simulator = world.app.state.messaging_simulators.whatsapp.app
    return [] if simulator is None else list(simulator.state.messages)


def _count(world: Messaging, model: Any, *where: Any) -> int:
    async def count(db: Database) -> int:
        async with db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return int(world.run(count))


def _jobs(world: Messaging, kind: str) -> int:
    return _count(world, Job, Job.kind == kind)


def _register_session(world: Messaging, name: str = "shop") -> None:
    created = world.post("/api/v1/whatsapp/sessions", world.a.test, json={"name": name})
    assert created.status_code == 201, created.text


def _delivered(world: Messaging) -> int:
    return _count(world, WhatsAppMessage, WhatsAppMessage.status == "delivered")


# -- WhatsApp ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["whatspp", "whatsapp"])
def test_a_retried_send_text_replays_the_first_reply_and_sends_once(world: Messaging, spelling: str) -> None:
    _register_session(world)
    balance = world.service_balance(world.a)
    headers = {**world.a.test, "Idempotency-Key": "receipt-INV-009"}
    body = {"message": "Paid, thank you", "phone_number": "0712345101", "session": "shop"}

    first = world.post(f"/api/v2/{spelling}/sendText", headers, json=body)
    again = world.post(f"/api/v2/{spelling}/sendText", headers, json=body)

    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(world, WhatsAppMessage) == 1
    assert _jobs(world, "whatsapp.send") == 1
    world.wait_for(lambda: _delivered(world), lambda n: n == 1)
    assert [m.body["text"]["body"] for m in _simulated(world)] == ["Paid, thank you"]

    other = world.post(f"/api/v2/{spelling}/sendText", headers, json=body | {"message": "Paid twice?"})
    assert other.status_code == 400, other.text
    assert other.json()["error_code"] == "invalid_argument"
    assert "Idempotency-Key" in other.json()["error_message"]
    assert _count(world, WhatsAppMessage) == 1
    assert world.service_balance(world.a) == balance  # WhatsApp is not charged


def test_without_a_key_each_send_text_is_a_new_message(world: Messaging) -> None:
    _register_session(world)
    body = {"message": "Hello", "phone_number": "0712345102", "session": "shop"}

    replies = [world.post("/api/v2/whatspp/sendText", world.a.test, json=body) for _ in range(2)]

    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].json()["message_id"] != replies[1].json()["message_id"]
    assert _jobs(world, "whatsapp.send") == 2


def test_a_send_that_failed_leaves_its_key_free_for_the_retry(world: Messaging) -> None:
    headers = {**world.a.test, "Idempotency-Key": "late-session-1"}
    body = {"message": "Hi", "phone_number": "0712345103", "session": "later"}

    missing = world.post("/api/v2/whatspp/sendText", headers, json=body)
    assert missing.status_code == 404, missing.text
    _register_session(world, "later")
    retried = world.post("/api/v2/whatspp/sendText", headers, json=body)

    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert _count(world, WhatsAppMessage) == 1


@pytest.mark.parametrize("message_type", ["TEXT", "DOCUMENT"])
def test_a_retried_bulk_replays_its_batch_and_each_recipient_gets_one_message(
    world: Messaging, message_type: str
) -> None:
    _register_session(world)
    headers = {**world.a.test, "Idempotency-Key": f"newsletter-{message_type}"}
    body = {
        "message_type": message_type,
        "session": "shop",
        "message": "Our new price list",
        "document_url": "https://shop.example/prices.pdf",
        "recipients": ["0712345201", "0712345202", "bad"],
    }

    first = world.post("/api/v2/whatspp/sendBulk", headers, json=body)
    again = world.post("/api/v2/whatspp/sendBulk", headers, json=body)
    alias = world.post("/api/v2/whatsapp/sendBulk", {**headers, "Idempotency-Key": "alias-1"}, json=body)
    alias_again = world.post(
        "/api/v2/whatsapp/sendBulk", {**headers, "Idempotency-Key": "alias-1"}, json=body
    )

    assert [r.status_code for r in (first, again, alias, alias_again)] == [200] * 4
    assert again.json() == first.json()
    assert alias_again.json() == alias.json()
    assert alias.json()["batch_id"] != first.json()["batch_id"]
    assert (again.headers["Idempotent-Replayed"], alias_again.headers["Idempotent-Replayed"]) == (
        "true",
        "true",
    )
    assert _count(world, WhatsAppMessage) == 4  # two batches of two recipients
    assert _jobs(world, "whatsapp.send") == 4
    world.wait_for(lambda: _delivered(world), lambda n: n == 4)
    recipients = sorted(m.body["to"] for m in _simulated(world))
    assert recipients == ["254712345201", "254712345201", "254712345202", "254712345202"]
    assert {m.body["type"] for m in _simulated(world)} == {message_type.lower()}

    reused = world.post("/api/v2/whatspp/sendBulk", headers, json=body | {"recipients": ["0712345203"]})
    assert reused.status_code == 400
    assert reused.json()["error_code"] == "invalid_argument"
    assert _count(world, WhatsAppMessage) == 4


def test_keys_are_per_merchant(world: Messaging) -> None:
    _register_session(world)
    assert world.post("/api/v1/whatsapp/sessions", world.b.test, json={"name": "shop"}).status_code == 201
    body = {"message": "Hi", "phone_number": "0712345104", "session": "shop"}

    a = world.post("/api/v2/whatspp/sendText", {**world.a.test, "Idempotency-Key": "k-1"}, json=body)
    b = world.post("/api/v2/whatspp/sendText", {**world.b.test, "Idempotency-Key": "k-1"}, json=body)

    assert a.status_code == b.status_code == 200
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["message_id"] != b.json()["message_id"]


# -- the mailer ----------------------------------------------------------------------------------


def _register_mailer(world: Messaging, server: SmtpServer) -> None:
    registered = world.post(
        "/mailer/register",
        world.a.basic,
        json={
            "api_username": world.a.api_username,
            "smtp_host": "127.0.0.1",
            "smtp_username": SMTP_USER,
            "smtp_password": SMTP_PASSWORD,
            "smtp_port": str(server.port),
            "insecure": True,
        },
    )
    assert registered.status_code == 200, registered.text


@pytest.mark.parametrize("path", ["/mailer/send", "/mailer/send_email"])
def test_a_retried_mailer_send_replays_the_first_reply_and_mails_once(
    world: Messaging, smtp_server: Callable[..., SmtpServer], path: str
) -> None:
    server = smtp_server()
    _register_mailer(world, server)
    balance = world.service_balance(world.a)
    headers = {**world.a.basic, "Idempotency-Key": "receipt-mail-7"}
    body = {
        "sender_email": "shop@wanjiku.example",
        "recipients": [{"email": "amina@example.com", "subject": "Your receipt", "body": "Paid: KES 250\n"}],
    }

    first = world.post(path, headers, json=body)
    again = world.post(path, headers, json=body)

    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(world, MerchantEmail) == 1
    assert _jobs(world, "mailer.send") == 1
    server.wait_for("amina@example.com", "Your receipt")
    world.wait_for(lambda: _count(world, MerchantEmail, MerchantEmail.status == "sent"), lambda n: n == 1)
    assert [got.rcpt_tos for got in server.handler.received] == [["amina@example.com"]]

    other = world.post(path, headers, json=body | {"sender_email": "other@wanjiku.example"})
    assert other.status_code == 400, other.text
    assert other.json()["error_code"] == "invalid_argument"
    assert _count(world, MerchantEmail) == 1
    assert world.service_balance(world.a) == balance  # email is not charged
