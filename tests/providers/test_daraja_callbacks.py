"""Daraja's callback bodies become neutral outcomes; malformed ones are refused with the fields named."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from malipo.config import Settings
from malipo.providers import registry
from malipo.providers.base import (
    MalformedCallback,
    MobileMoney,
    ProviderUnavailable,
    PushRequest,
    RailError,
    ReversalRequest,
    Status,
)
from malipo.providers.daraja import codes, urls
from malipo.providers.daraja.callbacks import (
    leading_party,
    parse_payout_result,
    parse_payout_status,
    parse_payout_timeout,
    parse_stk_callback,
)
from malipo.providers.daraja.mobile_money import DarajaMobileMoney


def _stk(code: int = 0, desc: str = "The service request is processed successfully.", **items: Any) -> bytes:
    callback: dict[str, Any] = {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": "ws_CO_191220191020363925",
        "ResultCode": code,
        "ResultDesc": desc,
    }
    if items:
        callback["CallbackMetadata"] = {"Item": [{"Name": k, "Value": v} for k, v in items.items()]}
    return json.dumps({"Body": {"stkCallback": callback}}).encode()


def _result(
    code: int = 0, desc: str = "Done", parameters: dict[str, Any] | None = None, **refs: Any
) -> bytes:
    result: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": desc,
        "OriginatorConversationID": "ours-1",
        "ConversationID": "AG_2020_1",
        "TransactionID": "NLJ41HAY6Q" if code == 0 else None,
    }
    if parameters:
        result["ResultParameters"] = {
            "ResultParameter": [{"Key": k, "Value": v} for k, v in parameters.items()]
        }
    if refs:
        result["ReferenceData"] = {"ReferenceItem": [{"Key": k, "Value": v} for k, v in refs.items()]}
    return json.dumps({"Result": {k: v for k, v in result.items() if v is not None}}).encode()


def test_paid_stk_callback_says_what_was_paid_and_by_whom():
    outcome = parse_stk_callback(
        _stk(
            Amount=10.0,
            MpesaReceiptNumber="NLJ7RT61SV",
            TransactionDate=20191219102115,
            PhoneNumber=254708374149,
        )
    )
    assert outcome.status is Status.SUCCEEDED
    assert (outcome.result_code, outcome.receipt) == (0, "NLJ7RT61SV")
    assert (outcome.amount, outcome.party) == (1000, "254708374149")
    assert outcome.provider_reference == "ws_CO_191220191020363925"
    assert outcome.provider_request_id == "29115-34620561-1"


def test_cancelled_stk_callback_is_a_failure_with_daraja_code():
    outcome = parse_stk_callback(_stk(1032, "Request cancelled by user"))
    assert outcome.status is Status.FAILED
    assert (outcome.result_code, outcome.result_desc) == (1032, "Request cancelled by user")
    assert (outcome.amount, outcome.party, outcome.receipt) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{}", "Body"),
        (_stk(Amount="ten"), "Body.stkCallback"),
        (
            json.dumps({"Body": {"stkCallback": {"ResultCode": 0}}}).encode(),
            "Body.stkCallback.MerchantRequestID",
        ),
        (b"not json", "body"),
    ],
)
def test_malformed_stk_callback_names_its_fields(body: bytes, field: str):
    with pytest.raises(MalformedCallback) as caught:
        parse_stk_callback(body)
    error = caught.value
    assert error.what == "not a Daraja STK callback"
    assert error.count >= 1
    assert 1 <= len(error.problems) <= 5
    assert any(problem.field.startswith(field) for problem in error.problems), error.problems
    assert str(error).startswith(f"not a Daraja STK callback: {error.count} problem(s) (")


def test_b2c_result_reads_receipt_amount_and_receiver():
    body = _result(
        parameters={
            "TransactionAmount": 150,
            "TransactionReceipt": "X",
            "ReceiverPartyPublicName": "254708374149 - Jo",
        }
    )
    outcome = parse_payout_result(body, to_business=False)
    assert outcome.status is Status.SUCCEEDED
    assert (outcome.receipt, outcome.amount, outcome.party) == ("NLJ41HAY6Q", 15000, "254708374149")
    assert (outcome.our_id, outcome.provider_reference) == ("ours-1", "AG_2020_1")


def test_b2b_result_reads_amount_and_account():
    body = _result(parameters={"Amount": "2500.00"}, BillReferenceNumber="0123456789")
    outcome = parse_payout_result(body, to_business=True)
    assert (outcome.amount, outcome.account) == (250000, "0123456789")


def test_failed_payout_result_has_no_receipt():
    outcome = parse_payout_result(_result(2001, "The initiator information is invalid."), to_business=False)
    assert outcome.status is Status.FAILED
    assert (outcome.result_code, outcome.receipt, outcome.amount) == (2001, None, None)
    assert outcome.provider_reference == "AG_2020_1"


def test_queue_timeout_is_a_failure_even_with_code_zero():
    outcome = parse_payout_timeout(_result(0, "late"))
    assert outcome.status is Status.FAILED
    assert (outcome.result_code, outcome.result_desc) == (1, "Timed out in M-Pesa's queue: late")


def test_completed_status_names_the_payouts_ids():
    answer = parse_payout_status(
        _result(
            parameters={
                "TransactionStatus": "Completed", "Originator Conversation ID": "ours-1",
                "Conversation ID": "AG_2020_1", "ReceiptNo": "R1", "Amount": 10,
                "CreditPartyName": "2547 - X",
            }
        )
    )  # fmt: skip
    assert answer.completed
    assert answer.outcome.status is Status.SUCCEEDED
    assert (answer.outcome.result_code, answer.outcome.result_desc) == (0, "Completed (transaction status)")
    assert (answer.outcome.our_id, answer.outcome.receipt, answer.outcome.amount) == ("ours-1", "R1", 1000)
    assert answer.outcome.party == "2547"


@pytest.mark.parametrize(("occasion", "attempt"), [("query-3", 3), ("query-x", None), (None, None)])
def test_status_without_completed_payout_says_which_query_it_answers(
    occasion: str | None, attempt: int | None
):
    refs = {"Occasion": occasion} if occasion else {}
    answer = parse_payout_status(_result(2001, "x" * 290, **refs))
    assert not answer.completed
    assert answer.attempt == attempt
    assert answer.outcome.result_code == 2001
    assert answer.outcome.result_desc.startswith("No completed payout at M-Pesa: x")
    assert len(answer.outcome.result_desc) == 300


def test_malformed_result_is_refused():
    with pytest.raises(MalformedCallback, match="not a Daraja result"):
        parse_payout_result(b'{"Result": {"ResultCode": "zero"}}', to_business=False)


def test_result_codes_map_to_neutral_statuses_and_malipo_outcomes():
    assert codes.status_of(0) is Status.SUCCEEDED
    assert codes.status_of(1037) is Status.FAILED
    assert codes.refused_push("Bad") == (1025, "M-Pesa refused the request: Bad")
    assert codes.refused_payout("Bad") == (1, "M-Pesa refused the payout: Bad")
    assert codes.stk_query_desc("[STK_CB - ]Request cancelled by user") == "Request cancelled by user"
    assert leading_party("254708374149 - John Doe") == "254708374149"
    assert leading_party(None) is None


def test_callback_urls_are_built_by_the_provider():
    assert urls.stk_callback_url("https://pay.example", "t") == "https://pay.example/callbacks/daraja/t"
    assert urls.result_url("https://p", "t").endswith("/callbacks/daraja/t/result")
    assert urls.timeout_url("https://p", "t").endswith("/callbacks/daraja/t/timeout")
    assert urls.status_url("https://p", "t").endswith("/callbacks/daraja/t/status")


def test_registry_serves_mpesa_and_refuses_networks_without_a_connector():
    settings = Settings()
    rail = registry.mobile_money_for(settings, "63902", "test")
    assert isinstance(rail, MobileMoney)
    assert rail.callback_reply() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert registry.mobile_money_for(settings, "63903", "test").name == "airtel"
    for code, name in (("63907", "T-Kash"),):
        with pytest.raises(ProviderUnavailable) as caught:
            registry.mobile_money_for(settings, code, "test")
        assert (caught.value.network_code, caught.value.name) == (code, name)
        assert "not available yet" in str(caught.value)
    with pytest.raises(registry.UnknownNetwork):
        registry.require_mobile_network("12345")


async def test_rail_without_http_only_parses():
    rail = DarajaMobileMoney(Settings(), "test")
    with pytest.raises(RuntimeError):
        await rail.push_collection(PushRequest("REF", 100, "254708374149", "tok"))
    # Reversals and balances exist now (tests/refunds, tests/railbalances): they need the client too.
    with pytest.raises(RuntimeError):
        await rail.reverse(ReversalRequest("R", 100, "REF", "tok"))
    with pytest.raises(RuntimeError):
        await rail.balance("174379", "tok")
    assert rail.balance_parties() == [], "nothing to ask without a client"


async def test_refused_push_becomes_a_rail_error_with_1025():
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/oauth"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": "3599"})
        return httpx.Response(
            400, json={"requestId": "1", "errorCode": "400.002.02", "errorMessage": "Bad phone"}
        )

    settings = Settings(daraja_simulator_url="http://daraja.test")
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        rail = registry.mobile_money_for(settings, "63902", "test", http)
        with pytest.raises(RailError) as caught:
            await rail.push_collection(PushRequest("REF", 100, "254708374149", "tok"))
    error = caught.value
    assert error.not_taken
    assert not error.retryable
    assert (error.result_code, error.result_desc) == (1025, "M-Pesa refused the request: Bad phone")


def test_each_client_meets_its_rail_protocol():
    from malipo.providers.africastalking.client import AfricasTalkingClient
    from malipo.providers.base import Email, Sms, WhatsApp
    from malipo.providers.smtp.client import SmtpClient
    from malipo.providers.whatsapp_cloud.client import WhatsAppCloudClient

    assert issubclass(AfricasTalkingClient, Sms)
    assert issubclass(WhatsAppCloudClient, WhatsApp)
    assert issubclass(SmtpClient, Email)
    assert registry.operator_mail(Settings(smtp_url=None)) is None
    client = registry.operator_mail(Settings(smtp_url="smtp://mail.example:2525?tls=none"))
    assert client is not None
    assert (client.target.host, client.target.port, client.target.tls) == ("mail.example", 2525, "none")
