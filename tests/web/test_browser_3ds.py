"""3-D Secure in a real browser: the payer answers the card acquirer simulator's ACS page in
chromium (Playwright), lands on the merchant's return page with the ``paRes``, and the merchant
verifies it through the API. The right code authorises; a wrong one ends ``failed_3ds``.
Screenshots of each step land in ``test-artifacts/screenshots/``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.cards.helpers import CHALLENGE, RIGHT_CODE
from tests.fixtures.browser import snap
from tests.fixtures.servers import LiveServer
from tests.fixtures.world import World

pytestmark = pytest.mark.browser

WRONG_CODE = "000000"  # any code but 123456 fails (malipo.providers.cardacq.acs)


async def _back(request: Request) -> Response:
    """The merchant's return page: what the payer's browser came back with."""
    order = escape(request.query_params.get("order", ""))
    return HTMLResponse(
        f"<!doctype html><title>Back at the shop</title><h1>Back at the shop</h1><p>Order {order}</p>"
    )


@pytest.fixture(scope="module")
def return_url() -> Iterator[str]:
    with LiveServer(Starlette(routes=[Route("/shop/return", _back)])) as served:
        yield f"{served.url}/shop/return?order=ORD-7"


async def _authorize_with_challenge(world: World, return_url: str) -> dict[str, Any]:
    """Tokenize the challenge card and authorise KES 1,250.00 with it: pending_3ds, its ACS URL."""
    card = {"cardNumber": CHALLENGE, "expiryMonth": 12, "expiryYear": 2030, "cvv": "123"}
    tokenized = await world.http.post("/api/v1/cards/tokenize", json=card, headers=world.a.headers)
    assert tokenized.status_code == 201, tokenized.text
    body = {
        "token": tokenized.json()["token"], "amount": "1250.00", "currency": "KES",
        "orderId": "ORD-7", "returnUrl": return_url,
    }  # fmt: skip
    headers = {**world.a.headers, "Idempotency-Key": uuid.uuid4().hex}
    started = await world.http.post("/api/v1/cards/authorize", json=body, headers=headers)
    assert started.status_code == 201, started.text
    auth: dict[str, Any] = started.json()
    assert auth["status"] == "pending_3ds"
    assert auth["threeDs"]["redirectUrl"].startswith(world.url + "/_sim/cards/acs/")
    return auth


async def _answer_challenge(page: Page, acs_url: str, return_url: str, code: str) -> dict[str, list[str]]:
    """As the payer: open the ACS page, check what is paid with which card, enter ``code``, press
    Verify, land on the merchant's return page; the query it landed with."""
    await page.goto(acs_url)
    await expect(page.get_by_role("heading", name="Verify your payment")).to_be_visible()
    # Amount, card, order: the page's <dd>s, in that order.
    await expect(page.get_by_role("definition")).to_have_text(["KES 1250.00", "Visa •••• 3220", "ORD-7"])
    await snap(page, "1-challenge")
    await page.get_by_label("One-time code").fill(code)
    await snap(page, "2-code-entered")
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(return_url.split("?")[0] + "?*")
    await expect(page.get_by_role("heading", name="Back at the shop")).to_be_visible()
    await expect(page.get_by_text("Order ORD-7")).to_be_visible()
    await snap(page, "3-returned")
    landed = parse_qs(urlsplit(page.url).query)
    assert landed["order"] == ["ORD-7"]
    return landed


async def _verify(world: World, auth: dict[str, Any], pares: str) -> dict[str, Any]:
    verified = await world.http.post(
        "/api/v1/cards/3ds/verify",
        json={"authorizationId": auth["authorizationId"], "paRes": pares},
        headers=world.a.headers,
    )
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body


async def test_the_payer_passes_3ds_in_a_browser_and_the_card_is_authorized(
    page: Page, world: World, return_url: str
) -> None:
    auth = await _authorize_with_challenge(world, return_url)
    landed = await _answer_challenge(page, auth["threeDs"]["redirectUrl"], return_url, RIGHT_CODE)
    verified = await _verify(world, auth, landed["paRes"][0])
    assert (verified["status"], verified["threeDs"]["transStatus"]) == ("authorized", "Y")


async def test_a_wrong_code_in_the_browser_ends_failed_3ds(page: Page, world: World, return_url: str) -> None:
    auth = await _authorize_with_challenge(world, return_url)
    landed = await _answer_challenge(page, auth["threeDs"]["redirectUrl"], return_url, WRONG_CODE)
    verified = await _verify(world, auth, landed["paRes"][0])
    assert (verified["status"], verified["threeDs"]["transStatus"]) == ("failed_3ds", "N")
    # The challenge is answered once: the ACS page no longer takes a code.
    await page.goto(auth["threeDs"]["redirectUrl"])
    await expect(page.get_by_role("heading", name="Verification finished")).to_be_visible()
    await expect(page.get_by_label("One-time code")).to_have_count(0)
