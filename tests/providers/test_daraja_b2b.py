"""Daraja B2B (Business Pay Bill): the client's ``b2b`` against the simulator's
``/mpesa/b2b/v1/paymentrequest``, with results and status answers at a receiver, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog

from malipo.core.clock import FrozenClock
from malipo.core.ids import new_reference
from malipo.providers.daraja.client import DarajaClient, DarajaError
from malipo.providers.daraja.schemas import B2BRequest, ResultBody
from malipo.providers.daraja.simulator import B2B_OUTCOMES, Delivery, Outcome
from tests.fixtures.servers import LiveServer
from tests.providers.test_daraja import (
    B2C_SHORTCODE,
    INITIATOR,
    RECEIPT,
    SECURITY_CREDENTIAL,
    CallbackServer,
    Receiver,
    Simulated,
    StartServer,
    access_token,
    eventually,
    make_client,
    settled,
    simulator_app,
    start_simulator,
)

KCB = "522522"
ACCOUNT = "1234567890"
B2B_PATH = "/mpesa/b2b/v1/paymentrequest"
QUEUE_TIMEOUT_ACCOUNT = "1000000024"
RESULT_LOST_ACCOUNT = "1000000025"
NEVER_HAPPENED_ACCOUNT = "1000000026"


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


async def pay_bill(
    client: DarajaClient,
    receiver: Receiver,
    *,
    account: str = ACCOUNT,
    amount: int = 1_500,
    paybill: str = KCB,
    oc_id: str | None = "",
) -> tuple[str, str]:
    """Pay ``paybill`` for ``account``; (OriginatorConversationID, ConversationID) of the ack."""
    if oc_id == "":
        oc_id = f"bp-{new_reference()}"
    reply = await client.b2b(
        amount=amount,
        paybill=paybill,
        account_reference=account,
        remarks="Payout BP-1",
        occasion="BP-1",
        result_url=receiver.url("/b2b/result"),
        queue_timeout_url=receiver.url("/b2b/timeout"),
        originator_conversation_id=oc_id,
    )
    assert reply.ResponseCode == "0"
    if oc_id is not None:
        assert reply.OriginatorConversationID == oc_id
    return reply.OriginatorConversationID, reply.ConversationID


def b2b_body(receiver: Receiver, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Initiator": INITIATOR,
        "SecurityCredential": SECURITY_CREDENTIAL,
        "CommandID": "BusinessPayBill",
        "SenderIdentifierType": "4",
        "RecieverIdentifierType": "4",
        "Amount": 100,
        "PartyA": B2C_SHORTCODE,
        "PartyB": KCB,
        "AccountReference": ACCOUNT,
        "Requester": "254708374149",
        "Remarks": "OK",
        "QueueTimeOutURL": receiver.url("/b2b/timeout"),
        "ResultURL": receiver.url("/b2b/result"),
    }
    return {key: value for key, value in (body | changes).items() if value is not None}


async def post_b2b(simulated: Simulated, body: dict[str, Any]) -> httpx.Response:
    token = await access_token(simulated.url)
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{simulated.url}{B2B_PATH}", json=body, headers={"Authorization": f"Bearer {token}"}
        )


# -- the request --------------------------------------------------------------------------------


def test_the_request_uses_darajas_field_names_and_spelling() -> None:
    request = B2BRequest(
        Initiator=INITIATOR, SecurityCredential=SECURITY_CREDENTIAL, Amount=10, PartyA=B2C_SHORTCODE,
        PartyB=KCB, AccountReference=ACCOUNT, Remarks="Payout", QueueTimeOutURL="https://x.example/t",
        ResultURL="https://x.example/r",
    )  # fmt: skip
    body = request.model_dump(mode="json", exclude_none=True)

    assert body["CommandID"] == "BusinessPayBill"
    assert body["SenderIdentifierType"] == body["RecieverIdentifierType"] == "4"
    assert "ReceiverIdentifierType" not in body
    assert {"Occasion", "Requester", "OriginatorConversationID"}.isdisjoint(body)
    assert SECURITY_CREDENTIAL not in repr(request)


async def test_an_account_reference_longer_than_13_is_refused_before_any_call(
    simulated: Simulated, client: DarajaClient, receiver: Receiver
) -> None:
    sent_before = simulated.sim.requests[B2B_PATH]
    with pytest.raises(ValueError, match="13"):
        await pay_bill(client, receiver, account="12345678901234")

    assert simulated.sim.requests[B2B_PATH] == sent_before


# -- results ------------------------------------------------------------------------------------


async def test_b2b_success_posts_a_result_with_parameters_and_the_bill_reference(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    funds_before = simulated.sim.b2b_funds
    oc_id, conversation_id = await pay_bill(client, receiver, amount=1_500)

    [body] = await receiver.wait_for("/b2b/result")
    result = ResultBody.model_validate(body).Result
    assert (result.ResultType, result.ResultCode) == (0, 0)
    assert (result.OriginatorConversationID, result.ConversationID) == (oc_id, conversation_id)
    assert RECEIPT.fullmatch(result.TransactionID or "")
    assert result.parameter("Amount") == 1_500
    assert re.fullmatch(r"20\d{12}", str(result.parameter("TransCompletedTime")))
    assert isinstance(result.parameter("TransCompletedTime"), int)
    assert result.parameter("ReceiverPartyPublicName").startswith(f"{KCB} - ")
    assert result.parameter("Currency") == "KES"
    assert result.parameter("DebitAccountBalance").startswith("Working Account|KES|")
    assert result.references()["BillReferenceNumber"] == ACCOUNT
    assert result.references()["QueueTimeoutURL"] == receiver.url("/b2b/timeout")
    assert simulated.sim.b2b_funds == funds_before - 1_500
    payment = simulated.sim.b2b_payments[oc_id]
    assert (payment.party_a, payment.party_b, payment.account_reference) == (B2C_SHORTCODE, KCB, ACCOUNT)
    assert payment.command_id == "BusinessPayBill"
    assert receiver.received("/b2b/timeout") == []


FAILING_B2B_ACCOUNTS = [
    (account, outcome)
    for account, outcome in B2B_OUTCOMES.items()
    if outcome.delivery is Delivery.RESULT and not outcome.succeeded
]


def test_the_failure_accounts_cover_initiator_funds_and_receiver_account() -> None:
    assert {outcome.result_code for _, outcome in FAILING_B2B_ACCOUNTS} == {2001, 1, 12}


@pytest.mark.parametrize(
    ("account", "outcome"), FAILING_B2B_ACCOUNTS, ids=[account for account, _ in FAILING_B2B_ACCOUNTS]
)
async def test_each_b2b_failure_account_posts_its_result_code(
    client: DarajaClient, simulated: Simulated, receiver: Receiver, account: str, outcome: Outcome
) -> None:
    funds_before = simulated.sim.b2b_funds
    oc_id, _ = await pay_bill(client, receiver, account=account)

    [body] = await receiver.wait_for("/b2b/result")
    result = ResultBody.model_validate(body).Result
    assert (result.ResultCode, result.ResultDesc) == (outcome.result_code, outcome.result_desc)
    assert result.OriginatorConversationID == oc_id
    assert "ResultParameters" not in body["Result"]
    assert result.references()["BillReferenceNumber"] == account
    assert simulated.sim.b2b_funds == funds_before


async def test_b2b_queue_timeout_notifies_the_queue_timeout_url_only(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id, conversation_id = await pay_bill(client, receiver, account=QUEUE_TIMEOUT_ACCOUNT)

    [body] = await receiver.wait_for("/b2b/timeout")
    result = ResultBody.model_validate(body).Result
    assert (result.ResultType, result.ResultCode) == (1, 1)
    assert (result.OriginatorConversationID, result.ConversationID) == (oc_id, conversation_id)
    assert result.ResultDesc == "The service request has timed out."
    await settled(simulated.sim)
    assert receiver.received("/b2b/result") == []


async def test_b2b_with_a_wrong_initiator_credential_fails_with_2001(
    simulated: Simulated, receiver: Receiver
) -> None:
    async with make_client(simulated.url, b2c_security_credential="d3Jvbmc=") as client:
        await pay_bill(client, receiver)

    [body] = await receiver.wait_for("/b2b/result")
    assert body["Result"]["ResultCode"] == 2001


async def test_b2b_beyond_the_working_account_fails_with_insufficient_balance(
    live_server: StartServer, receiver: Receiver
) -> None:
    simulated = start_simulator(live_server, b2b_funds=1_000)
    async with make_client(simulated.url) as client:
        await pay_bill(client, receiver, amount=1_001)

    [body] = await receiver.wait_for("/b2b/result")
    assert body["Result"]["ResultCode"] == 1
    assert simulated.sim.b2b_funds == 1_000


# -- conversation ids ---------------------------------------------------------------------------


async def test_a_duplicate_originator_conversation_id_is_refused_and_pays_once(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id = f"bp-{new_reference()}"
    await pay_bill(client, receiver, oc_id=oc_id)

    with pytest.raises(DarajaError) as caught:
        await pay_bill(client, receiver, oc_id=oc_id)

    assert caught.value.retryable is False
    assert caught.value.error_code == "500.001.1001"
    await receiver.wait_for("/b2b/result")
    await settled(simulated.sim)
    assert len(receiver.received("/b2b/result")) == 1


async def test_without_an_originator_conversation_id_the_simulator_makes_one_up(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    first, _ = await pay_bill(client, receiver, oc_id=None)
    second, _ = await pay_bill(client, receiver, oc_id=None)

    assert first != second
    assert re.fullmatch(r"\d{5}-\d{9}-1", first)
    assert {first, second} <= set(simulated.sim.b2b_payments)
    await receiver.wait_for("/b2b/result", count=2)


# -- transaction status -------------------------------------------------------------------------


async def test_transaction_status_finds_a_b2b_payment_whose_result_was_lost(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id, conversation_id = await pay_bill(client, receiver, account=RESULT_LOST_ACCOUNT, amount=700)
    await eventually(lambda: simulated.sim.b2b_payments[oc_id].result is not None)

    reply = await client.transaction_status(
        original_conversation_id=conversation_id,
        party_a=B2C_SHORTCODE,
        result_url=receiver.url("/status/result"),
        queue_timeout_url=receiver.url("/status/timeout"),
    )

    assert reply.ResponseCode == "0"
    [body] = await receiver.wait_for("/status/result")
    result = ResultBody.model_validate(body).Result
    assert result.ResultCode == 0
    assert result.parameter("TransactionStatus") == "Completed"
    assert result.parameter("ReasonType") == "Business Pay Bill"
    assert result.parameter("Amount") == 700
    assert result.parameter("ReceiptNo") == simulated.sim.b2b_payments[oc_id].transaction_id
    assert result.parameter("CreditPartyName").startswith(f"{KCB} - ")
    assert result.parameter("Originator Conversation ID") == oc_id
    assert receiver.received("/b2b/result") == []


async def test_transaction_status_of_a_b2b_payment_that_failed_unseen_says_it_does_not_exist(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    oc_id, _ = await pay_bill(client, receiver, account=NEVER_HAPPENED_ACCOUNT)
    await eventually(lambda: simulated.sim.b2b_payments[oc_id].result is not None)

    await client.transaction_status(
        original_conversation_id=oc_id,
        result_url=receiver.url("/status/result"),
        queue_timeout_url=receiver.url("/status/timeout"),
    )

    [body] = await receiver.wait_for("/status/result")
    assert body["Result"]["ResultCode"] == 2032
    assert receiver.received("/b2b/result") == []


# -- request checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"CommandID": "BusinessPayment"}, "CommandID"),
        ({"SenderIdentifierType": "1"}, "SenderIdentifierType"),
        ({"RecieverIdentifierType": "2"}, "RecieverIdentifierType"),
        ({"AccountReference": "12345678901234"}, "AccountReference"),
        ({"AccountReference": None}, "AccountReference"),
        ({"PartyB": "12"}, "PartyB"),
        ({"PartyA": None}, "PartyA"),
        ({"Initiator": None}, "Initiator"),
        ({"Amount": 0}, "Amount"),
        ({"Requester": "0700"}, "Requester"),
        ({"ResultURL": "ftp://x.example/r"}, "ResultURL"),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items()),
)
async def test_invalid_b2b_fields_answer_daraja_400(
    simulated: Simulated, receiver: Receiver, change: dict[str, Any], field: str
) -> None:
    accepted_before = len(simulated.sim.b2b_payments)
    response = await post_b2b(simulated, b2b_body(receiver, **change))

    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"
    assert response.json()["errorMessage"] == f"Bad Request - Invalid {field}"
    assert len(simulated.sim.b2b_payments) == accepted_before


async def test_a_valid_raw_request_is_accepted_with_darajas_ack(
    simulated: Simulated, receiver: Receiver
) -> None:
    response = await post_b2b(simulated, b2b_body(receiver, Amount="239"))

    assert response.status_code == 200
    ack = response.json()
    assert set(ack) == {"OriginatorConversationID", "ConversationID", "ResponseCode", "ResponseDescription"}
    assert ack["ResponseCode"] == "0"
    assert ack["ConversationID"].startswith("AG_")
    [body] = await receiver.wait_for("/b2b/result")
    assert body["Result"]["ResultCode"] == 0


# -- OAuth and hygiene --------------------------------------------------------------------------


async def test_a_rejected_token_is_replaced_and_the_b2b_retried_once(
    client: DarajaClient, simulated: Simulated, receiver: Receiver
) -> None:
    await client.access_token()
    hits_before = simulated.sim.oauth_hits
    simulated.sim.expire_tokens()

    await pay_bill(client, receiver)

    assert simulated.sim.oauth_hits == hits_before + 1
    await receiver.wait_for("/b2b/result")


async def test_no_secret_reaches_the_logs(simulated: Simulated, receiver: Receiver) -> None:
    with structlog.testing.capture_logs() as events:
        async with make_client(simulated.url) as client:
            await pay_bill(client, receiver)
            token = await client.access_token()
        await receiver.wait_for("/b2b/result")
        await settled(simulated.sim)  # the simulator's last lines are written before this returns

    assert "daraja_sim.callback.delivered" in [e["event"] for e in events]
    assert events
    shown = repr(events)
    for secret in (SECURITY_CREDENTIAL, token):
        assert secret not in shown
