"""A customer's wallet over real HTTP: top-up, balance, transfer, pay; checked against the ledger.

Every refusal is checked to change nothing: the balances read through the API and
the ledger's journal count are identical before and after, and the books add up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select, update

from malipo.core.clock import FrozenClock
from malipo.core.money import Money
from malipo.db import Database
from malipo.identity.models import Client
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, LedgerAccount
from malipo.wallets import service as wallets
from tests.customers.helpers import Books, Customer, Served, books


def _fields(reply: httpx.Response) -> list[str]:
    return [e["field"] for e in reply.json()["errors"]]


async def _account_balance(db_url: str, owner: str, kind: AccountKind, mode: str = "test") -> int:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            balance = await session.scalar(
                select(LedgerAccount.balance).where(
                    LedgerAccount.owner_key == owner, LedgerAccount.kind == kind, LedgerAccount.mode == mode
                )
            )
            return int(balance or 0)
    finally:
        await db.dispose()


def merchant_payments(served: Served, client_id: uuid.UUID, mode: str = "test") -> int:
    return asyncio.run(
        _account_balance(
            served.db_url, ledger.owner_key(client_id=client_id), AccountKind.PAYMENTS_WALLET, mode
        )
    )


def sandbox_funding(served: Served, client_id: uuid.UUID | None = None) -> int:
    """The sandbox funding account of merchant ``client_id`` (merchant A by default)."""
    owner = ledger.owner_key(client_id=client_id or served.a.client_id)
    return asyncio.run(_account_balance(served.db_url, owner, AccountKind.SANDBOX_FUNDING))


def assert_books_add_up(served: Served) -> Books:
    found = books(served)
    assert found.problems == []
    return found


def assert_changes_nothing(
    served: Served, customers: list[Customer], attempt: Callable[[], httpx.Response], status: int, code: str
) -> httpx.Response:
    """``attempt`` is refused with ``status``/``code`` and leaves every balance and journal as it was."""
    before = ([served.balance(c) for c in customers], books(served))
    reply = attempt()
    assert reply.status_code == status, reply.text
    assert reply.json()["code"] == code, reply.text
    after = ([served.balance(c) for c in customers], books(served))
    assert after == before
    assert after[1].problems == []
    return reply


# -- top-up and balance ---------------------------------------------------------------


def test_a_sandbox_top_up_credits_the_wallet_from_sandbox_funding(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    first = served.top_up(customer, "100.50", "first top-up")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["amount"], body["currency"], body["balance"], body["available"]) == (
        "100.50",
        "KES",
        "100.50",
        "100.50",
    )
    assert (body["status"], body["description"]) == ("completed", "first top-up")
    assert len(body["reference"]) == 10
    second = served.top_up(customer, 20)
    assert second.status_code == 201, second.text
    assert second.json()["balance"] == "120.50"
    assert second.json()["reference"] != body["reference"]

    reply = served.request("GET", "/api/v1/wallet/balance", customer.headers)
    assert reply.json() == {
        "customerId": str(customer.id),
        "balance": "120.50",
        "available": "120.50",
        "currency": "KES",
    }
    assert sandbox_funding(served) == -12050
    assert assert_books_add_up(served).journals == 2


INVALID_TOP_UPS: list[tuple[dict[str, Any], str, str]] = [
    ({"amount": "10.001", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": 0, "description": "x"}, "amount", "invalid_amount"),
    ({"amount": -5, "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "1,000", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "ten", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "1e30", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "+5 ", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "+5", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": " 5", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "1_000", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": "1.0000000000000000000000001", "description": "x"}, "amount", "invalid_amount"),
    ({"amount": True, "description": "x"}, "amount", "validation_failed"),
    ({"amount": 10, "description": "top\x00up"}, "description", "validation_failed"),
    ({"amount": 10, "description": "top\nup"}, "description", "validation_failed"),
    ({"amount": 10, "description": "\u202etop up"}, "description", "validation_failed"),
    ({"amount": None, "description": "x"}, "amount", "validation_failed"),
    ({"amount": 10, "description": ""}, "description", "validation_failed"),
    ({"amount": 10, "description": "x" * 201}, "description", "validation_failed"),
    ({"amount": 10}, "description", "validation_failed"),
]


def test_an_invalid_top_up_is_422_naming_the_field_and_changes_nothing(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    assert served.top_up(customer, "5").status_code == 201
    for body, field, code in INVALID_TOP_UPS:
        reply = assert_changes_nothing(
            served,
            [customer],
            lambda b=body: served.request("POST", "/api/v1/wallet/top-up", customer.headers, json=b),
            422,
            code,
        )
        assert _fields(reply) == [field], body


def _raw_top_up(served: Served, customer: Customer, body: bytes) -> httpx.Response:
    headers = {**customer.headers, "Content-Type": "application/json"}
    return served.request("POST", "/api/v1/wallet/top-up", headers, content=body)


def test_json_numbers_are_read_exactly_or_refused(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    # 1.0000000000000000000000001 was read as the float 1.0 and credited KES 1.00.
    for number in (b"1.0000000000000000000000001", b"1e400", b"NaN", b"Infinity"):
        body = b'{"amount": ' + number + b', "description": "x"}'
        reply = assert_changes_nothing(
            served, [customer], lambda b=body: _raw_top_up(served, customer, b), 422, "validation_failed"
        )
        assert _fields(reply) == ["amount"], reply.text
    exact = _raw_top_up(served, customer, b'{"amount": 10.10, "description": "x"}')
    assert exact.status_code == 201, exact.text
    assert served.balance(customer) == "10.10"


def test_a_balance_has_a_ceiling_checked_before_the_update(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    largest = Money(ledger.MAX_BALANCE, "KES").format()  # 10000000000000.00
    assert served.top_up(customer, largest).status_code == 201
    reply = assert_changes_nothing(
        served, [customer], lambda: served.top_up(customer, "0.01"), 422, "balance_limit"
    )
    assert _fields(reply) == ["amount"]
    # The probe: a float that passes any per-request check but not a 64-bit balance.
    fresh = served.customer(served.a.test_key)
    reply = assert_changes_nothing(
        served, [fresh],
        lambda: _raw_top_up(served, fresh, b'{"amount": 6.592609402996187e+16, "description": "x"}'),
        422, "balance_limit",
    )  # fmt: skip
    assert _fields(reply) == ["amount"]
    assert served.balance(customer) == largest


async def _exhaust_sandbox_funding(db_url: str, client_id: uuid.UUID) -> None:
    """Take the merchant's sandbox funding account to within KES 5 of its limit."""
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            now = FrozenClock().now()
            funding = await wallets.sandbox_funding_id(session, client_id, "KES", now)
            suspense = await ledger.system_account_id(session, AccountKind.SUSPENSE, "KES", "test", now)
            amount = ledger.MAX_OPEN_BALANCE - 500
            await ledger.post_journal(
                session, [ledger.Leg(funding, -amount, "KES"), ledger.Leg(suspense, amount, "KES")],
                kind="test_funding", description="a sandbox that handed out all it may", mode="test", now=now,
            )  # fmt: skip
    finally:
        await db.dispose()


def test_one_merchants_sandbox_top_ups_never_break_anothers(served: Served) -> None:
    a_customer, b_customer = served.customer(served.a.test_key), served.customer(served.b.test_key)
    everyone = [a_customer, b_customer]
    # The issue: after merchant A's customer topped up "12319406771007389", merchant B's customer's
    # KES 10 top-up was a 500 (the sandbox funding account was shared and passed int64).
    reply = assert_changes_nothing(
        served, everyone, lambda: served.top_up(a_customer, "12319406771007389"), 422, "balance_limit"
    )
    assert _fields(reply) == ["amount"]
    # However far merchant A's sandbox goes, it is A's own: its limit refuses A's top-ups alone.
    asyncio.run(_exhaust_sandbox_funding(served.db_url, served.a.client_id))
    reply = assert_changes_nothing(
        served, everyone, lambda: served.top_up(a_customer, "10.00"), 422, "balance_limit"
    )
    assert _fields(reply) == ["amount"]
    topped = served.top_up(b_customer, "10.00")
    assert topped.status_code == 201, topped.text
    assert served.balance(b_customer) == "10.00"
    assert sandbox_funding(served, served.b.client_id) == -1000
    assert sandbox_funding(served, served.a.client_id) == -(ledger.MAX_OPEN_BALANCE - 500)
    assert_books_add_up(served)


def test_a_live_top_up_is_501_and_changes_nothing(served: Served) -> None:
    customer = served.customer(served.a.live_key)
    reply = assert_changes_nothing(
        served, [customer], lambda: served.top_up(customer, "50"), 501, "live_top_up_unavailable"
    )
    assert "collections" in reply.json()["detail"]
    assert served.balance(customer) == "0.00"


def test_an_idempotency_key_replays_the_first_top_up(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    first = served.top_up(customer, "10", **{"Idempotency-Key": "top-up-1"})
    again = served.top_up(customer, "10", **{"Idempotency-Key": "top-up-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert served.balance(customer) == "10.00"
    assert assert_books_add_up(served).journals == 1


# -- transfers ------------------------------------------------------------------------


def test_a_transfer_moves_money_between_customers_of_one_merchant(served: Served) -> None:
    sender, recipient = served.customer(served.a.test_key), served.customer(served.a.test_key)
    assert served.top_up(sender, "100").status_code == 201
    reply = served.transfer(sender, recipient.id, "30.25", "lunch")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["amount"], body["balance"], body["recipientCustomerId"]) == (
        "30.25",
        "69.75",
        str(recipient.id),
    )
    assert (served.balance(sender), served.balance(recipient)) == ("69.75", "30.25")
    assert assert_books_add_up(served).journals == 2


def test_refused_transfers_name_the_problem_and_change_nothing(served: Served) -> None:
    sender, recipient = served.customer(served.a.test_key), served.customer(served.a.test_key)
    other_merchants = served.customer(served.b.test_key)
    live_neighbour = served.customer(served.a.live_key)
    assert served.top_up(sender, "50").status_code == 201
    everyone = [sender, recipient, other_merchants]

    for stranger in (uuid.uuid4(), other_merchants.id, live_neighbour.id):
        reply = assert_changes_nothing(
            served, everyone, lambda s=stranger: served.transfer(sender, s, "1"), 404, "unknown_recipient"
        )
        assert _fields(reply) == ["recipientCustomerId"]
        assert str(stranger) in reply.json()["detail"]

    reply = assert_changes_nothing(
        served, everyone, lambda: served.transfer(sender, sender.id, "1"), 422, "self_transfer"
    )
    assert _fields(reply) == ["recipientCustomerId"]

    reply = assert_changes_nothing(
        served, everyone, lambda: served.transfer(sender, recipient.id, "50.01"), 422, "insufficient_funds"
    )
    assert "50.00" in reply.json()["detail"]

    reply = assert_changes_nothing(
        served, everyone, lambda: served.transfer(sender, recipient.id, "0.001"), 422, "invalid_amount"
    )
    assert _fields(reply) == ["amount"]
    # Everything available may go.
    assert served.transfer(sender, recipient.id, "50").status_code == 201
    assert (served.balance(sender), served.balance(recipient)) == ("0.00", "50.00")
    assert_books_add_up(served)


async def _set_currency(db_url: str, client_id: uuid.UUID, currency: str) -> None:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            await session.execute(update(Client).where(Client.id == client_id).values(currency=currency))
    finally:
        await db.dispose()


def test_wallets_in_different_currencies_cannot_transfer(served: Served) -> None:
    kes = served.customer(served.a.test_key)
    asyncio.run(_set_currency(served.db_url, served.a.client_id, "UGX"))
    ugx = served.customer(served.a.test_key)
    assert served.request("GET", "/api/v1/wallet/balance", ugx.headers).json()["currency"] == "UGX"
    assert served.top_up(kes, "10").status_code == 201
    assert served.top_up(ugx, "1000").status_code == 201
    # A UGX amount has no decimals: read in the wallet's own currency.
    reply = assert_changes_nothing(
        served, [kes, ugx], lambda: served.top_up(ugx, "1.5"), 422, "invalid_amount"
    )
    assert "UGX" in reply.json()["detail"]
    for sender, recipient in ((kes, ugx), (ugx, kes)):
        reply = assert_changes_nothing(
            served,
            [kes, ugx],
            lambda s=sender, r=recipient: served.transfer(s, r.id, "1"),
            422,
            "currency_mismatch",
        )
        assert "KES" in reply.json()["detail"]
        assert "UGX" in reply.json()["detail"]


def test_concurrent_transfers_never_overdraw_a_wallet(served: Served) -> None:
    sender, recipient = served.customer(served.a.test_key), served.customer(served.a.test_key)
    assert served.top_up(sender, "100").status_code == 201

    async def race() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            replies = await asyncio.gather(
                *(
                    client.post(
                        f"{served.url}/api/v1/wallet/transfer",
                        headers=sender.headers,
                        json={
                            "recipientCustomerId": str(recipient.id),
                            "amount": "30",
                            "description": f"t{n}",
                        },
                    )
                    for n in range(8)
                )
            )
        return sorted(r.status_code for r in replies)

    assert asyncio.run(race()) == [201] * 3 + [422] * 5
    assert (served.balance(sender), served.balance(recipient)) == ("10.00", "90.00")
    assert assert_books_add_up(served).journals == 4


# -- payments -------------------------------------------------------------------------


def test_a_payment_credits_the_merchants_payments_wallet(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    assert served.top_up(customer, "80").status_code == 201
    reply = served.pay(customer, "25.50", "INV-1", "order 1")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["amount"], body["balance"], body["externalReference"], body["description"]) == (
        "25.50",
        "54.50",
        "INV-1",
        "order 1",
    )
    assert served.balance(customer) == "54.50"
    assert merchant_payments(served, served.a.client_id) == 2550
    assert merchant_payments(served, served.a.client_id, "live") == 0
    assert merchant_payments(served, served.b.client_id) == 0
    assert assert_books_add_up(served).journals == 2


def test_a_repeated_external_reference_is_409_naming_the_earlier_payment(served: Served) -> None:
    payer, neighbour = served.customer(served.a.test_key), served.customer(served.a.test_key)
    elsewhere = served.customer(served.b.test_key)
    for customer in (payer, neighbour, elsewhere):
        assert served.top_up(customer, "100").status_code == 201
    first = served.pay(payer, "10", "INV-42")
    assert first.status_code == 201, first.text
    earlier = first.json()["reference"]

    for customer, amount in ((payer, "10"), (payer, "99"), (neighbour, "10")):
        reply = assert_changes_nothing(
            served,
            [payer, neighbour, elsewhere],
            lambda c=customer, a=amount: served.pay(c, a, "INV-42"),
            409,
            "duplicate_external_reference",
        )
        assert reply.json()["earlierReference"] == earlier
        assert earlier in reply.json()["detail"]
        assert _fields(reply) == ["externalReference"]
    # Unique per client: another merchant's customer may use the same reference.
    assert served.pay(elsewhere, "10", "INV-42").status_code == 201
    assert merchant_payments(served, served.a.client_id) == 1000
    assert merchant_payments(served, served.b.client_id) == 1000
    assert_books_add_up(served)


def test_a_payment_beyond_the_balance_is_422_and_changes_nothing(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    assert served.top_up(customer, "5").status_code == 201
    assert_changes_nothing(
        served, [customer], lambda: served.pay(customer, "5.01", "INV-1"), 422, "insufficient_funds"
    )
    assert merchant_payments(served, served.a.client_id) == 0
    # The refused reference was not used up.
    assert served.pay(customer, "5", "INV-1").status_code == 201
    assert served.balance(customer) == "0.00"


def test_an_invalid_payment_is_422_naming_the_field(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    assert served.top_up(customer, "5").status_code == 201
    for body, field in (
        ({"amount": "1", "description": "x", "externalReference": ""}, "externalReference"),
        ({"amount": "1", "description": "x", "externalReference": "r" * 101}, "externalReference"),
        ({"amount": "1", "description": "x"}, "externalReference"),
        ({"amount": "1", "externalReference": "r"}, "description"),
        ({"amount": "0", "description": "x", "externalReference": "r"}, "amount"),
    ):
        reply = assert_changes_nothing(
            served,
            [customer],
            lambda b=body: served.request("POST", "/api/v1/wallet/pay", customer.headers, json=b),
            422,
            "invalid_amount" if field == "amount" else "validation_failed",
        )
        assert _fields(reply) == [field], body


def test_concurrent_payments_with_one_reference_pay_once(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    assert served.top_up(customer, "100").status_code == 201

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            f"{served.url}/api/v1/wallet/pay",
                            headers=customer.headers,
                            json={"amount": "10", "description": f"try {n}", "externalReference": "ONCE"},
                        )
                        for n in range(6)
                    )
                )
            )

    replies = asyncio.run(race())
    assert sorted(r.status_code for r in replies) == [201] + [409] * 5
    paid = next(r for r in replies if r.status_code == 201).json()["reference"]
    assert all(r.json()["earlierReference"] == paid for r in replies if r.status_code == 409)
    assert served.balance(customer) == "90.00"
    assert merchant_payments(served, served.a.client_id) == 1000
    assert assert_books_add_up(served).journals == 2
