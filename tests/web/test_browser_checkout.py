"""Hosted checkout and payment links in a real browser: the payer drives malipo's pages in
chromium (Playwright) by M-Pesa (the Daraja simulator's scripted phones) and by card (the card
acquirer simulator, with its 3-D Secure page), and the merchant then checks what it relies on:
the session through the API, its callback, and the books. Screenshots of each step land in
``test-artifacts/screenshots/``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Frame, Locator, Page, Request, Route, expect
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as HttpRoute

from malipo.checkout import repository
from malipo.checkout import service as checkout
from tests.cards.helpers import CHALLENGE, DECLINED, RIGHT_CODE, VISA, CardBalances, card_balances
from tests.fixtures.browser import snap
from tests.fixtures.servers import LiveServer
from tests.fixtures.world import CANCELLED, PAYS, Mailbox, World

pytestmark = pytest.mark.browser

# How long Playwright waits for an M-Pesa outcome on the page (it polls every 1.5 s): a generous
# limit for a loaded machine, not an expectation.
MPESA_WAIT_MS = 20_000
EXPIRY_YEAR = str(datetime.now(UTC).year + 3)


# --------------------------------------------------------------------------- the merchant's shop


@dataclass
class Shop:
    """The merchant's web site on loopback: its return page, and pages a test puts up."""

    url: str = ""
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def return_page(self) -> str:
        return f"{self.url}/shop/return"

    def returned(self, url: str) -> bool:
        return url.startswith(self.return_page + "?")


async def _back(request: HttpRequest) -> Response:
    """The return page: what the payer's browser came back with."""
    order = escape(request.query_params.get("order", ""))
    status = escape(request.query_params.get("status", ""))
    return HTMLResponse(
        "<!doctype html><title>Back at the shop</title><h1>Back at the shop</h1>"
        f"<p>Order {order}: {status}</p>"
    )


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    found = Shop()

    async def page(request: HttpRequest) -> Response:
        html = found.pages.get(request.path_params["name"])
        return HTMLResponse(html) if html is not None else HTMLResponse("no such page", status_code=404)

    app = Starlette(routes=[HttpRoute("/shop/return", _back), HttpRoute("/shop/pages/{name}", page)])
    with LiveServer(app) as served:
        found.url = served.url
        yield found


# --------------------------------------------------------------------------- the merchant's API


async def _new_session(
    world: World, shop: Shop, mailbox: Mailbox, amount: str, order: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "amount": amount, "currency": "KES", "returnUrl": f"{shop.return_page}?order={order}",
        "orderId": order, "description": "2 kg Kenyan AA coffee", "callbackUrl": mailbox.url, **extra,
    }  # fmt: skip
    created = await world.http.post("/api/v1/checkout/sessions", json=body, headers=world.a.headers)
    assert created.status_code == 201, created.text
    session: dict[str, Any] = created.json()
    assert session["status"] == "open"
    assert session["url"] == f"{world.url}/checkout/{session['sessionId']}"
    return session


async def _session(world: World, session_id: str) -> dict[str, Any]:
    read = await world.http.get(f"/api/v1/checkout/sessions/{session_id}", headers=world.a.headers)
    assert read.status_code == 200, read.text
    body: dict[str, Any] = read.json()
    return body


async def _books(world: World) -> CardBalances:
    """The merchant's payments wallet, card clearing and fee revenue (balance, held)."""
    async with world.db.transaction() as session:
        return await card_balances(session, world.a.client_id, datetime.now(UTC))


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


# --------------------------------------------------------------------------- the payer's browser


def _main_frame_urls(page: Page) -> list[str]:
    """Every document the tab loads from now on (a reload shows as the same URL again)."""
    loaded: list[str] = []

    def navigated(frame: Frame) -> None:
        if frame.parent_frame is None and frame.url != "about:blank":
            loaded.append(frame.url)

    page.on("framenavigated", navigated)
    return loaded


def _navigation_requests(page: Page) -> list[str]:
    """Every URL the tab navigates to from now on, redirects included."""
    requested: list[str] = []

    def asked(request: Request) -> None:
        if request.is_navigation_request() and request.frame.parent_frame is None:
            requested.append(request.url)

    page.on("request", asked)
    return requested


@dataclass
class HeldReturn:
    """Holds the browser's request for the return page until released, so the page it leaves
    can be looked at (and photographed) as long as needed."""

    released: asyncio.Event = field(default_factory=asyncio.Event)
    held: list[str] = field(default_factory=list)

    async def hold(self, route: Route) -> None:
        self.held.append(route.request.url)
        await self.released.wait()
        await route.continue_()


@pytest.fixture
async def held_return(page: Page, shop: Shop) -> AsyncIterator[HeldReturn]:
    """The return page held (released at the latest before the page's last screenshot)."""
    gate = HeldReturn()
    await page.route(shop.returned, gate.hold)
    yield gate
    gate.released.set()


async def _open_checkout(page: Page, session: dict[str, Any]) -> None:
    await page.goto(session["url"])
    await expect(page.locator("#amount")).to_have_text(f"KES {session['amount']}")
    await expect(page.get_by_text("2 kg Kenyan AA coffee")).to_be_visible()


def _pay_button(page: Page, session: dict[str, Any]) -> Locator:
    return page.get_by_role("button", name=f"Pay KES {session['amount']}")


async def _fill_card(page: Page, number: str) -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry month").fill("12")
    await page.get_by_label("Expiry year").fill(EXPIRY_YEAR)
    await page.get_by_label("CVV").fill("123")


async def _back_at_the_shop(page: Page, shop: Shop, session: dict[str, Any]) -> None:
    """The page sent the payer to the return URL with the session and ``completed``."""
    await page.wait_for_url(shop.returned)
    await expect(page.get_by_role("heading", name="Back at the shop")).to_be_visible()
    landed = parse_qs(urlsplit(page.url).query)
    assert landed == {
        "order": [session["orderId"]],
        "checkoutSessionId": [session["sessionId"]],
        "status": ["completed"],
    }


# --------------------------------------------------------------------------- M-Pesa


async def test_the_payer_pays_by_mpesa_and_the_page_follows_without_a_reload(
    page: Page, world: World, shop: Shop, mailbox: Mailbox, held_return: HeldReturn
) -> None:
    before = await world.balances()
    session = await _new_session(world, shop, mailbox, "250", "ORD-101")
    assert session["methods"] == ["mpesa", "card"]
    loaded = _main_frame_urls(page)

    await _open_checkout(page, session)
    await expect(page.get_by_role("tab", name="M-Pesa")).to_have_attribute("aria-selected", "true")
    cancel = page.get_by_role("link", name="Cancel and return to the merchant")
    await expect(cancel).to_have_attribute("href", re.compile(r"[?&]status=cancelled(&|$)"))
    await page.evaluate("window.__marker = 1")  # gone if the page reloads
    await page.get_by_label("M-Pesa phone number").fill(PAYS)
    await snap(page, "1-phone")
    await _pay_button(page, session).click()

    await expect(page.get_by_role("heading", name="Check your phone")).to_be_visible()
    await snap(page, "2-check-your-phone")
    await expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=MPESA_WAIT_MS)
    paid = await _session(world, session["sessionId"])
    assert paid["receipt"], paid
    await expect(page.locator("#done-text")).to_have_text(f"KES 250.00 paid. Receipt {paid['receipt']}.")
    await expect(page.get_by_text("Taking you back to the merchant")).to_be_visible()
    await expect(cancel).to_be_hidden()  # paid: nothing to cancel
    assert await page.evaluate("window.__marker") == 1, "the page reloaded while the payer waited"
    assert loaded == [session["url"]]
    await snap(page, "3-payment-received")

    held_return.released.set()
    await _back_at_the_shop(page, shop, session)
    await expect(page.get_by_text("Order ORD-101: completed")).to_be_visible()
    assert held_return.held == [page.url]
    assert loaded == [session["url"], page.url], "one page, then the merchant's: no reload"
    await snap(page, "4-back-at-the-shop")

    # What the merchant relies on.
    assert (paid["status"], paid["method"], paid["attempts"]) == ("completed", "mpesa", 1)
    assert paid["paymentReference"]
    assert paid["completedAt"]
    after = await world.balances()
    assert after.payments == (before.payments[0] + 250_00, 0)
    await world.verify_ledger()

    bodies = await mailbox.wait_for(1)
    assert [body["type"] for body in bodies] == ["checkout.session.completed"]
    data = bodies[0]["data"]
    assert (data["sessionId"], data["status"], data["method"], data["amount"], data["orderId"]) == (
        session["sessionId"], "completed", "mpesa", "250.00", "ORD-101",
    )  # fmt: skip
    assert data["receipt"] == paid["receipt"]
    deliveries = await world.delivered(session["sessionId"])
    assert [d.event for d in deliveries] == ["checkout.session.completed"], "queued once"
    assert mailbox.hits == 1

    reopened = await world.http.get(session["url"])
    assert reopened.status_code == 200
    assert "Cancel and return" not in reopened.text, "a paid session has nothing to cancel"
    again = await world.http.post(f"/checkout/{session['sessionId']}/mpesa", json={"phone": PAYS})
    assert again.status_code == 409, again.text
    assert "paid already" in again.text
    assert world.sim.pushes_for(paid["paymentReference"]) == 1


async def test_a_cancelled_prompt_says_so_and_the_payer_pays_again(
    page: Page, world: World, shop: Shop, mailbox: Mailbox
) -> None:
    before = await world.balances()
    session = await _new_session(world, shop, mailbox, "120", "ORD-102")
    await _open_checkout(page, session)

    phone = page.get_by_label("M-Pesa phone number")
    await phone.fill(CANCELLED)
    await _pay_button(page, session).click()
    await expect(page.get_by_role("heading", name="Check your phone")).to_be_visible()
    await expect(page.get_by_role("alert")).to_have_text(
        "You cancelled the M-Pesa prompt.", timeout=MPESA_WAIT_MS
    )
    await expect(page.get_by_role("heading", name="Check your phone")).to_be_hidden()
    await expect(phone).to_be_editable()
    await expect(_pay_button(page, session)).to_be_enabled()
    await snap(page, "1-cancelled")
    cancelled = await _session(world, session["sessionId"])
    assert (cancelled["status"], cancelled["attempts"]) == ("open", 1)
    assert cancelled["lastError"] == "You cancelled the M-Pesa prompt."
    assert (await world.balances()).payments == before.payments

    await phone.fill(PAYS)
    await _pay_button(page, session).click()
    await expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=MPESA_WAIT_MS)
    await expect(page.locator("#message")).to_be_hidden()
    await snap(page, "2-paid")
    await _back_at_the_shop(page, shop, session)

    paid = await _session(world, session["sessionId"])
    assert (paid["status"], paid["method"], paid["attempts"]) == ("completed", "mpesa", 2)
    assert paid["lastError"] is None
    assert (await world.balances()).payments == (before.payments[0] + 120_00, 0)
    bodies = await mailbox.wait_for(1)
    assert [body["type"] for body in bodies] == ["checkout.session.completed"]
    await world.verify_ledger()


# --------------------------------------------------------------------------- cards


async def test_the_payer_pays_by_card_through_a_3ds_challenge(
    page: Page, world: World, shop: Shop, mailbox: Mailbox
) -> None:
    before = await world.balances()
    session = await _new_session(world, shop, mailbox, "1250.00", "ORD-103")
    requested = _navigation_requests(page)
    await _open_checkout(page, session)

    await page.get_by_role("tab", name="Card").click()
    await expect(page.get_by_label("M-Pesa phone number")).to_be_hidden()
    await _fill_card(page, CHALLENGE)
    await snap(page, "1-card")
    await _pay_button(page, session).click()

    await page.wait_for_url(f"{world.url}/_sim/cards/acs/**")
    await expect(page.get_by_role("heading", name="Verify your payment")).to_be_visible()
    await expect(page.get_by_role("definition")).to_have_text(["KES 1250.00", "Visa •••• 3220", "ORD-103"])
    await page.get_by_label("One-time code").fill(RIGHT_CODE)
    await snap(page, "2-challenge")
    await page.get_by_role("button", name="Verify").click()

    await _back_at_the_shop(page, shop, session)
    await snap(page, "3-back-at-the-shop")
    back_on_malipo = f"{world.url}/checkout/{session['sessionId']}/3ds?paRes="
    assert [url for url in requested if url.startswith(back_on_malipo)], requested

    paid = await _session(world, session["sessionId"])
    assert (paid["status"], paid["method"], paid["attempts"]) == ("completed", "card", 1)
    async with world.db.transaction() as db:
        row = await repository.session_by_public_id(db, session["sessionId"])
    assert row is not None
    assert row.card_authorization_id is not None
    read = await world.http.get(
        f"/api/v1/cards/authorizations/{row.card_authorization_id}", headers=world.a.headers
    )
    assert read.status_code == 200, read.text
    auth = read.json()
    assert (auth["reference"], auth["status"], auth["capturedAmount"]) == (
        paid["paymentReference"], "captured", "1250.00",
    )  # fmt: skip
    assert auth["threeDs"]["transStatus"] == "Y"
    assert paid["receipt"] == auth["authCode"]
    fee = _cents(auth["fee"])
    assert 0 < fee < 1250_00
    after = await world.balances()
    assert after.payments == (before.payments[0] + 1250_00 - fee, 0)
    bodies = await mailbox.wait_for(1)
    assert [(body["type"], body["data"]["method"]) for body in bodies] == [
        ("checkout.session.completed", "card")
    ]
    await world.verify_ledger()


async def test_a_declined_card_says_so_moves_nothing_and_the_session_stays_payable(
    page: Page, world: World, shop: Shop, mailbox: Mailbox
) -> None:
    session = await _new_session(world, shop, mailbox, "640.50", "ORD-104")
    assert session["methods"] == ["card"], "not whole shillings: card only"
    before = await _books(world)
    await _open_checkout(page, session)
    await expect(page.get_by_role("tab", name="M-Pesa")).to_have_count(0)

    await _fill_card(page, DECLINED)
    await _pay_button(page, session).click()
    await expect(page.get_by_role("alert")).to_have_text(re.compile(r"^Your card was declined: .+"))
    await expect(page.get_by_label("Card number")).to_be_editable()
    await expect(_pay_button(page, session)).to_be_enabled()
    await snap(page, "1-declined")

    declined = await _session(world, session["sessionId"])
    assert (declined["status"], declined["method"], declined["attempts"]) == ("open", "card", 1)
    assert declined["lastError"].startswith("Your card was declined: ")
    assert await _books(world) == before, "a declined card moves nothing"
    assert mailbox.bodies == []

    await _fill_card(page, VISA)
    await _pay_button(page, session).click()
    await expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    await snap(page, "2-paid-with-another-card")
    await _back_at_the_shop(page, shop, session)
    paid = await _session(world, session["sessionId"])
    assert (paid["status"], paid["method"], paid["attempts"]) == ("completed", "card", 2)
    assert (await _books(world)).payments[0] > before.payments[0]
    await world.verify_ledger()


# --------------------------------------------------------------------------- payment links


SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mama Mboga</title></head>
<body>
<h1>Support the school fund</h1>
<ul id="messages"></ul>
<script>
window.addEventListener("message", function (event) {
  var data = event.data;
  if (!data || data.type !== "paymentSuccess") { return; }
  var item = document.createElement("li");
  item.textContent = data.type + " " + data.sessionId + " KES " + data.amount + " from " + event.origin;
  document.getElementById("messages").appendChild(item);
});
</script>
{button}
</body></html>
"""


async def test_a_payment_link_button_on_the_merchants_page_takes_a_payment(
    page: Page, world: World, shop: Shop, mailbox: Mailbox
) -> None:
    created = await world.http.post(
        "/api/v1/payment-links",
        json={"title": "School fund", "minAmount": "50", "maxAmount": "5000", "callbackUrl": mailbox.url},
        headers=world.a.headers,
    )
    assert created.status_code == 201, created.text
    link = created.json()
    assert link["buttonSnippet"].startswith(f'<script src="{world.url}/button.js" data-link="{link["slug"]}"')
    shop.pages[link["slug"]] = SHOP_PAGE.replace("{button}", link["buttonSnippet"])
    before = await world.balances()

    await page.goto(f"{shop.url}/shop/pages/{link['slug']}")
    button = page.locator("button.malipo-pay-button")  # button.js's, after the script tag
    await expect(button).to_have_text("Pay with M-Pesa")
    await expect(page.locator("script[data-link] + button")).to_have_count(1)
    await snap(page, "1-shop")
    async with page.expect_popup() as opened:
        await page.get_by_role("button", name="Pay with M-Pesa").click()
    popup = await opened.value
    await expect(popup.get_by_role("heading", name="School fund")).to_be_visible()
    assert urlsplit(popup.url).path == f"/pay/{link['slug']}"
    await popup.get_by_label("Amount (KES)").fill("300")
    await popup.get_by_label("M-Pesa phone number").fill(PAYS)
    await snap(popup, "2-popup")
    async with popup.expect_response(
        lambda reply: reply.request.method == "POST" and urlsplit(reply.url).path == f"/pay/{link['slug']}"
    ) as answered:
        await popup.get_by_role("button", name="Pay", exact=True).click()
    session_id = (await (await answered.value).json())["sessionId"]
    await expect(popup.get_by_role("heading", name="Payment received")).to_be_visible(timeout=MPESA_WAIT_MS)
    await expect(popup.locator("#done-text")).to_contain_text("KES 300.00 paid. Receipt ")
    await snap(popup, "3-popup-paid")

    await expect(page.locator("#messages li")).to_have_text(
        [f"paymentSuccess {session_id} KES 300.00 from {world.url}"]
    )
    await expect(button).to_have_text("Paid ✓")
    await expect(button).to_be_disabled()
    await snap(page, "4-shop-paid")

    paid = await _session(world, session_id)
    assert (paid["status"], paid["method"], paid["amount"], paid["linkId"]) == (
        "completed", "mpesa", "300.00", link["linkId"],
    )  # fmt: skip
    read = await world.http.get(f"/api/v1/payment-links/{link['linkId']}", headers=world.a.headers)
    assert read.status_code == 200, read.text
    assert (read.json()["payments"], read.json()["totalPaid"]) == (1, "300.00")
    assert (await world.balances()).payments == (before.payments[0] + 300_00, 0)
    bodies = await mailbox.wait_for(1)
    assert [(body["type"], body["data"]["sessionId"]) for body in bodies] == [
        ("checkout.session.completed", session_id)
    ]
    await world.verify_ledger()


# --------------------------------------------------------------------------- expiry


async def test_an_expired_session_shows_so_and_no_pay_form(
    page: Page, world: World, shop: Shop, mailbox: Mailbox
) -> None:
    session = await _new_session(world, shop, mailbox, "500", "ORD-106")
    async with world.db.transaction() as db:
        row = await repository.session_by_public_id(db, session["sessionId"])
        assert row is not None
        assert await checkout.expire(db, row.id, now=row.expires_at + timedelta(seconds=1)) is None

    await page.goto(session["url"])
    await expect(page.get_by_role("heading", name="This payment has expired")).to_be_visible()
    await expect(page.get_by_text("Nothing was taken")).to_be_visible()
    await expect(page.get_by_label("M-Pesa phone number")).to_be_hidden()
    await expect(page.get_by_label("Card number")).to_be_hidden()
    await expect(page.get_by_role("button", name=re.compile(r"^Pay\b"))).to_have_count(0)
    await expect(page.get_by_role("tab")).to_have_count(0)
    await snap(page, "1-expired")

    assert (await _session(world, session["sessionId"]))["status"] == "expired"
    refused = await world.http.post(f"/checkout/{session['sessionId']}/mpesa", json={"phone": PAYS})
    assert refused.status_code == 409, refused.text
    assert "expired" in refused.text
    # The merchant is told (the delivery runs at the expiry's ``now``, half an hour from here).
    deliveries = await world.deliveries(session["sessionId"])
    assert [d.event for d in deliveries] == ["checkout.session.expired"]
