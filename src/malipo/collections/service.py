"""Collections by STK push: request, Daraja's answer, the books and the merchant's callback.

What callers can rely on:
- ``request_collection`` stores a QUEUED collection, holds its fee on the merchant's
  service wallet and enqueues the push, in the caller's transaction. The same
  ``external_reference`` from the same merchant and mode answers the first collection.
- A collection reaches SUCCESS or FAILED exactly once (a guarded UPDATE); only that
  transition posts the journal, settles or releases the fee hold and queues the
  merchant's callback. Repeated and late Daraja callbacks change nothing.
- Amounts are whole units of the currency on the wire (Pay Hero and Daraja send integer
  shillings) and integer minor units inside.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import phonenumbers
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.auth.principals import Principal, PrincipalKind
from malipo.collections.models import (
    FINAL_STATES,
    TRANSACTION_TYPES,
    ChannelType,
    Collection,
    CollectionPurpose,
    CollectionStatus,
    PaymentChannel,
)
from malipo.config import Settings
from malipo.core.crypto import sha256_hex
from malipo.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference, new_token
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.db import cache_after_commit, cached
from malipo.identity.models import KeyMode
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.webhooks import service as webhooks
from malipo.worker.registry import enqueue

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


# -- phones and fees ---------------------------------------------------------------------


def normalise_phone(raw: str, *, field: str = "phone_number", region: str = "KE") -> str:
    """``07…``, ``2547…`` or ``+2547…`` as Daraja wants it: ``2547XXXXXXXX`` (no plus)."""
    text = (raw or "").strip()
    if text.isdigit() and text.startswith("254"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValidationFailed.for_field(field, f"{raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed.for_field(field, f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


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
    if not short_code.isdigit() or not 5 <= len(short_code) <= 10:
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


async def request_collection(
    session: AsyncSession, who: Principal, body: CollectionRequest, *, settings: Settings, now: datetime
) -> tuple[Collection, bool]:
    """Store a collection and queue its STK push; (collection, False) for a repeated external_reference."""
    assert who.client_id is not None
    mode = who.mode.value
    if not 1 <= body.amount <= MAX_AMOUNT:
        raise ValidationFailed.for_field(
            "amount", f"must be a whole number of shillings from 1 to {MAX_AMOUNT:,}"
        )
    phone = normalise_phone(body.phone_number)
    if body.external_reference:
        earlier = await _by_external_reference(session, who.client_id, mode, body.external_reference)
        if earlier is not None:
            return earlier, False
    network = body.network_code or "63902"
    if network not in MOBILE_NETWORKS:
        raise ValidationFailed.for_field(
            "network_code", f"must be one of {', '.join(MOBILE_NETWORKS)} (M-Pesa, Airtel Money, T-Kash)"
        )
    if body.purpose == CollectionPurpose.TOP_UP or body.channel_id is None:
        channel_id = await _wallet_channel_id(session, who.client_id, mode, now)
    else:
        try:
            channel = await get_channel(session, who, body.channel_id)
        except NotFound:
            raise NotFound.for_field("channel_id", f"no payment channel {body.channel_id}") from None
        if not channel.is_active:
            raise InactiveChannel.for_field("channel_id", f"payment channel {channel.id} is not active")
        channel_id = channel.id
    amount = Money(body.amount * 100, CURRENCY)
    fee = (
        await collection_fee(session, settings, who.client_id, amount)
        if body.purpose == CollectionPurpose.PAYMENT
        else Money.zero(CURRENCY)
    )
    token = new_token()
    collection = Collection(
        id=new_id(), client_id=who.client_id, mode=mode, api_user_id=who.api_user_id, purpose=body.purpose,
        reference=new_reference(), checkout_request_id=_checkout_request_id(now),
        external_reference=body.external_reference or None, channel_id=channel_id, provider=body.provider,
        network_code=network, phone=phone, amount=amount.amount, currency=CURRENCY, fee=fee.amount,
        fee_hold_id=None, customer_name=body.customer_name, callback_url=body.callback_url,
        status=CollectionStatus.QUEUED, callback_token_hash=sha256_hex(token), created_at=now, updated_at=now,
        sent_at=None, completed_at=None,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            if fee.is_positive:
                collection.fee_hold_id = await _hold_fee(
                    session, who.client_id, mode, fee, collection.reference, now
                )
            session.add(collection)
            await session.flush()
    except IntegrityError:  # a concurrent request with the same external_reference won
        earlier = await _by_external_reference(session, who.client_id, mode, body.external_reference or "")
        if earlier is None:
            raise
        return earlier, False
    enqueue(session, SEND_JOB, {"collection_id": str(collection.id), "token": token}, now=now)
    log.info("collection.queued", reference=collection.reference, mode=mode, amount=amount.format())
    return collection, True


async def _hold_fee(
    session: AsyncSession, client_id: uuid.UUID, mode: str, fee: Money, reference: str, now: datetime
) -> uuid.UUID:
    wallet_id = await _merchant_wallet_id(session, client_id, mode, AccountKind.SERVICE_WALLET, now)
    try:
        hold = await ledger.place_hold(session, wallet_id, fee.amount, reference=f"fee:{reference}", now=now)
    except ledger.InsufficientFunds:
        wallet = await _merchant_wallet(session, client_id, mode, AccountKind.SERVICE_WALLET, now)
        available = Money(wallet.balance - wallet.held, wallet.currency)
        raise ServiceWalletTooLow(
            f"the transaction cost ({fee}) is more than the service wallet holds ({available}): "
            "top up the service wallet",
            errors=[FieldError("amount", f"the fee {fee} exceeds the service wallet's {available}")],
        ) from None
    return hold.id


async def _by_external_reference(
    session: AsyncSession, client_id: uuid.UUID, mode: str, external_reference: str
) -> Collection | None:
    return await session.scalar(
        select(Collection).where(
            Collection.client_id == client_id,
            Collection.mode == mode,
            Collection.external_reference == external_reference,
        )
    )


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


async def list_collections(
    session: AsyncSession, who: Principal, *, page: int, per: int
) -> tuple[list[Collection], int]:
    query = select(Collection).where(Collection.client_id == who.client_id, Collection.mode == who.mode.value)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(Collection.created_at.desc(), Collection.id.desc()).offset((page - 1) * per).limit(per)
    )
    return list(rows.all()), total


# -- Daraja's answer ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    result_code: int
    result_desc: str
    receipt: str | None = None
    merchant_request_id: str | None = None


async def collection_for_token(session: AsyncSession, token: str) -> Collection:
    found = await session.scalar(
        select(Collection).where(Collection.callback_token_hash == sha256_hex(token))
    )
    if found is None:
        raise UnknownCallbackToken("no collection has this callback address")
    return found


async def finish(session: AsyncSession, collection: Collection, outcome: Outcome, *, now: datetime) -> bool:
    """Move the collection to SUCCESS or FAILED once; False if it was final already (nothing changes)."""
    status = CollectionStatus.SUCCESS if outcome.result_code == 0 else CollectionStatus.FAILED
    moved = await session.scalar(
        update(Collection)
        .where(Collection.id == collection.id, Collection.status.not_in(list(FINAL_STATES)))
        .values(
            status=status, result_code=outcome.result_code, result_desc=outcome.result_desc[:300],
            mpesa_receipt=outcome.receipt, completed_at=now, updated_at=now,
            merchant_request_id=func.coalesce(Collection.merchant_request_id, outcome.merchant_request_id),
        )
        .returning(Collection)
        .execution_options(synchronize_session=False, populate_existing=True)
    )  # fmt: skip
    if moved is None:
        log.info("collection.already_final", reference=collection.reference, result_code=outcome.result_code)
        return False
    collection = moved
    if status == CollectionStatus.SUCCESS:
        await _book_success(session, collection, now)
    elif collection.fee_hold_id is not None:
        await ledger.release_hold(session, collection.fee_hold_id, now=now)
    if collection.callback_url:
        webhooks.queue(
            session, client_id=collection.client_id, mode=collection.mode,
            event=f"collection.{status.lower()}", subject_reference=collection.reference,
            url=collection.callback_url, payload=payhero_callback(collection), now=now,
        )  # fmt: skip
    log.info(
        "collection.finished", reference=collection.reference, status=status, result_code=outcome.result_code
    )
    return True


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


async def _book_success(session: AsyncSession, collection: Collection, now: datetime) -> None:
    clearing_id = await ledger.system_account_id(
        session, AccountKind.MOBILE_MONEY_CLEARING, collection.currency, collection.mode, now
    )
    channel_type = await _channel_type(session, collection.channel_id) if collection.channel_id else None
    if collection.purpose == CollectionPurpose.TOP_UP:
        target_id = await _merchant_wallet_id(
            session, collection.client_id, collection.mode, AccountKind.SERVICE_WALLET, now
        )
        kind = "service_wallet_top_up"
    elif channel_type is None or channel_type == ChannelType.WALLET:
        target_id = await _merchant_wallet_id(
            session, collection.client_id, collection.mode, AccountKind.PAYMENTS_WALLET, now
        )
        kind = "collection"
    else:  # paid straight to the merchant's own till/paybill/bank: recorded as settled there
        target_id = await ledger.system_account_id(
            session, AccountKind.EXTERNAL_SETTLEMENT, collection.currency, collection.mode, now
        )
        kind = "collection_to_own_channel"
    posted = await ledger.post_journal(
        session,
        [
            ledger.Leg(clearing_id, -collection.amount, collection.currency),
            ledger.Leg(target_id, collection.amount, collection.currency),
        ],
        kind=kind,
        description=f"M-Pesa {collection.mpesa_receipt or ''} from {collection.phone}".strip(),
        mode=collection.mode,
        now=now,
        client_id=collection.client_id,
        idempotency_key=f"collection:{collection.id}",
        details={"reference": collection.reference, "channel_id": collection.channel_id},
    )
    collection.journal_id = posted.journal.id
    if collection.fee_hold_id is not None:
        revenue_id = await ledger.system_account_id(
            session, AccountKind.FEE_REVENUE, collection.currency, collection.mode, now
        )
        await ledger.settle_hold(
            session, collection.fee_hold_id, [ledger.Leg(revenue_id, collection.fee, collection.currency)],
            kind="collection_fee", description=f"Transaction fee {collection.reference}",
            mode=collection.mode, now=now, client_id=collection.client_id,
            idempotency_key=f"collection-fee:{collection.id}",
        )  # fmt: skip
    await session.flush()


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
