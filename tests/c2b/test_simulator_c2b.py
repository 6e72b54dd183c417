"""The Daraja simulator's C2B as M-Pesa behaves: a validation URL that does not answer in time
gets the registered ResponseType applied; production refuses a second registration; the
receipts it completed are listed for reconciliation. No malipo here: a merchant's own receiver."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.providers.daraja.simulator.c2b import c2b_receipts
from tests.fixtures.servers import LiveServer
from tests.fixtures.world import Sim, eventually, start_sim


class Receiver:
    """A validation URL that stalls (past the simulator's wait) and a confirmation URL that keeps."""

    def __init__(self) -> None:
        self.confirmed: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/slow/validation", self._stall, methods=["POST"]),
                Route("/slow/confirmation", self._confirm, methods=["POST"]),
            ]
        )

    async def _stall(self, _request: Request) -> JSONResponse:
        await asyncio.sleep(2.0)  # the simulator waits 0.2 s
        return JSONResponse({"ResultCode": "0", "ResultDesc": "Accepted"})

    async def _confirm(self, request: Request) -> JSONResponse:
        self.confirmed.append(await request.json())
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Success"})


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    keeper = Receiver()
    with LiveServer(keeper.app) as server:
        yield keeper, server.url


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, simulator = start_sim()
    simulator.sim.validation_timeout = 0.2
    yield simulator
    server.__exit__(None, None, None)


async def _call(sim: Sim, path: str, body: dict[str, Any]) -> httpx.Response:
    pair = base64.b64encode(b"app:secret").decode()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        token = (
            await http.get(
                "/oauth/v1/generate",
                params={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {pair}"},
            )
        ).json()["access_token"]
        return await http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(("response_type", "completes"), [("Completed", True), ("Cancelled", False)])
async def test_a_validation_timeout_applies_the_response_type(
    sim: Sim, receiver: tuple[Receiver, str], response_type: str, completes: bool
) -> None:
    keeper, url = receiver
    registered = await _call(sim, "/mpesa/c2b/v2/registerurl", {
        "ShortCode": "600984", "ResponseType": response_type,
        "ValidationURL": f"{url}/slow/validation", "ConfirmationURL": f"{url}/slow/confirmation",
    })  # fmt: skip
    assert registered.json()["ResponseCode"] == "0"
    paid = await _call(sim, "/mpesa/c2b/v2/simulate", {
        "ShortCode": 600984, "CommandID": "CustomerPayBillOnline", "Amount": 5, "Msisdn": 254708374126,
        "BillRefNumber": "Sample",
    })  # fmt: skip
    assert paid.json()["ResponseDescription"] == "Accept the service request successfully."
    [receipt] = list(sim.sim.c2b_payments.values())

    async def decided() -> bool:
        return receipt.completed is False or receipt.confirmed

    await eventually(decided, "M-Pesa's decision")
    assert receipt.validation == "timeout"
    assert receipt.completed is completes
    if completes:
        [body] = keeper.confirmed
        assert body["MSISDN"] == "2547 ***** 126"
        assert (body["TransAmount"], body["OrgAccountBalance"], body["TransactionType"]) == (
            "5.00", "5.00", "Pay Bill"
        )  # fmt: skip
        assert [r.trans_id for r in c2b_receipts(sim.sim)] == [body["TransID"]]
    else:
        assert keeper.confirmed == []
        assert c2b_receipts(sim.sim) == []


async def test_production_refuses_a_second_registration(sim: Sim) -> None:
    sim.sim.c2b_production = True
    body = {
        "ShortCode": "600984", "ResponseType": "Completed",
        "ValidationURL": "https://shop.example.com/v", "ConfirmationURL": "https://shop.example.com/c",
    }  # fmt: skip
    first = await _call(sim, "/mpesa/c2b/v2/registerurl", body)
    second = await _call(sim, "/mpesa/c2b/v2/registerurl", body)
    assert first.status_code == 200
    assert second.status_code == 500
    assert (second.json()["errorCode"], second.json()["errorMessage"]) == (
        "500.003.1001", "Urls are already registered"
    )  # fmt: skip


async def test_a_shortcode_without_urls_completes_silently(sim: Sim) -> None:
    paid = await _call(sim, "/mpesa/c2b/v1/simulate", {
        "ShortCode": "600985", "CommandID": "CustomerBuyGoodsOnline", "Amount": 7, "Msisdn": "254708374149",
    })  # fmt: skip
    assert "OriginatorConversationID" in paid.json()

    async def completed() -> bool:  # M-Pesa completes it after answering the simulate call
        return len(c2b_receipts(sim.sim)) == 1

    await eventually(completed, "the payment to complete")
    [receipt] = c2b_receipts(sim.sim)
    assert (receipt.validation, receipt.amount, receipt.bill_ref_number) == ("no-validation", 7, "")
    refused = await _call(sim, "/mpesa/c2b/v2/simulate", {
        "ShortCode": "600985", "CommandID": "CustomerPays", "Amount": 7, "Msisdn": "254708374149",
    })  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["errorMessage"] == "Bad Request - Invalid CommandID"
