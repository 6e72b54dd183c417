"""Daraja's Pull Transactions against the simulator over HTTP: the statement of STK payments,
paging by offset, the nested ``Response`` array, ``1001`` when empty, the 48-hour window, and
the sandbox controls that plant a day's exceptions; and the rail seam's ``statement``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from malipo.config import Settings
from malipo.providers.base import NotSupported, StatementUnavailable
from malipo.providers.daraja import pull
from malipo.providers.daraja.client import DarajaClient
from malipo.providers.daraja.mobile_money import DarajaMobileMoney
from malipo.providers.daraja.schemas import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
from malipo.providers.daraja.simulator import DarajaSimulator, create_simulator_app
from malipo.providers.registry import mobile_money_for
from tests.fixtures.servers import LiveServer

PAYER = "254708374149"


@pytest.fixture
def simulator() -> Iterator[tuple[DarajaSimulator, str]]:
    app = create_simulator_app(callback_delay=0.0, callback_backoff=0.02)
    with LiveServer(app) as server:
        yield app.state.simulator, server.url


def client(url: str) -> DarajaClient:
    return DarajaClient(
        base_url=url, consumer_key="key", consumer_secret="secret", shortcode=SANDBOX_SHORTCODE,
        passkey=SANDBOX_PASSKEY, timeout=5.0,
    )  # fmt: skip


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


async def paid(sim: DarajaSimulator, daraja: DarajaClient, amount: int, reference: str) -> str:
    reply = await daraja.stk_push(
        amount=amount, phone=PAYER, account_reference=reference, description="Order",
        callback_url="http://127.0.0.1:9/nowhere",
    )  # fmt: skip
    for _ in range(500):
        push = sim.stk_pushes[reply.CheckoutRequestID]
        if push.receipt is not None:
            return push.receipt
        await asyncio.sleep(0.01)
    raise AssertionError("the simulated payer never paid")


async def test_statement_lists_stk_payments_and_planted_exceptions(
    simulator: tuple[DarajaSimulator, str],
) -> None:
    sim, url = simulator
    async with client(url) as daraja:
        assert await daraja.pull_transactions(*window()) == []  # 1001: nothing yet
        first = await paid(sim, daraja, 150, "INV-1")
        second = await paid(sim, daraja, 80, "INV-2")
        rows = {row.transactionId: row for row in await daraja.pull_transactions(*window())}
        assert set(rows) == {first, second}
        assert (rows[first].amount_minor(), rows[first].billreference) == (150_00, "INV-1")
        assert rows[first].msisdn == PAYER
        assert rows[first].completed_at() <= datetime.now(UTC)

        async with httpx.AsyncClient(base_url=url) as http:
            extra = await http.post(
                "/_sim/statement/extra",
                json={"ShortCode": SANDBOX_SHORTCODE, "Amount": 321, "MSISDN": "254711000001",
                      "BillRefNumber": "NOBODY"},
            )  # fmt: skip
            assert extra.status_code == 200, extra.text
            planted = extra.json()["TransactionID"]
            gone = await http.post("/_sim/statement/remove", json={"TransactionID": second})
            changed = await http.post(
                "/_sim/statement/amount", json={"TransactionID": first, "Amount": "149"}
            )
            unknown = await http.post("/_sim/statement/remove", json={"TransactionID": "NOSUCH"})
        assert (gone.status_code, changed.status_code, unknown.status_code) == (200, 200, 400)
        rows = {row.transactionId: row for row in await daraja.pull_transactions(*window())}
        assert set(rows) == {first, planted}
        assert rows[first].amount_minor() == 149_00
        assert (rows[planted].amount_minor(), rows[planted].billreference) == (321_00, "NOBODY")


async def test_statement_pages_by_offset(simulator: tuple[DarajaSimulator, str]) -> None:
    sim, url = simulator
    now = datetime.now(UTC)
    for index in range(pull.PAGE_SIZE + 5):
        sim.statement.record_incoming(
            shortcode=SANDBOX_SHORTCODE, receipt=f"R{index:09d}", amount=10, msisdn=PAYER,
            completed_at=now - timedelta(seconds=index),
        )  # fmt: skip
    async with client(url) as daraja:
        rows = await daraja.pull_transactions(*window())
    assert len({row.transactionId for row in rows}) == pull.PAGE_SIZE + 5
    assert sim.requests["/pulltransactions/v1/query"] == 2


async def test_older_than_48_hours_is_refused_clearly(simulator: tuple[DarajaSimulator, str]) -> None:
    _sim, url = simulator
    old = datetime.now(UTC) - timedelta(hours=49)
    async with client(url) as daraja:
        with pytest.raises(pull.PullWindowExpired, match="48 hours"):
            await daraja.pull_transactions(old, old + timedelta(days=1))
        reply = await daraja._http.post(  # the rail itself refuses it too
            url + pull.QUERY_PATH,
            json={"ShortCode": SANDBOX_SHORTCODE, "StartDate": pull.kenya_time(old),
                  "EndDate": pull.kenya_time(old + timedelta(days=1)), "OffSetValue": "0"},
            headers={"Authorization": f"Bearer {await daraja.access_token()}"},
        )  # fmt: skip
    assert reply.status_code == 400
    assert reply.json()["errorMessage"] == "Bad Request - Invalid StartDate"


async def test_register_once_then_already_registered(simulator: tuple[DarajaSimulator, str]) -> None:
    sim, url = simulator
    async with client(url) as daraja:
        first = await daraja.pull_register(
            nominated_number="0722000000", callback_url="https://example.com/pull"
        )
        again = await daraja.pull_register(
            nominated_number="0722000000", callback_url="https://example.com/pull"
        )
    assert (first.response_status, again.response_status) == (pull.REGISTERED, pull.ALREADY_REGISTERED)
    assert sim.statement.registered[SANDBOX_SHORTCODE]["NominatedNumber"] == "0722000000"


async def test_the_seam_gives_neutral_rail_transactions(
    simulator: tuple[DarajaSimulator, str], settings: Settings
) -> None:
    sim, url = simulator
    now = datetime.now(UTC)
    sim.statement.record_incoming(
        shortcode=settings.daraja_shortcode, receipt="SEAM000001", amount=42, msisdn=PAYER, completed_at=now,
        bill_reference="REF-9",
    )  # fmt: skip
    served = settings.model_copy(update={"daraja_simulator_url": url})
    async with httpx.AsyncClient() as http:
        rail = DarajaMobileMoney(served, "test", http)
        [found] = await rail.statement(now - timedelta(minutes=5), now + timedelta(minutes=5))
        assert (found.receipt, found.amount, found.currency, found.reference) == (
            "SEAM000001",
            42_00,
            "KES",
            "REF-9",
        )
        with pytest.raises(StatementUnavailable) as expired:
            await rail.statement(now - timedelta(hours=50), now - timedelta(hours=26))
        assert expired.value.window_expired
        with pytest.raises(NotSupported):
            await mobile_money_for(served, "63903", "test", http).statement(now, now)
