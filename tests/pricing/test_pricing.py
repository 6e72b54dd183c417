"""Per-merchant pricing: the fee arithmetic, the operator's routes, and an override taking effect
on the merchant's next collection and payout (read from the fee hold in the ledger)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.errors import ValidationFailed
from malipo.core.money import Money
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import Client, ClientStatus, ClientType
from malipo.payouts import service as payouts
from malipo.pricing import service as pricing
from malipo.pricing.models import MerchantPricing, PricingKind
from tests.pricing.helpers import FUNDS, Gateway

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def kes(cents: int) -> Money:
    return Money(cents, "KES")


def tariff(percent_bp: int, fixed: int, minimum: int, maximum: int) -> pricing.Tariff:
    return pricing.Tariff(PricingKind.COLLECTION, percent_bp, fixed, minimum, maximum, "merchant")


# -- the arithmetic (no database) ----------------------------------------------------------


def test_fee_is_percent_plus_fixed_kept_between_minimum_and_maximum() -> None:
    one_and_a_half = tariff(150, 0, 1_00, 1000_00)
    assert one_and_a_half.fee(kes(1000_00)) == kes(15_00)
    assert one_and_a_half.fee(kes(10_00)) == kes(1_00)  # 0.15 is below the minimum
    assert one_and_a_half.fee(kes(250_000_00)) == kes(1000_00)  # 3,750 is above the maximum
    assert one_and_a_half.fee(kes(1_01)) == kes(1_00)
    assert tariff(150, 0, 0, 1000_00).fee(kes(1_01)) == kes(2)  # 1.515 cents rounds half up
    with_fixed = tariff(100, 10_00, 0, 50_00)
    assert with_fixed.fee(kes(1000_00)) == kes(20_00)
    assert with_fixed.fee(kes(10_000_00)) == kes(50_00)
    assert tariff(0, 0, 0, 0).fee(kes(1000_00)) == kes(0)
    assert tariff(10_000, 0, 0, 10**12).fee(kes(7_77)) == kes(7_77)  # 100 %


def test_default_tariffs_charge_what_the_settings_say() -> None:
    settings = Settings(inprocess_worker=False)
    for kind, prefix in (
        (PricingKind.COLLECTION, "collection"),
        (PricingKind.PAYOUT, "payout"),
        (PricingKind.CARD, "card"),
    ):
        default = pricing._default(settings, kind, "KES")
        assert default.source == "default"
        for cents in (1_00, 10_00, 99_99, 1000_00, 66_666_67, 250_000_00):
            percent = Decimal(getattr(settings, f"{prefix}_fee_percent"))
            fixed, low, high = (
                Decimal(getattr(settings, f"{prefix}_fee_{name}")) * 100 for name in ("fixed", "min", "max")
            )
            share = (Decimal(cents) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            expected = min(max(share + fixed, low), high)
            assert default.fee(kes(cents)) == kes(int(expected))


@pytest.mark.parametrize(
    ("given", "basis_points"),
    [("1.5", 150), (1.5, 150), (2, 200), ("0", 0), (0.01, 1), ("100", 10_000), (" 12.25 ", 1225)],
)
def test_percent_is_read_into_basis_points(given: object, basis_points: int) -> None:
    assert pricing.parse_percent(given) == basis_points


@pytest.mark.parametrize("given", ["100.01", -1, "-0.5", "1.234", True, "abc", "NaN", "Infinity", None, [1]])
def test_a_bad_percent_is_refused_naming_the_field(given: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        pricing.parse_percent(given)
    assert [e.field for e in refused.value.errors] == ["percent"]


# -- the service, on both databases --------------------------------------------------------


async def _client(db: Database, tag: str) -> Client:
    async with db.transaction() as session:
        return await identity.create_client(
            session, name=f"Merchant {tag}", client_type=ClientType.COMPANY, email=f"{tag}@merchant.example",
            status=ClientStatus.ACTIVE, now=NOW,
        )  # fmt: skip


async def test_fees_follow_the_merchants_own_tariff_else_the_settings(
    db: Database, settings: Settings
) -> None:
    a, b = await _client(db, "a"), await _client(db, "b")
    amount = kes(1000_00)
    async with db.transaction() as session:
        assert await collections.collection_fee(session, settings, a.id, amount) == kes(15_00)
        assert await payouts.payout_fee(session, settings, a.id, amount) == kes(15_00)
        client = await session.get(Client, a.id)
        assert client is not None
        await pricing.set_pricing(
            session,
            client,
            PricingKind.COLLECTION,
            percent="0.5",
            fixed="2",
            minimum=0,
            maximum="4.00",
            now=NOW,
        )
    async with db.transaction() as session:
        assert await collections.collection_fee(session, settings, a.id, amount) == kes(4_00)
        assert await collections.collection_fee(session, settings, a.id, kes(100_00)) == kes(2_50)
        assert await payouts.payout_fee(session, settings, a.id, amount) == kes(15_00)  # still the default
        assert await collections.collection_fee(session, settings, b.id, amount) == kes(15_00)  # B: default
        client = await session.get(Client, a.id)
        assert client is not None
        changed = await pricing.set_pricing(
            session, client, PricingKind.COLLECTION, percent=1, fixed=0, minimum="0.5", maximum=100, now=NOW
        )
        assert (changed.percent, changed.minimum, changed.source) == ("1", 50, "merchant")
    async with db.transaction() as session:
        assert await collections.collection_fee(session, settings, a.id, amount) == kes(10_00)
        rows = await session.scalar(select(func.count()).select_from(MerchantPricing))
        assert rows == 1  # replaced, not added


async def test_bad_pricing_is_refused_naming_the_field_and_nothing_is_stored(db: Database) -> None:
    a = await _client(db, "a")
    good: dict[str, Any] = {"percent": "1", "fixed": "0", "minimum": "1", "maximum": "100"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"percent": "100.5"}, "percent"),
        ({"fixed": "-1"}, "fixed"),
        ({"fixed": "0.001"}, "fixed"),  # KES has two decimals
        ({"minimum": "abc"}, "minimum"),
        ({"maximum": True}, "maximum"),
        ({"minimum": "200"}, "minimum"),  # more than the maximum
        ({"maximum": "0.99"}, "minimum"),  # less than the minimum
    ]
    for change, field in cases:
        async with db.transaction() as session:
            client = await session.get(Client, a.id)
            assert client is not None
            with pytest.raises(ValidationFailed) as refused:
                await pricing.set_pricing(session, client, PricingKind.PAYOUT, **(good | change), now=NOW)
        assert refused.value.errors[0].field == field, (change, refused.value.errors)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(MerchantPricing)) == 0


# -- over HTTP --------------------------------------------------------------------------------


def _pricing_path(gateway: Gateway, client_id: object, kind: str | None = None) -> str:
    return f"/api/v1/clients/{client_id}/pricing" + (f"/{kind}" if kind else "")


def test_the_operator_sets_pricing_and_a_merchant_reads_only_its_own(gateway: Gateway) -> None:
    a, b = gateway.a, gateway.b
    read = gateway.call("GET", _pricing_path(gateway, a.client_id), gateway.operator)
    assert read.status_code == 200, read.text
    assert read.json() == {
        "clientId": str(a.client_id),
        "collection": {
            "kind": "collection", "percent": "1.5", "fixed": "0.00", "minimum": "1.00", "maximum": "1000.00",
            "currency": "KES", "source": "default", "updatedAt": None,
        },
        "payout": {
            "kind": "payout", "percent": "0", "fixed": "15.00", "minimum": "0.00", "maximum": "1000.00",
            "currency": "KES", "source": "default", "updatedAt": None,
        },
        "card": {
            "kind": "card", "percent": "2.9", "fixed": "0.00", "minimum": "0.00", "maximum": "10000.00",
            "currency": "KES", "source": "default", "updatedAt": None,
        },
    }  # fmt: skip

    put = gateway.call(
        "PUT", _pricing_path(gateway, a.client_id, "collection"), gateway.operator,
        json={"percent": 2.5, "fixed": "5", "minimum": 10, "maximum": "500.50"},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    assert {k: v for k, v in put.json().items() if k != "updatedAt"} == {
        "kind": "collection", "percent": "2.5", "fixed": "5.00", "minimum": "10.00", "maximum": "500.50",
        "currency": "KES", "source": "merchant",
    }  # fmt: skip
    assert put.json()["updatedAt"]

    for caller in (a.key, a.admin):
        own = gateway.call("GET", _pricing_path(gateway, a.client_id), caller)
        assert own.status_code == 200, own.text
        assert own.json()["collection"]["percent"] == "2.5"
        assert own.json()["collection"]["source"] == "merchant"
        assert own.json()["payout"]["source"] == "default"
        other = gateway.call("GET", _pricing_path(gateway, b.client_id), caller)
        assert other.status_code == 404, other.text
    # B still pays the defaults.
    assert (
        gateway.call("GET", _pricing_path(gateway, b.client_id), b.key).json()["collection"]["percent"]
        == "1.5"
    )

    # Merchants may read their pricing, never set it.
    for caller in (a.key, a.admin):
        refused = gateway.call(
            "PUT", _pricing_path(gateway, a.client_id, "collection"), caller,
            json={"percent": 0, "fixed": 0, "minimum": 0, "maximum": 0},
        )  # fmt: skip
        assert refused.status_code == 403, refused.text


def test_bad_pricing_over_http_is_4xx_naming_the_field(gateway: Gateway) -> None:
    path = _pricing_path(gateway, gateway.a.client_id, "payout")
    good: dict[str, Any] = {"percent": "1", "fixed": "0", "minimum": "1", "maximum": "100"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        (path, good | {"percent": 101}, "percent"),
        (path, good | {"percent": "1.001"}, "percent"),
        (path, good | {"fixed": "-5"}, "fixed"),
        (path, good | {"minimum": "150"}, "minimum"),
        (path, good | {"maximum": False}, "maximum"),
        (path, {k: v for k, v in good.items() if k != "maximum"}, "maximum"),
        (path, good | {"surcharge": 1}, "surcharge"),
        (_pricing_path(gateway, gateway.a.client_id, "refund"), good, "kind"),
    ]
    for url, body, field in cases:
        reply = gateway.call("PUT", url, gateway.operator, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert field in [e["field"] for e in reply.json()["errors"]], (body, reply.json())
    unknown = gateway.call("PUT", _pricing_path(gateway, "0" * 8 + "-0000-4000-8000-" + "0" * 12, "payout"),
                           gateway.operator, json=good)  # fmt: skip
    assert unknown.status_code == 404, unknown.text
    after = gateway.call("GET", _pricing_path(gateway, gateway.a.client_id), gateway.operator).json()
    assert after["payout"]["source"] == "default"


def test_an_override_takes_effect_on_the_next_payment_and_withdrawal(gateway: Gateway) -> None:
    first = gateway.pay(1000)
    assert gateway.fee_hold(first) == 15_00  # the default: 1.5 %

    put = gateway.call(
        "PUT", _pricing_path(gateway, gateway.a.client_id, "collection"), gateway.operator,
        json={"percent": "0.75", "fixed": "1.50", "minimum": "2", "maximum": "20"},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    second = gateway.pay(1000)
    assert gateway.fee_hold(second) == 9_00  # 7.50 + 1.50
    capped = gateway.pay(5000)
    assert gateway.fee_hold(capped) == 20_00  # 37.50 + 1.50, kept to the maximum
    floor = gateway.pay(10)
    assert gateway.fee_hold(floor) == 2_00  # 0.08 + 1.50, raised to the minimum
    assert gateway.fee_hold(first) == 15_00  # an earlier hold is not repriced
    assert gateway.service_wallet() == (FUNDS, 15_00 + 9_00 + 20_00 + 2_00)

    withdrawn = gateway.withdraw(100)
    assert gateway.fee_hold(withdrawn) == 15_00  # the payout default: KES 15 flat
    put = gateway.call(
        "PUT", _pricing_path(gateway, gateway.a.client_id, "payout"), gateway.operator,
        json={"percent": 1, "fixed": 0, "minimum": 0, "maximum": 1000},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    cheaper = gateway.withdraw(100)
    assert gateway.fee_hold(cheaper) == 1_00
    wallet = gateway.call("GET", "/api/v2/wallets", gateway.a.key).json()
    assert wallet["available_balance"] == (FUNDS - (15_00 + 9_00 + 20_00 + 2_00 + 15_00 + 1_00)) / 100
