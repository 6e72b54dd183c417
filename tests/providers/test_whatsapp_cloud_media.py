"""Images and documents: the WhatsApp Cloud API client's send shapes, and its simulator checking them,
both speaking real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from malipo.providers.whatsapp_cloud.client import WhatsAppCloudClient, WhatsAppError, parse_status_webhook
from malipo.providers.whatsapp_cloud.simulator import (
    MAX_CAPTION_CHARS,
    ReceivedMessage,
    create_simulator_app,
)
from tests.fixtures.servers import LiveServer
from tests.providers.test_whatsapp_cloud import WebhookReceiver

PHONE_NUMBER_ID = "106540352242922"
TOKEN = "EAAGm0PX4ZCpsBAJ-media-token-Q7"
CUSTOMER = "254712345678"
IMAGE_URL = "https://shop.example/menu/today.jpg"
DOCUMENT_URL = "https://shop.example/invoices/INV-009.pdf"

StartServer = Callable[[object], LiveServer]


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[LiveServer]:
    with LiveServer(create_simulator_app(tokens={PHONE_NUMBER_ID: TOKEN})) as server:
        yield server


@pytest.fixture
def simulator(shared_simulator: LiveServer) -> LiveServer:
    received(shared_simulator).clear()
    return shared_simulator


@pytest.fixture
async def client(simulator: LiveServer) -> AsyncIterator[WhatsAppCloudClient]:
    async with WhatsAppCloudClient(simulator.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        yield whatsapp


def received(server: LiveServer) -> list[ReceivedMessage]:
    return server.server.config.app.state.messages  # type: ignore[no-any-return]


async def post_raw(simulator: LiveServer, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{simulator.url}/v23.0/{PHONE_NUMBER_ID}/messages",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )


def media_body(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": CUSTOMER, "type": kind, kind: content}


# -- the client's shapes -------------------------------------------------------------------------


async def test_send_image_posts_the_cloud_api_image_shape(
    client: WhatsAppCloudClient, simulator: LiveServer
) -> None:
    sent = await client.send_image("+" + CUSTOMER, IMAGE_URL, caption="Today's menu")

    assert sent.message_id.startswith("wamid.")
    assert sent.wa_id == CUSTOMER
    [message] = received(simulator)
    assert message.message_id == sent.message_id
    assert message.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "image",
        "image": {"link": IMAGE_URL, "caption": "Today's menu"},
    }


async def test_send_document_posts_link_caption_and_filename(
    client: WhatsAppCloudClient, simulator: LiveServer
) -> None:
    sent = await client.send_document(CUSTOMER, DOCUMENT_URL, caption="Your invoice", filename="INV-009.pdf")

    [message] = received(simulator)
    assert message.message_id == sent.message_id
    assert message.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "document",
        "document": {"link": DOCUMENT_URL, "caption": "Your invoice", "filename": "INV-009.pdf"},
    }


async def test_media_without_caption_or_filename_leaves_them_out(
    client: WhatsAppCloudClient, simulator: LiveServer
) -> None:
    await client.send_image(CUSTOMER, IMAGE_URL)
    await client.send_document(CUSTOMER, DOCUMENT_URL, caption="")

    assert [m.body["image" if m.body["type"] == "image" else "document"] for m in received(simulator)] == [
        {"link": IMAGE_URL},
        {"link": DOCUMENT_URL},
    ]


async def test_a_caption_of_the_maximum_length_is_accepted_and_one_more_is_code_100(
    client: WhatsAppCloudClient,
) -> None:
    sent = await client.send_image(CUSTOMER, IMAGE_URL, caption="x" * MAX_CAPTION_CHARS)
    assert sent.message_id.startswith("wamid.")

    with pytest.raises(WhatsAppError) as caught:
        await client.send_document(CUSTOMER, DOCUMENT_URL, caption="x" * (MAX_CAPTION_CHARS + 1))

    assert (caught.value.http_status, caught.value.code, caught.value.retryable) == (400, 100, False)
    assert "document.caption" in (caught.value.details or "")


async def test_test_numbers_refuse_media_as_they_refuse_text(client: WhatsAppCloudClient) -> None:
    with pytest.raises(WhatsAppError) as caught:
        await client.send_image("254712340002", IMAGE_URL)

    assert (caught.value.code, caught.value.retryable, caught.value.throttled) == (130429, True, True)


# -- the simulator's checks ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "document"])
async def test_the_simulator_refuses_media_without_a_link_or_an_id(simulator: LiveServer, kind: str) -> None:
    body = media_body(kind, {"caption": "no media"})

    response = await post_raw(simulator, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"], error["message"]) == (
        100,
        "OAuthException",
        "(#100) Invalid parameter",
    )
    assert error["error_data"]["details"] == (
        f"{kind} must have a link (a hosted media URL) or an id (an uploaded media id)"
    )
    assert error["fbtrace_id"]
    assert received(simulator)[0].body == body
    assert received(simulator)[0].message_id is None


@pytest.mark.parametrize(
    ("kind", "content", "details"),
    [
        ("image", {"link": IMAGE_URL, "id": "1013859600285441"}, "not both"),
        ("image", {"link": "ftp://shop.example/a.jpg"}, "image.link must be an absolute http"),
        ("image", {"link": "/menu/today.jpg"}, "image.link must be an absolute http"),
        ("image", {"link": "https://shop.example/a b.jpg"}, "image.link must be an absolute http"),
        ("image", {"link": IMAGE_URL, "caption": 7}, "image.caption"),
        ("image", {"link": IMAGE_URL, "filename": "a.jpg"}, "unknown parameter(s) in image: filename"),
        ("document", {"link": DOCUMENT_URL, "filename": ""}, "document.filename"),
        ("document", {"id": ""}, "document.id"),
        ("document", "https://shop.example/a.pdf", "document must be an object"),
    ],
    ids=[
        "link-and-id",
        "ftp-link",
        "relative-link",
        "space-in-link",
        "caption-not-text",
        "filename-on-image",
        "empty-filename",
        "empty-id",
        "not-an-object",
    ],
)
async def test_the_simulator_checks_media_fields(
    simulator: LiveServer, kind: str, content: Any, details: str
) -> None:
    response = await post_raw(simulator, media_body(kind, content))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert details in response.json()["error"]["error_data"]["details"]


async def test_the_object_sent_must_be_the_one_type_names(simulator: LiveServer) -> None:
    body = media_body("image", {"link": IMAGE_URL}) | {"document": {"link": DOCUMENT_URL}}

    response = await post_raw(simulator, body)

    assert response.status_code == 400
    assert response.json()["error"]["error_data"]["details"] == (
        "type must be 'document' to send a document object; got type 'image'"
    )


@pytest.mark.parametrize("kind", [["image"], {"image": True}, "video"], ids=["list", "object", "video"])
async def test_a_type_that_is_not_one_of_the_three_is_code_100(simulator: LiveServer, kind: Any) -> None:
    body = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": kind, "image": {"link": IMAGE_URL}}

    response = await post_raw(simulator, body)

    assert response.status_code == 400
    assert response.json()["error"]["error_data"]["details"].startswith(
        "type must be 'text', 'image' or 'document'"
    )


async def test_an_uploaded_media_id_is_accepted(simulator: LiveServer) -> None:
    response = await post_raw(simulator, media_body("document", {"id": "1013859600285441", "caption": "Q3"}))

    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["id"].startswith("wamid.")


async def test_an_accepted_image_gets_sent_and_delivered_webhooks(live_server: StartServer) -> None:
    receiver = WebhookReceiver()
    hook = live_server(receiver.app())
    server = live_server(create_simulator_app(status_webhook_url=f"{hook.url}/whatsapp/webhook"))
    async with WhatsAppCloudClient(server.url, PHONE_NUMBER_ID, TOKEN) as whatsapp:
        sent = await whatsapp.send_image(CUSTOMER, IMAGE_URL, caption="Menu")

    payloads = await receiver.wait_for(2)

    updates = [update for payload in payloads for update in parse_status_webhook(payload)]
    assert [(u.message_id, u.status) for u in updates] == [
        (sent.message_id, "sent"),
        (sent.message_id, "delivered"),
    ]
