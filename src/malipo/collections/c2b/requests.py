"""Payment requests: an amount a payer pays later, by C2B naming its account reference or by an
STK push offered for it.

What callers can rely on:
- One OPEN request per account reference, merchant and mode (another is a 409 naming
  ``accountReference``). A request expires on read once ``expires_at`` has passed.
- Every successful collection counted towards a request is one ``PaymentRequestPayment``
  (once per collection), written in the collection's own transaction: the part the request
  still owed adds to ``paid_amount`` (PAID once it reaches the amount); the rest, and all of a
  payment of a request that is no longer open, is an overpayment: credited like any payment,
  and flagged on the request (``overpaid_amount``) and on the payment. Money is never refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.c2b import repository
from malipo.collections.c2b.models import (
    C2bPayment,
    PaymentRequest,
    PaymentRequestPayment,
    PaymentRequestStatus,
)
from malipo.collections.models import Collection, CollectionStatus
from malipo.config import Settings
from malipo.core.errors import Conflict, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity.principals import Principal

log = get_logger("malipo.c2b")

# A collection asked by an STK push for a request carries this external reference prefix.
PUSH_PREFIX = "payreq-"
MAX_EXPIRY = timedelta(days=90)


class PaymentRequestNotFound(NotFound):
    code = "payment_request_not_found"
    title = "No such payment request"


class ReferenceInUse(Conflict):
    code = "account_reference_in_use"
    title = "An open payment request has this account reference"


class RequestNotOpen(Conflict):
    code = "payment_request_not_open"
    title = "The payment request is not open"


@dataclass(frozen=True, slots=True)
class NewPaymentRequest:
    amount: Money
    account_reference: str
    expires_at: datetime
    channel_id: int | None = None
    description: str | None = None
    callback_url: str | None = None


def _scope(who: Principal) -> tuple[uuid.UUID, str]:
    assert who.client_id is not None
    return who.client_id, who.mode.value


async def create_request(
    session: AsyncSession, who: Principal, new: NewPaymentRequest, *, now: datetime
) -> PaymentRequest:
    client_id, mode = _scope(who)
    if new.expires_at <= now:
        raise ValidationFailed.for_field("expiresAt", "must be in the future")
    if new.expires_at > now + MAX_EXPIRY:
        raise ValidationFailed.for_field("expiresAt", "must be within 90 days")
    if new.channel_id is not None:
        try:
            await collections.get_channel(session, who, new.channel_id)
        except NotFound:
            raise NotFound.for_field("channelId", f"no payment channel {new.channel_id}") from None
    await repository.expire_due(session, client_id, mode, now)
    request = PaymentRequest(
        id=new_id(), client_id=client_id, mode=mode, api_user_id=who.api_user_id, channel_id=new.channel_id,
        account_reference=new.account_reference, amount=new.amount.amount, currency=new.amount.currency,
        paid_amount=0, overpaid_amount=0, status=PaymentRequestStatus.OPEN.value, description=new.description,
        callback_url=new.callback_url, expires_at=new.expires_at, paid_at=None, created_at=now,
        updated_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(request)
            await session.flush()
    except IntegrityError:
        raise ReferenceInUse.for_field(
            "accountReference", f"an open payment request already has reference {new.account_reference!r}"
        ) from None
    log.info("payment_request.created", request_id=str(request.id), amount=request.amount)
    return request


async def get_request(
    session: AsyncSession, who: Principal, request_id: uuid.UUID, *, now: datetime, lock: bool = False
) -> PaymentRequest:
    client_id, mode = _scope(who)
    await repository.expire_due(session, client_id, mode, now)
    found = await repository.request_of(session, client_id, mode, request_id, lock=lock)
    if found is None:
        raise PaymentRequestNotFound(f"no payment request {request_id}")
    return found


async def list_requests(
    session: AsyncSession, who: Principal, *, status: str | None, overpaid: bool | None, page: int, per: int,
    now: datetime,
) -> tuple[list[PaymentRequest], int]:  # fmt: skip
    client_id, mode = _scope(who)
    await repository.expire_due(session, client_id, mode, now)
    return await repository.requests_page(
        session, client_id, mode, status=status, overpaid=overpaid, offset=(page - 1) * per, limit=per
    )


async def payments_of(
    session: AsyncSession, requests: list[PaymentRequest]
) -> dict[uuid.UUID, list[PaymentRequestPayment]]:
    found: dict[uuid.UUID, list[PaymentRequestPayment]] = {r.id: [] for r in requests}
    for payment in await repository.payments_of(session, [r.id for r in requests]):
        found[payment.request_id].append(payment)
    return found


async def cancel_request(
    session: AsyncSession, who: Principal, request_id: uuid.UUID, *, now: datetime
) -> PaymentRequest:
    """An OPEN request becomes CANCELLED (a later payment of it is an overpayment); cancelling it
    again changes nothing; a PAID or EXPIRED one is a 409."""
    request = await get_request(session, who, request_id, now=now, lock=True)
    if request.status == PaymentRequestStatus.CANCELLED:
        return request
    if request.status != PaymentRequestStatus.OPEN:
        raise RequestNotOpen(f"payment request {request_id} is {request.status}")
    request.status = PaymentRequestStatus.CANCELLED
    request.updated_at = now
    await session.flush()
    return request


async def push_for_request(
    session: AsyncSession, who: Principal, request_id: uuid.UUID, phone_number: str, *, settings: Settings,
    now: datetime,
) -> tuple[PaymentRequest, Collection]:  # fmt: skip
    """Ask the payer by STK push for what the request still owes, through the collection intake;
    its success counts towards the request (``collections_finished``)."""
    request = await get_request(session, who, request_id, now=now)
    if request.status != PaymentRequestStatus.OPEN:
        raise RequestNotOpen(f"payment request {request_id} is {request.status}")
    collections.payer_phone(phone_number, field="phoneNumber")  # named as this surface names it
    owed = Money(request.amount - request.paid_amount, request.currency)
    shillings = -(-owed.amount // 100)  # an STK push asks whole shillings: round a cent part up
    body = collections.CollectionRequest(
        amount=shillings, phone_number=phone_number, channel_id=request.channel_id,
        external_reference=f"{PUSH_PREFIX}{request.id.hex}-{new_reference(6)}",
        callback_url=request.callback_url,
    )  # fmt: skip
    try:
        collection, _new = await collections.request_collection(
            session, who, body, settings=settings, now=now
        )
    except ValidationFailed as exc:
        for error in exc.errors:
            error.field = {"phone_number": "phoneNumber", "amount": "amount"}.get(error.field, error.field)
        raise
    return request, collection


async def count_payment(
    session: AsyncSession, collection: Collection, reference: str, c2b: C2bPayment | None, *, now: datetime
) -> PaymentRequest | None:
    """Count a successful collection towards the merchant's request with ``reference`` (a C2B
    account reference), if it has one; the request, or None."""
    if not reference:
        return None
    request = await repository.newest_request_with_reference(
        session, collection.client_id, collection.mode, reference, lock=True
    )
    if request is None or (request.channel_id is not None and request.channel_id != collection.channel_id):
        return None
    await _count(session, request, collection, c2b, now)
    return request


async def _count(
    session: AsyncSession,
    request: PaymentRequest,
    collection: Collection,
    c2b: C2bPayment | None,
    now: datetime,
) -> None:
    if await repository.counted(session, collection.id):
        return
    if request.status == PaymentRequestStatus.OPEN and request.expires_at <= now:
        request.status = PaymentRequestStatus.EXPIRED
    owed = request.amount - request.paid_amount if request.status == PaymentRequestStatus.OPEN else 0
    applied = max(0, min(owed, collection.amount))
    overpaid = collection.amount - applied
    request.paid_amount += applied
    request.overpaid_amount += overpaid
    if request.status == PaymentRequestStatus.OPEN and request.paid_amount >= request.amount:
        request.status = PaymentRequestStatus.PAID
        request.paid_at = now
    request.updated_at = now
    session.add(
        PaymentRequestPayment(
            id=new_id(),
            request_id=request.id,
            collection_id=collection.id,
            amount=collection.amount,
            overpaid=overpaid,
            receipt=collection.mpesa_receipt,
            created_at=now,
        )
    )
    if c2b is not None:
        c2b.payment_request_id, c2b.overpaid = request.id, overpaid
    await session.flush()
    log.info(
        "payment_request.paid" if overpaid == 0 else "payment_request.overpaid",
        request_id=str(request.id), applied=applied, overpaid=overpaid, status=request.status,
    )  # fmt: skip


async def collections_finished(session: AsyncSession, finished: list[Collection], now: datetime) -> None:
    """An STK push asked for a request (its external reference names it) counts once it succeeds."""
    for collection in finished:
        ref = collection.external_reference or ""
        if collection.status != CollectionStatus.SUCCESS or not ref.startswith(PUSH_PREFIX):
            continue
        try:
            request_id = uuid.UUID(hex=ref[len(PUSH_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        request = await repository.request_of(
            session, collection.client_id, collection.mode, request_id, lock=True
        )
        if request is not None:
            await _count(session, request, collection, None, now)


collections.on_finished(collections_finished)
