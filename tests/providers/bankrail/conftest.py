"""The bank rail simulator and a status-callback receiver, each a real uvicorn server on loopback
for the module; each test uses its own EndToEndIds and callback tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from malipo.core.ids import new_reference
from malipo.providers.bankrail.client import BankRailClient
from malipo.providers.bankrail.simulator import BankRailSimulator, create_simulator_app
from malipo.providers.base import CreditTransfer
from tests.fixtures.servers import LiveServer

API_KEY = "bank-test-key-7731"
SETTLEMENT_ACCOUNT = "SIMULATOR-SETTLEMENT-0001"


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing happened within {timeout} s")
        await asyncio.sleep(0.01)


class StatusReceiver:
    """malipo's status callback route, as the rail sees it: keeps each body by its token."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        self.app = Starlette(routes=[Route("/callbacks/bank/{token}", self._receive, methods=["POST"])])
        self.url = ""

    async def _receive(self, request: Request) -> Response:
        self.bodies.setdefault(request.path_params["token"], []).append(await request.body())
        return JSONResponse({"Ack": "OK"})

    def received(self, token: str) -> list[bytes]:
        return self.bodies.get(token, [])


@dataclass
class Rail:
    sim: BankRailSimulator
    url: str
    receiver: StatusReceiver

    async def settled(self) -> None:
        """Wait until the simulator has nothing scheduled: a callback not sent by then never will be."""
        await eventually(lambda: self.sim.pending == 0)


@pytest.fixture(scope="module")
def rail() -> Iterator[Rail]:
    receiver = StatusReceiver()
    app = create_simulator_app(callback_delay=0.0, callback_backoff=0.02)
    with LiveServer(receiver.app) as receiving, LiveServer(app) as serving:
        receiver.url = receiving.url
        yield Rail(sim=app.state.simulator, url=serving.url, receiver=receiver)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
def client(rail: Rail, http: httpx.AsyncClient) -> BankRailClient:
    return BankRailClient(base_url=rail.url, api_key=API_KEY, public_url=rail.receiver.url, http=http)


def transfer(creditor_account: str = "0123456789", **changes: Any) -> CreditTransfer:
    """A transfer of SLE 100.50 with its own EndToEndId and callback token."""
    fields: dict[str, Any] = {
        "end_to_end_id": f"E2E-{new_reference(16)}",
        "amount": 10050,
        "currency": "SLE",
        "debtor_account": SETTLEMENT_ACCOUNT,
        "debtor_name": "Kamara Hardware Ltd",
        "creditor_account": creditor_account,
        "creditor_bank_code": "003",
        "remittance": "Invoice 2031",
        "callback_token": new_reference(24).lower(),
        "creditor_name": "Fatmata Sesay",
    }
    return CreditTransfer(**(fields | changes))
