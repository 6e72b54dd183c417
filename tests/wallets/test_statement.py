"""Wallet statements: streamed JSON and CSV that agree, running balances, date and type filters."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from malipo.core.clock import FrozenClock
from malipo.customers import service as customers
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import ClientStatus, ClientType, KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.wallets import service as wallets
from malipo.wallets.schemas import TopUpIn
from tests.customers.helpers import Customer, Served, books

DAY1 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _statement(served: Served, customer: Customer, **params: str) -> dict[str, Any]:
    reply = served.request("GET", "/api/v1/wallet/statement", customer.headers, params=params)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()  # type: ignore[no-any-return]


def _csv(served: Served, customer: Customer, **params: str) -> list[dict[str, str]]:
    reply = served.request(
        "GET", "/api/v1/wallet/statement", customer.headers, params={**params, "format": "csv"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv")
    assert reply.headers["content-disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(reply.text)))


def _history(served: Served) -> tuple[Customer, Customer]:
    """Four days of a customer's wallet, one movement at a time (the clock moves between them)."""
    me, friend = served.customer(served.a.test_key), served.customer(served.a.test_key)
    steps = [
        (DAY1, lambda: served.top_up(me, "100", "salary")),
        (DAY1 + timedelta(days=1), lambda: served.pay(me, "30", "INV-1", "groceries")),
        (DAY1 + timedelta(days=1, hours=2), lambda: served.transfer(me, friend.id, "20.50", "rent share")),
        (DAY1 + timedelta(days=1, hours=3), lambda: served.top_up(friend, "10", "friend's top-up")),
        (DAY1 + timedelta(days=2), lambda: served.transfer(friend, me.id, "5.25", "coffee")),
        # Late in the last day, UTC: the end date is inclusive.
        (DAY1 + timedelta(days=3, hours=14, minutes=59), lambda: served.top_up(me, "50", '=HYPERLINK("x")')),
    ]
    for when, step in steps:
        served.clock.set(when)
        served.relogin(served.a.test_key, me, friend)
        reply = step()
        assert reply.status_code == 201, reply.text
    return me, friend


def _signed(entry: dict[str, Any]) -> Decimal:
    return Decimal(entry["amount"]) * (1 if entry["type"] == "credit" else -1)


def test_a_statement_lists_every_entry_with_its_running_balance(served: Served) -> None:
    me, _friend = _history(served)
    statement = _statement(served, me)
    entries = statement["entries"]
    assert [(e["kind"], e["type"], e["amount"], e["balance"]) for e in entries] == [
        ("top_up", "credit", "100.00", "100.00"),
        ("payment", "debit", "30.00", "70.00"),
        ("transfer", "debit", "20.50", "49.50"),
        ("transfer", "credit", "5.25", "54.75"),
        ("top_up", "credit", "50.00", "104.75"),
    ]
    assert [e["description"] for e in entries][:2] == ["salary", "groceries"]
    assert {e["currency"] for e in entries} == {"KES"}
    assert len({e["reference"] for e in entries}) == 5
    assert (statement["openingBalance"], statement["closingBalance"]) == ("0.00", "104.75")
    assert statement["closingBalance"] == served.balance(me)
    running = Decimal(statement["openingBalance"])
    for entry in entries:
        running += _signed(entry)
        assert Decimal(entry["balance"]) == running
    assert books(served).problems == []


def test_entries_keep_the_order_they_were_written_in_when_the_clock_goes_back(served: Served) -> None:
    me = served.customer(served.a.test_key)
    steps = [
        (DAY1, lambda: served.top_up(me, "100", "salary")),
        # The clock goes back between movements.
        (DAY1 - timedelta(hours=5), lambda: served.pay(me, "30", "INV-1", "groceries")),
        (DAY1 - timedelta(hours=1), lambda: served.top_up(me, "50", "bonus")),
    ]
    for when, step in steps:
        served.clock.set(when)
        served.relogin(served.a.test_key, me)
        assert step().status_code == 201
    statement = _statement(served, me)
    assert [(e["description"], e["type"], e["amount"], e["balance"]) for e in statement["entries"]] == [
        ("salary", "credit", "100.00", "100.00"),
        ("groceries", "debit", "30.00", "70.00"),
        ("bonus", "credit", "50.00", "120.00"),
    ]
    assert statement["closingBalance"] == served.balance(me) == "120.00"
    assert [row["balance"] for row in _csv(served, me)] == ["100.00", "70.00", "120.00"]


def test_json_and_csv_statements_agree(served: Served) -> None:
    me, _friend = _history(served)
    for params in ({}, {"startDate": "2026-03-02", "endDate": "2026-03-03"}, {"type": "debit"}):
        entries = _statement(served, me, **params)["entries"]
        rows = _csv(served, me, **params)
        assert len(rows) == len(entries)
        for row, entry in zip(rows, entries, strict=True):
            # A cell a spreadsheet would run as a formula is quoted with a leading apostrophe.
            description = row.pop("description")
            assert description.removeprefix("'") == entry["description"]
            assert description == entry["description"] or description == "'" + entry["description"]
            assert row == {k: v for k, v in entry.items() if k != "description"}
    assert _csv(served, me)[-1]["description"] == '\'=HYPERLINK("x")'


def test_the_date_range_is_inclusive_and_carries_the_balance_in(served: Served) -> None:
    me, _friend = _history(served)
    middle = _statement(served, me, startDate="2026-03-02", endDate="2026-03-03")
    assert [e["balance"] for e in middle["entries"]] == ["70.00", "49.50", "54.75"]
    assert (middle["openingBalance"], middle["closingBalance"]) == ("100.00", "54.75")
    assert (middle["startDate"], middle["endDate"]) == ("2026-03-02", "2026-03-03")
    last_day = _statement(served, me, startDate="2026-03-04", endDate="2026-03-04")
    assert [e["amount"] for e in last_day["entries"]] == ["50.00"]
    assert _statement(served, me, endDate="2026-03-01")["entries"][0]["description"] == "salary"
    assert len(_statement(served, me, startDate="2026-03-02")["entries"]) == 4
    empty = _statement(served, me, startDate="2026-04-01", endDate="2026-04-30")
    assert empty["entries"] == []
    assert (empty["openingBalance"], empty["closingBalance"]) == ("104.75", "104.75")
    before = _statement(served, me, startDate="2026-02-01", endDate="2026-02-28")
    assert (before["entries"], before["openingBalance"], before["closingBalance"]) == ([], "0.00", "0.00")


def test_the_type_filter_keeps_credits_or_debits_with_their_true_balances(served: Served) -> None:
    me, _friend = _history(served)
    credits = _statement(served, me, type="credit")
    debits = _statement(served, me, type="debit", startDate="2026-03-01", endDate="2026-03-04")
    assert [(e["amount"], e["balance"]) for e in credits["entries"]] == [
        ("100.00", "100.00"),
        ("5.25", "54.75"),
        ("50.00", "104.75"),
    ]
    assert [(e["amount"], e["balance"]) for e in debits["entries"]] == [
        ("30.00", "70.00"),
        ("20.50", "49.50"),
    ]
    assert {e["type"] for e in credits["entries"]} == {"credit"}
    assert credits["type"] == "credit"
    # The closing balance is the wallet's, whatever the filter shows.
    assert credits["closingBalance"] == debits["closingBalance"] == "104.75"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"startDate": "2026-03-05", "endDate": "2026-03-01"}, "startDate"),
        ({"startDate": "yesterday"}, "startDate"),
        ({"type": "refund"}, "type"),
        ({"format": "xml"}, "format"),
    ],
)
def test_an_invalid_statement_query_is_422_naming_it(
    served: Served, params: dict[str, str], field: str
) -> None:
    me = served.customer(served.a.test_key)
    reply = served.request("GET", "/api/v1/wallet/statement", me.headers, params=params)
    assert reply.status_code == 422, reply.text
    assert [e["field"] for e in reply.json()["errors"]] == [field]


def test_an_empty_wallets_statement_is_empty(served: Served) -> None:
    me = served.customer(served.a.test_key)
    statement = _statement(served, me)
    assert (statement["entries"], statement["openingBalance"], statement["closingBalance"]) == (
        [],
        "0.00",
        "0.00",
    )
    assert _csv(served, me) == []


async def test_statement_lines_page_through_chunks_without_loss_or_repeat(db: Database) -> None:
    """Entries read ``chunk`` at a time by keyset, also when many share one timestamp."""
    clock = FrozenClock(DAY1)
    now = clock.now()
    async with db.transaction() as session:
        await identity.ensure_system_roles(session, now)
        client = await identity.create_client(
            session,
            name="M",
            client_type=ClientType.COMPANY,
            email="m@example.com",
            status=ClientStatus.ACTIVE,
            now=now,
        )
        customer = await customers.create_customer(
            session,
            client=client,
            mode=KeyMode.TEST,
            email="c@example.com",
            password="correct horse battery",
            full_name=None,
            now=now,
        )
    who = Principal(
        kind=PrincipalKind.CUSTOMER,
        id=customer.id,
        client_id=client.id,
        role_ids=(),
        role_names=frozenset({"Customer"}),
        mode=KeyMode.TEST,
    )
    for n in range(11):
        if n >= 4:  # the first four share a timestamp; the rest are a minute apart
            clock.advance(60)
        async with db.transaction() as session:
            await wallets.top_up(session, who, TopUpIn(amount=n + 1, description=f"t{n}"), now=clock.now())
    async with db.transaction() as session:
        window = await wallets.statement_window(session, who, start_date=None, end_date=None)
    for chunk in (1, 3, 4, 11, 50):
        lines = [line async for line in wallets.statement_lines(db, window, entry_type=None, chunk=chunk)]
        assert len(lines) == 11
        assert len({line.reference for line in lines}) == 11
        assert sorted(line.amount.amount for line in lines) == [100 * (n + 1) for n in range(11)]
        assert [line.created_at for line in lines] == sorted(line.created_at for line in lines)
    async with db.transaction() as session:
        assert await ledger.verify_ledger(session) == []
