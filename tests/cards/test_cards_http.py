"""Cards over real HTTP against a served malipo and its mounted acquirer simulator: the 3-D Secure
challenge end to end (authorise, the ACS page, the code, the 303 to the merchant's return page,
verify with the paRes, capture, balances); a declined card's clear message; tenancy; and no PAN or
CVV in the database file, the logs or the replies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from malipo.core.clock import SystemClock
from tests.cards.helpers import CHALLENGE, NO_FUNDS, RIGHT_CODE, VISA, card_balances
from tests.fixtures.servers import LiveServer
from tests.fixtures.world import World


class ReturnPage:
    """The merchant's return URL: answers with the query the payer's browser arrived with."""

    def __init__(self) -> None:
        self.app = Starlette(routes=[Route("/shop/return", self._back, methods=["GET"])])

    async def _back(self, request: Request) -> Response:
        return JSONResponse(dict(request.query_params))


@pytest.fixture(scope="module")
def return_url() -> Iterator[str]:
    with LiveServer(ReturnPage().app) as served:
        yield f"{served.url}/shop/return?order=ORD-9"


async def _tokenize(world: World, pan: str, cvv: str = "123", headers: dict[str, str] | None = None) -> str:
    body = {"cardNumber": pan, "expiryMonth": 12, "expiryYear": 2030, "cvv": cvv}
    reply = await world.http.post("/api/v1/cards/tokenize", json=body, headers=headers or world.a.headers)
    assert reply.status_code == 201, reply.text
    assert reply.json()["cvvOnFile"] is True
    return str(reply.json()["token"])


async def _authorize(world: World, token: str, return_url: str, amount: str = "1250.00") -> httpx.Response:
    body = {"token": token, "amount": amount, "currency": "KES", "orderId": "ORD-9", "returnUrl": return_url}
    headers = {**world.a.headers, "Idempotency-Key": uuid.uuid4().hex}
    return await world.http.post("/api/v1/cards/authorize", json=body, headers=headers)


async def _balances(world: World) -> Any:
    async with world.db.transaction() as session:
        return await card_balances(session, world.a.client_id, SystemClock().now())


async def test_a_3ds_challenge_end_to_end_then_capture(world: World, return_url: str) -> None:
    before = await _balances(world)
    token = await _tokenize(world, CHALLENGE)
    started = await _authorize(world, token, return_url)
    assert started.status_code == 201, started.text
    auth = started.json()
    assert auth["status"] == "pending_3ds"
    acs = auth["threeDs"]["redirectUrl"]
    assert acs.startswith(world.url + "/_sim/cards/acs/")
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(acs)
        assert page.status_code == 200
        assert "3220" in page.text
        answered = await browser.post(acs, data={"code": RIGHT_CODE, "action": "verify"})
        assert answered.status_code == 303
        back = await browser.get(answered.headers["location"])
    assert back.status_code == 200
    query = back.json()
    assert query["order"] == "ORD-9"
    verified = await world.http.post(
        "/api/v1/cards/3ds/verify",
        json={"authorizationId": auth["authorizationId"], "paRes": query["paRes"]},
        headers=world.a.headers,
    )
    assert verified.status_code == 200, verified.text
    assert (verified.json()["status"], verified.json()["threeDs"]["transStatus"]) == ("authorized", "Y")
    captured = await world.http.post(
        "/api/v1/cards/capture",
        json={"authorizationId": auth["authorizationId"], "amount": "1250.00"},
        headers={**world.a.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["fee"]) == (
        "captured",
        "36.25",
    )  # the card tariff: 2.9 %
    after = await _balances(world)
    assert after.payments[0] - before.payments[0] == 1_250_00 - 36_25
    assert after.clearing[0] - before.clearing[0] == -1_250_00
    assert after.clearing[1] == before.clearing[1]
    async with world.db.transaction() as session:
        from malipo.ledger import service as ledger

        assert await ledger.verify_ledger(session) == []


async def test_a_declined_card_says_why_and_holds_nothing(world: World, return_url: str) -> None:
    before = await _balances(world)
    reply = await _authorize(world, await _tokenize(world, NO_FUNDS), return_url)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["status"], body["responseCode"]) == ("declined", "51")
    assert body["message"] == "Declined by the card issuer: Not sufficient funds (code 51)"
    assert (await _balances(world)).clearing == before.clearing


async def test_client_b_can_neither_read_nor_capture_nor_use_a_s_card(world: World, return_url: str) -> None:
    token = await _tokenize(world, VISA)
    auth = (await _authorize(world, token, return_url)).json()
    assert auth["status"] == "authorized"
    path = f"/api/v1/cards/authorizations/{auth['authorizationId']}"
    assert (await world.http.get(path, headers=world.a.headers)).status_code == 200
    assert (await world.http.get(path, headers=world.b.headers)).status_code == 404
    capture = await world.http.post(
        "/api/v1/cards/capture",
        json={"authorizationId": auth["authorizationId"], "amount": "1.00"},
        headers={**world.b.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert capture.status_code == 404
    theirs = await world.http.post(
        "/api/v1/cards/authorize",
        json={"token": token, "amount": "1.00", "currency": "KES"},
        headers={**world.b.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert theirs.status_code == 404
    assert (await world.http.get(path, headers=world.a.headers)).json()["status"] == "authorized"


async def test_no_pan_nor_cvv_in_the_database_file_the_logs_or_the_replies(
    world: World, return_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    pan, cvv = "4000056655665556", "739"
    replies = []
    with structlog.testing.capture_logs() as logs:
        replies.append(
            await world.http.post(
                "/api/v1/cards/tokenize",
                json={"cardNumber": pan, "expiryMonth": 12, "expiryYear": 2030, "cvv": cvv},
                headers=world.a.headers,
            )
        )
        token = replies[0].json()["token"]
        replies.append(await _authorize(world, token, return_url))
        replies.append(  # a refused one: its error must not echo the number either
            await world.http.post(
                "/api/v1/cards/tokenize",
                json={"cardNumber": pan[:-1] + "0", "expiryMonth": 12, "expiryYear": 2030, "cvv": cvv},
                headers=world.a.headers,
            )
        )
    assert replies[1].json()["status"] == "authorized"
    assert replies[1].json()["card"] == {"brand": "visa", "bin": "400005", "last4": "5556"}
    assert replies[2].status_code == 422
    for reply in replies:
        assert pan not in reply.text
        assert pan[:-1] not in reply.text
    written = capfd.readouterr()
    for text in (repr(logs), written.out, written.err):
        assert pan not in text
        assert f'"{cvv}"' not in text
    url = world.settings.resolved_database_url
    if not url.startswith("sqlite"):
        return
    path = Path(url.split("///", 1)[1])
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            raw = file.read_bytes()
            assert pan.encode() not in raw
            assert pan.encode("utf-16-le") not in raw
            assert f'"{cvv}"'.encode() not in raw
