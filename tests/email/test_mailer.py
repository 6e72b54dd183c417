"""Merchants' email through their own SMTP server (Pay Hero's /mailer), against a real aiosmtpd
server that requires AUTH: registration checks the login, sends go through the worker, and the
server's replies end up in the status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from malipo.config import Settings
from malipo.db import Database
from malipo.email.models import MerchantEmail
from malipo.worker.models import Job, JobAttempt
from tests.fixtures.messaging import Messaging, serve_messaging
from tests.fixtures.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    # The test SMTP server is on loopback, registered with live credentials: the operator allows it.
    served = serve_messaging(settings, live_server, smtp_allow_private=True)
    yield served
    served.http.close()


def _register(world: Messaging, server: SmtpServer, headers: dict[str, str], **overrides: Any) -> Any:
    body = {
        "api_username": world.a.api_username,
        "smtp_host": "127.0.0.1",
        "smtp_username": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_port": str(server.port),
        "insecure": True,
        **overrides,
    }
    return world.post("/mailer/register", headers, json=body)


def test_register_checks_the_login_and_mail_arrives_as_sent(
    world: Messaging, smtp_server: Callable[..., SmtpServer]
) -> None:
    a, b = world.a, world.b
    server = smtp_server()

    wrong = _register(world, server, a.basic, smtp_password="Wr0ng-Pa55-4471")
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["error_code"] == "invalid_argument"
    assert "535" in wrong.json()["error_message"]
    assert "Wr0ng-Pa55-4471" not in wrong.text
    no_tls = _register(world, server, a.basic, insecure=False)
    assert no_tls.status_code == 400
    assert "STARTTLS" in no_tls.json()["error_message"]
    someone_else = _register(world, server, a.basic, api_username=b.api_username)
    assert someone_else.status_code == 403
    assert someone_else.json()["error_code"] == "permission_denied"
    anonymous = _register(world, server, {})
    assert anonymous.status_code == 401
    assert world.post("/mailer/send", a.basic, json={"sender_email": "x@y.example"}).status_code == 400

    registered = _register(world, server, a.basic)
    assert registered.status_code == 200, registered.text
    assert registered.json()["message"] == "Credentials registered successfully"
    assert SMTP_PASSWORD not in registered.text

    not_registered = world.post(
        "/mailer/send",
        b.basic,
        json={
            "sender_email": "shop@b.example",
            "recipients": [{"email": "x@example.com", "subject": "s", "body": "b"}],
        },
    )
    assert not_registered.status_code == 404
    assert "/mailer/register" in not_registered.json()["error_message"]

    sent = world.post(
        "/mailer/send",
        a.basic,
        json={
            "sender_email": "shop@wanjiku.example",
            "sender_name": "Wanjiku Shop",
            "api_username": a.api_username,
            "reply_to": "help@wanjiku.example",
            "recipients": [
                {
                    "email": "amina@example.com",
                    "name": "Amina",
                    "subject": "Your receipt",
                    "body": "Paid: KES 250\n",
                },
                {
                    "email": "baraka@example.com",
                    "name": "Baraka",
                    "subject": "Your order",
                    "html": "<p>Order <b>#42</b> is on its way</p>",
                },
                {"email": "not-an-address", "subject": "x", "body": "y"},
            ],
        },
    )
    assert sent.status_code == 200, sent.text
    reply = sent.json()
    assert [s["recipient_email"] for s in reply["success"]] == ["amina@example.com", "baraka@example.com"]
    assert [(e["index"], e["recipient_email"]) for e in reply["errors"]] == [(2, "not-an-address")]

    receipt = server.wait_for("amina@example.com", "Your receipt")
    assert receipt.message["From"] == "Wanjiku Shop <shop@wanjiku.example>"
    assert receipt.message["Reply-To"] == "help@wanjiku.example"
    assert receipt.message["To"] == "Amina <amina@example.com>"
    assert receipt.text == "Paid: KES 250\n"
    order = server.wait_for("baraka@example.com", "Your order")
    html = order.message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<b>#42</b>" in html.get_content()
    assert "Order #42 is on its way" in order.text

    def status() -> dict[str, Any]:
        got = world.get(
            "/mailer/mail_status",
            a.basic,
            params={"batch_id": reply["batch_id"], "api_username": a.api_username, "page": 1, "per_page": 10},
        )
        assert got.status_code == 200, got.text
        return got.json()

    done = world.wait_for(status, lambda s: all(item["status"] == 1 for item in s["data"]))
    assert done["pagination"] == {"current_page": "1", "per_page": "10", "total_records": 2, "total_pages": 1}
    descriptions = sorted(item["description"] for item in done["data"])
    assert descriptions[0] == "Email successfully sent to: amina@example.com"
    one = world.get(f"/mailer/status/{reply['success'][0]['id']}", a.basic)
    assert one.status_code == 200
    assert one.json()["status"] == "sent"
    assert one.json()["smtp_reply"]
    # Another merchant sees none of it.
    assert world.get(f"/mailer/status/{reply['success'][0]['id']}", b.basic).status_code == 404
    assert (
        world.get("/mailer/mail_status", b.basic, params={"batch_id": reply["batch_id"]}).status_code == 404
    )

    async def stored_password(db: Database) -> str:
        async with db.transaction() as session:
            return str(await session.scalar(text("SELECT password FROM mailers")))

    assert SMTP_PASSWORD not in world.run(stored_password)  # encrypted at rest


def test_a_server_that_goes_away_mid_send_is_retried_then_the_email_fails_with_the_reason(
    world: Messaging, smtp_server: Callable[..., SmtpServer]
) -> None:
    a = world.a
    server = smtp_server(drop_data=True)
    assert _register(world, server, a.basic).status_code == 200
    sent = world.post(
        "/mailer/send",
        a.basic,
        json={
            "sender_email": "shop@a.example",
            "recipients": [{"email": "c@example.com", "subject": "s", "body": "b"}],
        },
    )
    assert sent.status_code == 200, sent.text
    email_id = sent.json()["success"][0]["id"]

    def status() -> dict[str, Any]:
        return world.get(f"/mailer/status/{email_id}", a.basic).json()

    for attempt in range(1, 6):  # mailer.send tries 5 times
        seen = world.wait_for(status, lambda s, n=attempt: s["attempts"] == n and s["smtp_reply"])
        world.wait_for(world.running_jobs, lambda running: running == 0)
        world.advance(700)
    seen = world.wait_for(status, lambda s: s["status"] != "queued")
    assert seen["status"] == "failed"
    assert seen["attempts"] == 5
    assert "SMTP failure" in seen["smtp_reply"] or "disconnect" in seen["smtp_reply"].lower()
    assert server.handler.received == []

    async def attempts(db: Database) -> int:
        async with db.transaction() as session:
            job = await session.scalar(select(Job).where(Job.kind == "mailer.send"))
            assert job is not None
            assert job.status == "dead"
            return int(
                await session.scalar(
                    select(func.count()).select_from(JobAttempt).where(JobAttempt.job_id == job.id)
                )
                or 0
            )

    assert world.run(attempts) == 5

    async def rows(db: Database) -> int:
        async with db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(MerchantEmail)) or 0)

    assert world.run(rows) == 1
