"""Collections by STK push: request, Daraja's answer, the books and the merchant's callback.

What callers can rely on:
- ``request_collection`` stores a QUEUED collection, holds its fee on the merchant's
  service wallet and enqueues the push, in the caller's transaction. The same
  ``external_reference`` from the same merchant and mode answers the first collection.
- A collection reaches SUCCESS or FAILED exactly once (a guarded UPDATE); only that
  transition posts the journal, settles or releases the fee hold and queues the
  merchant's callback. Repeated and late Daraja callbacks change nothing.
- A Daraja callback is checked against the request before anything moves: one whose
  CheckoutRequestID or MerchantRequestID is not this collection's is refused
  (``CallbackMismatch``, nothing changes); a success whose Amount or PhoneNumber is not what
  was asked puts the collection in REVIEW (nothing credited, the fee still held, the merchant
  not told) until an operator accepts or rejects it (``accept_review``, ``reject_review``).
- Amounts are whole units of the currency on the wire (Pay Hero and Daraja send integer
  shillings) and integer minor units inside.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.auth.authenticate import Credential, recheck
from malipo.collections.models import (
    CLOSED_STATES,
    TRANSACTION_TYPES,
    ChannelType,
    Collection,
    CollectionPurpose,
    CollectionStatus,
    PaymentChannel,
)
from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.core.crypto import derived_token, sha256_hex
from malipo.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.core.phones import InvalidNumber, mobile_money_number
from malipo.db import Database, cache_after_commit, cached, forget_cached
from malipo.db.group_commit import GroupCommit
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.reviews import records as reviews
from malipo.reviews.models import ReviewKind
from malipo.webhooks import service as webhooks
from malipo.worker.registry import enqueue_many

log = get_logger("malipo.collections")

SEND_JOB = "collection.send"
RECONCILE_JOB = "collection.reconcile"
CURRENCY = "KES"
MOBILE_NETWORKS = {"63902": "M-Pesa", "63903": "Airtel Money", "63907": "T-Kash"}
MAX_AMOUNT = 250_000  # M-Pesa's largest single transaction, in shillings


class InactiveChannel(ValidationFailed):
    code = "inactive_channel"
    title = "The payment channel is not active"


class ServiceWalletTooLow(ValidationFailed):
    code = "insufficient_service_wallet"
    title = "The service wallet cannot cover the fee"


class CollectionNotFound(NotFound):
    code = "transaction_not_found"
    title = "No such transaction"


class UnknownCallbackToken(NotFound):
    code = "unknown_callback"
    title = "Unknown callback"


class CallbackMismatch(Conflict):
    """A provider's callback names another request than the one its address belongs to."""

    code = "callback_mismatch"
    title = "The callback does not match the request"


class NotInReview(Conflict):
    code = "not_in_review"
    title = "The item is not held for review"


# -- phones and fees ---------------------------------------------------------------------


def normalise_phone(raw: str, *, field: str = "phone_number", region: str = "KE") -> str:
    """``07…``, ``2547…`` or ``+2547…`` as Daraja wants it: ``2547XXXXXXXX`` (no plus).

    Read by the same rule as every phone number (``messaging.phones``); mobile money also
    needs a mobile number of ``region`` (M-Pesa, Airtel Money and T-Kash: Kenya).
    """
    try:
        return mobile_money_number(raw, region).lstrip("+")
    except InvalidNumber as exc:
        raise ValidationFailed.for_field(field, str(exc)) from None


def _major(value: str, currency: str) -> Money:
    return Money.parse(value, currency, allow_zero=True)


def fee_for(amount: Money, *, percent: str, fixed: str, minimum: str, maximum: str) -> Money:
    """``percent`` of ``amount`` plus ``fixed``, kept within [``minimum``, ``maximum``]."""
    basis_points = int(Decimal(percent) * 100)
    fee = amount.percentage(basis_points) + _major(fixed, amount.currency)
    low, high = _major(minimum, amount.currency), _major(maximum, amount.currency)
    return min(max(fee, low), high)


async def collection_fee(
    session: AsyncSession, settings: Settings, client_id: uuid.UUID, amount: Money
) -> Money:
    """The merchant's own collection tariff if the operator set one, else the settings' defaults."""
    return await pricing.fee(session, settings, client_id, PricingKind.COLLECTION, amount)


# -- channels ----------------------------------------------------------------------------


async def wallet_channel(
    session: AsyncSession, client_id: uuid.UUID, mode: str, now: datetime
) -> PaymentChannel:
    """The merchant's payments-wallet channel in ``mode``, opened on first use."""
    query = select(PaymentChannel).where(
        PaymentChannel.client_id == client_id,
        PaymentChannel.mode == mode,
        PaymentChannel.channel_type == ChannelType.WALLET,
    )
    found = await session.scalar(query)
    if found is not None:
        return found
    channel = PaymentChannel(
        client_id=client_id, mode=mode, channel_type=ChannelType.WALLET, short_code="",
        account_number=None, description="Payments wallet", is_active=True, created_at=now, updated_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(channel)
            await session.flush()
    except IntegrityError:  # opened by a concurrent request: use that one
        found = await session.scalar(query)
        assert found is not None
        return found
    channel.short_code = str(channel.id)
    return channel


async def create_channel(
    session: AsyncSession,
    who: Principal,
    *,
    channel_type: str,
    short_code: str,
    account_number: str | None,
    description: str,
    now: datetime,
) -> PaymentChannel:
    if channel_type not in (ChannelType.PAYBILL, ChannelType.TILL, ChannelType.BANK):
        raise ValidationFailed.for_field("channel_type", "must be paybill, till or bank")
    if not (short_code.isascii() and short_code.isdigit()) or not 5 <= len(short_code) <= 10:
        raise ValidationFailed.for_field("short_code", "must be a paybill, till or bank paybill number")
    if channel_type == ChannelType.BANK and not account_number:
        raise ValidationFailed.for_field("account_number", "a bank channel needs the account number")
    assert who.client_id is not None
    channel = PaymentChannel(
        client_id=who.client_id, mode=who.mode.value, channel_type=channel_type, short_code=short_code,
        account_number=account_number or None, description=description, is_active=True,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(channel)
    await session.flush()
    return channel


async def list_channels(
    session: AsyncSession, who: Principal, *, is_active: bool | None, page: int, per: int, now: datetime
) -> tuple[list[PaymentChannel], int]:
    assert who.client_id is not None
    await wallet_channel(session, who.client_id, who.mode.value, now)
    query = select(PaymentChannel).where(
        PaymentChannel.client_id == who.client_id, PaymentChannel.mode == who.mode.value
    )
    if is_active is not None:
        query = query.where(PaymentChannel.is_active == is_active)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(query.order_by(PaymentChannel.id).offset((page - 1) * per).limit(per))
    return list(rows.all()), total


async def get_channel(session: AsyncSession, who: Principal, channel_id: int) -> PaymentChannel:
    channel = await session.get(PaymentChannel, channel_id)
    if channel is None or channel.client_id != who.client_id or channel.mode != who.mode.value:
        raise NotFound(f"no payment channel {channel_id}")
    return channel


async def _wallet_channel_id(session: AsyncSession, client_id: uuid.UUID, mode: str, now: datetime) -> int:
    """``wallet_channel(...).id``, cached once its transaction commits (the channel is permanent)."""
    key = (client_id, mode)
    found: int | None = cached(session, _WALLET_CHANNELS, key)
    if found is None:
        found = (await wallet_channel(session, client_id, mode, now)).id
        cache_after_commit(session, _WALLET_CHANNELS, key, found)
    return found


_WALLET_CHANNELS = "collections.wallet_channels"


def transaction_type(channel: PaymentChannel) -> str:
    return TRANSACTION_TYPES[ChannelType(channel.channel_type)]


async def channel_balance(session: AsyncSession, channel: PaymentChannel, now: datetime) -> Money | None:
    """The payments wallet's balance for the wallet channel; None for the merchant's own channels."""
    if channel.channel_type != ChannelType.WALLET:
        return None
    account = await _merchant_wallet(
        session, channel.client_id, channel.mode, AccountKind.PAYMENTS_WALLET, now
    )
    return Money(account.balance, account.currency)


async def _merchant_wallet(
    session: AsyncSession, client_id: uuid.UUID, mode: str, kind: AccountKind, now: datetime
) -> Any:
    return await ledger.open_account(
        session, owner=ledger.owner_key(client_id=client_id), kind=kind, currency=CURRENCY, mode=mode,
        client_id=client_id, now=now,
    )  # fmt: skip


async def _merchant_wallet_id(
    session: AsyncSession, client_id: uuid.UUID, mode: str, kind: AccountKind, now: datetime
) -> uuid.UUID:
    return await ledger.account_id(
        session, owner=ledger.owner_key(client_id=client_id), kind=kind, currency=CURRENCY, mode=mode,
        client_id=client_id, now=now,
    )  # fmt: skip


# -- requesting --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectionRequest:
    amount: int  # whole shillings
    phone_number: str
    purpose: CollectionPurpose = CollectionPurpose.PAYMENT
    channel_id: int | None = None
    network_code: str | None = None
    provider: str = "m-pesa"
    external_reference: str | None = None
    customer_name: str | None = None
    callback_url: str | None = None


def _checkout_request_id(now: datetime) -> str:
    """An id in Daraja's style (``ws_CO_<date><digits>``), ours from the first reply on."""
    return f"ws_CO_{now:%d%m%Y%H%M%S}{new_id().int % 10**12:012d}"


@dataclass(frozen=True, slots=True)
class Requested:
    """One caller's collection request, as ``request_collections`` takes them."""

    who: Principal
    body: CollectionRequest
    # How ``who`` got in, when the intake is to check it again in its transaction (``recheck``).
    credential: Credential | None = None


# What each request gets: its collection and whether it is new, or the error refusing it.
Answer = tuple[Collection, bool] | BaseException


CollectionIntake = GroupCommit[Requested, tuple[Collection, bool]]


def collection_intake(db: Database, settings: Settings, clock: Clock) -> CollectionIntake:
    """The process's collection requests, stored many to a transaction (``request_collections``).

    Under load every request of a merchant holds a fee on the same service-wallet row: one
    transaction each would queue them all on that row's lock, one commit at a time.
    """

    async def store(session: AsyncSession, requests: list[Requested]) -> list[Answer]:
        refused = await recheck(session, [r.credential or Credential(r.who) for r in requests])
        allowed = [index for index, error in enumerate(refused) if error is None]
        stored = iter(
            await request_collections(
                session, [requests[i] for i in allowed], settings=settings, now=clock.now()
            )
        )
        return [next(stored) if error is None else error for error in refused]

    return GroupCommit(db, store, name="collection requests", max_batch=256, alone_after_failure=True)


async def request_collection(
    session: AsyncSession, who: Principal, body: CollectionRequest, *, settings: Settings, now: datetime
) -> tuple[Collection, bool]:
    """Store a collection and queue its STK push; (collection, False) for a repeated external_reference."""
    (answer,) = await request_collections(session, [Requested(who, body)], settings=settings, now=now)
    if isinstance(answer, BaseException):
        raise answer
    return answer


async def request_collections(
    session: AsyncSession, requests: list[Requested], *, settings: Settings, now: datetime
) -> list[Answer]:
    """``request_collection`` for many requests in one transaction, an answer each, in order.

    A refused request (bad input, an unknown channel, a fee the service wallet cannot cover)
    gets its error and writes nothing; the others go ahead. A repeated external_reference, in
    the database or earlier in the same list, answers the first collection. The fees of one
    merchant are held with one lock and one update of its service wallet, the collections and
    their jobs written with one INSERT each.
    """
    answers: list[Answer | None] = [None] * len(requests)
    pending = list(range(len(requests)))
    for _attempt in range(2):
        try:
            async with session.begin_nested():
                await _request_collections(session, requests, pending, answers, settings=settings, now=now)
            break
        except IntegrityError as exc:
            # A concurrent request (another process) stored one of these external_references
            # first: look again, and answer those with the collection it stored. A foreign key
            # refused instead means a cached id names no row: look those up afresh too.
            log.warning("collections.insert_conflict", attempt=_attempt + 1, error=str(exc.orig)[:300])
            forget_cached(session, _WALLET_CHANNELS, _CHANNEL_TYPES, ledger.ACCOUNT_IDS)
            for index in pending:
                answers[index] = None
    else:
        raise RuntimeError("collections: external_reference conflicts twice in a row")
    return [answer for answer in answers if answer is not None]


async def _request_collections(
    session: AsyncSession,
    requests: list[Requested],
    pending: list[int],
    answers: list[Answer | None],
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Fill ``answers[i]`` for each ``i`` in ``pending``; writes only for those answered with a new one."""
    keys: dict[int, tuple[uuid.UUID, str, str]] = {}
    checked: dict[int, tuple[str, str]] = {}
    for index in pending:
        who, body = requests[index].who, requests[index].body
        assert who.client_id is not None
        try:
            checked[index] = _checked(body)
        except ValidationFailed as exc:
            answers[index] = exc
            continue
        if body.external_reference:
            keys[index] = (who.client_id, who.mode.value, body.external_reference)
    earlier = await _by_external_references(session, set(keys.values()))
    first_of: dict[tuple[uuid.UUID, str, str], int] = {}
    repeats: dict[int, int] = {}
    new: list[tuple[int, dict[str, Any]]] = []  # (index, collection row)
    tariffs: dict[uuid.UUID, pricing.Tariff] = {}
    for index, (phone, network) in checked.items():
        who, body = requests[index].who, requests[index].body
        assert who.client_id is not None
        key = keys.get(index)
        if key is not None:
            if key in earlier:
                answers[index] = (earlier[key], False)
                continue
            if key in first_of:  # the same reference twice in this batch: the first one's answer
                repeats[index] = first_of[key]
                continue
            first_of[key] = index
        try:
            channel_id = await _collection_channel_id(session, who, body, now)
        except (NotFound, ValidationFailed) as exc:
            answers[index] = exc
            continue
        amount = Money(body.amount * 100, CURRENCY)
        fee = Money.zero(CURRENCY)
        if body.purpose == CollectionPurpose.PAYMENT:
            tariff = tariffs.get(who.client_id)
            if tariff is None:
                tariff = await pricing.tariff_for(
                    session, settings, who.client_id, PricingKind.COLLECTION, CURRENCY
                )
                tariffs[who.client_id] = tariff
            fee = tariff.fee(amount)
        collection_id = new_id()
        token_hash = sha256_hex(callback_token(settings, collection_id))
        row = {
            "id": collection_id, "client_id": who.client_id, "mode": who.mode.value,
            "api_user_id": who.api_user_id, "purpose": body.purpose.value, "reference": new_reference(),
            "checkout_request_id": _checkout_request_id(now),
            "external_reference": body.external_reference or None,
            "channel_id": channel_id, "provider": body.provider, "network_code": network, "phone": phone,
            "amount": amount.amount, "currency": CURRENCY, "fee": fee.amount, "fee_hold_id": None,
            "customer_name": body.customer_name, "callback_url": body.callback_url,
            "status": CollectionStatus.QUEUED.value, "callback_token_hash": token_hash,
            "created_at": now, "updated_at": now, "sent_at": None, "completed_at": None,
        }  # fmt: skip
        new.append((index, row))
    refused = await _hold_fees(session, new, now)
    stored = [(index, row) for index, row in new if index not in refused]
    for index, exc in refused.items():
        answers[index] = exc
    if stored:
        await session.execute(insert(_COLLECTIONS), [row for _index, row in stored])
        jobs = [{"collection_id": str(row["id"])} for _index, row in stored]
        await enqueue_many(session, SEND_JOB, jobs, now=now)
    for index, row in stored:
        answers[index] = (Collection(**row), True)
        log.info("collection.queued", reference=row["reference"], mode=row["mode"], amount=row["amount"])
    for index, first in repeats.items():
        answer = answers[first]
        answers[index] = (answer[0], False) if isinstance(answer, tuple) else answer


_COLLECTIONS = Collection.__table__


def _checked(body: CollectionRequest) -> tuple[str, str]:
    """The request's phone (as Daraja wants it) and network code; ValidationFailed naming the field."""
    if not 1 <= body.amount <= MAX_AMOUNT:
        raise ValidationFailed.for_field(
            "amount", f"must be a whole number of shillings from 1 to {MAX_AMOUNT:,}"
        )
    phone = normalise_phone(body.phone_number)
    network = body.network_code or "63902"
    if network not in MOBILE_NETWORKS:
        raise ValidationFailed.for_field(
            "network_code", f"must be one of {', '.join(MOBILE_NETWORKS)} (M-Pesa, Airtel Money, T-Kash)"
        )
    return phone, network


async def _collection_channel_id(
    session: AsyncSession, who: Principal, body: CollectionRequest, now: datetime
) -> int:
    assert who.client_id is not None
    if body.purpose == CollectionPurpose.TOP_UP or body.channel_id is None:
        return await _wallet_channel_id(session, who.client_id, who.mode.value, now)
    try:
        channel = await get_channel(session, who, body.channel_id)
    except NotFound:
        raise NotFound.for_field("channel_id", f"no payment channel {body.channel_id}") from None
    if not channel.is_active:
        raise InactiveChannel.for_field("channel_id", f"payment channel {channel.id} is not active")
    return channel.id


async def _hold_fees(
    session: AsyncSession, new: list[tuple[int, dict[str, Any]]], now: datetime
) -> dict[int, ServiceWalletTooLow]:
    """Hold each new collection's fee on its merchant's service wallet (``row["fee_hold_id"]``);
    the requests whose fee the wallet no longer covers, with their error."""
    by_wallet: dict[tuple[uuid.UUID, str], list[tuple[int, dict[str, Any]]]] = {}
    for index, row in new:
        if row["fee"] > 0:
            by_wallet.setdefault((row["client_id"], row["mode"]), []).append((index, row))
    refused: dict[int, ServiceWalletTooLow] = {}
    for (client_id, mode), rows in by_wallet.items():
        wallet_id = await _merchant_wallet_id(session, client_id, mode, AccountKind.SERVICE_WALLET, now)
        wanted = [ledger.HoldRequest(row["fee"], f"fee:{row['reference']}") for _index, row in rows]
        holds = await ledger.place_holds(session, wallet_id, wanted, now=now)
        for (index, row), hold in zip(rows, holds, strict=True):
            if isinstance(hold, ledger.InsufficientFunds):
                fee = Money(row["fee"], CURRENCY)
                available = f"{CURRENCY} {hold.extensions['available']}"
                refused[index] = ServiceWalletTooLow(
                    f"the transaction cost ({fee}) is more than the service wallet holds ({available}): "
                    "top up the service wallet",
                    errors=[FieldError("amount", f"the fee {fee} exceeds the service wallet's {available}")],
                )
            else:
                row["fee_hold_id"] = hold.id
    return refused


async def hold_fee(
    session: AsyncSession, client_id: uuid.UUID, mode: str, fee: Money, reference: str, now: datetime
) -> uuid.UUID:
    """Hold one transaction's fee on the merchant's service wallet; ServiceWalletTooLow if it cannot."""
    row: dict[str, Any] = {"client_id": client_id, "mode": mode, "fee": fee.amount, "reference": reference}
    refused = await _hold_fees(session, [(0, row)], now)
    if refused:
        raise refused[0]
    hold_id: uuid.UUID = row["fee_hold_id"]
    return hold_id


async def _by_external_references(
    session: AsyncSession, keys: set[tuple[uuid.UUID, str, str]]
) -> dict[tuple[uuid.UUID, str, str], Collection]:
    """The stored collections with these (client, mode, external_reference) keys, by key."""
    if not keys:
        return {}
    found = await session.scalars(
        select(Collection).where(
            Collection.client_id.in_({key[0] for key in keys}),
            Collection.external_reference.in_({key[2] for key in keys}),
        )
    )
    by_key = {(c.client_id, c.mode, c.external_reference or ""): c for c in found}
    return {key: by_key[key] for key in keys if key in by_key}


async def find_by_reference(session: AsyncSession, who: Principal, reference: str) -> Collection:
    found = await session.scalar(
        select(Collection).where(
            Collection.client_id == who.client_id,
            Collection.mode == who.mode.value,
            (Collection.reference == reference) | (Collection.checkout_request_id == reference),
        )
    )
    if found is None:
        raise CollectionNotFound(f"no transaction with reference {reference!r}")
    return found


# -- Daraja's answer ---------------------------------------------------------------------


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
    found = await session.scalar(
        select(Collection).where(Collection.callback_token_hash == sha256_hex(token))
    )
    if found is None:
        raise UnknownCallbackToken("no collection has this callback address")
    return found


async def finish(session: AsyncSession, collection: Collection, outcome: Outcome, *, now: datetime) -> bool:
    """Move the collection to SUCCESS or FAILED once; False if it was final already (nothing changes)."""
    locked = await session.scalar(
        select(Collection)
        .where(Collection.id == collection.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise CollectionNotFound(f"no collection {collection.id}")
    (moved,) = await _finish_locked(session, [(locked, outcome)], now)
    return moved


CallbackAnswer = bool | UnknownCallbackToken | CallbackMismatch


async def finish_by_tokens(
    session: AsyncSession, callbacks: list[tuple[str, Outcome]], *, now: datetime
) -> list[CallbackAnswer]:
    """``finish`` for Daraja's callbacks, by the token in their URL: for each, whether it moved its
    collection (False: final already), UnknownCallbackToken, or CallbackMismatch when its ids are
    another request's (nothing changes). One SELECT and one UPDATE of the collections, and one
    statement of each kind in the ledger, for all of them."""
    hashes = [sha256_hex(token) for token, _outcome in callbacks]
    found = {
        collection.callback_token_hash: collection
        for collection in await session.scalars(
            select(Collection)
            .where(Collection.callback_token_hash.in_(set(hashes)))
            .order_by(Collection.id)  # locked in one order: concurrent batches never deadlock
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
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
                "callback.mismatch", provider="daraja", kind="collection", reference=collection.reference,
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
    """The process's Daraja callbacks, applied many to a transaction (``finish_by_tokens``): each
    success books into the same clearing account and merchant wallet rows."""

    async def apply(session: AsyncSession, callbacks: list[tuple[str, Outcome]]) -> list[CallbackAnswer]:
        return await finish_by_tokens(session, callbacks, now=clock.now())

    return GroupCommit(db, apply, name="daraja callbacks", max_batch=256, alone_after_failure=True)


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


async def _settled(session: AsyncSession, finishing: list[Collection], now: datetime) -> None:
    """The books and the merchant's callback of collections just made SUCCESS or FAILED."""
    await _book(session, finishing, now)
    for collection in finishing:
        if collection.callback_url:
            webhooks.queue(
                session, client_id=collection.client_id, mode=collection.mode,
                event=f"collection.{collection.status.lower()}", subject_reference=collection.reference,
                url=collection.callback_url, payload=payhero_callback(collection), now=now,
            )  # fmt: skip
        log.info(
            "collection.finished", reference=collection.reference, status=collection.status,
            result_code=collection.result_code,
        )  # fmt: skip
    await session.flush()


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


async def _channel_type(session: AsyncSession, channel_id: int) -> str | None:
    """A channel's type (which never changes), cached once its transaction commits."""
    found: str | None = cached(session, _CHANNEL_TYPES, channel_id)
    if found is None:
        found = await session.scalar(
            select(PaymentChannel.channel_type).where(PaymentChannel.id == channel_id)
        )
        if found is not None:
            cache_after_commit(session, _CHANNEL_TYPES, channel_id, found)
    return found


_CHANNEL_TYPES = "collections.channel_types"


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
                description=f"M-Pesa {collection.mpesa_receipt or ''} from {collection.phone}".strip(),
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


async def _booking_target(
    session: AsyncSession, collection: Collection, now: datetime
) -> tuple[uuid.UUID, str]:
    """The account a successful collection is paid into, and the journal's kind."""
    channel_type = await _channel_type(session, collection.channel_id) if collection.channel_id else None
    if collection.purpose == CollectionPurpose.TOP_UP:
        wallet, kind = AccountKind.SERVICE_WALLET, "service_wallet_top_up"
    elif channel_type is None or channel_type == ChannelType.WALLET:
        wallet, kind = AccountKind.PAYMENTS_WALLET, "collection"
    else:  # paid straight to the merchant's own till/paybill/bank: recorded as settled there
        settled = await ledger.system_account_id(
            session, AccountKind.EXTERNAL_SETTLEMENT, collection.currency, collection.mode, now
        )
        return settled, "collection_to_own_channel"
    return await _merchant_wallet_id(session, collection.client_id, collection.mode, wallet, now), kind


def _whole(minor: int) -> int | float:
    value = Decimal(minor) / 100
    return int(value) if value == value.to_integral_value() else float(value)


def payhero_callback(collection: Collection) -> dict[str, Any]:
    """The body Pay Hero posts to a merchant's callback_url (failure shape inferred, see the reference)."""
    success = collection.status == CollectionStatus.SUCCESS
    return {
        "forward_url": "",
        "response": {
            "Amount": _whole(collection.amount),
            "CheckoutRequestID": collection.checkout_request_id,
            "ExternalReference": collection.external_reference or "",
            "MerchantRequestID": collection.merchant_request_id or "",
            "MpesaReceiptNumber": collection.mpesa_receipt or "",
            "Phone": f"+{collection.phone}",
            "ResultCode": collection.result_code,
            "ResultDesc": collection.result_desc or "",
            "Status": "Success" if success else "Failed",
        },
        "status": success,
    }


def reconcile_delay(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.stk_query_after_seconds)


def callback_token(settings: Settings, subject_id: uuid.UUID, *, purpose: str = "daraja-stk") -> str:
    """The secret in a Daraja callback URL of ``subject_id`` (a collection's CallBackURL, a
    payout's ResultURL …): derived from the id with the secret key, so it is stored nowhere (only
    its SHA-256, to find the subject) and the worker makes it again when it sends the request."""
    assert settings.secret_key is not None, "settings.require_secrets() first"
    return derived_token(settings.secret_key.get_secret_value(), f"{purpose}:{subject_id}")


def callback_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/callbacks/daraja/{token}"


# -- channel management (native API and CLI) ---------------------------------------------


class WalletChannelLocked(Conflict):
    code = "wallet_channel"
    title = "The payments wallet channel cannot be deactivated"


def acting_for(client_id: uuid.UUID, mode: str) -> Principal:
    """The merchant ``client_id`` in ``mode``, as the operator's command line acts for it."""
    return Principal(
        kind=PrincipalKind.PORTAL, id=client_id, client_id=client_id, role_ids=(), role_names=frozenset(),
        mode=KeyMode(mode),
    )  # fmt: skip


async def set_channel_active(
    session: AsyncSession, channel: PaymentChannel, active: bool, *, now: datetime
) -> PaymentChannel:
    """Activate or deactivate ``channel``; doing it twice changes nothing.

    The payments wallet channel is where collections without a channel go: it stays active.
    """
    if not active and channel.channel_type == ChannelType.WALLET:
        raise WalletChannelLocked(
            f"payment channel {channel.id} is the payments wallet: it cannot be deactivated",
            errors=[FieldError("id", "the payments wallet channel cannot be deactivated")],
        )
    if channel.is_active != active:
        channel.is_active = active
        channel.updated_at = now
        await session.flush()
        log.info("channel.activated" if active else "channel.deactivated", channel_id=channel.id)
    return channel


async def find_channel(session: AsyncSession, channel_id: int) -> PaymentChannel:
    """Any merchant's channel by id (the operator's command line); NotFound if there is none."""
    channel = await session.get(PaymentChannel, channel_id)
    if channel is None:
        raise NotFound(f"no payment channel {channel_id}")
    return channel
