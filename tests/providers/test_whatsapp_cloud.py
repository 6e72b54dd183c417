"""The WhatsApp Cloud API client against its simulator, both speaking real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from malipo.providers.whatsapp_cloud.client import (
    DEFAULT_API_VERSION,
    SentMessage,
    StatusUpdate,
    WhatsAppCloudClient,
    WhatsAppError,
    parse_status_webhook,
    verify_webhook_signature,
)
from malipo.providers.whatsapp_cloud.simulator import (
    MAX_BODY_CHARS,
    TEST_NUMBERS,
    ReceivedMessage,
    create_simulator_app,
)
from tests.fixtures.servers import LiveServer, free_port

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAGm0PX4ZCpsBAJ-sim-token-Zx9"  # checked for in logs and errors
CUSTOMER = "254712345678"
APP_SECRET = "sim-app-secret"

StartServer = Callable[[object], LiveServer]


@dataclass
class WebhookReceiver:
    """A stand-in for malipo's webhook endpoint: records each POST's headers and raw body."""

    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.calls.append((dict(request.headers), await request.body()))
            return Response(status_code=200)

        return Starlette(routes=[Route("/whatsapp/webhook", receive, methods=["POST"])])

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"{len(self.calls)} of {count} webhooks arrived"
            await asyncio.sleep(0.01)
        return [json.loads(body) for _, body in self.calls]


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[LiveServer]:
    with LiveServer(create_simulator_app(tokens={PHONE_NUMBER_ID: TOKEN})) as server:
        yield server


@pytest.fixture
def simulator(shared_simulator: LiveServer) -> LiveServer:
    """The module's simulator (one token for PHONE_NUMBER_ID, no webhooks), its record emptied."""
    received(shared_simulator).clear()
    return shared_simulator


@pytest.fixture
async def client(simulator: LiveServer) -> AsyncIterator[WhatsAppCloudClient]:
    async with WhatsAppCloudClient(simulator.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        yield whatsapp


def received(server: LiveServer) -> list[ReceivedMessage]:
    return server.server.config.app.state.messages  # type: ignore[no-any-return]


async def send_error(client: WhatsAppCloudClient, to: str = CUSTOMER, body: str = "Hello") -> WhatsAppError:
    with pytest.raises(WhatsAppError) as caught:
        await client.send_text(to, body)
    return caught.value


# -- sending -------------------------------------------------------------------------------------


async def test_send_text_returns_wamid_and_the_simulator_received_exactly_the_body(
    client: WhatsAppCloudClient, simulator: LiveServer
) -> None:
    sent = await client.send_text(
        CUSTOMER, "Your order INV-009 is paid: https://example.com/r/1", preview_url=True
    )

    assert sent.wa_id == CUSTOMER
    assert sent.message_id.startswith("wamid.")
    [message] = received(simulator)
    assert message.version == DEFAULT_API_VERSION
    assert message.phone_number_id == PHONE_NUMBER_ID
    assert message.message_id == sent.message_id
    assert message.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "text",
        "text": {"preview_url": True, "body": "Your order INV-009 is paid: https://example.com/r/1"},
    }


async def test_a_leading_plus_is_dropped_from_the_recipient(
    client: WhatsAppCloudClient, simulator: LiveServer
) -> None:
    sent = await client.send_text("+" + CUSTOMER, "Hi")

    assert sent == SentMessage(message_id=sent.message_id, wa_id=CUSTOMER)
    assert received(simulator)[0].body["to"] == CUSTOMER


async def test_each_message_gets_its_own_id(client: WhatsAppCloudClient) -> None:
    first, second = await asyncio.gather(client.send_text(CUSTOMER, "one"), client.send_text(CUSTOMER, "two"))

    assert first.message_id != second.message_id


async def test_a_body_of_the_maximum_length_is_accepted(client: WhatsAppCloudClient) -> None:
    sent = await client.send_text(CUSTOMER, "x" * MAX_BODY_CHARS)

    assert sent.message_id.startswith("wamid.")


async def test_a_shared_http_client_is_used_and_left_open(simulator: LiveServer) -> None:
    async with httpx.AsyncClient() as http:
        whatsapp = WhatsAppCloudClient(
            simulator.url + "/", PHONE_NUMBER_ID, TOKEN, api_version="v21.0", http=http
        )
        await whatsapp.send_text(CUSTOMER, "Hi")
        await whatsapp.aclose()
        assert not http.is_closed

    assert received(simulator)[0].version == "v21.0"


# -- refusals ------------------------------------------------------------------------------------


async def test_a_wrong_token_is_code_190_and_not_retryable(simulator: LiveServer) -> None:
    async with WhatsAppCloudClient(simulator.url, PHONE_NUMBER_ID, "not-the-token") as whatsapp:
        error = await send_error(whatsapp)

    assert (error.http_status, error.code, error.error_type) == (401, 190, "OAuthException")
    assert error.message.startswith("Invalid OAuth access token")
    assert error.fbtrace_id
    assert not error.retryable
    assert not error.maybe_sent
    assert received(simulator)[0].error_code == 190


@pytest.mark.parametrize("authorization", [None, "Bearer", "bearer", "Basic dXNlcjpwYXNz", TOKEN])
async def test_the_simulator_without_tokens_wants_any_bearer_token(
    live_server: StartServer, authorization: str | None
) -> None:
    server = live_server(create_simulator_app())
    headers = {"Authorization": authorization} if authorization else {}
    body = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "Hi"}}
    async with httpx.AsyncClient() as http:
        refused = await http.post(f"{server.url}/v23.0/any-id/messages", json=body, headers=headers)
        accepted = await http.post(
            f"{server.url}/v23.0/any-id/messages", json=body, headers={"Authorization": "Bearer whatever"}
        )

    assert (refused.status_code, refused.json()["error"]["code"]) == (401, 190)
    assert accepted.json()["messages"][0]["id"].startswith("wamid.")


@pytest.mark.parametrize("token", ["", "two words", f"{TOKEN}\n"])
async def test_a_malformed_token_is_refused_before_sending_and_not_shown(
    simulator: LiveServer, token: str
) -> None:
    with capture_logs() as logs:
        async with WhatsAppCloudClient(simulator.url, PHONE_NUMBER_ID, token) as whatsapp:
            error = await send_error(whatsapp)

    assert not error.retryable
    assert not received(simulator)
    assert TOKEN not in f"{error}{logs}"


async def test_a_token_of_another_number_is_code_100_subcode_33(live_server: StartServer) -> None:
    server = live_server(create_simulator_app(tokens={PHONE_NUMBER_ID: TOKEN, "999": "other-token"}))
    async with WhatsAppCloudClient(server.url, "999", TOKEN) as whatsapp:
        error = await send_error(whatsapp)

    assert (error.http_status, error.code, error.error_subcode) == (400, 100, 33)
    assert "999" in error.message
    assert not error.retryable


@pytest.mark.parametrize(
    ("to", "body", "details"),
    [
        (CUSTOMER, "", "text.body"),
        (CUSTOMER, "x" * (MAX_BODY_CHARS + 1), "text.body"),
        ("1234567", "Hi", "to must be"),
        ("2547123456789012", "Hi", "to must be"),
        ("2547-1234-5678", "Hi", "to must be"),
    ],
    ids=["empty-body", "body-too-long", "to-too-short", "to-too-long", "to-not-digits"],
)
async def test_an_invalid_message_is_code_100_and_not_retryable(
    client: WhatsAppCloudClient, to: str, body: str, details: str
) -> None:
    error = await send_error(client, to=to, body=body)

    assert (error.http_status, error.code) == (400, 100)
    assert details in (error.details or "")
    assert not error.retryable


@pytest.mark.parametrize(
    ("change", "details"),
    [
        ({"messaging_product": "sms"}, "messaging_product"),
        ({"type": "image"}, "type must be"),
        ({"text": "Hi"}, "text must be"),
        ({"text": {"body": "Hi", "preview_url": "yes"}}, "preview_url"),
        ({"text": {"body": "Hi", "bdy": "typo"}}, "bdy"),
        ({"recipient_type": "group"}, "recipient_type"),
        ({"to": 254712345678}, "to must be"),
        ({"template": {"name": "receipt"}}, "unknown parameter"),
    ],
)
async def test_the_simulator_checks_every_field(
    simulator: LiveServer, change: dict[str, Any], details: str
) -> None:
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "Hi"},
    } | change
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{simulator.url}/v23.0/{PHONE_NUMBER_ID}/messages",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (100, "OAuthException")
    assert details in error["error_data"]["details"]
    assert received(simulator)[0].body == body


async def test_a_body_that_is_not_json_is_code_100(simulator: LiveServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{simulator.url}/v23.0/{PHONE_NUMBER_ID}/messages",
            content=b"to=254712345678",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    assert response.json()["error"]["code"] == 100
    assert received(simulator)[0].body is None


async def test_a_malformed_api_version_is_code_100(simulator: LiveServer) -> None:
    async with WhatsAppCloudClient(simulator.url, PHONE_NUMBER_ID, TOKEN, api_version="23.0") as whatsapp:
        error = await send_error(whatsapp)

    assert error.code == 100
    assert "version" in (error.details or "")


@pytest.mark.parametrize(
    ("suffix", "http_status", "code", "retryable", "throttled"),
    [
        ("0001", 400, 131026, False, False),
        ("0002", 400, 130429, True, True),
        ("0003", 400, 131056, True, True),
        ("0004", 400, 131047, False, False),
        ("0005", 500, 131000, True, False),
    ],
    ids=["undeliverable", "rate-limited", "pair-rate-limited", "re-engagement", "server-error"],
)
async def test_test_numbers_choose_the_refusal(
    client: WhatsAppCloudClient,
    suffix: str,
    http_status: int,
    code: int,
    retryable: bool,
    throttled: bool,
) -> None:
    error = await send_error(client, to="25471234" + suffix)

    assert (error.http_status, error.code) == (http_status, code)
    assert error.message == f"(#{code}) {TEST_NUMBERS[suffix].title}"
    assert error.details == TEST_NUMBERS[suffix].details
    assert error.retryable is retryable
    assert error.throttled is throttled


# -- transport failures --------------------------------------------------------------------------


async def test_a_simulator_that_is_down_is_retryable_and_nothing_was_sent() -> None:
    async with WhatsAppCloudClient(f"http://127.0.0.1:{free_port()}", PHONE_NUMBER_ID, TOKEN) as whatsapp:
        error = await send_error(whatsapp)

    assert error.retryable
    assert not error.maybe_sent
    assert error.http_status is None
    assert error.code is None


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1:1", "http://[::1"])
async def test_a_bad_base_url_is_not_retryable(base_url: str) -> None:
    async with WhatsAppCloudClient(base_url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        error = await send_error(whatsapp)

    assert not error.retryable
    assert "URL" in error.message


def broken_upstream() -> Starlette:
    """What may sit between us and Meta: a slow reply, a proxy's HTML error page, an odd success."""

    async def messages(request: Request) -> Response:
        match request.path_params["phone_number_id"]:
            case "slow":
                await asyncio.sleep(0.3)
                return JSONResponse({})
            case "gateway":
                return HTMLResponse("<html><body>502 Bad Gateway</body></html>", status_code=502)
            case "teapot":
                return HTMLResponse("<html>no</html>", status_code=418)
            case _:
                return JSONResponse({"messaging_product": "whatsapp", "messages": []})

    return Starlette(routes=[Route("/{version}/{phone_number_id}/messages", messages, methods=["POST"])])


async def test_a_timeout_is_retryable_but_may_have_been_sent(live_server: StartServer) -> None:
    server = live_server(broken_upstream())
    async with WhatsAppCloudClient(server.url, "slow", TOKEN, timeout=0.05) as whatsapp:
        error = await send_error(whatsapp)

    assert error.retryable
    assert error.maybe_sent
    assert "timed out" in error.message


async def test_a_5xx_without_a_graph_error_is_retryable_and_a_4xx_is_not(live_server: StartServer) -> None:
    server = live_server(broken_upstream())
    async with WhatsAppCloudClient(server.url, "gateway", TOKEN) as whatsapp:
        gateway = await send_error(whatsapp)
    async with WhatsAppCloudClient(server.url, "teapot", TOKEN) as whatsapp:
        teapot = await send_error(whatsapp)

    assert (gateway.http_status, gateway.code, gateway.retryable) == (502, None, True)
    assert (teapot.http_status, teapot.code, teapot.retryable) == (418, None, False)


async def test_a_success_without_a_message_id_is_not_resent(live_server: StartServer) -> None:
    server = live_server(broken_upstream())
    async with WhatsAppCloudClient(server.url, "odd", TOKEN) as whatsapp:
        error = await send_error(whatsapp)

    assert not error.retryable
    assert error.maybe_sent


async def test_the_access_token_is_never_logged_nor_shown(
    client: WhatsAppCloudClient, simulator: LiveServer
) -> None:
    with capture_logs() as logs:
        await client.send_text(CUSTOMER, "Hi")
        errors = [await send_error(client, to="254712340001")]
    async with WhatsAppCloudClient(f"http://127.0.0.1:{free_port()}", PHONE_NUMBER_ID, TOKEN) as down:
        with capture_logs() as more_logs:
            errors.append(await send_error(down))

    assert [entry["event"] for entry in logs + more_logs] == [
        "whatsapp.sent",
        "whatsapp.send_failed",
        "whatsapp.send_failed",
    ]
    shown = repr(logs + more_logs) + repr(client) + "".join(f"{e!s}{e!r}{vars(e)}" for e in errors)
    assert TOKEN not in shown


# -- status webhooks -----------------------------------------------------------------------------


async def test_status_webhooks_arrive_in_order_and_parse(live_server: StartServer) -> None:
    receiver = WebhookReceiver()
    hook = live_server(receiver.app())
    server = live_server(
        create_simulator_app(status_webhook_url=f"{hook.url}/whatsapp/webhook", status_delay=0.01)
    )
    async with WhatsAppCloudClient(server.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        sent = await whatsapp.send_text(CUSTOMER, "Paid")

    payloads = await receiver.wait_for(2)

    assert [payload["object"] for payload in payloads] == ["whatsapp_business_account"] * 2
    updates = [update for payload in payloads for update in parse_status_webhook(payload)]
    assert [(u.message_id, u.status, u.recipient_id, u.error_code) for u in updates] == [
        (sent.message_id, "sent", CUSTOMER, None),
        (sent.message_id, "delivered", CUSTOMER, None),
    ]
    assert all(u.phone_number_id == PHONE_NUMBER_ID for u in updates)
    assert all(abs((u.timestamp or 0) - time.time()) < 60 for u in updates)
    assert "X-Hub-Signature-256".lower() not in receiver.calls[0][0]


async def test_an_accepted_message_can_fail_later(live_server: StartServer) -> None:
    receiver = WebhookReceiver()
    hook = live_server(receiver.app())
    server = live_server(create_simulator_app(status_webhook_url=f"{hook.url}/whatsapp/webhook"))
    async with WhatsAppCloudClient(server.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        sent = await whatsapp.send_text("254712340009", "Paid")

    payloads = await receiver.wait_for(2)

    sent_status, failed = (parse_status_webhook(payload)[0] for payload in payloads)
    assert sent_status.status == "sent"
    assert failed == StatusUpdate(
        message_id=sent.message_id,
        status="failed",
        recipient_id="254712340009",
        error_code=131026,
        error_title="Message undeliverable",
        timestamp=failed.timestamp,
        phone_number_id=PHONE_NUMBER_ID,
    )


async def test_refused_messages_get_no_webhooks(live_server: StartServer) -> None:
    receiver = WebhookReceiver()
    hook = live_server(receiver.app())
    app = create_simulator_app(status_webhook_url=f"{hook.url}/whatsapp/webhook")
    server = live_server(app)
    async with WhatsAppCloudClient(server.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        await send_error(whatsapp, to="254712340001")
        await whatsapp.send_text(CUSTOMER, "Paid")

    payloads = await receiver.wait_for(2)
    # Each accepted message's webhooks are scheduled before its reply: once none is left to send,
    # whatever did not arrive never will.
    deadline = time.monotonic() + 5
    while app.state.webhook_tasks:
        assert time.monotonic() < deadline, "the simulator's webhooks did not finish"
        await asyncio.sleep(0.01)

    assert len(receiver.calls) == 2
    assert {parse_status_webhook(payload)[0].recipient_id for payload in payloads} == {CUSTOMER}


async def test_webhooks_are_signed_with_the_app_secret(live_server: StartServer) -> None:
    receiver = WebhookReceiver()
    hook = live_server(receiver.app())
    server = live_server(
        create_simulator_app(status_webhook_url=f"{hook.url}/whatsapp/webhook", app_secret=APP_SECRET)
    )
    async with WhatsAppCloudClient(server.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        await whatsapp.send_text(CUSTOMER, "Paid")

    await receiver.wait_for(2)

    for headers, body in receiver.calls:
        signature = headers["x-hub-signature-256"]
        assert verify_webhook_signature(body, signature, APP_SECRET)
        assert not verify_webhook_signature(body, signature, "another-secret")
        assert not verify_webhook_signature(body + b" ", signature, APP_SECRET)
    assert not verify_webhook_signature(b"{}", None, APP_SECRET)


async def test_shutdown_cancels_webhooks_still_waiting() -> None:
    app = create_simulator_app(status_webhook_url=f"http://127.0.0.1:{free_port()}/hook", status_delay=30)
    with LiveServer(app) as server:
        async with WhatsAppCloudClient(server.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
            await whatsapp.send_text(CUSTOMER, "Paid")
        assert len(app.state.webhook_tasks) == 1
        stopping = time.monotonic()

    assert time.monotonic() - stopping < 5
    assert not app.state.webhook_tasks


def test_parse_status_webhook_skips_inbound_messages_and_malformed_items() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550001234", "phone_number_id": "42"},
                            "contacts": [{"profile": {"name": "A"}, "wa_id": CUSTOMER}],
                            "messages": [{"from": CUSTOMER, "id": "wamid.in", "type": "text"}],
                        },
                    },
                    {
                        "field": "messages",
                        "value": {
                            "statuses": [
                                {
                                    "id": "wamid.a",
                                    "status": "read",
                                    "timestamp": "1750857384",
                                    "recipient_id": "1",
                                },
                                {"status": "read"},
                                "nonsense",
                                {"id": "wamid.b", "status": "failed", "errors": [{"code": "131049"}]},
                            ]
                        },
                    },
                    {"value": "nonsense"},
                ],
            },
            "nonsense",
        ],
    }

    assert parse_status_webhook(payload) == [
        StatusUpdate("wamid.a", "read", "1", timestamp=1750857384),
        StatusUpdate("wamid.b", "failed", None, error_code=131049),
    ]
    assert parse_status_webhook({}) == []
    assert parse_status_webhook({"entry": "nonsense"}) == []
