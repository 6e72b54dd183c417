"""A local test server that needs no login (``python -m aiosmtpd -n``): a mailer registered
``insecure`` without credentials, with a sandbox key, is checked without AUTH and sends through it.
Without ``insecure`` credentials are still required; and an error message is redacted for the
password as a whole value only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from malipo.config import Settings
from malipo.core.logging import redact_secret
from malipo.db import Database
from malipo.email.models import Mailer
from tests.fixtures.messaging import Messaging, serve_messaging
from tests.fixtures.servers import free_port
from tests.fixtures.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    # MALIPO_SMTP_ALLOW_PRIVATE unset: loopback servers are for sandbox keys only.
    served = serve_messaging(settings, live_server)
    yield served
    served.http.close()


@pytest.fixture
def open_smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd as ``python -m aiosmtpd -n`` runs it: no AUTH offered, no TLS."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer(handler, controller.port)
    controller.stop()


def _mailers(world: Messaging) -> int:
    async def count(db: Database) -> int:
        async with db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(Mailer)) or 0)

    return int(world.run(count))


def test_a_server_without_login_is_registered_insecure_and_mail_goes_through_it(
    world: Messaging, open_smtp_server: SmtpServer
) -> None:
    a = world.a
    base = {"api_username": a.api_username, "smtp_host": "127.0.0.1", "smtp_port": str(open_smtp_server.port)}

    # Credentials may be left out only for a plain-text local server.
    secure = world.post("/mailer/register", a.test, json=base)
    assert secure.status_code == 400, secure.text
    assert secure.json()["error_code"] == "invalid_argument"
    assert "smtp_username" in secure.json()["error_message"]
    assert "insecure" in secure.json()["error_message"]
    assert _mailers(world) == 0

    # A password without a user name is a mistake, not a login to skip.
    half = world.post("/mailer/register", a.test, json={**base, "insecure": True, "smtp_password": "pw"})
    assert half.status_code == 400, half.text
    assert "smtp_password" in half.json()["error_message"]

    # Pay Hero clients send every field: empty strings count as none.
    registered = world.post(
        "/mailer/register",
        a.test,
        json={**base, "insecure": True, "smtp_username": "", "smtp_password": ""},
    )
    assert registered.status_code == 200, registered.text
    assert registered.json()["message"] == "Credentials registered successfully"

    sent = world.post(
        "/mailer/send",
        a.test,
        json={
            "sender_email": "shop@wanjiku.example",
            "recipients": [{"email": "amina@example.com", "subject": "Your receipt", "body": "Paid\n"}],
        },
    )
    assert sent.status_code == 200, sent.text
    got = open_smtp_server.wait_for("amina@example.com", "Your receipt")
    assert got.mail_from == "shop@wanjiku.example"
    assert got.text == "Paid\n"
    email_id = sent.json()["success"][0]["id"]
    status = world.wait_for(
        lambda: world.get(f"/mailer/status/{email_id}", a.test).json(), lambda s: s["status"] != "queued"
    )
    assert status["status"] == "sent", status


def test_a_user_name_against_a_server_without_auth_is_refused_with_the_reason(
    world: Messaging, open_smtp_server: SmtpServer
) -> None:
    """A mailer with credentials logs in: a server offering no AUTH fails the check (so an empty
    user name really is what skips the login)."""
    refused = world.post(
        "/mailer/register",
        world.a.test,
        json={
            "smtp_host": "127.0.0.1",
            "smtp_port": str(open_smtp_server.port),
            "smtp_username": "shop",
            "smtp_password": "pw-7781",
            "insecure": True,
        },
    )
    assert refused.status_code == 400, refused.text
    assert "AUTH" in refused.json()["error_message"].upper()
    assert _mailers(world) == 0


def test_the_password_is_redacted_as_a_whole_value_not_inside_words(
    world: Messaging, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()  # requires AUTH: a wrong password is refused with 535
    refused = world.post(
        "/mailer/register",
        world.a.test,
        json={
            "smtp_host": "127.0.0.1",
            "smtp_port": str(server.port),
            "smtp_username": "mailer",
            "smtp_password": "e",
            "insecure": True,
        },
    )
    assert refused.status_code == 400, refused.text
    message = refused.json()["error_message"]
    assert "login refused" in message
    assert "[REDACTED]" not in message


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ("login refused: 535 extension", "e", "login refused: 535 extension"),
        ("AUTH with x failed", "x", "AUTH with [REDACTED] failed"),
        ("smtp://shop:p@ss@host", "p@ss", "smtp://shop:[REDACTED]@host"),
        ("'hunter2' rejected; hunter2!", "hunter2", "'[REDACTED]' rejected; [REDACTED]!"),
        ("nothing to hide", "", "nothing to hide"),
    ],
)
def test_a_secret_is_masked_as_a_whole_value_only(text: str, secret: str, expected: str) -> None:
    """The rule every SMTP error goes through (registration, merchant sends, operator mail)."""
    assert redact_secret(text, secret) == expected
