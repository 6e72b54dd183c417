"""Daraja's answer to a collection: the guarded move to SUCCESS or FAILED, the books, the review
of an answer that is not what was asked, and the merchant's callback.

What callers can rely on:
- A collection reaches SUCCESS or FAILED exactly once (a guarded UPDATE); only that
  transition posts the journal, settles or releases the fee hold and queues the
  merchant's callback. Repeated and late Daraja callbacks change nothing.
- A Daraja callback is checked against the request before anything moves: one whose
  CheckoutRequestID or MerchantRequestID is not this collection's is refused
  (``CallbackMismatch``, nothing changes); a success whose Amount or PhoneNumber is not what
  was asked puts the collection in REVIEW (nothing credited, the fee still held, the merchant
  not told) until an operator accepts or rejects it (``accept_review``, ``reject_review``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import repository
from malipo.collections.models import (
    CLOSED_STATES,
    ChannelType,
    Collection,
    CollectionPurpose,
    CollectionStatus,
)
from malipo.collections.service import channels
from malipo.collections.service.common import (
    CALLBACK_SUBJECT,
    MOBILE_NETWORKS,
    CallbackMismatch,
    CollectionNotFound,
    UnknownCallbackToken,
    merchant_wallet_id,
)
from malipo.core.clock import Clock
from malipo.core.crypto import sha256_hex
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.db.group_commit import GroupCommit
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.reviews import records as reviews
from malipo.reviews.models import ReviewKind
from malipo.reviews.records import NotInReview
from malipo.webhooks import service as webhooks

log = get_logger("malipo.collections")


@dataclass(frozen=True, slots=True)
class Outcome:
    result_code: int
    result_desc: str
    receipt: str | None = None
    merchant_request_id: str | None = None
    # From a callback: Daraja's CheckoutRequestID, and what it says was paid (compared with
    # what was asked before a success counts). None: an answer malipo asked for (STK query).
    checkout_request_id: str | None = None
    received: reviews.Received | None = None


def callback_mismatch(collection: Collection, outcome: Outcome) -> str | None:
    """Which of Daraja's ids in a callback are not this collection's; None if they are (an id
    malipo has not stored yet cannot be compared: its worker may not have written Daraja's reply)."""
    wrong = []
    stored = collection.provider_checkout_request_id
    if stored is not None and outcome.checkout_request_id != stored:
        wrong.append("CheckoutRequestID")
    if (
        collection.merchant_request_id is not None
        and outcome.merchant_request_id != collection.merchant_request_id
    ):
        wrong.append("MerchantRequestID")
    return " and ".join(wrong) or None


async def collection_for_token(session: AsyncSession, token: str) -> Collection:
    found = await repository.by_token_hash(session, sha256_hex(token))
    if found is None:
        raise UnknownCallbackToken("no collection has this callback address")
    return found


async def collection_for_reference(
    session: AsyncSession, reference: str, *, modes: frozenset[str], network_code: str
) -> Collection | None:
    """The collection a rail's callback names by our reference (rails whose callback address is
    one for the whole app: Airtel), when it is on that rail's network and in one of the ``modes``
    that address may settle; None otherwise."""
    found = await repository.by_our_reference(session, reference)
    if found is None or found.mode not in modes or found.network_code != network_code:
        return None
    return found


async def finish(session: AsyncSession, collection: Collection, outcome: Outcome, *, now: datetime) -> bool:
    """Move the collection to SUCCESS or FAILED once; False if it was final already (nothing changes)."""
    locked = await repository.locked(session, collection.id)
    if locked is None:
        raise CollectionNotFound(f"no collection {collection.id}")
    (moved,) = await _finish_locked(session, [(locked, outcome)], now)
    return moved


CallbackAnswer = bool | UnknownCallbackToken | CallbackMismatch


async def finish_by_tokens(
    session: AsyncSession, callbacks: list[tuple[str, Outcome]], *, now: datetime
) -> list[CallbackAnswer]:
    """``finish`` for the rails' callbacks, by their collection's token: for each, whether it moved its
    collection (False: final already), UnknownCallbackToken, or CallbackMismatch when its ids are
    another request's (nothing changes). One SELECT and one UPDATE of the collections, and one
    statement of each kind in the ledger, for all of them."""
    hashes = [sha256_hex(token) for token, _outcome in callbacks]
    found = await repository.locked_by_token_hashes(session, set(hashes))
    answers: list[CallbackAnswer | None] = [None] * len(callbacks)
    known: list[tuple[Collection, Outcome]] = []
    known_at: list[int] = []
    for index, (digest, (_token, outcome)) in enumerate(zip(hashes, callbacks, strict=True)):
        collection = found.get(digest)
        if collection is None:
            answers[index] = UnknownCallbackToken("no collection has this callback address")
            continue
        wrong = callback_mismatch(collection, outcome)
        if wrong is not None:
            log.warning(
                "callback.mismatch", network_code=collection.network_code, kind="collection",
                reference=collection.reference,
                fields=wrong, result_code=outcome.result_code,
            )  # fmt: skip
            answers[index] = CallbackMismatch(f"the callback's {wrong} is not this request's")
            continue
        known.append((collection, outcome))
        known_at.append(index)
    for index, moved in zip(known_at, await _finish_locked(session, known, now), strict=True):
        answers[index] = moved
    return [answer for answer in answers if answer is not None]


CallbackWriter = GroupCommit[tuple[str, Outcome], CallbackAnswer]


def callback_writer(db: Database, clock: Clock) -> CallbackWriter:
    """The process's collection callbacks (every rail's), applied many to a transaction
    (``finish_by_tokens``): each success books into the same clearing account and merchant wallet
    rows."""

    async def apply(session: AsyncSession, callbacks: list[tuple[str, Outcome]]) -> list[CallbackAnswer]:
        return await finish_by_tokens(session, callbacks, now=clock.now())

    return GroupCommit(db, apply, name="collection callbacks", max_batch=256, alone_after_failure=True)


async def _finish_locked(
    session: AsyncSession, outcomes: list[tuple[Collection, Outcome]], now: datetime
) -> list[bool]:
    """Each collection (locked, current) to its outcome's state, unless final or held for
    review; whether it moved. A success that is not what was asked goes to REVIEW instead.

    A collection twice in the list moves once: its first outcome counts.
    """
    moved = []
    finishing = []
    for collection, outcome in outcomes:
        if collection.status in CLOSED_STATES:
            log.info(
                "collection.already_final", reference=collection.reference, status=collection.status,
                result_code=outcome.result_code,
            )  # fmt: skip
            moved.append(False)
            continue
        collection.result_code = outcome.result_code
        collection.result_desc = outcome.result_desc[:300]
        collection.mpesa_receipt = outcome.receipt
        collection.updated_at = now
        collection.merchant_request_id = collection.merchant_request_id or outcome.merchant_request_id
        collection.provider_checkout_request_id = (
            collection.provider_checkout_request_id or outcome.checkout_request_id
        )
        moved.append(True)
        if outcome.result_code == 0 and outcome.received is not None:
            differs = reviews.differences(collection.amount, collection.phone, outcome.received)
            if differs:
                collection.status = CollectionStatus.REVIEW
                reviews.open_review(
                    session, kind=ReviewKind.COLLECTION, subject_id=collection.id,
                    client_id=collection.client_id, mode=collection.mode, reference=collection.reference,
                    asked_amount=collection.amount, currency=collection.currency,
                    asked_party=collection.phone, received=outcome.received, receipt=outcome.receipt,
                    reason="; ".join(differs), now=now,
                )  # fmt: skip
                continue
        collection.status = CollectionStatus.SUCCESS if outcome.result_code == 0 else CollectionStatus.FAILED
        collection.completed_at = now
        finishing.append(collection)
    await _settled(session, finishing, now)
    return moved


# Called, in the same transaction, with the collections that have just become SUCCESS or FAILED
# (after their books): a higher domain that collects through collections (checkout's sessions)
# registers one to follow its own (by ``purpose``, without a query for the others).
FinishListener = Callable[[AsyncSession, list[Collection], datetime], Awaitable[None]]
_finish_listeners: list[FinishListener] = []


def on_finished(listener: FinishListener) -> None:
    if listener not in _finish_listeners:
        _finish_listeners.append(listener)


async def _settled(session: AsyncSession, finishing: list[Collection], now: datetime) -> None:
    """The books and the merchant's callback of collections just made SUCCESS or FAILED."""
    await _book(session, finishing, now)
    for listener in _finish_listeners:
        await listener(session, finishing, now)
    for collection in finishing:
        if collection.callback_url:
            webhooks.queue(
                session, client_id=collection.client_id, mode=collection.mode,
                event=f"collection.{collection.status.lower()}", subject_reference=collection.reference,
                url=collection.callback_url, subject=(CALLBACK_SUBJECT, collection.id), now=now,
            )  # fmt: skip
        log.info(
            "collection.finished", reference=collection.reference, status=collection.status,
            result_code=collection.result_code,
        )  # fmt: skip
    await session.flush()


async def book_collected(session: AsyncSession, collected: list[Collection], *, now: datetime) -> None:
    """Book collections stored SUCCESS already (payments the payer started: C2B) as a success
    callback books one: the money into the channel's account, the fee from its hold, the
    listeners, the merchant's callback. Call once per collection, in the transaction that stored it."""
    await _settled(session, collected, now)


# What a collection rejected on review ends with (the code is malipo's, not Daraja's).
REJECTED_ON_REVIEW = 9001


async def _reviewed(session: AsyncSession, collection_id: uuid.UUID, values: dict[str, Any]) -> Collection:
    """Move a collection out of REVIEW: NotInReview, and nothing changes, if it is not in REVIEW."""
    return await reviews.leave_review(
        session,
        Collection,
        collection_id,
        values,
        NotInReview(f"collection {collection_id} is not held for review"),
    )


async def get_collections(session: AsyncSession, ids: list[uuid.UUID]) -> list[Collection]:
    """Collections by id (for jobs and renderers, which carry ids malipo made)."""
    return await repository.by_ids(session, ids)


async def accept_review(
    session: AsyncSession, collection_id: uuid.UUID, received_amount: int | None, *, now: datetime
) -> Collection:
    """An operator accepts what Daraja says was paid: the collection becomes SUCCESS for the
    received amount (credited with one balanced journal, the fee taken from its hold) and the
    merchant is told. ``received_amount`` None (Daraja did not say): the amount asked."""
    values: dict[str, Any] = {"status": CollectionStatus.SUCCESS, "completed_at": now, "updated_at": now}
    if received_amount is not None:
        values["amount"] = received_amount
    collection = await _reviewed(session, collection_id, values)
    await _settled(session, [collection], now)
    return collection


async def reject_review(session: AsyncSession, collection_id: uuid.UUID, *, now: datetime) -> Collection:
    """An operator rejects the payment: the collection FAILS, nothing is credited, the fee hold
    is released and the merchant is told it failed."""
    collection = await _reviewed(
        session, collection_id,
        {"status": CollectionStatus.FAILED, "result_code": REJECTED_ON_REVIEW,
         "result_desc": "Rejected on review: what M-Pesa reported differs from the request",
         "completed_at": now, "updated_at": now},
    )  # fmt: skip
    await _settled(session, [collection], now)
    return collection


async def _book(session: AsyncSession, finished: list[Collection], now: datetime) -> None:
    """The books of newly final collections: a success's money in and its fee taken from the
    held service wallet funds, a failure's fee hold released."""
    released = [c.fee_hold_id for c in finished if c.status == CollectionStatus.FAILED and c.fee_hold_id]
    await ledger.release_holds(session, released, now=now)
    entries = []
    fees = []
    journal_ids: dict[Collection, uuid.UUID] = {}  # set on the collections once the journals exist
    for collection in (c for c in finished if c.status == CollectionStatus.SUCCESS):
        clearing_id = await ledger.system_account_id(
            session, AccountKind.MOBILE_MONEY_CLEARING, collection.currency, collection.mode, now
        )
        target_id, kind = await _booking_target(session, collection, now)
        journal_ids[collection] = new_id()
        entries.append(
            ledger.Entry(
                [
                    ledger.Leg(clearing_id, -collection.amount, collection.currency),
                    ledger.Leg(target_id, collection.amount, collection.currency),
                ],
                kind=kind,
                description=_journal_description(collection),
                mode=collection.mode,
                client_id=collection.client_id,
                idempotency_key=f"collection:{collection.id}",
                details={"reference": collection.reference, "channel_id": collection.channel_id},
                journal_id=journal_ids[collection],
            )
        )
        if collection.fee_hold_id is not None:
            revenue_id = await ledger.system_account_id(
                session, AccountKind.FEE_REVENUE, collection.currency, collection.mode, now
            )
            revenue = [ledger.Leg(revenue_id, collection.fee, collection.currency)]
            settlement = ledger.Settlement(
                collection.fee_hold_id, revenue, "collection_fee", f"Transaction fee {collection.reference}",
                collection.mode, collection.client_id, f"collection-fee:{collection.id}",
            )  # fmt: skip
            fees.append(settlement)
    await ledger.settle_holds(session, fees, now=now, before=entries)
    for collection, journal_id in journal_ids.items():
        collection.journal_id = journal_id


def _journal_description(collection: Collection) -> str:
    """``M-Pesa SGR7… from 2547…`` (``Airtel Money MP2406… from …`` on Airtel)."""
    network = MOBILE_NETWORKS.get(collection.network_code, "Mobile money")
    return f"{network} {collection.mpesa_receipt or ''} from {collection.phone}".replace("  ", " ")


async def _booking_target(
    session: AsyncSession, collection: Collection, now: datetime
) -> tuple[uuid.UUID, str]:
    """The account a successful collection is paid into, and the journal's kind."""
    channel_type = (
        await channels.channel_type(session, collection.channel_id) if collection.channel_id else None
    )
    if collection.purpose == CollectionPurpose.TOP_UP:
        wallet, kind = AccountKind.SERVICE_WALLET, "service_wallet_top_up"
    elif channel_type is None or channel_type == ChannelType.WALLET:
        wallet, kind = AccountKind.PAYMENTS_WALLET, "collection"
    else:  # paid straight to the merchant's own till/paybill/bank: recorded as settled there
        settled = await ledger.system_account_id(
            session, AccountKind.EXTERNAL_SETTLEMENT, collection.currency, collection.mode, now
        )
        return settled, "collection_to_own_channel"
    return await merchant_wallet_id(session, collection.client_id, collection.mode, wallet, now), kind


reviews.register_resolver(ReviewKind.COLLECTION, reviews.Resolver(accept=accept_review, reject=reject_review))
