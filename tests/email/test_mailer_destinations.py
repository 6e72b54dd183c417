"""/mailer/register is no probe of the internal network: a host that resolves to a loopback, private,
link-local or metadata address is refused (after DNS resolution) unless the operator allows it
(by default only sandbox keys may), the connection goes to the address that was checked, and a
connection failure reads the same whatever its cause."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from malipo.config import Settings
from malipo.db import Database
from malipo.email.models import Mailer
from malipo.providers.smtp.client import (
    SmtpDestinationRefused,
    SmtpError,
    SmtpTarget,
    is_host_name,
    is_public_address,
    verify_login,
)
from tests.fixtures.messaging import Messaging, serve_messaging
from tests.fixtures.servers import free_port
from tests.fixtures.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    served = serve_messaging(settings, live_server)  # MALIPO_SMTP_ALLOW_PRIVATE unset
    yield served
    served.http.close()


def _register(world: Messaging, headers: dict[str, str], host: str, port: int) -> Any:
    body = {
        "smtp_host": host,
        "smtp_username": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_port": str(port),
        "insecure": True,
    }
    return world.post("/mailer/register", headers, json=body)


def _mailers(world: Messaging) -> int:
    async def count(db: Database) -> int:
        async with db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(Mailer)) or 0)

    return int(world.run(count))


def test_live_credentials_may_not_register_a_loopback_private_or_metadata_host(
    world: Messaging, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()
    a = world.a
    for headers in (a.basic, a.live):
        for host, port in (
            ("127.0.0.1", server.port),  # a real SMTP server answers there: refused before connecting
            ("localhost", server.port),  # refused after DNS resolution
            ("127.0.0.1", 1),
            ("169.254.169.254", 25),
            ("[fd00:ec2::254]", 25),
            ("10.0.0.7", 25),
        ):
            refused = _register(world, headers, host, port)
            assert refused.status_code == 400, (host, refused.text)
            message = refused.json()["error_message"]
            assert "smtp_host" in message
            assert "not public" in message
            assert "Connection refused" not in message
    assert _mailers(world) == 0, "a refused registration stores nothing"
    assert server.handler.received == []


def test_a_sandbox_key_may_use_a_local_test_server_and_its_mail_arrives(
    world: Messaging, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()
    a = world.a
    registered = _register(world, a.test, "127.0.0.1", server.port)
    assert registered.status_code == 200, registered.text
    assert _mailers(world) == 1
    sent = world.post(
        "/mailer/send",
        a.test,
        json={
            "sender_email": "shop@a.example",
            "recipients": [{"email": "c@example.com", "subject": "sandbox mail", "body": "b"}],
        },
    )
    assert sent.status_code == 200, sent.text
    assert not sent.json()["errors"]
    server.wait_for("c@example.com", "sandbox mail")


def test_connection_failures_read_the_same_whatever_their_cause(world: Messaging) -> None:
    a = world.a
    closed = free_port()
    replies = [
        _register(world, a.test, "127.0.0.1", closed),
        _register(world, a.test, "no-such-host.invalid", 25),
    ]
    messages = [reply.json()["error_message"] for reply in replies]
    assert [reply.status_code for reply in replies] == [400, 400]
    assert f"could not connect to 127.0.0.1:{closed}, or it did not answer" in messages[0]
    assert "could not connect to no-such-host.invalid:25, or it did not answer" in messages[1]
    for message in messages:
        for oracle in ("refused", "Errno", "timed out", "Name or service", "nodename"):
            assert oracle not in message
    assert _mailers(world) == 0


async def test_a_server_that_never_answers_reads_as_one_that_refused() -> None:
    closed = free_port()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, then never says a word: a timeout, not a refusal
    port = silent.getsockname()[1]
    try:
        errors = []
        for each in (port, closed):
            with pytest.raises(SmtpError) as caught:
                await verify_login(
                    SmtpTarget("127.0.0.1", each, SMTP_USER, SMTP_PASSWORD, "none"), timeout=0.5
                )
            errors.append(str(caught.value))
    finally:
        silent.close()
    assert errors == [
        f"could not connect to 127.0.0.1:{port}, or it did not answer",
        f"could not connect to 127.0.0.1:{closed}, or it did not answer",
    ]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("127.8.9.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # cloud metadata
        ("169.254.1.1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("fe80::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


async def test_the_connection_goes_to_the_address_that_was_checked(
    smtp_server: Callable[..., SmtpServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name is resolved once, by malipo; the SMTP client is handed the socket connected to the
    checked address and never resolves the name again (``rebind.example`` resolves nowhere else)."""
    server = smtp_server()
    loop = asyncio.get_running_loop()
    lookups: list[str] = []
    real = loop.getaddrinfo

    async def resolve(host: str, port: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        if host == "rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]
        return await real(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    target = SmtpTarget("rebind.example", server.port, SMTP_USER, SMTP_PASSWORD, "none")
    await verify_login(target)
    assert lookups == ["rebind.example"]

    lookups.clear()
    with pytest.raises(SmtpDestinationRefused):
        await verify_login(SmtpTarget("rebind.example", server.port, SMTP_USER, SMTP_PASSWORD, "none", False))
    assert lookups == ["rebind.example"]
    with pytest.raises(SmtpError, match="login refused"):
        await verify_login(SmtpTarget("rebind.example", server.port, SMTP_USER, "wrong-password", "none"))


@pytest.mark.parametrize(
    "host",
    ["a" * 64 + ".example.com", "-smtp.example.com", "smtp..example.com", "x." * 130 + "com", "[not-an-ip]"],
)
def test_a_host_that_is_no_host_name_is_refused_naming_smtp_host(world: Messaging, host: str) -> None:
    # A label over 63 characters made the resolver's IDNA encoding raise: a 500 before this check.
    refused = _register(world, world.a.test, host, 587)
    assert refused.status_code == 400, refused.text
    assert "smtp_host" in refused.json()["error_message"]
    assert _mailers(world) == 0


@pytest.mark.parametrize(
    ("host", "valid"),
    [("smtp.gmail.com", True), ("mail-1.example.co.ke.", True), ("127.0.0.1", True), ("[::1]", True),
     ("a" * 63 + ".ke", True), ("a" * 64 + ".ke", False), ("-a.ke", False), ("a..ke", False), ("", False)],
)  # fmt: skip
def test_which_host_names_a_mailer_may_name(host: str, valid: bool) -> None:
    assert is_host_name(host) is valid
