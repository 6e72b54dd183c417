"""Asking for collections: check each request, hold its fee, store it QUEUED and queue its push.

What callers can rely on:
- ``request_collection`` stores a QUEUED collection, holds its fee on the merchant's
  service wallet and enqueues the push, in the caller's transaction. The same
  ``external_reference`` from the same merchant and mode answers the first collection.
- A refused request (bad input, an unknown or inactive channel, a fee the service wallet
  cannot cover) writes nothing.
- Amounts are whole units of the currency on the wire (Pay Hero and Daraja send integer
  shillings) and integer minor units inside.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.auth.authenticate import Credential, recheck
from malipo.collections import repository
from malipo.collections.models import Collection, CollectionPurpose, CollectionStatus
from malipo.collections.service.channels import CHANNEL_TYPES, WALLET_CHANNELS, get_channel, wallet_channel_id
from malipo.collections.service.common import (
    CURRENCY,
    MAX_AMOUNT,
    MOBILE_NETWORKS,
    NETWORK_COUNTRY,
    NOT_SENT,
    SEND_JOB,
    CollectionNotFound,
    InactiveChannel,
    ServiceWalletTooLow,
    callback_token,
    merchant_wallet_id,
    require_served_network,
)
from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.core.crypto import sha256_hex
from malipo.core.errors import FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.core.phones import InvalidNumber, to_e164
from malipo.db import Database, forget_cached
from malipo.db.group_commit import GroupCommit
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.worker.registry import enqueue_many

log = get_logger("malipo.collections")


async def collection_fee(
    session: AsyncSession, settings: Settings, client_id: uuid.UUID, amount: Money
) -> Money:
    """The merchant's own collection tariff if the operator set one, else the settings' defaults."""
    return await pricing.fee(session, settings, client_id, PricingKind.COLLECTION, amount)


def payer_phone(raw: str, *, field: str = "phone_number") -> str:
    """A mobile-money number as Daraja wants it and malipo stores it: ``2547XXXXXXXX`` (no plus).

    Read by ``core.phones``' one rule, held to a mobile number of the networks' country;
    ValidationFailed naming ``field`` otherwise.
    """
    try:
        return to_e164(raw, NETWORK_COUNTRY, mobile_only=True).lstrip("+")
    except InvalidNumber as exc:
        raise ValidationFailed.for_field(field, str(exc)) from None


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
            forget_cached(session, WALLET_CHANNELS, CHANNEL_TYPES, ledger.ACCOUNT_IDS)
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
    earlier = await repository.by_external_references(session, set(keys.values()))
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
        amount = Money.parse(body.amount, CURRENCY)
        fee = Money.zero(CURRENCY)
        if body.purpose != CollectionPurpose.TOP_UP:
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
        await repository.insert_collections(session, [row for _index, row in stored])
        jobs = [{"collection_id": str(row["id"])} for _index, row in stored]
        await enqueue_many(session, SEND_JOB, jobs, now=now)
    for index, row in stored:
        answers[index] = (Collection(**row), True)
        log.info("collection.queued", reference=row["reference"], mode=row["mode"], amount=row["amount"])
    for index, first in repeats.items():
        answer = answers[first]
        answers[index] = (answer[0], False) if isinstance(answer, tuple) else answer


def _checked(body: CollectionRequest) -> tuple[str, str]:
    """The request's phone (as Daraja wants it) and network code; ValidationFailed naming the field."""
    if not 1 <= body.amount <= MAX_AMOUNT:
        raise ValidationFailed.for_field(
            "amount", f"must be a whole number of shillings from 1 to {MAX_AMOUNT:,}"
        )
    phone = payer_phone(body.phone_number)
    network = body.network_code or "63902"
    if network not in MOBILE_NETWORKS:
        raise ValidationFailed.for_field(
            "network_code", f"must be one of {', '.join(MOBILE_NETWORKS)} (M-Pesa, Airtel Money, T-Kash)"
        )
    require_served_network(network)
    return phone, network


async def _collection_channel_id(
    session: AsyncSession, who: Principal, body: CollectionRequest, now: datetime
) -> int:
    assert who.client_id is not None
    if body.purpose == CollectionPurpose.TOP_UP or body.channel_id is None:
        return await wallet_channel_id(session, who.client_id, who.mode.value, now)
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
        wallet_id = await merchant_wallet_id(session, client_id, mode, AccountKind.SERVICE_WALLET, now)
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


async def hold_fees(
    session: AsyncSession, client_id: uuid.UUID, mode: str, fees: list[tuple[Money, str]], now: datetime
) -> list[uuid.UUID | ServiceWalletTooLow | None]:
    """Hold many transactions' fees (amount, reference) on the merchant's service wallet, locked
    once: each its hold's id, ServiceWalletTooLow for one the wallet no longer covers, or None
    for a fee of zero (nothing held)."""
    rows: list[tuple[int, dict[str, Any]]] = [
        (index, {"client_id": client_id, "mode": mode, "fee": fee.amount, "reference": reference})
        for index, (fee, reference) in enumerate(fees)
    ]
    refused = await _hold_fees(session, rows, now)
    return [refused.get(index, row.get("fee_hold_id")) for index, row in rows]


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


async def find_by_reference(session: AsyncSession, who: Principal, reference: str) -> Collection:
    """The caller's collection by malipo's reference or its CheckoutRequestID; CollectionNotFound."""
    found = await repository.by_reference(session, who.client_id, who.mode.value, reference)
    if found is None:
        raise CollectionNotFound(f"no transaction with reference {reference!r}")
    return found


async def not_sent_counts(session: AsyncSession) -> dict[str, int]:
    """How many collections ended NOT_SENT, by mode (live, test): for ``/metrics``."""
    return await repository.failed_counts_by_mode(session, NOT_SENT)


async def newest_collections(
    session: AsyncSession, who: Principal, limit: int
) -> tuple[list[Collection], int]:
    """The caller's ``limit`` newest collections in its mode (newest first), and how many it has:
    what a list of all its transactions needs of collections for any page up to ``limit``."""
    return await repository.newest(session, who.client_id, who.mode.value, limit)
