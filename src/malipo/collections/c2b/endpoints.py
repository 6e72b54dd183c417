"""/api/v1 routes of C2B (a channel's rules and registration) and of payment requests, for API
keys (in the key's mode) and the merchant's portal users (live).

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.c2b import requests, service
from malipo.collections.c2b.models import C2bChannel, C2bRule, PaymentRequest, PaymentRequestPayment
from malipo.collections.c2b.schemas import (
    C2bOut,
    C2bRegisterIn,
    PaymentRequestIn,
    PaymentRequestOut,
    PaymentRequestPage,
    RequestPaymentOut,
    StkPushIn,
    StkPushOut,
)
from malipo.collections.endpoints import ChannelIdPath
from malipo.collections.models import ChannelType, PaymentChannel
from malipo.core.errors import NotFound, ValidationFailed
from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import CA, KEY, CurrentPrincipal, callers
from malipo.http.schemas import plain_integer
from malipo.http.tags import CHANNELS

router = APIRouter(tags=[CHANNELS])
CURRENCY = collections.CURRENCY
DEFAULT_EXPIRY = timedelta(days=1)


def _money(minor: int | None, currency: str = CURRENCY) -> str | None:
    return None if minor is None else Money(minor, currency).format()


def c2b_out(channel: PaymentChannel, c2b: C2bChannel) -> C2bOut:
    wallet = channel.channel_type == ChannelType.WALLET
    return C2bOut(
        channel_id=channel.id, channel_type=channel.channel_type, short_code=c2b.short_code,
        account_number_format=f"{channel.id}{service.SEPARATOR}<reference>" if wallet else "<reference>",
        rule=c2b.rule, min_amount=_money(c2b.min_amount), max_amount=_money(c2b.max_amount),
        response_type=c2b.response_type, callback_url=c2b.callback_url,
        registration_status=c2b.registration_status,  # type: ignore[arg-type]
        registration_reply=c2b.registration_reply, registered_at=c2b.registered_at, updated_at=c2b.updated_at,
    )  # fmt: skip


def _limit(raw: object, field: str) -> int | None:
    return None if raw is None else Money.parse(raw, CURRENCY, field=field).amount  # type: ignore[arg-type]


@router.post(
    "/channels/{id}/register-c2b", response_model=C2bOut, status_code=status.HTTP_202_ACCEPTED,
    name="Channels.RegisterC2b", summary="Set a channel's C2B rules and register its URLs with M-Pesa",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def register_c2b(
    id: ChannelIdPath, body: C2bRegisterIn, who: CurrentPrincipal, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> C2bOut:  # fmt: skip
    """Store the channel's C2B rules and queue the registration of its validation and confirmation
    URLs with Daraja (`registrationStatus` becomes `registered` once Daraja answers). A paybill or
    till channel registers your own shortcode; the wallet channel is paid on the operator's
    shortcode with the account number `<channelId>#<reference>`. Registering again is harmless."""
    channel = await collections.get_channel(session, who, id)
    rules = service.C2bRules(
        rule=C2bRule(body.rule), min_amount=_limit(body.min_amount, "minAmount"),
        max_amount=_limit(body.max_amount, "maxAmount"), response_type=body.response_type,
        callback_url=body.callback_url,
    )  # fmt: skip
    c2b = await service.configure_c2b(session, settings, channel, rules, now=clock.now())
    return c2b_out(channel, c2b)


@router.get(
    "/channels/{id}/c2b", response_model=C2bOut, name="Channels.ReadC2b",
    summary="Get a channel's C2B rules and registration", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def read_c2b(id: ChannelIdPath, who: CurrentPrincipal, session: Session) -> C2bOut:
    """The channel's C2B rules and Daraja's answer to its URL registration (404 before any)."""
    channel = await collections.get_channel(session, who, id)
    c2b = await service.c2b_of(session, channel)
    if c2b is None:
        raise NotFound(f"payment channel {id} has no C2B registration")
    return c2b_out(channel, c2b)


# -- payment requests ----------------------------------------------------------------------------


def _payment_out(payment: PaymentRequestPayment, currency: str) -> RequestPaymentOut:
    return RequestPaymentOut(
        collection_id=payment.collection_id, amount=Money(payment.amount, currency).format(),
        overpaid=Money(payment.overpaid, currency).format(), receipt=payment.receipt,
        created_at=payment.created_at,
    )  # fmt: skip


def request_out(request: PaymentRequest, payments: list[PaymentRequestPayment]) -> PaymentRequestOut:
    currency = request.currency
    return PaymentRequestOut(
        id=request.id, mode=request.mode, account_reference=request.account_reference,  # type: ignore[arg-type]
        amount=Money(request.amount, currency).format(), currency=currency,
        paid_amount=Money(request.paid_amount, currency).format(),
        overpaid_amount=Money(request.overpaid_amount, currency).format(),
        overpaid=request.overpaid_amount > 0,
        status=request.status, channel_id=request.channel_id, description=request.description,  # type: ignore[arg-type]
        callback_url=request.callback_url, expires_at=request.expires_at, paid_at=request.paid_at,
        created_at=request.created_at, updated_at=request.updated_at,
        payments=[_payment_out(p, currency) for p in payments],
    )  # fmt: skip


async def _one_out(session: AsyncSession, request: PaymentRequest) -> PaymentRequestOut:
    payments = await requests.payments_of(session, [request])
    return request_out(request, payments[request.id])


@router.post(
    "/payment-requests", response_model=PaymentRequestOut, status_code=status.HTTP_201_CREATED,
    name="PaymentRequests.Create", summary="Ask a payer for an amount they pay later (C2B or STK push)",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def create_payment_request(
    body: PaymentRequestIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep
) -> PaymentRequestOut:
    """A payment of the paybill (or of the operator's shortcode with `<channelId>#<accountReference>`)
    naming `accountReference` settles it; so does an STK push offered for it. Payments add up; what
    is paid beyond the amount, or after it is paid, cancelled or expired, is kept as an overpayment."""
    now = clock.now()
    if body.expires_at is not None and body.expires_in_minutes is not None:
        raise ValidationFailed.for_field("expiresAt", "give expiresAt or expiresInMinutes, not both")
    if body.expires_at is not None:
        expires_at = body.expires_at
    elif body.expires_in_minutes is not None:
        expires_at = now + timedelta(minutes=body.expires_in_minutes)
    else:
        expires_at = now + DEFAULT_EXPIRY
    new = requests.NewPaymentRequest(
        amount=Money.parse(body.amount, CURRENCY, field="amount"),  # type: ignore[arg-type]
        account_reference=body.account_reference, expires_at=expires_at, channel_id=body.channel_id,
        description=body.description, callback_url=body.callback_url,
    )  # fmt: skip
    request = await requests.create_request(session, who, new, now=now)
    reply = request_out(request, [])
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.get(
    "/payment-requests", response_model=PaymentRequestPage, name="PaymentRequests.List",
    summary="List your payment requests", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def list_payment_requests(
    who: CurrentPrincipal,
    session: Session,
    clock: ClockDep,
    status_: Annotated[
        Literal["open", "paid", "cancelled", "expired"] | None,
        Query(alias="status", description="Only these"),
    ] = None,
    overpaid: Annotated[bool | None, Query(description="Only those with (or without) an overpayment")] = None,
    page: Annotated[int, BeforeValidator(plain_integer), Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, BeforeValidator(plain_integer), Query(alias="pageSize", ge=1, le=100)] = 20,
) -> PaymentRequestPage:
    """Your requests in this mode, newest first, each with the payments counted towards it."""
    found, total = await requests.list_requests(
        session, who, status=status_, overpaid=overpaid, page=page, per=page_size, now=clock.now()
    )
    payments = await requests.payments_of(session, found)
    return PaymentRequestPage(
        payment_requests=[request_out(r, payments[r.id]) for r in found], page=page, page_size=page_size,
        total=total,
    )  # fmt: skip


@router.get(
    "/payment-requests/{id}", response_model=PaymentRequestOut, name="PaymentRequests.Read",
    summary="Get a payment request", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def read_payment_request(
    id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> PaymentRequestOut:
    """One of your requests, with its payments and any overpayment."""
    return await _one_out(session, await requests.get_request(session, who, id, now=clock.now()))


@router.post(
    "/payment-requests/{id}/cancel", response_model=PaymentRequestOut, name="PaymentRequests.Cancel",
    summary="Cancel a payment request", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def cancel_payment_request(
    id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> PaymentRequestOut:
    """An open request is cancelled (a later payment of it is kept as an overpayment); a paid or
    expired one is a 409."""
    return await _one_out(session, await requests.cancel_request(session, who, id, now=clock.now()))


@router.post(
    "/payment-requests/{id}/stk-push", response_model=StkPushOut, status_code=status.HTTP_201_CREATED,
    name="PaymentRequests.StkPush", summary="Ask the payer by STK push for what a request still owes",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def push_payment_request(
    id: uuid.UUID, body: StkPushIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session,
    clock: ClockDep, settings: SettingsDep,
) -> StkPushOut:  # fmt: skip
    """An M-Pesa STK push for the amount still owed (whole shillings, rounded up), into the request's
    channel; the fee is held as for any collection. Its success counts towards the request."""
    request, collection = await requests.push_for_request(
        session, who, id, body.phone_number, settings=settings, now=clock.now()
    )
    reply = StkPushOut(
        payment_request=await _one_out(session, request), collection_reference=collection.reference,
        checkout_request_id=collection.checkout_request_id,
        amount=Money(collection.amount, collection.currency).format(), status=collection.status,
    )  # fmt: skip
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply
