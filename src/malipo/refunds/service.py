"""Refunds of collections by the rail's reversal: hold, ask the rail, then spend or release.

What callers can rely on:
- ``request_refund`` refunds only a SUCCESS collection of the caller's whose money is in malipo
  (booked into the payments wallet), on a rail that reverses (M-Pesa); anything else is refused
  with a 409 saying why, and nothing changes. It locks the collection row, so concurrent refunds
  queue: the refunds of a collection (pending and completed) never add up to more than it
  collected. The amount is held on the payments wallet and the reversal queued as an outbox job,
  all in the caller's transaction.
- ``apply_result`` takes the rail's result once: a result whose ids, amount or receipt are not
  the refund's is refused (``ResultMismatch``, nothing changes); a success spends the hold in one
  journal (payments wallet → the rail's clearing account), a failure releases it; a repeated
  result changes nothing. The merchant is told (``refund.completed`` / ``refund.failed``) at the
  collection's callback URL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.models import Collection, CollectionStatus
from malipo.config import Settings
from malipo.core.crypto import sha256_hex
from malipo.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.providers.base import ReversalOutcome, Status
from malipo.providers.registry import MOBILE_NETWORKS, mobile_money_for
from malipo.refunds.models import Refund, RefundStatus
from malipo.webhooks import service as webhooks
from malipo.worker.registry import enqueue

log = get_logger("malipo.refunds")

REVERSE_JOB = "refund.reverse"
CALLBACK_PURPOSE = "daraja-reversal"
# malipo's own code for a refund whose reversal never reached the rail.
NOT_SENT = "1099"
_MINOR_PER_SHILLING = 100


class NotRefundable(Conflict):
    code = "not_refundable"
    title = "The collection cannot be refunded"


class RefundAboveRemainder(ValidationFailed):
    code = "refund_above_remainder"
    title = "The refund is more than is left to refund"


class RefundNotFound(NotFound):
    code = "refund_not_found"
    title = "No such refund"


class ResultMismatch(Conflict):
    """The rail's result names another request, amount or receipt than the refund's."""

    code = "callback_mismatch"
    title = "The callback does not match the request"


class UnknownRefundToken(NotFound):
    code = "unknown_callback"
    title = "Unknown callback"


def callback_token(settings: Settings, refund_id: uuid.UUID) -> str:
    """The secret in the reversal's ResultURL (derived: stored nowhere but as its hash)."""
    return collections.callback_token(settings, refund_id, purpose=CALLBACK_PURPOSE)


async def refunded_so_far(session: AsyncSession, collection_id: uuid.UUID) -> int:
    """What the collection's pending and completed refunds add up to (minor units)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.collection_id == collection_id,
            Refund.status.in_([RefundStatus.PENDING, RefundStatus.COMPLETED]),
        )
    )
    return int(total or 0)


async def _check_refundable(session: AsyncSession, collection: Collection, settings: Settings) -> None:
    network = MOBILE_NETWORKS.get(collection.network_code, collection.network_code)
    if collection.status != CollectionStatus.SUCCESS:
        raise NotRefundable(
            f"collection {collection.reference} is {collection.status}: only a SUCCESS collection is refunded"
        )
    if not mobile_money_for(settings, collection.network_code, collection.mode).reverses:
        raise NotRefundable(
            f"{network} collections cannot be refunded through malipo: its rail offers no reversal;"
            " refund the payer by a payout (POST /api/v2/withdraw) instead"
        )
    where = await collections.paid_into(session, collection)
    if where == collections.OWN_CHANNEL:
        raise NotRefundable(
            f"collection {collection.reference} was paid into your own till/paybill, not into malipo:"
            " reverse it from your M-Pesa org portal"
        )
    if where == collections.SERVICE_WALLET:
        raise NotRefundable(
            f"collection {collection.reference} topped up your service wallet: it is not refunded"
        )
    if not collection.mpesa_receipt:
        raise NotRefundable(f"collection {collection.reference} has no receipt from {network} to reverse")


async def request_refund(
    session: AsyncSession, who: Principal, collection_ref: str, *, amount: int | None, reason: str,
    settings: Settings, now: datetime,
) -> Refund:  # fmt: skip
    """Hold the amount and queue the reversal; ``amount`` None refunds all that is left."""
    assert who.client_id is not None
    mode = who.mode.value
    collection = await collections.locked_collection_of(session, who.client_id, mode, collection_ref)
    await _check_refundable(session, collection, settings)
    left = collection.amount - await refunded_so_far(session, collection.id)
    if left <= 0:
        raise NotRefundable(f"collection {collection.reference} is already refunded in full")
    wanted = left if amount is None else amount
    if wanted > left:
        currency = collection.currency
        raise RefundAboveRemainder.for_field(
            "amount",
            f"{Money(wanted, currency)} is more than the {Money(left, currency)} left to refund of"
            f" {Money(collection.amount, currency)} collected",
        )
    if wanted % _MINOR_PER_SHILLING:
        raise ValidationFailed.for_field("amount", "M-Pesa reverses whole shillings only")
    wallet_id = await collections.payments_wallet_id(session, who.client_id, mode, now)
    reference = new_reference()
    try:
        hold = await ledger.place_hold(session, wallet_id, wanted, reference=f"refund:{reference}", now=now)
    except ledger.InsufficientFunds as exc:
        raise NotRefundable(
            f"the payments wallet cannot cover the refund: {exc}",
            errors=[FieldError("amount", "more than the payments wallet has available")],
        ) from None
    refund_id = new_id()
    refund = Refund(
        id=refund_id, client_id=who.client_id, mode=mode, collection_id=collection.id, reference=reference,
        amount=wanted, currency=collection.currency, reason=reason, status=RefundStatus.PENDING,
        callback_token_hash=sha256_hex(callback_token(settings, refund_id)), hold_id=hold.id,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(refund)
    await session.flush()
    enqueue(session, REVERSE_JOB, {"refund_id": str(refund_id)}, now=now)
    log.info("refund.queued", reference=reference, collection=collection.reference, amount=wanted)
    return refund


async def get_refund(session: AsyncSession, who: Principal, refund_id: uuid.UUID) -> Refund:
    found = await session.scalar(
        select(Refund).where(
            Refund.id == refund_id, Refund.client_id == who.client_id, Refund.mode == who.mode.value
        )
    )
    if found is None:
        raise RefundNotFound.for_field("id", f"no refund {refund_id}")
    return found


async def refunds_of(
    session: AsyncSession, who: Principal, collection_ref: str
) -> tuple[Collection, list[Refund]]:
    """The caller's collection and its refunds, oldest first (404 for another's collection)."""
    assert who.client_id is not None
    collection = await collections.collection_of(session, who.client_id, who.mode.value, collection_ref)
    rows = await session.scalars(
        select(Refund).where(Refund.collection_id == collection.id).order_by(Refund.created_at, Refund.id)
    )
    return collection, list(rows.all())


async def refund_for_token(session: AsyncSession, token: str) -> Refund:
    found = await session.scalar(select(Refund).where(Refund.callback_token_hash == sha256_hex(token)))
    if found is None:
        raise UnknownRefundToken("no refund has this callback address")
    return found


def check_result(refund: Refund, collection: Collection, result: ReversalOutcome) -> None:
    """``ResultMismatch`` naming what differs when the result is not this refund's."""
    wrong = []
    if refund.conversation_id is not None and result.provider_reference != refund.conversation_id:
        wrong.append("ConversationID")
    if refund.originator_conversation_id is not None and result.our_id != refund.originator_conversation_id:
        wrong.append("OriginatorConversationID")
    if result.status == Status.SUCCEEDED:
        if result.amount is not None and result.amount != refund.amount:
            wrong.append("Amount")
        if result.original_receipt is not None and result.original_receipt != collection.mpesa_receipt:
            wrong.append("OriginalTransactionID")
    if wrong:
        what = " and ".join(wrong)
        log.warning("callback.mismatch", kind="refund", reference=refund.reference, fields=what)
        raise ResultMismatch(f"the callback's {what} is not this refund's")


async def apply_result(
    session: AsyncSession, refund: Refund, result: ReversalOutcome, *, now: datetime
) -> bool:
    """Record the rail's result once (see the module docstring); False if the refund was final."""
    collection = await session.get(Collection, refund.collection_id)
    assert collection is not None
    check_result(refund, collection, result)
    succeeded = result.status == Status.SUCCEEDED
    return await finish(
        session, refund, succeeded=succeeded, result_code=result.result_code, result_desc=result.result_desc,
        receipt=result.receipt if succeeded else None, now=now,
        conversation_id=result.provider_reference, originator_conversation_id=result.our_id,
    )  # fmt: skip


async def finish(
    session: AsyncSession, refund: Refund, *, succeeded: bool, result_code: str, result_desc: str,
    now: datetime, receipt: str | None = None, conversation_id: str | None = None,
    originator_conversation_id: str | None = None,
) -> bool:  # fmt: skip
    """PENDING → COMPLETED (journal, hold spent) or FAILED (hold released), once.

    A result's conversation ids are kept where none is stored yet: M-Pesa's result can arrive before the
    worker has recorded the acknowledgement that carried them.
    """
    status = RefundStatus.COMPLETED if succeeded else RefundStatus.FAILED
    known_ids: dict[str, Any] = {}
    if conversation_id:
        known_ids["conversation_id"] = func.coalesce(Refund.conversation_id, conversation_id[:60])
    if originator_conversation_id:
        known_ids["originator_conversation_id"] = func.coalesce(
            Refund.originator_conversation_id, originator_conversation_id[:100]
        )
    moved = await session.execute(
        update(Refund)
        .where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING)
        .values(
            status=status,
            result_code=result_code[:20],
            result_desc=result_desc[:300],
            reversal_receipt=receipt,
            updated_at=now,
            completed_at=now,
            **known_ids,
        )
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        log.info("refund.already_final", reference=refund.reference, result_code=result_code)
        return False
    await session.refresh(refund)
    if succeeded:
        clearing = await collections.clearing_account_id(session, refund.currency, refund.mode, now)
        posted = await ledger.settle_hold(
            session, refund.hold_id, [ledger.Leg(clearing, refund.amount, refund.currency)],
            kind="refund", description=f"Refund {refund.reference} by reversal {receipt or ''}".strip(),
            mode=refund.mode, now=now, client_id=refund.client_id, idempotency_key=f"refund:{refund.id}",
        )  # fmt: skip
        refund.journal_id = posted.journal.id
    else:
        await ledger.release_hold(session, refund.hold_id, now=now)
    await _tell_merchant(session, refund, now)
    await session.flush()
    log.info("refund.finished", reference=refund.reference, status=status, result_code=result_code)
    return True


async def _tell_merchant(session: AsyncSession, refund: Refund, now: datetime) -> None:
    collection = await session.get(Collection, refund.collection_id)
    if collection is None or not collection.callback_url:
        return
    event = f"refund.{refund.status}"
    payload = {"event": event, "data": refund_view(refund, collection)}
    webhooks.queue(
        session, client_id=refund.client_id, mode=refund.mode, event=event,
        subject_reference=refund.reference, url=collection.callback_url, now=now, payload=payload,
    )  # fmt: skip


def refund_view(refund: Refund, collection: Collection) -> dict[str, Any]:
    """The refund as the API and the merchant's callbacks show it (camelCase, major units)."""
    return {
        "id": str(refund.id), "reference": refund.reference, "collectionId": str(collection.id),
        "collectionReference": collection.reference, "amount": Money(refund.amount, refund.currency).format(),
        "currency": refund.currency, "reason": refund.reason, "status": refund.status,
        "mpesaReceipt": collection.mpesa_receipt, "reversalReceipt": refund.reversal_receipt,
        "conversationId": refund.conversation_id,
        "originatorConversationId": refund.originator_conversation_id,
        "resultCode": refund.result_code, "resultDesc": refund.result_desc,
        "createdAt": refund.created_at.isoformat(), "completedAt": refund.completed_at.isoformat()
        if refund.completed_at else None,
    }  # fmt: skip
