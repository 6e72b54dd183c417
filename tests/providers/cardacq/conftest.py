"""The card acquirer simulator and a merchant return page, each a real uvicorn server on loopback
for the module; the simulator runs on a clock the tests move. Each test uses its own references."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from malipo.core.clock import FrozenClock
from malipo.core.ids import new_reference
from malipo.providers.base import AuthorisationOutcome, CardAuthorisation
from malipo.providers.cardacq.client import CardAcquirerClient
from malipo.providers.cardacq.simulator import CardAcquirerSimulator, create_simulator_app
from tests.fixtures.servers import LiveServer

API_KEY = "card-test-key-5521"
VISA = "4242424242424242"


class ReturnPage:
    """The merchant's return URL: answers the paRes and reference it was sent back with."""

    def __init__(self) -> None:
        self.app = Starlette(routes=[Route("/checkout/return", self._back, methods=["GET"])])
        self.url = ""

    async def _back(self, request: Request) -> Response:
        return JSONResponse(dict(request.query_params))


@dataclass
class Acquirer:
    sim: CardAcquirerSimulator
    url: str
    clock: FrozenClock
    return_url: str


@pytest.fixture(scope="module")
def acquirer() -> Iterator[Acquirer]:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    page = ReturnPage()
    app = create_simulator_app(api_keys={API_KEY}, clock=clock)
    with LiveServer(page.app) as returning, LiveServer(app) as serving:
        yield Acquirer(
            sim=app.state.simulator,
            url=serving.url,
            clock=clock,
            return_url=f"{returning.url}/checkout/return?session=cs_1",
        )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
def client(acquirer: Acquirer, http: httpx.AsyncClient) -> CardAcquirerClient:
    return CardAcquirerClient(base_url=acquirer.url, api_key=API_KEY, http=http)


def card(
    pan: str = VISA, return_url: str = "https://shop.example.test/back", **changes: Any
) -> CardAuthorisation:
    """KES 1,250.00 on ``pan`` (CVV 123, expiry 12/2030) under its own reference."""
    fields: dict[str, Any] = {
        "reference": f"AUTH-{new_reference(16)}",
        "amount": 125000,
        "currency": "KES",
        "pan": pan,
        "expiry_month": 12,
        "expiry_year": 2030,
        "return_url": return_url,
        "order_id": f"ORD-{new_reference(8)}",
        "cvv": "737" if len(pan) == 15 else "123",
        "cardholder_name": "Wanjiru Kamau",
    }
    return CardAuthorisation(**(fields | changes))


async def answer_challenge(
    http: httpx.AsyncClient, outcome: AuthorisationOutcome, code: str, action: str = "verify"
) -> dict[str, str]:
    """Drive the ACS page as a browser: GET it, POST the code, follow the 303 to the return page;
    the query the payer's browser arrived with there."""
    assert outcome.acs_url is not None
    page = await http.get(outcome.acs_url)
    assert page.status_code == 200
    assert 'name="code"' in page.text
    posted = await http.post(outcome.acs_url, data={"code": code, "action": action})
    assert posted.status_code == 303
    location = posted.headers["location"]
    arrived = await http.get(location)
    assert arrived.status_code == 200
    query: dict[str, str] = arrived.json()
    assert query == {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return query
