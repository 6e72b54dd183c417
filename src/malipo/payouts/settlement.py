"""How a payout ends: SUCCESS or FAILED once, its holds settled or released in the same
transaction, the merchant's callback queued and the domains that pay through payouts told
(``on_finished``); or REVIEW, when what M-Pesa reports paid differs from the request, until an
operator accepts (``accept_review``) or rejects (``reject_review``) it.

``finish`` takes one payout; ``finish_locked`` many, locked and read afresh (a group commit of
results): their state changes are flushed together and their books written with one ledger
statement of each kind for all.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import banks, repository
from malipo.payouts.models import PAYOUT_CLOSED_STATES, Payout, PayoutStatus
from malipo.reviews import records as reviews
from malipo.reviews.models import ReviewKind
from malipo.webhooks import service as webhooks

log = get_logger("malipo.payouts")

# The kind of a merchant callback about a payout (``webhooks.queue``'s subject).
CALLBACK_SUBJECT = "payout"


@dataclass(frozen=True, slots=True)
class Outcome:
    result_code: int
    result_desc: str
    transaction_id: str | None = None
    conversation_id: str | None = None
    # From a success result: what M-Pesa says it paid, compared with what was asked first.
    received: reviews.Received | None = None


class ReceivedAboveHold(Conflict):
    code = "received_above_hold"
    title = "M-Pesa reports more than was held"


# Called, in the same transaction, with the payouts that have just become SUCCESS or FAILED (after
# their books): a higher domain that pays through payouts (transfers' bulk mobile entries,
# disbursement batches) registers one to follow its own rows.
FinishListener = Callable[[AsyncSession, list[Payout], datetime], Awaitable[None]]
_finish_listeners: list[FinishListener] = []


def on_finished(listener: FinishListener) -> None:
    if listener not in _finish_listeners:
        _finish_listeners.append(listener)


async def finish(session: AsyncSession, payout: Payout, outcome: Outcome, *, now: datetime) -> bool:
    """Settle (SUCCESS) or release (FAILED) once; False if the payout was final already (or held
    for review). A success that is not what was asked goes to REVIEW: the holds stay."""
    locked = await repository.locked(session, payout.id)
    if locked is None:
        return False
    (moved,) = await finish_locked(session, [(locked, outcome)], now=now)
    return moved


async def finish_locked(
    session: AsyncSession, outcomes: list[tuple[Payout, Outcome]], *, now: datetime
) -> list[bool]:
    """``finish`` for payouts locked and read afresh: whether each moved. Their state changes are
    written by the session's flush, their books with one ledger statement of each kind for all.
    A payout twice in the list moves once: its first outcome counts."""
    moved: list[bool] = []
    finishing: list[Payout] = []
    for payout, outcome in outcomes:
        if payout.status in PAYOUT_CLOSED_STATES:
            log.info("payout.already_final", reference=payout.reference, result_code=outcome.result_code)
            moved.append(False)
            continue
        moved.append(True)
        status = PayoutStatus.SUCCESS if outcome.result_code == 0 else PayoutStatus.FAILED
        differs: list[str] = []
        if status == PayoutStatus.SUCCESS and outcome.received is not None:
            differs = reviews.differences(payout.amount, payout.phone, outcome.received)
        payout.result_code = outcome.result_code
        payout.result_desc = outcome.result_desc[:300]
        payout.transaction_id = outcome.transaction_id
        payout.updated_at = now
        if outcome.conversation_id:
            payout.conversation_id = outcome.conversation_id
        if differs:
            payout.status = PayoutStatus.REVIEW
            assert outcome.received is not None
            reviews.open_review(
                session, kind=ReviewKind.PAYOUT, subject_id=payout.id, client_id=payout.client_id,
                mode=payout.mode, reference=payout.reference, asked_amount=payout.amount,
                currency=payout.currency, asked_party=payout.phone or payout.account_number,
                received=outcome.received, receipt=outcome.transaction_id, reason="; ".join(differs), now=now,
            )  # fmt: skip
            continue
        payout.status = status
        payout.completed_at = now
        finishing.append(payout)
    await _settled(session, finishing, now=now)
    await session.flush()
    return moved


async def _settle_or_release(
    session: AsyncSession, payout: Payout, *, now: datetime, held: int | None = None
) -> None:
    """The books and the merchant's callback of a payout just made SUCCESS or FAILED; ``held``:
    the amount held, when more than ``payout.amount`` left (the rest goes back to the wallet)."""
    await _settled(session, [payout], now=now, held={payout.id: held} if held is not None else None)


async def _settled(
    session: AsyncSession, payouts: list[Payout], *, now: datetime, held: dict[uuid.UUID, int] | None = None
) -> None:
    """The books, the merchant's callbacks and the listeners of payouts just made SUCCESS or
    FAILED: the successes' holds spent in one ``settle_holds``, the failures' released in one
    ``release_holds``."""
    if not payouts:
        return
    settlements: list[ledger.Settlement] = []
    journal_of: list[tuple[Payout, int]] = []  # each success and its amount's settlement
    released: list[uuid.UUID] = []
    for payout in payouts:
        if payout.status != PayoutStatus.SUCCESS:
            released += [payout.hold_id] + ([payout.fee_hold_id] if payout.fee_hold_id is not None else [])
            continue
        clearing_kind = (
            AccountKind.MOBILE_MONEY_CLEARING if payout.channel == "mobile" else AccountKind.BANK_CLEARING
        )
        clearing = await ledger.system_account_id(session, clearing_kind, payout.currency, payout.mode, now)
        legs = [ledger.Leg(clearing, payout.amount, payout.currency)]
        was_held = (held or {}).get(payout.id)
        if was_held is not None and was_held > payout.amount:
            wallet = await ledger.merchant_wallet(
                session, payout.client_id, AccountKind.PAYMENTS_WALLET, payout.currency, payout.mode, now
            )
            legs.append(ledger.Leg(wallet.id, was_held - payout.amount, payout.currency))
        journal_of.append((payout, len(settlements)))
        settlements.append(
            ledger.Settlement(
                payout.hold_id, legs, "payout", f"Payout {payout.reference} to {payout_destination(payout)}",
                payout.mode, payout.client_id, f"payout:{payout.id}",
            )
        )  # fmt: skip
        if payout.fee_hold_id is not None:
            revenue = await ledger.system_account_id(
                session, AccountKind.FEE_REVENUE, payout.currency, payout.mode, now
            )
            settlements.append(
                ledger.Settlement(
                    payout.fee_hold_id, [ledger.Leg(revenue, payout.fee, payout.currency)], "payout_fee",
                    f"Withdrawal fee {payout.reference}", payout.mode, payout.client_id,
                    f"payout-fee:{payout.id}",
                )
            )  # fmt: skip
    if settlements:
        posted = await ledger.settle_holds(session, settlements, now=now)
        for payout, index in journal_of:
            payout.journal_id = posted[index].journal.id
    if released:
        await ledger.release_holds(session, released, now=now)
    for payout in payouts:
        if payout.callback_url:
            webhooks.queue(
                session, client_id=payout.client_id, mode=payout.mode,
                event=f"payout.{payout.status.lower()}", subject_reference=payout.reference,
                url=payout.callback_url, subject=(CALLBACK_SUBJECT, payout.id), now=now,
            )  # fmt: skip
    await session.flush()
    for listener in _finish_listeners:
        await listener(session, payouts, now)
    for payout in payouts:
        code = payout.result_code
        log.info("payout.finished", reference=payout.reference, status=payout.status, result_code=code)


REJECTED_ON_REVIEW = 9001  # malipo's code for a payout an operator rejected on review


async def _reviewed(session: AsyncSession, payout_id: uuid.UUID, values: dict[str, Any]) -> Payout:
    """Move a payout out of REVIEW; NotInReview, and nothing changes, if it is not in REVIEW."""
    return await reviews.leave_review(
        session, Payout, payout_id, values, reviews.NotInReview(f"payout {payout_id} is not held for review")
    )


async def accept_review(
    session: AsyncSession, payout_id: uuid.UUID, received_amount: int | None, *, now: datetime
) -> Payout:
    """An operator accepts what M-Pesa reports: SUCCESS for the received amount (None: the amount
    asked), settled from the hold with the rest released to the payments wallet; the fee is taken
    as held. More than the hold is refused (ReceivedAboveHold) and nothing changes."""
    current = await repository.fresh(session, payout_id)
    if current is None or current.status != PayoutStatus.REVIEW:
        raise reviews.NotInReview(f"payout {payout_id} is not held for review")
    held = current.amount
    paid = held if received_amount is None else received_amount
    if paid > held:
        raise ReceivedAboveHold(
            f"M-Pesa reports {Money(paid, current.currency)} paid, more than the "
            f"{Money(held, current.currency)} held: reject it, or settle the difference by hand"
        )
    values = {"status": PayoutStatus.SUCCESS, "amount": paid, "completed_at": now, "updated_at": now}
    payout = await _reviewed(session, payout_id, values)
    await _settle_or_release(session, payout, now=now, held=held)
    return payout


async def reject_review(session: AsyncSession, payout_id: uuid.UUID, *, now: datetime) -> Payout:
    """An operator rejects the result (M-Pesa confirms the money did not go, or it was reversed):
    FAILED, both holds released, the merchant told it failed."""
    payout = await _reviewed(
        session, payout_id,
        {"status": PayoutStatus.FAILED, "result_code": REJECTED_ON_REVIEW,
         "result_desc": "Rejected on review: what M-Pesa reported differs from the request",
         "completed_at": now, "updated_at": now},
    )  # fmt: skip
    await _settle_or_release(session, payout, now=now)
    return payout


def payout_destination(payout: Payout) -> str:
    """Where the money went, for people: the phone, or the bank and account."""
    if payout.channel == "bank":
        return (
            f"{banks.bank_name(payout.network_code) or payout.network_code} account {payout.account_number}"
        )
    return payout.phone or ""


reviews.register_resolver(ReviewKind.PAYOUT, reviews.Resolver(accept=accept_review, reject=reject_review))
