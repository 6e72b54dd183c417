"""Inputs the long fuzz turned into 500s: NUL characters (PostgreSQL cannot store one in text), a
CSV a reader cannot parse, and a date given as a number. Each is a 4xx naming what is wrong, and
changes nothing."""

from __future__ import annotations

import pytest

from malipo.core.errors import ValidationFailed
from malipo.whatsapp import service as whatsapp
from tests.security.conftest import Target
from tests.security.test_hostile_inputs import refused_changing_nothing


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/account/login", {"username": "admin\u0000@x.example", "password": "pw"}, "username"),
        ("/api/v1/sms/send", {"phoneNumber": "0712345678", "message": "hi\u0000there"}, "message"),
        ("/api/v2/payments", {"amount": 10, "phone_number": "0712345678", "customer_name": "A\u0000"},
         "customer_name"),
        ("/api/v2/topup", {"amount": 10, "phone_number": "0712345678", "k\u0000ey": 1}, "k\\u0000ey"),
    ],
)  # fmt: skip
def test_a_nul_in_a_json_string_or_key_is_refused_naming_the_field(
    target: Target, path: str, body: dict[str, object], field: str
) -> None:
    surface = "payhero" if path.startswith("/api/v2") else "v1"
    refused_changing_nothing(
        target, lambda: target.send("POST", path, "key_a", json_body=body), surface, field
    )


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/whatsapp/bulk-csv", {"session": "main\u0000", "message": "hi"}, "session"),
        ("/api/v2/transaction-status", {"reference": "R\u0000"}, "reference"),
    ],
)
def test_a_nul_in_a_query_parameter_is_refused_naming_it(
    target: Target, path: str, params: dict[str, str], field: str
) -> None:
    method = "POST" if path.endswith("bulk-csv") else "GET"
    surface = "payhero" if path.startswith("/api/v2") else "v1"
    headers = {"Content-Type": "text/csv"}
    refused_changing_nothing(
        target,
        lambda: target.send(
            method, path, "key_a", params=params, content=b"phone\n0712345678\n", headers=headers
        ),
        surface,
        field,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"phone,name\n07\r12345678,Amina\n",
        b'phone,name\n"0712345678,Amina\n',
        b"phone,name\n0712345678,A\x00\n",
    ],
    ids=["bare-carriage-return", "unterminated-quote", "nul"],
)
def test_a_csv_that_cannot_be_read_is_refused_naming_the_body(body: bytes) -> None:
    with pytest.raises(ValidationFailed) as refused:
        whatsapp.read_csv(body)
    assert [e.field for e in refused.value.errors] == ["body"]


@pytest.mark.parametrize("value", ["0", "1700000000", "2026-1-1", "20260101", "2026-01-01T00:00:00"])
def test_a_statement_date_must_be_written_yyyy_mm_dd(target: Target, value: str) -> None:
    refused_changing_nothing(
        target,
        lambda: target.send("GET", "/api/v1/wallet/statement", "alice", params={"startDate": value}),
        "v1",
        "startDate",
    )
