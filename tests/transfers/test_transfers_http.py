"""Bank transfers end to end over real HTTP: a merchant's API user asks for a transfer, reads the
one-time code from the mail malipo sent, authorises it, and the bank rail's simulator (mounted
in malipo, speaking its ISO 20022 JSON protocol) settles or rejects it through its status
callback — or says nothing until malipo asks. Balances are checked on the ledger."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from malipo.core.clock import SystemClock
from malipo.core.money import Money
from malipo.email.models import MailMessage
from malipo.ledger.models import AccountKind, LedgerAccount
from malipo.sms.models import SmsMessage, SystemSms
from malipo.transfers import repository, service
from malipo.transfers.models import Transfer
from malipo.worker.models import Job
from malipo.worker.runner import Worker
from tests.factories import Merchant
from tests.fixtures.world import CURRENCY, StartMalipo, World, eventually, fund_payments
from tests.transfers.helpers import SL_ACCOUNT, last_code

# Union Trust Bank (003) accounts whose last ten digits are the simulator's test numbers.
REJECTED = {
    "AC01": "0031000000001",
    "AC04": "0031000000004",
    "AC06": "0031000000006",
    "AM04": "0031000000009",
}
REFUSED_AT_ONCE = "0031000000011"  # RJCT RR04 in the answer to the POST
NO_CALLBACK = "0031000000020"  # settled; only a status query tells
PENDING_TWICE = "0031000000021"  # pending at the first query, settled at the second
FUNDS = 50_000_00


async def _transfer(world: World, merchant: Merchant | None = None, **body: Any) -> httpx.Response:
    payload = {"accountNumber": SL_ACCOUNT, "amount": "1500.00"} | body
    return await world.http.post(
        "/api/v1/payments/transfers", json=payload, headers=(merchant or world.a).headers
    )


async def _code(world: World, merchant: Merchant | None = None) -> str:
    async with world.db.transaction() as session:
        api_user_email = await session.scalar(
            select(MailMessage.to_address).where(MailMessage.purpose == "transfer_otp").limit(1)
        )
        assert api_user_email is not None
        return await last_code(session, api_user_email)


async def _authorised(world: World, account: str, amount: str = "1500.00") -> dict[str, Any]:
    asked = await _transfer(world, accountNumber=account, amount=amount)
    assert asked.status_code == 201, asked.text
    reply = await world.http.post(
        "/api/v1/payments/transfers/authorize",
        json={"transactionId": asked.json()["transactionId"], "otpCode": await _code(world)},
        headers=world.a.headers,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "PROCESSING"
    return reply.json()  # type: ignore[no-any-return]


async def _final(world: World, transaction_id: str, timeout: float = 15.0) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        reply = await world.http.get(
            f"/api/v1/payments/transactions/{transaction_id}", headers=world.a.headers
        )
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body if body["status"] in ("COMPLETED", "FAILED") else None

    return await eventually(done, f"transfer {transaction_id} to finish", timeout)  # type: ignore[no-any-return]


async def _bank_clearing(world: World) -> int:
    async with world.db.transaction() as session:
        balance = await session.scalar(
            select(LedgerAccount.balance).where(
                LedgerAccount.owner_key == "system", LedgerAccount.kind == AccountKind.BANK_CLEARING,
                LedgerAccount.mode == "test", LedgerAccount.currency == CURRENCY,
            )
        )  # fmt: skip
    return int(balance or 0)


@pytest.fixture
async def bank_world(start_malipo: StartMalipo) -> World:
    world = await start_malipo(bank_query_after_seconds=0.3, bank_rail_simulator_delay=0.05)
    await fund_payments(world, FUNDS)
    return world


async def test_a_transfer_authorised_with_the_mailed_code_completes_and_leaves_the_wallet(
    bank_world: World,
) -> None:
    world = bank_world
    before = await world.balances()
    asked = await _transfer(world, narration="Invoice 42")
    assert asked.status_code == 201, asked.text
    pending = asked.json()
    assert (pending["status"], pending["otpRequired"], pending["bankName"]) == (
        "PENDING",
        True,
        "Union Trust Bank",
    )
    assert (pending["otpAttemptsLeft"], pending["flags"]) == (5, [])
    listed = await world.http.get("/api/v1/payments/transactions/pending", headers=world.a.headers)
    assert [t["transactionId"] for t in listed.json()["items"]] == [pending["transactionId"]]

    code = await _code(world)
    assert code not in asked.text

    # The code also goes by SMS (while the transfer waits for it): its delivery report is
    # recorded, and the merchant's own SMS routes (which its key reads) hold no trace of it.
    async def sms_delivered() -> bool | None:
        async with world.db.transaction() as session:
            row = await session.scalar(select(SystemSms))
        return True if row is not None and row.status == "delivered" else None

    await eventually(sms_delivered, "the code's SMS to be reported delivered", 15.0)
    assert await world.count(SmsMessage) == 0
    authorised = await world.http.post(
        "/api/v1/payments/transfers/authorize",
        json={"transactionId": pending["transactionId"], "otpCode": code},
        headers=world.a.headers,
    )
    assert authorised.status_code == 200, authorised.text
    done = await _final(world, pending["transactionId"])
    assert done["status"] == "COMPLETED"
    assert done["providerReference"]
    fee = Money.parse(done["fee"], "KES").amount
    after = await world.balances()
    assert after.payments == (before.payments[0] - 1_500_00, 0)
    assert after.service == (before.service[0] - fee, 0)
    assert await _bank_clearing(world) == 1_500_00
    completed = await world.http.get("/api/v1/payments/transactions/completed", headers=world.a.headers)
    assert [t["narration"] for t in completed.json()["items"]] == ["Invoice 42"]
    await world.verify_ledger()


@pytest.mark.parametrize(("reason", "account"), sorted(REJECTED.items()))
async def test_a_rejected_transfer_fails_with_the_banks_reason_and_releases_the_funds(
    bank_world: World, reason: str, account: str
) -> None:
    world = bank_world
    before = await world.balances()
    done = await _final(world, (await _authorised(world, account))["transactionId"])
    assert (done["status"], done["reasonCode"]) == ("FAILED", reason)
    assert await world.balances() == before
    assert await _bank_clearing(world) == 0
    await world.verify_ledger()


async def test_a_transfer_refused_in_the_rails_answer_fails_at_once(bank_world: World) -> None:
    world = bank_world
    before = await world.balances()
    done = await _final(world, (await _authorised(world, REFUSED_AT_ONCE))["transactionId"])
    assert (done["status"], done["reasonCode"]) == ("FAILED", "RR04")
    assert await world.balances() == before


@pytest.mark.parametrize("account", [NO_CALLBACK, PENDING_TWICE])
async def test_a_lost_status_report_is_settled_by_querying_the_rail(bank_world: World, account: str) -> None:
    world = bank_world
    done = await _final(world, (await _authorised(world, account))["transactionId"])
    assert done["status"] == "COMPLETED"
    assert await _bank_clearing(world) == 1_500_00
    await world.verify_ledger()


async def test_another_merchant_sees_nothing_of_a_transfer_and_cannot_authorise_it(bank_world: World) -> None:
    world = bank_world
    asked = await _transfer(world)
    transaction_id = asked.json()["transactionId"]
    code = await _code(world)
    b = world.b.headers
    assert (
        await world.http.get(f"/api/v1/payments/transactions/{transaction_id}", headers=b)
    ).status_code == 404
    stolen = await world.http.post(
        "/api/v1/payments/transfers/authorize",
        json={"transactionId": transaction_id, "otpCode": code},
        headers=b,
    )
    assert stolen.status_code == 404
    for path in ("pending", "completed"):
        listed = await world.http.get(f"/api/v1/payments/transactions/{path}", headers=b)
        assert listed.json()["total"] == 0
    ranged = await world.http.get("/api/v1/payments/transactions", headers=b)
    assert ranged.json()["items"] == []
    mine = await world.http.get("/api/v1/payments/transactions", headers=world.a.headers)
    assert [t["transactionId"] for t in mine.json()["items"]] == [transaction_id]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "0.00"}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 10**30}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"accountNumber": "00"}, "accountNumber"),
        ({"accountNumber": "003" + "9" * 40}, "accountNumber"),
        ({"accountNumber": "0031234\u0000"}, "accountNumber"),
        ({"accountNumber": "7771234567"}, "accountNumber"),
        ({"narration": "pay\u202eevil"}, "narration"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(
    bank_world: World, body: dict[str, Any], field: str
) -> None:
    world = bank_world
    before = await world.balances()
    reply = await _transfer(world, **body)
    assert 400 <= reply.status_code < 500, reply.text
    assert field in reply.text
    assert await world.balances() == before
    assert await world.count(Transfer) == 0


async def test_a_wrong_code_is_a_422_that_says_how_many_attempts_are_left(bank_world: World) -> None:
    world = bank_world
    asked = (await _transfer(world)).json()
    code = await _code(world)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    reply = await world.http.post(
        "/api/v1/payments/transfers/authorize",
        json={"transactionId": asked["transactionId"], "otpCode": wrong},
        headers=world.a.headers,
    )
    assert reply.status_code == 422
    assert "4 attempts left" in reply.text
    again = await world.http.post(
        "/api/v1/payments/transfers/resend-otp",
        json={"transactionId": asked["transactionId"]},
        headers=world.a.headers,
    )
    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) > 0
    async with world.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(MailMessage)) == 1


async def test_a_worker_that_died_mid_send_leaves_a_transfer_the_status_query_sends_exactly_once(
    start_malipo: StartMalipo,
) -> None:
    """The send job commits "sent" and a status query before it calls the rail. Here the worker
    dies between the two (its claim is made by hand, the call never happens): the query finds the
    rail has no such transfer, sends it again with the same EndToEndId, and it settles — once."""
    world = await start_malipo(
        bank_query_after_seconds=0.3, bank_rail_simulator_delay=0.05, inprocess_worker=False
    )
    await fund_payments(world, FUNDS)
    asked = (await _transfer(world)).json()
    authorised = await world.http.post(
        "/api/v1/payments/transfers/authorize",
        json={"transactionId": asked["transactionId"], "otpCode": await _code(world)},
        headers=world.a.headers,
    )
    assert authorised.status_code == 200, authorised.text
    transfer_id = uuid.UUID(asked["transactionId"])
    now = SystemClock().now()
    async with world.db.transaction() as session:  # what the dead worker had committed
        assert await repository.claim_unsent(session, transfer_id, now)
        service.schedule_query(session, transfer_id, 1, delay=timedelta(0), now=now)
        await session.execute(delete(Job).where(Job.kind == service.SEND_JOB))
    worker = Worker(world.db, world.settings, clock=SystemClock())

    async def settled() -> bool | None:
        await worker.run_once()
        async with world.db.transaction() as session:
            row = await session.get(Transfer, transfer_id)
        return True if row is not None and row.status == "COMPLETED" else None

    try:
        await eventually(settled, "the transfer to be sent again and settle", 20.0)
    finally:
        await worker.aclose()
    paid = [t.request.CdtTrfTxInf.PmtId.EndToEndId for t in world.app.state.bank_simulator.payments]
    assert paid.count(asked["endToEndId"]) == 1
    assert await _bank_clearing(world) == 1_500_00
    await world.verify_ledger()
