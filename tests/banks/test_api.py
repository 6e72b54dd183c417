"""/api/v1/banks over HTTP: merchants (API keys, portal users) and operators read the registry;
only operators add and edit banks; bad input is a 4xx problem naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from malipo.banks.seed import SEED_BANKS, SIERRA_LEONE_BANKS
from tests.pricing.helpers import Gateway


def _problem_fields(reply: httpx.Response, status: int) -> list[str]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in reply.json()["errors"]]


def test_a_merchant_key_lists_and_filters_the_banks(gateway: Gateway) -> None:
    key = gateway.a.key
    everything = gateway.call("GET", "/api/v1/banks", key)
    assert everything.status_code == 200, everything.text
    banks = everything.json()["banks"]
    assert [b["code"] for b in banks] == sorted(b.code for b in SEED_BANKS)
    kcb = next(b for b in banks if b["code"] == "101")
    assert {k: kcb[k] for k in ("name", "swift", "country", "kind", "rail", "payheroCode", "active")} == {
        "name": "KCB", "swift": "KCBLKENX", "country": "KE", "kind": "bank", "rail": "mpesa_b2b",
        "payheroCode": "01", "active": True,
    }  # fmt: skip
    assert {"createdAt", "updatedAt"} <= kcb.keys()

    sl = gateway.call("GET", "/api/v1/banks", key, params={"country": "SL", "kind": "bank"}).json()["banks"]
    assert [b["code"] for b in sl] == [b.code for b in SIERRA_LEONE_BANKS]
    wallets = gateway.call("GET", "/api/v1/banks", key, params={"kind": "mobile_money"}).json()["banks"]
    assert [b["code"] for b in wallets] == ["901", "902", "912", "913", "917"]
    assert gateway.call("GET", "/api/v1/banks", key, params={"active": "false"}).json() == {"banks": []}
    for name, value in (("country", "NG"), ("kind", "sacco"), ("active", "maybe")):
        assert _problem_fields(gateway.call("GET", "/api/v1/banks", key, params={name: value}), 422) == [name]


def test_a_bank_is_read_by_its_three_digit_code(gateway: Gateway) -> None:
    key = gateway.a.key
    reply = gateway.call("GET", "/api/v1/banks/002", key)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["name"], reply.json()["swift"]) == ("Sierra Leone Commercial Bank", "SLCBSLFR")
    missing = gateway.call("GET", "/api/v1/banks/555", key)
    assert _problem_fields(missing, 404) == ["code"]
    assert missing.json()["code"] == "not_found"
    for malformed in ("12", "0012", "abc", "1a2", "%20012", "012%20", "%D9%A1%D9%A2%D9%A3", "-01", "1.5"):
        reply = gateway.call("GET", f"/api/v1/banks/{malformed}", key)
        assert _problem_fields(reply, 422) == ["code"], malformed


def test_portal_users_read_banks_and_callers_without_credentials_do_not(gateway: Gateway) -> None:
    assert gateway.call("GET", "/api/v1/banks/001", gateway.a.admin).status_code == 200
    assert gateway.call("GET", "/api/v1/banks", gateway.operator).status_code == 200
    assert gateway.call("GET", "/api/v1/banks", None).status_code == 401
    assert gateway.call("GET", "/api/v1/banks/001", None).status_code == 401


def test_the_operator_adds_and_edits_a_bank(gateway: Gateway) -> None:
    op = gateway.operator
    body = {"code": "014", "name": "New Bank (SL)", "swift": "newbslfr", "country": "SL", "kind": "bank"}
    created = gateway.call("POST", "/api/v1/banks", op, json=body)
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("code", "swift", "rail", "active", "payheroCode")} == {
        "code": "014", "swift": "NEWBSLFR", "rail": "bankrail", "active": True, "payheroCode": None,
    }  # fmt: skip
    assert gateway.call("GET", "/api/v1/banks/014", gateway.a.key).json()["name"] == "New Bank (SL)"
    assert _problem_fields(gateway.call("POST", "/api/v1/banks", op, json=body), 409) == ["code"]

    edited = gateway.call("PATCH", "/api/v1/banks/014", op, json={"active": False, "swift": None})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["active"], edited.json()["swift"], edited.json()["name"]) == (
        False, None, "New Bank (SL)",
    )  # fmt: skip
    inactive = gateway.call("GET", "/api/v1/banks", gateway.a.key, params={"active": "false"}).json()
    assert [b["code"] for b in inactive["banks"]] == ["014"]
    renamed = gateway.call("PATCH", "/api/v1/banks/014", op, json={"name": "Newer Bank", "rail": "mpesa_b2b"})
    assert (renamed.json()["name"], renamed.json()["rail"], renamed.json()["active"]) == (
        "Newer Bank", "mpesa_b2b", False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "14"}, "code"),
        ({"code": 14}, "code"),
        ({"code": "114"}, "code"),
        ({"code": "914"}, "code"),
        ({"country": "NG"}, "country"),
        ({"kind": "sacco"}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"swift": "NEWB"}, "swift"),
        ({"swift": "NEWBKENA"}, "swift"),
        ({"rail": "mobile_money"}, "rail"),
        ({"payheroCode": "14"}, "payheroCode"),
        ({"active": "yes"}, "active"),
        ({"active": 1}, "active"),
        ({"color": "blue"}, "color"),
    ],
)
def test_a_bad_new_bank_is_a_422_naming_the_field(gateway: Gateway, body: dict[str, Any], field: str) -> None:
    given = {"code": "014", "name": "New Bank", "country": "SL", "kind": "bank", **body}
    assert _problem_fields(gateway.call("POST", "/api/v1/banks", gateway.operator, json=given), 422) == [
        field
    ]
    assert gateway.call("GET", "/api/v1/banks/014", gateway.a.key).status_code == 404


def test_bad_edits_are_4xx_naming_the_field(gateway: Gateway) -> None:
    op = gateway.operator
    for body, field in (
        ({}, "body"),
        ({"name": None}, "name"),
        ({"active": None}, "active"),
        ({"active": "no"}, "active"),
        ({"rail": "mobile_money"}, "rail"),
        ({"swift": "ABCDKENA"}, "swift"),
        ({"code": "002"}, "code"),  # the code is not editable
    ):
        reply = gateway.call("PATCH", "/api/v1/banks/001", op, json=body)
        assert _problem_fields(reply, 422) == [field], body
    assert _problem_fields(gateway.call("PATCH", "/api/v1/banks/555", op, json={"active": False}), 404) == [
        "code"
    ]
    assert _problem_fields(gateway.call("PATCH", "/api/v1/banks/5x5", op, json={"active": False}), 422) == [
        "code"
    ]
    assert gateway.call("GET", "/api/v1/banks/001", gateway.a.key).json()["active"] is True


def test_merchants_cannot_add_or_edit_banks(gateway: Gateway) -> None:
    body = {"code": "014", "name": "New Bank", "country": "SL", "kind": "bank"}
    for merchant in (gateway.a.key, gateway.a.admin):
        added = gateway.call("POST", "/api/v1/banks", merchant, json=body)
        assert added.status_code == 403, added.text
        assert added.json()["permission"] == "Banks.Create"
        edited = gateway.call("PATCH", "/api/v1/banks/001", merchant, json={"active": False})
        assert edited.status_code == 403, edited.text
        assert edited.json()["permission"] == "Banks.Update"
    assert gateway.call("GET", "/api/v1/banks/014", gateway.a.key).status_code == 404
    assert gateway.call("GET", "/api/v1/banks/001", gateway.a.key).json()["active"] is True
