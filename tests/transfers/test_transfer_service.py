"""Transfer rules on the database, without servers: the amount and fee are held before anything
else; the one-time code (kept only as an HMAC) releases the transfer once, within five minutes;
wrong codes are counted and the fifth cancels; resends are limited; the rail's report settles or
releases the holds once, and one that differs from what was asked is held for review."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.core.errors import ValidationFailed
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.providers.base import Status, TransferOutcome
from malipo.reviews.models import CallbackReview
from malipo.transfers import otp, service
from malipo.transfers.models import Transfer, TransferStatus
from malipo.worker.models import Job
from malipo.worker.registry import load_job_modules
from tests.transfers.helpers import (
    KCB_ACCOUNT,
    PAYMENTS_FUNDS,
    SERVICE_FUNDS,
    SL_ACCOUNT,
    Sender,
    balances,
    last_code,
    make_sender,
)

load_job_modules()

AMOUNT = 1_500_00


def _asked(
    amount: object = "1500.00", account: str = SL_ACCOUNT, narration: str | None = None
) -> service.TransferRequest:
    return service.TransferRequest(account, amount, narration)


async def _pending(
    db: Database, settings: Settings, clock: FrozenClock, tag: str
) -> tuple[Sender, Transfer, str]:
    async with db.transaction() as session:
        sender = await make_sender(session, tag, now=clock.now())
        transfer = await service.create_transfer(
            session, sender.who, _asked(), settings=settings, now=clock.now()
        )
        code = await last_code(session, sender.email)
    return sender, transfer, code


async def _authorize(
    db: Database, sender: Sender, transfer: Transfer, code: str, settings: Settings, clock: FrozenClock
) -> Transfer:
    """As the route does: the code's effect is committed, then its refusal raised."""
    async with db.transaction() as session:
        done = await service.authorize(
            session, sender.who, transfer.id, code, settings=settings, now=clock.now()
        )
    if done.refusal is not None:
        raise done.refusal
    return done.transfer


async def _jobs(db: Database, kind: str) -> list[Job]:
    async with db.transaction() as session:
        return list((await session.scalars(select(Job).where(Job.kind == kind))).all())


async def test_a_transfer_holds_amount_and_fee_and_sends_a_code_kept_only_as_a_hash(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, code = await _pending(db, settings, clock, "xs-new")
    assert transfer.status == TransferStatus.PENDING
    assert (transfer.decision, transfer.bank_code) == ("otp", "003")
    assert transfer.narration == f"Transfer to {SL_ACCOUNT}"
    assert transfer.fee > 0
    async with db.transaction() as session:
        assert await balances(session, sender, clock.now()) == (
            (PAYMENTS_FUNDS, AMOUNT),
            (SERVICE_FUNDS, transfer.fee),
        )
        # The code is nowhere in the clear: not on the row, not in the outbox (SMS job payload).
        row = (await session.execute(text("SELECT * FROM transfers"))).mappings().one()
        assert code not in json.dumps({k: str(v) for k, v in row.items()})
        assert row["otp_hash"] == otp.code_hash(settings.secret_key.get_secret_value(), transfer.id, code)  # type: ignore[union-attr]
    [sms] = await _jobs(db, service.OTP_SMS_JOB)
    assert code not in json.dumps(sms.payload)
    assert otp.sealed_code(transfer.id, sms.payload["code"]) == code
    assert sms.payload["to"] == "+254700000009"


async def test_the_right_code_releases_it_once_and_success_settles_both_holds(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, code = await _pending(db, settings, clock, "xs-ok")
    clock.advance(60)
    done = await _authorize(db, sender, transfer, code, settings, clock)
    assert (done.status, done.otp_hash) == (TransferStatus.PROCESSING, None)
    assert len(await _jobs(db, service.SEND_JOB)) == 1
    with pytest.raises(service.NotPending):  # the same code again: nothing happens twice
        await _authorize(db, sender, transfer, code, settings, clock)
    assert len(await _jobs(db, service.SEND_JOB)) == 1

    settled = TransferOutcome(
        Status.SUCCEEDED,
        transfer.end_to_end_id,
        "RAIL1",
        amount=AMOUNT,
        currency="KES",
        creditor_account=SL_ACCOUNT,
    )
    async with db.transaction() as session:
        current = await session.get(Transfer, transfer.id)
        assert current is not None
        assert await service.apply_outcome(session, current, settled, now=clock.now())
        assert not await service.apply_outcome(session, current, settled, now=clock.now()), "once"
        assert current.status == TransferStatus.COMPLETED
        assert current.journal_id is not None
        assert await balances(session, sender, clock.now()) == (
            (PAYMENTS_FUNDS - AMOUNT, 0),
            (SERVICE_FUNDS - transfer.fee, 0),
        )
        assert await ledger.verify_ledger(session) == []


async def test_a_rejection_by_the_bank_releases_both_holds_with_its_reason(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, code = await _pending(db, settings, clock, "xs-rej")
    await _authorize(db, sender, transfer, code, settings, clock)
    rejected = TransferOutcome(
        Status.FAILED, transfer.end_to_end_id, reason_code="AC04", reason="Closed account"
    )
    async with db.transaction() as session:
        current = await session.get(Transfer, transfer.id)
        assert current is not None
        assert await service.apply_outcome(session, current, rejected, now=clock.now())
        assert (current.status, current.reason_code) == (TransferStatus.FAILED, "AC04")
        assert await balances(session, sender, clock.now()) == ((PAYMENTS_FUNDS, 0), (SERVICE_FUNDS, 0))
        assert await ledger.verify_ledger(session) == []


async def test_a_report_naming_another_transfer_changes_nothing(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, code = await _pending(db, settings, clock, "xs-mis")
    await _authorize(db, sender, transfer, code, settings, clock)
    other = TransferOutcome(Status.SUCCEEDED, "MLPSOMEONEELSE", amount=AMOUNT)
    async with db.transaction() as session:
        current = await session.get(Transfer, transfer.id)
        assert current is not None
        with pytest.raises(service.CallbackMismatch):
            await service.apply_outcome(session, current, other, now=clock.now())
        assert current.status == TransferStatus.PROCESSING
        assert await balances(session, sender, clock.now()) == (
            (PAYMENTS_FUNDS, AMOUNT),
            (SERVICE_FUNDS, transfer.fee),
        )


async def test_a_success_for_another_amount_is_held_for_review_until_an_operator_accepts(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, code = await _pending(db, settings, clock, "xs-rev")
    await _authorize(db, sender, transfer, code, settings, clock)
    less = TransferOutcome(Status.SUCCEEDED, transfer.end_to_end_id, amount=AMOUNT - 100_00, currency="KES")
    async with db.transaction() as session:
        current = await session.get(Transfer, transfer.id)
        assert current is not None
        assert await service.apply_outcome(session, current, less, now=clock.now())
        assert current.status == TransferStatus.REVIEW
        [review] = (await session.scalars(select(CallbackReview))).all()
        assert (review.kind, review.received_amount) == ("transfer", AMOUNT - 100_00)
        assert await balances(session, sender, clock.now()) == (
            (PAYMENTS_FUNDS, AMOUNT),
            (SERVICE_FUNDS, transfer.fee),
        )
        accepted = await service.accept_review(session, transfer.id, AMOUNT - 100_00, now=clock.now())
        assert accepted.status == TransferStatus.COMPLETED
        assert await balances(session, sender, clock.now()) == (
            (PAYMENTS_FUNDS - AMOUNT + 100_00, 0),
            (SERVICE_FUNDS - transfer.fee, 0),
        )
        assert await ledger.verify_ledger(session) == []


async def test_wrong_codes_are_counted_and_the_fifth_cancels_and_releases(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, code = await _pending(db, settings, clock, "xs-wrong")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        with pytest.raises(service.WrongCode, match=f"{left} attempt"):
            await _authorize(db, sender, transfer, wrong, settings, clock)
    async with db.transaction() as session:
        current = await session.get(Transfer, transfer.id)
        assert current is not None
        assert current.otp_failures == 4, "each wrong code is committed"
    with pytest.raises(service.TooManyWrongCodes):
        await _authorize(db, sender, transfer, wrong, settings, clock)
    with pytest.raises(service.NotPending):  # even the right code, now
        await _authorize(db, sender, transfer, code, settings, clock)
    async with db.transaction() as session:
        current = await session.get(Transfer, transfer.id)
        assert current is not None
        assert current.status == TransferStatus.CANCELLED
        assert await balances(session, sender, clock.now()) == ((PAYMENTS_FUNDS, 0), (SERVICE_FUNDS, 0))
    assert await _jobs(db, service.SEND_JOB) == []


async def test_an_expired_code_says_so_and_a_new_one_replaces_it(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, old = await _pending(db, settings, clock, "xs-exp")
    clock.advance(otp.OTP_TTL)
    with pytest.raises(service.CodeExpired):
        await _authorize(db, sender, transfer, old, settings, clock)
    async with db.transaction() as session:
        await service.resend_otp(session, sender.who, transfer.id, settings=settings, now=clock.now())
        new = await last_code(session, sender.email)
    if new != old:  # one in a million they are the same; then the old one is the new one
        with pytest.raises(service.WrongCode):
            await _authorize(db, sender, transfer, old, settings, clock)
    clock.advance(otp.OTP_TTL - timedelta(seconds=1))
    done = await _authorize(db, sender, transfer, new, settings, clock)
    assert done.status == TransferStatus.PROCESSING


async def test_resends_are_at_most_three_and_30_seconds_apart(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, _code = await _pending(db, settings, clock, "xs-resend")
    clock.advance(10)
    async with db.transaction() as session:
        with pytest.raises(service.ResendRefused) as early:
            await service.resend_otp(session, sender.who, transfer.id, settings=settings, now=clock.now())
    assert early.value.headers["Retry-After"] == "20"
    for _ in range(otp.MAX_RESENDS):
        clock.advance(otp.RESEND_INTERVAL)
        async with db.transaction() as session:
            await service.resend_otp(session, sender.who, transfer.id, settings=settings, now=clock.now())
    clock.advance(otp.RESEND_INTERVAL)
    async with db.transaction() as session:
        with pytest.raises(service.ResendRefused, match="3 times"):
            await service.resend_otp(session, sender.who, transfer.id, settings=settings, now=clock.now())
    assert len(await _jobs(db, service.OTP_SMS_JOB)) == 1 + otp.MAX_RESENDS


async def test_a_transfer_nobody_authorises_is_cancelled_and_its_funds_released(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    sender, transfer, _code = await _pending(db, settings, clock, "xs-ttl")
    [job] = await _jobs(db, service.EXPIRE_JOB)
    assert job.run_at - transfer.created_at == service.PENDING_TTL
    clock.advance(service.PENDING_TTL)
    async with db.transaction() as session:
        assert await service.expire(session, transfer.id, now=clock.now())
        assert not await service.expire(session, transfer.id, now=clock.now())
        assert await balances(session, sender, clock.now()) == ((PAYMENTS_FUNDS, 0), (SERVICE_FUNDS, 0))


async def test_a_transfer_for_more_than_the_wallet_holds_is_refused_and_holds_nothing(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        sender = await make_sender(session, "xs-poor", now=clock.now())
        with pytest.raises(service.InsufficientBalance) as refused:
            await service.create_transfer(
                session, sender.who, _asked("100000.01"), settings=settings, now=clock.now()
            )
        assert refused.value.errors[0].field == "amount"


@pytest.mark.parametrize(
    ("account", "words"),
    [
        ("9991234567", "no bank has code 999"),
        (KCB_ACCOUNT, "/api/v2/withdraw"),
        ("9011234567", "mobile-money"),
    ],
)
async def test_an_account_the_bank_rail_does_not_serve_is_refused_naming_the_account(
    db: Database, settings: Settings, clock: FrozenClock, account: str, words: str
) -> None:
    async with db.transaction() as session:
        sender = await make_sender(session, f"xs-{account[:3]}", now=clock.now())
        with pytest.raises(ValidationFailed) as refused:
            await service.create_transfer(
                session, sender.who, _asked(account=account), settings=settings, now=clock.now()
            )
        assert refused.value.errors[0].field == "accountNumber"
        assert words in refused.value.detail
        assert await session.scalar(select(Transfer.id)) is None
