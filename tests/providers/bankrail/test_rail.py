"""The bank rail client against the bank rail simulator over real HTTP: every test account's
outcome, the duplicate rule, status queries and the simulator's refusals."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import structlog

from malipo.providers.bankrail.client import BankRailClient
from malipo.providers.bankrail.schemas import CREDIT_TRANSFERS_PATH
from malipo.providers.bankrail.simulator import (
    ACCOUNT_BLOCKED,
    ACCOUNT_CLOSED,
    ACCOUNT_INCORRECT,
    ACCOUNT_INSUFFICIENT_FUNDS,
    ACCOUNT_NO_CALLBACK,
    ACCOUNT_PENDING_TWO_QUERIES,
    ACCOUNT_REGULATORY,
    ACCOUNT_TECHNICAL,
    create_simulator_app,
)
from malipo.providers.base import BankTransfer, RailError, Status
from tests.fixtures.servers import LiveServer
from tests.providers.bankrail.conftest import API_KEY, Rail, eventually, transfer

StartServer = Callable[[object], LiveServer]


def test_the_client_is_a_bank_transfer_rail(client: BankRailClient) -> None:
    assert isinstance(client, BankTransfer)
    assert client.name == "bankrail"


# -- outcomes ---------------------------------------------------------------------------------------


async def test_a_transfer_is_accepted_then_settled_by_its_status_callback(
    client: BankRailClient, rail: Rail
) -> None:
    request = transfer()
    accepted = await client.send_transfer(request)

    assert accepted.outcome.status is Status.PENDING  # ACTC: taken, not settled
    assert accepted.provider_reference.startswith("BRS")
    assert accepted.outcome.end_to_end_id == request.end_to_end_id
    assert (accepted.outcome.amount, accepted.outcome.currency) == (10050, "SLE")

    bodies = await eventually(lambda: rail.receiver.received(request.callback_token))
    outcome = client.parse_status_report(bodies[0])
    assert outcome.status is Status.SUCCEEDED
    assert outcome.end_to_end_id == request.end_to_end_id
    assert outcome.provider_reference == accepted.provider_reference
    assert (outcome.amount, outcome.currency) == (10050, "SLE")
    assert (outcome.creditor_account, outcome.creditor_bank_code) == ("0123456789", "003")
    assert outcome.reason_code is None
    assert json.loads(bodies[0])["TxInfAndSts"]["TxSts"] == "ACSC"

    queried = await client.query_transfer(request.end_to_end_id)
    assert queried.status is Status.SUCCEEDED
    assert queried.provider_reference == accepted.provider_reference


async def test_the_rail_receives_the_transfer_in_iso_20022_terms(client: BankRailClient, rail: Rail) -> None:
    request = transfer()
    await client.send_transfer(request)

    sent = rail.sim.transfers[request.end_to_end_id].request
    assert sent.GrpHdr.NbOfTxs == "1"
    assert sent.CdtTrfTxInf.PmtId.TxId == request.end_to_end_id
    assert (sent.CdtTrfTxInf.IntrBkSttlmAmt.Ccy, sent.CdtTrfTxInf.IntrBkSttlmAmt.Amt) == ("SLE", "100.50")
    assert sent.CdtTrfTxInf.DbtrAcct.number == "SIMULATOR-SETTLEMENT-0001"
    assert sent.CdtTrfTxInf.Dbtr.Nm == "Kamara Hardware Ltd"
    assert sent.CdtTrfTxInf.CdtrAgt.code == "003"
    assert sent.CdtTrfTxInf.Cdtr.Nm == "Fatmata Sesay"
    assert sent.CdtTrfTxInf.RmtInf is not None
    assert sent.CdtTrfTxInf.RmtInf.Ustrd == "Invoice 2031"
    assert sent.StsCallbackUrl == f"{rail.receiver.url}/callbacks/bank/{request.callback_token}"


@pytest.mark.parametrize(
    ("account", "code"),
    [
        (ACCOUNT_INCORRECT, "AC01"),
        (ACCOUNT_TECHNICAL, "MS03"),
        (ACCOUNT_CLOSED, "AC04"),
        (ACCOUNT_BLOCKED, "AC06"),
        (ACCOUNT_INSUFFICIENT_FUNDS, "AM04"),
    ],
)
async def test_a_rejection_arrives_at_the_status_callback_with_its_reason(
    client: BankRailClient, rail: Rail, account: str, code: str
) -> None:
    request = transfer(account)
    accepted = await client.send_transfer(request)
    assert accepted.outcome.status is Status.PENDING

    bodies = await eventually(lambda: rail.receiver.received(request.callback_token))
    outcome = client.parse_status_report(bodies[0])
    assert outcome.status is Status.FAILED
    assert outcome.reason_code == code
    assert outcome.reason
    assert outcome.creditor_account == account

    queried = await client.query_transfer(request.end_to_end_id)
    assert (queried.status, queried.reason_code) == (Status.FAILED, code)


async def test_a_regulatory_refusal_is_answered_at_once_and_never_called_back(
    client: BankRailClient, rail: Rail
) -> None:
    request = transfer(ACCOUNT_REGULATORY)
    accepted = await client.send_transfer(request)

    assert accepted.outcome.status is Status.FAILED
    assert accepted.outcome.reason_code == "RR04"
    assert "egulatory" in (accepted.outcome.reason or "")
    await rail.settled()
    assert rail.receiver.received(request.callback_token) == []


async def test_a_transfer_whose_callback_never_comes_is_settled_by_a_query(
    client: BankRailClient, rail: Rail
) -> None:
    request = transfer(ACCOUNT_NO_CALLBACK)
    accepted = await client.send_transfer(request)
    assert accepted.outcome.status is Status.PENDING

    await rail.settled()
    assert rail.receiver.received(request.callback_token) == []
    assert [d for d in rail.sim.deliveries if request.callback_token in d.url] == []

    outcome = await client.query_transfer(request.end_to_end_id)
    assert outcome.status is Status.SUCCEEDED
    assert outcome.amount == 10050


async def test_a_pending_transfer_settles_at_its_second_query(client: BankRailClient, rail: Rail) -> None:
    request = transfer(ACCOUNT_PENDING_TWO_QUERIES)
    accepted = await client.send_transfer(request)
    assert accepted.outcome.status is Status.PENDING
    assert rail.sim.transfers[request.end_to_end_id].status == "PDNG"

    first = await client.query_transfer(request.end_to_end_id)
    second = await client.query_transfer(request.end_to_end_id)

    assert first.status is Status.PENDING
    assert second.status is Status.SUCCEEDED
    await rail.settled()
    assert rail.receiver.received(request.callback_token) == []


# -- duplicates and queries -------------------------------------------------------------------------


async def test_a_repeated_end_to_end_id_is_a_duplicate_and_never_a_second_payment(
    client: BankRailClient, rail: Rail
) -> None:
    request = transfer()
    first = await client.send_transfer(request)
    await eventually(lambda: rail.receiver.received(request.callback_token))

    # The same EndToEndId with another amount: the rail answers with the transfer it has.
    again = await client.send_transfer(transfer(end_to_end_id=request.end_to_end_id, amount=99_999))

    assert again.provider_reference == first.provider_reference
    assert again.outcome.status is Status.SUCCEEDED
    assert again.outcome.amount == 10050
    assert [p.end_to_end_id for p in rail.sim.payments].count(request.end_to_end_id) == 1
    assert request.end_to_end_id in rail.sim.duplicates
    await rail.settled()
    assert len(rail.receiver.received(request.callback_token)) == 1


async def test_the_simulator_answers_a_duplicate_with_409_and_the_existing_status(
    client: BankRailClient, rail: Rail, http: httpx.AsyncClient
) -> None:
    request = transfer(ACCOUNT_REGULATORY)
    await client.send_transfer(request)
    body = rail.sim.transfers[request.end_to_end_id].request.model_dump(mode="json", exclude_none=True)

    response = await http.post(
        rail.url + CREDIT_TRANSFERS_PATH, json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    )

    assert response.status_code == 409
    assert response.json()["TxInfAndSts"]["TxSts"] == "RJCT"
    assert response.json()["TxInfAndSts"]["OrgnlEndToEndId"] == request.end_to_end_id


async def test_a_transfer_the_rail_does_not_know_is_unknown(client: BankRailClient) -> None:
    outcome = await client.query_transfer("E2E-NEVER-SENT")

    assert outcome.status is Status.UNKNOWN
    assert outcome.error is not None
    assert "404" in outcome.error
    assert outcome.not_found, "the domain may send it again"


# -- authentication and refusals --------------------------------------------------------------------


async def test_the_simulator_refuses_a_call_without_a_bearer_key(rail: Rail, http: httpx.AsyncClient) -> None:
    posted = await http.post(rail.url + CREDIT_TRANSFERS_PATH, json={})
    queried = await http.get(rail.url + CREDIT_TRANSFERS_PATH + "/E2E-1", headers={"Authorization": "Bearer"})
    listed = await http.get(rail.url + CREDIT_TRANSFERS_PATH, headers={"Authorization": f"Basic {API_KEY}"})

    assert posted.status_code == 401
    assert posted.json()["Err"]["Cd"] == "UNAUTHORIZED"
    assert queried.status_code == 401
    assert listed.status_code == 401


@pytest.mark.parametrize("key", ["", "wrong-key"])
async def test_a_refused_key_is_a_transfer_not_taken(
    live_server: StartServer, http: httpx.AsyncClient, key: str
) -> None:
    app = create_simulator_app(api_keys={API_KEY})
    url = live_server(app).url
    refused_client = BankRailClient(base_url=url, api_key=key, public_url="http://127.0.0.1:9", http=http)
    request = transfer()

    with pytest.raises(RailError) as refused:
        await refused_client.send_transfer(request)

    assert refused.value.not_taken is True
    assert refused.value.retryable is False
    assert "401" in str(refused.value)
    assert app.state.simulator.transfers == {}
    assert (await refused_client.query_transfer(request.end_to_end_id)).status is Status.UNKNOWN


async def test_the_simulator_refuses_an_invalid_transfer_naming_its_fields(
    rail: Rail, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        rail.url + CREDIT_TRANSFERS_PATH,
        json={"GrpHdr": {"MsgId": "M" * 36, "CreDtTm": "2026-01-01T00:00:00Z"}, "StsCallbackUrl": "ftp://x"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )

    assert response.status_code == 400
    error = response.json()["Err"]
    assert error["Cd"] == "INVALID_REQUEST"
    assert {"GrpHdr.MsgId", "CdtTrfTxInf", "StsCallbackUrl"} <= set(error["Flds"])


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"amount": 0}, "IntrBkSttlmAmt"),
        ({"currency": "XXX"}, "XXX"),
        ({"remittance": "x" * 141}, "RmtInf.Ustrd"),
        ({"creditor_account": "9" * 35}, "CdtrAcct"),
        ({"end_to_end_id": "E" * 36}, "EndToEndId"),
    ],
)
async def test_a_transfer_the_protocol_cannot_carry_is_never_sent(
    client: BankRailClient, rail: Rail, changes: dict[str, object], named: str
) -> None:
    before = len(rail.sim.payments)

    with pytest.raises(RailError) as refused:
        await client.send_transfer(transfer(**changes))

    assert refused.value.not_taken is True
    assert refused.value.retryable is False
    assert named in str(refused.value)
    assert len(rail.sim.payments) == before


async def test_the_api_key_and_the_callback_token_are_never_logged(
    rail: Rail, http: httpx.AsyncClient
) -> None:
    secret_key = "very-secret-bank-key-0042"
    secretive = BankRailClient(base_url=rail.url, api_key=secret_key, public_url=rail.receiver.url, http=http)
    request = transfer(ACCOUNT_INCORRECT)

    with structlog.testing.capture_logs() as logs:
        await secretive.send_transfer(request)
        await secretive.query_transfer(request.end_to_end_id)
        await eventually(lambda: rail.receiver.received(request.callback_token))
        await rail.settled()

    text = repr(logs) + repr(secretive)
    assert logs  # the calls were logged at all
    assert secret_key not in text
    assert request.callback_token not in text
