"""The Daraja client against the Daraja simulator, and callbacks to a receiver, all over real HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from malipo.core.clock import FrozenClock
from malipo.core.ids import new_reference
from malipo.providers.daraja.client import DarajaClient, DarajaError, DarajaPending
from malipo.providers.daraja.schemas import (
    SANDBOX_MSISDN,
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
    ResultBody,
    StkCallbackPayload,
    daraja_timestamp,
    stk_password,
)
from malipo.providers.daraja.simulator import (
    B2C_OUTCOMES,
    STK_INSUFFICIENT_FROM,
    STK_OUTCOMES,
    DarajaSimulator,
    Delivery,
    create_simulator_app,
)
from tests.fixtures.servers import LiveServer, free_port

CONSUMER_KEY = "malipo-test-app"
CONSUMER_SECRET = "consumer-secret-5581"
INITIATOR = "testapi"
SECURITY_CREDENTIAL = "U2VjdXJpdHlDcmVkZW50aWFsLTk5MTI="
B2C_SHORTCODE = "600000"
WRONG_PASSKEY = "0" * 64
RECEIPT = re.compile(r"[A-Z][A-Z0-9]{9}")
ERROR_KEYS = {"requestId", "errorCode", "errorMessage"}
STK_PUSH = "/mpesa/stkpush/v1/processrequest"

StartServer = Callable[[object], LiveServer]


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing happened within {timeout} s")
        await asyncio.sleep(0.01)


async def settled(sim: DarajaSimulator) -> None:
    """Wait until the simulator has nothing scheduled: every outcome settled and every callback it
    will send delivered (its ``daraja_sim.callback.delivered`` logged) or given up. What has not
    arrived by then never will."""
    await eventually(lambda: sim.pending == 0)


class CallbackServer:
    """Merchants' callback endpoints: keeps every POSTed body by path, under one mailbox per test."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.app = Starlette(routes=[Route("/{mailbox}/{path:path}", self._receive, methods=["POST"])])
        self.base_url = ""

    async def _receive(self, request: Request) -> Response:
        mailbox = request.path_params["mailbox"]
        self.hits[mailbox] += 1
        if self.failures[mailbox] > 0:
            self.failures[mailbox] -= 1
            return PlainTextResponse("down for maintenance", status_code=503)
        self.bodies.setdefault(request.url.path, []).append(await request.json())
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


class Receiver:
    """One test's callback endpoints: its own path prefix on the shared callback server."""

    def __init__(self, server: CallbackServer) -> None:
        self.server = server
        self.name = new_reference(8).lower()

    @property
    def hits(self) -> int:
        return self.server.hits[self.name]

    def fail_first(self, count: int) -> None:
        self.server.failures[self.name] = count

    def url(self, path: str) -> str:
        return f"{self.server.base_url}/{self.name}{path}"

    def received(self, path: str) -> list[dict[str, Any]]:
        return self.server.bodies.get(f"/{self.name}{path}", [])

    async def wait_for(self, path: str, count: int = 1) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.received(path)) >= count)
        return self.received(path)


@dataclass
class Simulated:
    sim: DarajaSimulator
    url: str
    clock: FrozenClock


def simulator_app(clock: FrozenClock, **options: Any) -> Starlette:
    settings: dict[str, Any] = {
        "credentials": {CONSUMER_KEY: CONSUMER_SECRET},
        "initiators": {INITIATOR: SECURITY_CREDENTIAL},
        "callback_backoff": 0.02,
        "clock": clock,
    }
    return create_simulator_app(**(settings | options))


def start_simulator(live_server: StartServer, **options: Any) -> Simulated:
    """A simulator of the test's own, for settings other than the shared one's."""
    clock = FrozenClock()
    app = simulator_app(clock, **options)
    return Simulated(sim=app.state.simulator, url=live_server(app).url, clock=clock)


def make_client(base_url: str, **overrides: Any) -> DarajaClient:
    settings: dict[str, Any] = {
        "base_url": base_url,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "shortcode": SANDBOX_SHORTCODE,
        "passkey": SANDBOX_PASSKEY,
        "b2c_shortcode": B2C_SHORTCODE,
        "b2c_initiator": INITIATOR,
        "b2c_security_credential": SECURITY_CREDENTIAL,
        "clock": FrozenClock(),
        "timeout": 5.0,
    }
    return DarajaClient(**(settings | overrides))


# One simulator and one callback server for the module (starting and stopping uvicorn is most of a
# test's time); tests count differences and use their own receiver paths and conversation ids.


@pytest.fixture(scope="module")
def simulated() -> Iterator[Simulated]:
    clock = FrozenClock()
    app = simulator_app(clock)
    with LiveServer(app) as server:
        yield Simulated(sim=app.state.simulator, url=server.url, clock=clock)


@pytest.fixture(scope="module")
def callback_server() -> Iterator[CallbackServer]:
    callbacks = CallbackServer()
    with LiveServer(callbacks.app) as server:
        callbacks.base_url = server.url
        yield callbacks


@pytest.fixture
def receiver(callback_server: CallbackServer) -> Receiver:
    return Receiver(callback_server)


@pytest.fixture
async def client(simulated: Simulated) -> AsyncIterator[DarajaClient]:
    async with make_client(simulated.url) as client:
        yield client


async def push(
    client: DarajaClient, receiver: Receiver, phone: str = SANDBOX_MSISDN, amount: int = 150
) -> str:
    reply = await client.stk_push(
        amount=amount,
        phone=phone,
        account_reference="INV-1001",
        description="Order 1001",
        callback_url=receiver.url("/mpesa/stk"),
    )
    assert reply.ResponseCode == "0"
    assert reply.CheckoutRequestID.startswith("ws_CO_")
    return reply.CheckoutRequestID


async def pay_out(
    client: DarajaClient,
    receiver: Receiver,
    phone: str = SANDBOX_MSISDN,
    amount: int = 500,
    oc_id: str = "",
) -> str:
    oc_id = oc_id or f"po-{new_reference()}"
    reply = await client.b2c(
        amount=amount,
        phone=phone,
        remarks="Refund for order 1001",
        occasion="refund",
        result_url=receiver.url("/b2c/result"),
        queue_timeout_url=receiver.url("/b2c/timeout"),
        originator_conversation_id=oc_id,
    )
    assert reply.ResponseCode == "0"
    assert reply.OriginatorConversationID == oc_id
    return reply.ConversationID


async def access_token(url: str) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{url}/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(CONSUMER_KEY, CONSUMER_SECRET),
        )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "3599"
    return str(body["access_token"])


def stk_body(receiver: Receiver, **changes: Any) -> dict[str, Any]:
    timestamp = "20260101030000"
    body: dict[str, Any] = {
        "BusinessShortCode": SANDBOX_SHORTCODE,
        "Password": stk_password(SANDBOX_SHORTCODE, SANDBOX_PASSKEY, timestamp),
        "Timestamp": timestamp,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 1,
        "PartyA": SANDBOX_MSISDN,
        "PartyB": SANDBOX_SHORTCODE,
        "PhoneNumber": SANDBOX_MSISDN,
        "CallBackURL": receiver.url("/mpesa/stk"),
        "AccountReference": "INV-1001",
        "TransactionDesc": "Order 1001",
    }
    return body | changes


# -- protocol rules -------------------------------------------------------------------------------


def test_password_matches_the_published_test_vector() -> None:
    assert stk_password(SANDBOX_SHORTCODE, SANDBOX_PASSKEY, "20160216165627") == (
        "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZi"
        "NzJhZGExZWQyYzkxOTIwMTYwMjE2MTY1NjI3"
    )


def test_timestamps_are_kenya_time() -> None:
    assert daraja_timestamp(datetime(2026, 1, 1, 22, 30, 5, tzinfo=UTC)) == "20260102013005"


# -- OAuth --------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_shared_by_concurrent_calls(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    hits, pushes = simulated.sim.oauth_hits, simulated.sim.requests[STK_PUSH]

    await asyncio.gather(*(push(client, receiver) for _ in range(5)))
    await push(client, receiver)

    assert simulated.sim.oauth_hits - hits == 1
    assert simulated.sim.requests[STK_PUSH] - pushes == 6


async def test_token_is_refreshed_shortly_before_it_expires(simulated: Simulated, receiver: Receiver) -> None:
    clock = FrozenClock()
    hits = simulated.sim.oauth_hits
    async with make_client(simulated.url, clock=clock) as client:
        await push(client, receiver)
        clock.advance(timedelta(minutes=50))
        await push(client, receiver)
        assert simulated.sim.oauth_hits - hits == 1

        clock.advance(timedelta(minutes=9, seconds=20))  # 40 s before the 3599 s are up
        await push(client, receiver)
        assert simulated.sim.oauth_hits - hits == 2


async def test_a_rejected_token_is_replaced_and_the_call_retried_once(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    await push(client, receiver)
    hits, pushes = simulated.sim.oauth_hits, simulated.sim.requests[STK_PUSH]
    simulated.sim.expire_tokens()  # as when Daraja revokes tokens early

    await push(client, receiver)

    assert simulated.sim.oauth_hits - hits == 1
    assert simulated.sim.requests[STK_PUSH] - pushes == 2  # refused once, then accepted


async def test_api_calls_without_a_valid_token_get_daraja_404(
    simulated: Simulated, receiver: Receiver
) -> None:
    token = await access_token(simulated.url)
    path = f"{simulated.url}/mpesa/stkpush/v1/processrequest"
    async with httpx.AsyncClient() as http:
        missing = await http.post(path, json=stk_body(receiver))
        basic = await http.post(path, json=stk_body(receiver), auth=(CONSUMER_KEY, CONSUMER_SECRET))
        simulated.clock.advance(3599)
        expired = await http.post(path, json=stk_body(receiver), headers={"Authorization": f"Bearer {token}"})

    for response in (missing, basic, expired):
        assert response.status_code == 404
        assert set(response.json()) == ERROR_KEYS
        assert response.json()["errorCode"] == "404.001.03"
        assert response.json()["errorMessage"] == "Invalid Access Token"


async def test_wrong_consumer_secret_is_refused_for_good(simulated: Simulated, receiver: Receiver) -> None:
    async with make_client(simulated.url, consumer_secret="not-the-secret") as client:
        with pytest.raises(DarajaError) as caught:
            await push(client, receiver)

    assert caught.value.retryable is False
    assert caught.value.status == 400
    assert caught.value.error_code == "400.008.01"


# -- STK push -----------------------------------------------------------------------------------


async def test_stk_push_success_sends_a_callback_with_metadata(
    client: DarajaClient, receiver: Receiver
) -> None:
    checkout_request_id = await push(client, receiver, amount=150)

    [body] = await receiver.wait_for("/mpesa/stk")
    callback = StkCallbackPayload.model_validate(body).callback
    assert callback.CheckoutRequestID == checkout_request_id
    assert callback.ResultCode == 0
    assert callback.amount == 150
    assert RECEIPT.fullmatch(callback.mpesa_receipt_number or "")
    assert callback.phone_number == SANDBOX_MSISDN
    assert callback.transaction_date is not None
    assert callback.transaction_date.utcoffset() == timedelta(hours=3)
    items = body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    assert {"Name": "Balance"} in items  # Balance comes without a Value, as on Daraja
    assert isinstance(callback.item("PhoneNumber"), int)

    reply = await client.stk_query(checkout_request_id)
    assert (reply.ResultCode, reply.ResultDesc) == ("0", "The service request is processed successfully.")


FAILING_STK_NUMBERS = [
    (phone, outcome)
    for phone, outcome in STK_OUTCOMES.items()
    if outcome.delivery is Delivery.RESULT and not outcome.succeeded
]


@pytest.mark.parametrize(("phone", "outcome"), FAILING_STK_NUMBERS, ids=[p for p, _ in FAILING_STK_NUMBERS])
async def test_each_failure_number_gets_its_result_code_and_no_metadata(
    client: DarajaClient, receiver: Receiver, phone: str, outcome: Any
) -> None:
    checkout_request_id = await push(client, receiver, phone=phone)

    [body] = await receiver.wait_for("/mpesa/stk")
    callback = StkCallbackPayload.model_validate(body).callback
    assert callback.CheckoutRequestID == checkout_request_id
    assert (callback.ResultCode, callback.ResultDesc) == (outcome.result_code, outcome.result_desc)
    assert "CallbackMetadata" not in body["Body"]["stkCallback"]
    assert callback.mpesa_receipt_number is None

    reply = await client.stk_query(checkout_request_id)
    assert reply.ResultCode == str(outcome.result_code)
    assert reply.ResultDesc.endswith(outcome.result_desc)


async def test_a_push_beyond_the_customers_means_fails_with_insufficient_balance(
    client: DarajaClient, receiver: Receiver
) -> None:
    await push(client, receiver, amount=STK_INSUFFICIENT_FROM)

    [body] = await receiver.wait_for("/mpesa/stk")
    assert body["Body"]["stkCallback"]["ResultCode"] == 1


async def test_an_unanswered_push_sends_no_callback_and_the_query_tells(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    checkout_request_id = await push(client, receiver, phone="254700000005")

    with pytest.raises(DarajaPending) as caught:
        await client.stk_query(checkout_request_id)
    assert caught.value.retryable is True
    assert (caught.value.status, caught.value.error_code) == (500, "500.001.1001")
    assert caught.value.error_message == "The transaction is being processed"

    simulated.clock.advance(simulated.sim.stk_expiry)  # the prompt on the phone expires
    reply = await client.stk_query(checkout_request_id)
    assert reply.ResultCode == "1037"

    await settled(simulated.sim)
    assert receiver.hits == 0


async def test_a_lost_callback_leaves_the_query_to_tell_it_was_paid(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    checkout_request_id = await push(client, receiver, phone="254700000006")

    await eventually(lambda: simulated.sim.stk_pushes[checkout_request_id].result is not None)
    reply = await client.stk_query(checkout_request_id)

    assert reply.ResultCode == "0"
    assert receiver.hits == 0


async def test_callbacks_are_retried_while_the_receiver_fails(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    receiver.fail_first(2)

    await push(client, receiver)

    await receiver.wait_for("/mpesa/stk")
    assert receiver.hits == 3
    [delivery] = [d for d in simulated.sim.deliveries if d.url == receiver.url("/mpesa/stk")]
    await eventually(lambda: delivery.delivered)  # set once the simulator has read the reply
    assert delivery.attempts == 3


async def test_a_till_pushes_buy_goods(simulated: Simulated, receiver: Receiver) -> None:
    async with make_client(simulated.url, till_number="5123456") as client:
        checkout_request_id = await push(client, receiver)

    recorded = simulated.sim.stk_pushes[checkout_request_id]
    assert (recorded.transaction_type, recorded.party_b) == ("CustomerBuyGoodsOnline", "5123456")


# -- request checks -------------------------------------------------------------------------------


async def test_a_wrong_passkey_is_refused_and_not_worth_retrying(
    simulated: Simulated, receiver: Receiver
) -> None:
    pushes = len(simulated.sim.stk_pushes)
    async with make_client(simulated.url, passkey=WRONG_PASSKEY) as client:
        with pytest.raises(DarajaError) as caught:
            await push(client, receiver)

    assert caught.value.retryable is False
    assert (caught.value.status, caught.value.error_code) == (500, "500.001.1001")
    assert caught.value.error_message == "Wrong credentials"
    assert len(simulated.sim.stk_pushes) == pushes


async def test_an_unknown_shortcode_takes_any_passkey_unless_strict(
    live_server: StartServer, receiver: Receiver
) -> None:
    lenient = start_simulator(live_server)
    strict = start_simulator(live_server, strict_passkeys=True)

    async with make_client(lenient.url, shortcode="600100", passkey="own-passkey") as client:
        await push(client, receiver)
    async with make_client(strict.url, shortcode="600100", passkey="own-passkey") as client:
        with pytest.raises(DarajaError) as caught:
            await push(client, receiver)

    assert caught.value.error_message == "Merchant does not exist"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"PhoneNumber": "0712345678", "PartyA": "0712345678"}, "PhoneNumber"),
        ({"PartyA": "25470837414"}, "PartyA"),
        ({"Amount": 0}, "Amount"),
        ({"Amount": "1.5"}, "Amount"),
        ({"Amount": -5}, "Amount"),
        ({"TransactionType": "CustomerPayBill"}, "TransactionType"),
        ({"Timestamp": "2026-01-01"}, "Timestamp"),
        ({"Timestamp": "20261399000000"}, "Timestamp"),
        ({"BusinessShortCode": "17"}, "BusinessShortCode"),
        ({"CallBackURL": "not a url"}, "CallBackURL"),
        ({"AccountReference": "THIRTEEN-CHAR"}, "AccountReference"),
        ({"TransactionDesc": ""}, "TransactionDesc"),
    ],
)
async def test_invalid_stk_fields_answer_daraja_400(
    simulated: Simulated, receiver: Receiver, changes: dict[str, Any], field: str
) -> None:
    token = await access_token(simulated.url)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{simulated.url}/mpesa/stkpush/v1/processrequest",
            json=stk_body(receiver, **changes),
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 400
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["errorCode"] == "400.002.02"
    assert body["errorMessage"] == f"Bad Request - Invalid {field}"


async def test_the_client_reports_a_validation_error_as_final(
    client: DarajaClient, receiver: Receiver
) -> None:
    with pytest.raises(DarajaError) as caught:
        await push(client, receiver, phone="0712345678")

    assert caught.value.retryable is False
    assert (caught.value.status, caught.value.error_code) == (400, "400.002.02")
    assert caught.value.error_message == "Bad Request - Invalid PhoneNumber"


async def test_an_unknown_path_answers_in_daraja_shape(simulated: Simulated) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{simulated.url}/mpesa/nothing/v1/here", json={})

    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS


# -- B2C and transaction status -------------------------------------------------------------------


async def test_b2c_success_posts_a_result_with_parameters(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    funds_before = simulated.sim.b2c_funds
    oc_id = f"po-{new_reference()}"
    conversation_id = await pay_out(client, receiver, amount=500, oc_id=oc_id)

    [body] = await receiver.wait_for("/b2c/result")
    result = ResultBody.model_validate(body).Result
    assert (result.ResultType, result.ResultCode) == (0, 0)
    assert (result.OriginatorConversationID, result.ConversationID) == (oc_id, conversation_id)
    assert RECEIPT.fullmatch(result.TransactionID or "")
    assert result.parameter("TransactionReceipt") == result.TransactionID
    assert result.parameter("TransactionAmount") == 500
    assert result.parameter("ReceiverPartyPublicName").startswith(f"{SANDBOX_MSISDN} - ")
    assert result.parameter("B2CUtilityAccountAvailableFunds") == funds_before - 500
    assert result.parameter("B2CRecipientIsRegisteredCustomer") == "Y"
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", result.parameter("TransactionCompletedDateTime"))
    assert result.references()["QueueTimeoutURL"] == receiver.url("/b2c/timeout")
    assert receiver.received("/b2c/timeout") == []


FAILING_B2C_NUMBERS = [
    (phone, outcome)
    for phone, outcome in B2C_OUTCOMES.items()
    if outcome.delivery is Delivery.RESULT and not outcome.succeeded
]


@pytest.mark.parametrize(("phone", "outcome"), FAILING_B2C_NUMBERS, ids=[p for p, _ in FAILING_B2C_NUMBERS])
async def test_each_b2c_failure_number_posts_its_result_code(
    client: DarajaClient, receiver: Receiver, phone: str, outcome: Any
) -> None:
    oc_id = f"po-{new_reference()}"
    await pay_out(client, receiver, phone=phone, oc_id=oc_id)

    [body] = await receiver.wait_for("/b2c/result")
    result = ResultBody.model_validate(body).Result
    assert (result.ResultCode, result.ResultDesc) == (outcome.result_code, outcome.result_desc)
    assert result.OriginatorConversationID == oc_id
    assert "ResultParameters" not in body["Result"]


async def test_b2c_queue_timeout_notifies_the_queue_timeout_url(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id = f"po-{new_reference()}"
    conversation_id = await pay_out(client, receiver, phone="254700000014", oc_id=oc_id)

    [body] = await receiver.wait_for("/b2c/timeout")
    result = ResultBody.model_validate(body).Result
    assert (result.OriginatorConversationID, result.ConversationID) == (oc_id, conversation_id)
    assert result.ResultDesc == "The service request has timed out."
    await settled(simulated.sim)
    assert receiver.received("/b2c/result") == []


async def test_b2c_with_a_wrong_initiator_credential_fails_with_2001(
    simulated: Simulated, receiver: Receiver
) -> None:
    async with make_client(simulated.url, b2c_security_credential="d3Jvbmc=") as client:
        await pay_out(client, receiver)

    [body] = await receiver.wait_for("/b2c/result")
    assert body["Result"]["ResultCode"] == 2001


async def test_b2c_beyond_the_utility_funds_fails_with_insufficient_balance(
    live_server: StartServer, receiver: Receiver
) -> None:
    simulated = start_simulator(live_server, b2c_funds=1_000)
    async with make_client(simulated.url) as client:
        await pay_out(client, receiver, amount=1_001)

    [body] = await receiver.wait_for("/b2c/result")
    assert body["Result"]["ResultCode"] == 1
    assert simulated.sim.b2c_funds == 1_000


async def test_a_duplicate_originator_conversation_id_is_refused_and_pays_once(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id = f"po-{new_reference()}"
    await pay_out(client, receiver, oc_id=oc_id)

    with pytest.raises(DarajaError) as caught:
        await pay_out(client, receiver, oc_id=oc_id)

    assert caught.value.retryable is False
    assert caught.value.error_code == "500.001.1001"
    await receiver.wait_for("/b2c/result")
    await settled(simulated.sim)
    assert len(receiver.received("/b2c/result")) == 1


async def test_an_invalid_command_id_answers_daraja_400(simulated: Simulated, receiver: Receiver) -> None:
    token = await access_token(simulated.url)
    body = {
        "OriginatorConversationID": f"po-{new_reference()}",
        "InitiatorName": INITIATOR,
        "SecurityCredential": SECURITY_CREDENTIAL,
        "CommandID": "CashOut",
        "Amount": 10,
        "PartyA": B2C_SHORTCODE,
        "PartyB": SANDBOX_MSISDN,
        "Remarks": "payout",
        "QueueTimeOutURL": receiver.url("/b2c/timeout"),
        "ResultURL": receiver.url("/b2c/result"),
    }
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{simulated.url}/mpesa/b2c/v3/paymentrequest",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 400
    assert response.json()["errorMessage"] == "Bad Request - Invalid CommandID"


async def test_transaction_status_finds_a_payout_whose_result_was_lost(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id = f"po-{new_reference()}"
    await pay_out(client, receiver, phone="254700000015", amount=700, oc_id=oc_id)
    await eventually(lambda: simulated.sim.b2c_payments[oc_id].result is not None)

    reply = await client.transaction_status(
        original_conversation_id=oc_id,
        party_a=B2C_SHORTCODE,
        result_url=receiver.url("/status/result"),
        queue_timeout_url=receiver.url("/status/timeout"),
    )

    assert reply.ResponseCode == "0"
    [body] = await receiver.wait_for("/status/result")
    result = ResultBody.model_validate(body).Result
    assert result.ResultCode == 0
    assert result.parameter("TransactionStatus") == "Completed"
    assert result.parameter("Amount") == 700
    assert result.parameter("ReceiptNo") == simulated.sim.b2c_payments[oc_id].transaction_id
    assert result.parameter("Originator Conversation ID") == oc_id
    assert receiver.received("/b2c/result") == []


async def test_transaction_status_of_an_unknown_receipt_says_it_does_not_exist(
    client: DarajaClient, receiver: Receiver
) -> None:
    await client.transaction_status(
        transaction_id="QWE1234567",
        result_url=receiver.url("/status/result"),
        queue_timeout_url=receiver.url("/status/timeout"),
    )

    [body] = await receiver.wait_for("/status/result")
    assert body["Result"]["ResultCode"] == 2032
    assert "ResultParameters" not in body["Result"]


# -- transport failures ---------------------------------------------------------------------------


async def test_an_unreachable_daraja_is_retryable(receiver: Receiver) -> None:
    async with make_client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(DarajaError) as caught:
            await push(client, receiver)

    assert caught.value.retryable is True
    assert caught.value.status is None


def flaky_daraja() -> Starlette:
    """Issues tokens, then answers STK push with 503 and STK query too slowly."""

    async def oauth(_request: Request) -> Response:
        return JSONResponse({"access_token": "flaky-token", "expires_in": "3599"})

    async def unavailable(_request: Request) -> Response:
        return PlainTextResponse("upstream connect error", status_code=503)

    async def slow(_request: Request) -> Response:
        await asyncio.sleep(0.5)
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/oauth/v1/generate", oauth),
            Route("/mpesa/stkpush/v1/processrequest", unavailable, methods=["POST"]),
            Route("/mpesa/stkpushquery/v1/query", slow, methods=["POST"]),
        ]
    )


async def test_server_errors_and_timeouts_are_retryable(live_server: StartServer, receiver: Receiver) -> None:
    url = live_server(flaky_daraja()).url
    async with make_client(url, timeout=0.2) as client:
        with pytest.raises(DarajaError) as unavailable:
            await push(client, receiver)
        with pytest.raises(DarajaError) as slow:
            await client.stk_query("ws_CO_01012026030000000708374149")

    assert (unavailable.value.retryable, unavailable.value.status) == (True, 503)
    assert (slow.value.retryable, slow.value.status) == (True, None)


# -- hygiene --------------------------------------------------------------------------------------


async def test_no_secret_reaches_the_logs_or_the_errors(simulated: Simulated, receiver: Receiver) -> None:
    errors: list[DarajaError] = []
    with structlog.testing.capture_logs() as events:
        async with make_client(simulated.url) as client:
            await push(client, receiver)
            await pay_out(client, receiver)
            token = await client.access_token()
        async with make_client(simulated.url, passkey=WRONG_PASSKEY) as client:
            try:
                await push(client, receiver)
            except DarajaError as exc:
                errors.append(exc)
        await receiver.wait_for("/b2c/result")
        await settled(simulated.sim)  # the simulator's last lines are written before this returns

    # The STK callback and the B2C result were both delivered, and their log lines captured.
    assert [e["event"] for e in events].count("daraja_sim.callback.delivered") >= 2
    assert events
    assert errors
    shown = repr(events) + "".join(f"{error} {error!r}" for error in errors)
    for secret in (CONSUMER_SECRET, SANDBOX_PASSKEY, WRONG_PASSKEY, SECURITY_CREDENTIAL, token):
        assert secret not in shown


def test_stopping_the_simulator_cancels_pending_callbacks(receiver: Receiver) -> None:
    app = create_simulator_app(callback_delay=30)
    sim: DarajaSimulator = app.state.simulator

    async def start_push(url: str) -> None:
        async with make_client(url, consumer_key="any", consumer_secret="pair") as client:
            await push(client, receiver)

    with LiveServer(app) as server:
        asyncio.run(start_push(server.url))
        started = time.monotonic()
    stopped_in = time.monotonic() - started

    assert stopped_in < 5
    assert receiver.hits == 0
    assert len(sim.stk_pushes) == 1
    assert sim.pending == 0
