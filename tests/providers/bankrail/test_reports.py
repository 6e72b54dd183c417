"""Status reports (pacs.002) → outcomes, and the refusal of anything that is not a bounded one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from malipo.providers.bankrail import codes
from malipo.providers.bankrail.client import BankRailClient
from malipo.providers.bankrail.schemas import CreditTransferRequest
from malipo.providers.base import MalformedCallback, Status

PARSER = BankRailClient(base_url="http://rail.test", api_key="k", public_url="http://malipo.test")


def report(**tx: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "GrpHdr": {"MsgId": "BRS0001", "CreDtTm": "2026-03-01T10:00:00Z"},
        "OrgnlGrpInfAndSts": {"OrgnlMsgId": "MLP0001", "OrgnlMsgNmId": "pacs.008.001.08"},
        "TxInfAndSts": {
            "OrgnlEndToEndId": "E2E-42",
            "OrgnlTxId": "E2E-42",
            "AcctSvcrRef": "BRS-REF-42",
            "TxSts": "ACSC",
            "OrgnlTxRef": {
                "IntrBkSttlmAmt": {"Ccy": "SLE", "Amt": "1250.75"},
                "CdtrAcct": {"Id": {"Othr": {"Id": "0123456789"}}},
                "CdtrAgt": {"FinInstnId": {"ClrSysMmbId": {"MmbId": "003"}}},
            },
        },
    }
    body["TxInfAndSts"] |= tx
    return body


def parse(body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return PARSER.parse_status_report(raw)


def refused(body: Any) -> MalformedCallback:
    with pytest.raises(MalformedCallback) as caught:
        parse(body)
    return caught.value


def test_a_settled_report_says_what_was_paid() -> None:
    outcome = parse(report())

    assert outcome.status is Status.SUCCEEDED
    assert (outcome.end_to_end_id, outcome.provider_reference) == ("E2E-42", "BRS-REF-42")
    assert (outcome.amount, outcome.currency) == (125075, "SLE")
    assert (outcome.creditor_account, outcome.creditor_bank_code) == ("0123456789", "003")
    assert (outcome.reason_code, outcome.error) == (None, None)


def test_a_rejection_carries_its_reason_in_words() -> None:
    outcome = parse(report(TxSts="RJCT", StsRsnInf={"Rsn": {"Cd": "AC04"}}))

    assert (outcome.status, outcome.reason_code) == (Status.FAILED, "AC04")
    assert outcome.reason == codes.REASONS["AC04"]


def test_a_rejection_without_a_reason_is_not_specified() -> None:
    outcome = parse(report(TxSts="RJCT"))

    assert (outcome.status, outcome.reason_code) == (Status.FAILED, "MS03")


def test_an_unknown_reason_code_passes_through_with_the_rails_words() -> None:
    outcome = parse(
        report(TxSts="RJCT", StsRsnInf={"Rsn": {"Cd": "ZZ99"}, "AddtlInf": "Beneficiary deceased"})
    )

    assert outcome.reason_code == "ZZ99"
    assert outcome.reason is not None
    assert "Beneficiary deceased" in outcome.reason


def test_a_report_without_the_original_transaction_says_nothing_of_it() -> None:
    body = report()
    del body["TxInfAndSts"]["OrgnlTxRef"]
    del body["OrgnlGrpInfAndSts"]

    outcome = parse(body)

    assert outcome.status is Status.SUCCEEDED
    assert (outcome.amount, outcome.currency, outcome.creditor_account) == (None, None, None)


@pytest.mark.parametrize(
    ("tx_sts", "status"),
    [
        ("ACSC", Status.SUCCEEDED),
        ("RJCT", Status.FAILED),
        ("ACTC", Status.PENDING),
        ("ACCP", Status.PENDING),
        ("ACSP", Status.PENDING),
        ("PDNG", Status.PENDING),
    ],
)
def test_each_transaction_status_maps_to_a_neutral_status(tx_sts: str, status: Status) -> None:
    assert codes.status_of(tx_sts) is status
    assert parse(report(TxSts=tx_sts)).status is status


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (report(TxSts="DONE"), "TxInfAndSts.TxSts"),
        (report(OrgnlEndToEndId="E" * 36), "TxInfAndSts.OrgnlEndToEndId"),
        (report(AcctSvcrRef=""), "TxInfAndSts.AcctSvcrRef"),
        (report(StsRsnInf={"Rsn": {"Cd": "TOOLONG"}}), "TxInfAndSts.StsRsnInf.Rsn.Cd"),
        (report(StsRsnInf={"Rsn": {"Cd": "AC01"}, "AddtlInf": "x" * 106}), "TxInfAndSts.StsRsnInf.AddtlInf"),
        (
            report(OrgnlTxRef={"IntrBkSttlmAmt": {"Ccy": "SLE", "Amt": "-5.00"}}),
            "TxInfAndSts.OrgnlTxRef.IntrBkSttlmAmt.Amt",
        ),
        (
            report(OrgnlTxRef={"IntrBkSttlmAmt": {"Ccy": "SLE", "Amt": "5.001"}}),
            "TxInfAndSts.OrgnlTxRef.IntrBkSttlmAmt",
        ),
        (
            report(OrgnlTxRef={"IntrBkSttlmAmt": {"Ccy": "QQQ", "Amt": "5.00"}}),
            "TxInfAndSts.OrgnlTxRef.IntrBkSttlmAmt",
        ),
        (
            report(OrgnlTxRef={"CdtrAcct": {"Id": {"Othr": {"Id": "1" * 35}}}}),
            "TxInfAndSts.OrgnlTxRef.CdtrAcct",
        ),
        ({"TxInfAndSts": report()["TxInfAndSts"]}, "GrpHdr"),
    ],
)
def test_a_report_out_of_bounds_is_refused_naming_the_field(body: Any, field: str) -> None:
    error = refused(body)

    assert any(problem.field.startswith(field) for problem in error.problems), error.problems
    assert field.split(".")[0] in str(error)


def test_a_refusal_names_at_most_five_fields() -> None:
    body = {
        "GrpHdr": {"MsgId": "", "CreDtTm": "yesterday"},
        "TxInfAndSts": {"OrgnlEndToEndId": "", "OrgnlTxId": "", "AcctSvcrRef": "", "TxSts": "??"},
    }

    error = refused(body)

    assert error.count == 6
    assert len(error.problems) == 5


def test_the_callback_reply_acknowledges() -> None:
    assert PARSER.callback_reply() == {"Ack": "OK"}


def test_every_reason_malipo_names_has_words() -> None:
    for code in ("AC01", "AC04", "AC06", "AM04", "AM05", "RR04", "NARR", "MS03"):
        assert codes.REASONS[code]
    assert codes.describe("NARR", "Payee bank offline") == "Payee bank offline"


def test_the_documented_examples_are_what_the_rail_reads() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "bank-rail.md").read_text()
    transfer_example, report_example = re.findall(r"```json\n(.*?)```", page, re.DOTALL)

    sent = CreditTransferRequest.model_validate_json(transfer_example)
    outcome = parse(report_example.encode())

    assert sent.CdtTrfTxInf.IntrBkSttlmAmt.minor() == 125075
    assert (outcome.status, outcome.reason_code, outcome.amount) == (Status.FAILED, "AC01", 125075)
