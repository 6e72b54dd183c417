"""Each fraud rule, firing and not firing, on the database: the flags and score a transfer carries,
the decision they make (allow, code, block), and that a blocked transfer holds nothing and keeps
no row."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.providers.base import Status, TransferOutcome
from malipo.transfers import fraud, service
from malipo.transfers.models import Transfer, TransferStatus
from malipo.worker.registry import load_job_modules
from tests.transfers.helpers import PAYMENTS_FUNDS, SERVICE_FUNDS, SL_ACCOUNT, Sender, balances, make_sender

load_job_modules()

OTHER_ACCOUNT = "0039876543210"


async def _send(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    sender: Sender,
    amount: str,
    account: str = SL_ACCOUNT,
) -> Transfer:
    async with db.transaction() as session:
        return await service.create_transfer(
            session, sender.who, service.TransferRequest(account, amount), settings=settings, now=clock.now()
        )


async def _sender(db: Database, clock: FrozenClock, tag: str, **rules: int) -> Sender:
    async with db.transaction() as session:
        sender = await make_sender(session, tag, now=clock.now())
        if rules:
            await fraud.set_rules(
                session, sender.client_id, replace(fraud.DEFAULT_RULES, **rules), now=clock.now()
            )
    return sender


def _rules(transfer: Transfer) -> set[str]:
    return {flag["rule"] for flag in transfer.flags}


async def _refused(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    sender: Sender,
    amount: str,
    account: str = SL_ACCOUNT,
) -> service.TransferBlocked:
    with pytest.raises(service.TransferBlocked) as blocked:
        await _send(db, settings, clock, sender, amount, account)
    return blocked.value


async def test_a_clean_transfer_carries_no_flag_and_needs_the_code(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-clean")
    transfer = await _send(db, settings, clock, sender, "100.00")
    assert (transfer.flags, transfer.risk_score, transfer.decision) == ([], 0, "otp")
    assert transfer.status == TransferStatus.PENDING


async def test_over_the_per_transfer_limit_is_blocked_and_changes_nothing(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-limit", max_amount=500_00)
    first = await _send(db, settings, clock, sender, "500.00")
    assert _rules(first) == set()
    blocked = await _refused(db, settings, clock, sender, "500.01")
    assert [f["rule"] for f in blocked.extensions["flags"]] == ["amount_over_limit"]
    assert blocked.errors[0].field == "amount"
    async with db.transaction() as session:
        assert await balances(session, sender, clock.now()) == (
            (PAYMENTS_FUNDS, 500_00),
            (SERVICE_FUNDS, first.fee),
        )
        assert await session.scalar(select(func.count()).select_from(Transfer)) == 1


async def test_a_destination_on_the_block_list_is_blocked_for_that_client_only(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-block")
    other = await _sender(db, clock, "fr-block-other")
    async with db.transaction() as session:
        await fraud.block(
            session, sender.client_id, OTHER_ACCOUNT, "reported as a mule account", now=clock.now()
        )
    blocked = await _refused(db, settings, clock, sender, "10.00", OTHER_ACCOUNT)
    assert "mule account" in blocked.detail
    assert blocked.errors[0].field == "accountNumber"
    assert _rules(await _send(db, settings, clock, sender, "10.00")) == set()
    assert _rules(await _send(db, settings, clock, other, "10.00", OTHER_ACCOUNT)) == set()


async def test_daily_count_and_value_per_api_user(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-daily", daily_count=2, daily_value=300_00, block_score=1000)
    assert _rules(await _send(db, settings, clock, sender, "100.00")) == set()
    assert _rules(await _send(db, settings, clock, sender, "150.00", OTHER_ACCOUNT)) == set()
    third = await _send(db, settings, clock, sender, "60.00", "0035555555555")
    assert _rules(third) == {"daily_count", "daily_value"}
    assert (third.risk_score, third.decision) == (100, "otp")  # two rules of 50 (100 blocks by default)


async def test_velocity_counts_only_the_last_24_hours(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-window", daily_count=1, block_score=1000)
    assert _rules(await _send(db, settings, clock, sender, "10.00")) == set()
    assert "daily_count" in _rules(await _send(db, settings, clock, sender, "11.00", OTHER_ACCOUNT))
    clock.advance(fraud.WINDOW)
    assert "daily_count" not in _rules(await _send(db, settings, clock, sender, "12.00", "0035555555555"))


async def test_velocity_per_destination(db: Database, settings: Settings, clock: FrozenClock) -> None:
    sender = await _sender(
        db, clock, "fr-dest", destination_daily_count=1, destination_daily_value=150_00, block_score=1000,
        duplicate_window_minutes=0,
    )  # fmt: skip
    assert _rules(await _send(db, settings, clock, sender, "100.00")) == set()
    assert _rules(await _send(db, settings, clock, sender, "100.00", OTHER_ACCOUNT)) == set()
    second = await _send(db, settings, clock, sender, "60.00")
    assert _rules(second) == {"destination_daily_count", "destination_daily_value"}


async def test_the_same_amount_to_the_same_destination_within_the_window_is_a_duplicate(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-dup")
    await _send(db, settings, clock, sender, "250.00")
    clock.advance(9 * 60)
    again = await _send(db, settings, clock, sender, "250.00")
    assert (_rules(again), again.risk_score, again.decision) == ({"duplicate"}, 50, "otp")
    assert _rules(await _send(db, settings, clock, sender, "251.00")) == set(), "another amount"
    clock.advance(11 * 60)
    assert "duplicate" not in _rules(await _send(db, settings, clock, sender, "250.00"))


async def test_a_large_amount_to_a_destination_never_paid_is_flagged_until_one_completes(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-newdest", new_destination_amount=1_000_00)
    assert _rules(await _send(db, settings, clock, sender, "999.99")) == set()
    first = await _send(db, settings, clock, sender, "1000.00", OTHER_ACCOUNT)
    assert _rules(first) == {"new_destination_large_amount"}
    # The first one completes: the destination is known now.
    async with db.transaction() as session:
        current = await session.get(Transfer, first.id)
        assert current is not None
        current.status = TransferStatus.PROCESSING
        await session.flush()
        settled = TransferOutcome(Status.SUCCEEDED, current.end_to_end_id)
        assert await service.apply_outcome(session, current, settled, now=clock.now())
    clock.advance(60 * 60)
    assert _rules(await _send(db, settings, clock, sender, "2000.00", OTHER_ACCOUNT)) == set()


async def test_rules_that_let_a_low_score_through_skip_the_code(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender = await _sender(db, clock, "fr-allow", otp_score=30, new_destination_amount=1_000_00)
    allowed = await _send(db, settings, clock, sender, "100.00")
    assert (allowed.decision, allowed.status, allowed.otp_hash) == ("allow", TransferStatus.PROCESSING, None)
    stepped_up = await _send(db, settings, clock, sender, "1000.00", OTHER_ACCOUNT)
    assert (stepped_up.decision, stepped_up.status) == ("otp", TransferStatus.PENDING)


def test_the_score_decides() -> None:
    rules = replace(fraud.DEFAULT_RULES, otp_score=30, block_score=100)
    assert [fraud.decide(score, rules) for score in (0, 29, 30, 99, 100, 250)] == [
        fraud.Decision.ALLOW, fraud.Decision.ALLOW, fraud.Decision.OTP, fraud.Decision.OTP,
        fraud.Decision.BLOCK, fraud.Decision.BLOCK,
    ]  # fmt: skip
