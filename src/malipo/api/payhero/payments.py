"""``/api/v2`` payments: STK push collections, service-wallet top-up, wallets, channels, status.

Translation only: Pay Hero's field names and reply shapes in, the collections service out.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.api.payhero.deps import API_USERS, PayHeroCaller, PayHeroPrincipal, forget_caller
from malipo.api.payhero.mappers import iso, payhero_status, whole_shillings
from malipo.auth.authenticate import Credential
from malipo.collections import service as collections
from malipo.collections.models import Collection, CollectionPurpose, PaymentChannel
from malipo.config import Settings
from malipo.core.errors import Forbidden, Unauthorized
from malipo.http import schemas
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import Idempotency, IdempotencyKey
from malipo.http.schemas import Id, PageQuery, PlainText, WholeShillings, page_size_query
from malipo.http.tags import PAYHERO_CHANNELS, PAYHERO_PAYMENTS, PAYHERO_WALLETS
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import service as payouts
from malipo.payouts.models import Payout
from malipo.payouts.settlement import payout_destination

router = APIRouter(prefix="/api/v2")

MAX_ID = schemas.MAX_ID  # channel ids are integers; larger ones cannot exist (and would overflow BIGINT)


class _In(BaseModel):
    # Pay Hero clients send extra fields (account_reference, camelCase duplicates …): ignored.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number or a string of digits, not a boolean")
    return value


class PaymentIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "amount": 100,
                    "phone_number": "0712345678",
                    "provider": "m-pesa",
                    "external_reference": "INV-009",
                    "customer_name": "Amina Hassan",
                    "callback_url": "https://dukalamama.co.ke/payhero/callback",
                }
            ]
        }
    )

    amount: WholeShillings = Field(ge=1, le=collections.MAX_AMOUNT, description="Whole shillings")
    phone_number: str = Field(
        min_length=9, max_length=16, description="A Kenyan mobile number: 07…, 2547… or +2547…"
    )
    channel_id: Id | None = Field(default=None, description="A registered channel; none: the payments wallet")
    provider: PlainText = Field(default="m-pesa", max_length=20)
    network_code: PlainText | None = Field(default=None, max_length=10)
    external_reference: PlainText | None = Field(default=None, max_length=100)
    customer_name: PlainText | None = Field(default=None, max_length=200)
    callback_url: PlainText | None = Field(default=None, max_length=2000, pattern=r"^https?://")


class TopUpIn(_In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 500, "phone_number": "0712345678"}]})

    amount: WholeShillings = Field(ge=1, le=collections.MAX_AMOUNT)
    phone_number: str = Field(min_length=9, max_length=16)


class QueuedOut(BaseModel):
    success: bool = True
    status: str
    reference: str
    external_reference: str | None = None
    CheckoutRequestID: str


class ChannelIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"channel_type": "till", "short_code": "5123456", "description": "Moi Avenue shop till"}
            ]
        }
    )

    channel_type: Literal["paybill", "till", "bank"]
    short_code: Annotated[str | int, BeforeValidator(_not_boolean)]
    account_number: PlainText | None = Field(default=None, max_length=40)
    description: PlainText = Field(min_length=1, max_length=200)
    account_id: Id | None = None  # Pay Hero's account id: the caller's account here, ignored


def _queued(collection: Collection) -> QueuedOut:
    return QueuedOut(
        status=payhero_status(collection.status),
        reference=collection.reference,
        external_reference=collection.external_reference,
        CheckoutRequestID=collection.checkout_request_id,
    )


async def get_intake(request: Request) -> collections.CollectionIntake:
    return request.app.state.collection_intake  # type: ignore[no-any-return]


Intake = Annotated[collections.CollectionIntake, Depends(get_intake)]


async def _request_collection(
    caller: Credential,
    wanted: collections.CollectionRequest,
    idem: Idempotency,
    session: AsyncSession,
    intake: collections.CollectionIntake,
    settings: Settings,
    now: datetime,
) -> QueuedOut:
    who = caller.principal
    if idem.key is None:  # stored with the other requests of the moment (group commit)
        try:
            collection, _created = await intake.submit(collections.Requested(who, wanted, caller))
        except (Unauthorized, Forbidden):  # the batch found the caller no longer allowed in
            forget_caller(intake.db, caller)
            raise
        return _queued(collection)
    # The key's claim is in the request's transaction: the collection goes there too.
    collection, _created = await collections.request_collection(
        session, who, wanted, settings=settings, now=now
    )
    reply = _queued(collection)
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/payments",
    status_code=status.HTTP_201_CREATED,
    response_model=QueuedOut,
    name="Payments.Collect",
    summary="Request a payment by M-Pesa STK push",
    tags=[PAYHERO_PAYMENTS],
    openapi_extra=API_USERS,
)
async def payments(
    body: PaymentIn,
    who: PayHeroCaller,
    idem: IdempotencyKey,
    session: Session,
    intake: Intake,
    settings: SettingsDep,
    clock: ClockDep,
) -> QueuedOut:
    """STK push to `phone_number`; the result goes to `callback_url`. A repeated
    `external_reference` answers the first request's transaction, and charges nothing."""
    wanted = collections.CollectionRequest(
        amount=body.amount, phone_number=body.phone_number, channel_id=body.channel_id,
        network_code=body.network_code, provider=body.provider, external_reference=body.external_reference,
        customer_name=body.customer_name, callback_url=body.callback_url,
    )  # fmt: skip
    return await _request_collection(who, wanted, idem, session, intake, settings, clock.now())


@router.post(
    "/topup",
    status_code=status.HTTP_201_CREATED,
    response_model=QueuedOut,
    name="MerchantWallets.TopUp",
    summary="Top up the service wallet by STK push",
    tags=[PAYHERO_WALLETS],
    openapi_extra=API_USERS,
)
async def top_up(
    body: TopUpIn,
    who: PayHeroCaller,
    idem: IdempotencyKey,
    session: Session,
    intake: Intake,
    settings: SettingsDep,
    clock: ClockDep,
) -> QueuedOut:
    """Top up the service wallet by STK push to `phone_number`."""
    wanted = collections.CollectionRequest(
        amount=body.amount, phone_number=body.phone_number, purpose=CollectionPurpose.TOP_UP
    )
    return await _request_collection(who, wanted, idem, session, intake, settings, clock.now())


@router.get(
    "/wallets",
    name="MerchantWallets.Read",
    summary="Get a wallet's balance",
    tags=[PAYHERO_WALLETS],
    openapi_extra=API_USERS,
)
async def wallets(
    who: PayHeroPrincipal,
    session: Session,
    clock: ClockDep,
    wallet_type: Annotated[Literal["service_wallet", "payment_wallet"], Query()] = "service_wallet",
) -> dict[str, Any]:
    """The balance of your service wallet (fees: SMS, withdrawals) or your payments wallet
    (collections paid to it), in the mode of your credentials."""
    assert who.client_id is not None
    kind = AccountKind.SERVICE_WALLET if wallet_type == "service_wallet" else AccountKind.PAYMENTS_WALLET
    account = await ledger.merchant_wallet(
        session, who.client_id, kind, collections.CURRENCY, who.mode.value, clock.now()
    )
    return {
        "id": str(account.id),
        "account_id": str(who.client_id),
        "wallet_type": wallet_type,
        "currency": account.currency,
        "available_balance": whole_shillings(account.balance - account.held),
        "created_at": iso(account.created_at),
        "updated_at": iso(clock.now()),
    }


async def _channel_out(session: Session, channel: PaymentChannel, now: datetime) -> dict[str, Any]:
    balance = await collections.channel_balance(session, channel, now)
    return {
        "id": channel.id,
        "transaction_type": collections.transaction_type(channel),
        "channel_type": channel.channel_type,
        "account_id": str(channel.client_id),
        "short_code": channel.short_code,
        "account_number": channel.account_number or "",
        "description": channel.description,
        "is_active": channel.is_active,
        "balance_plain": None
        if balance is None
        else {
            "last_balance": whole_shillings(balance.amount),
            "balance": whole_shillings(balance.amount),
            "last_reference": "",
        },
        "created_at": iso(channel.created_at),
        "updated_at": iso(channel.updated_at),
    }


@router.post(
    "/payment_channels",
    status_code=status.HTTP_201_CREATED,
    name="Channels.Create",
    summary="Register a payment channel",
    tags=[PAYHERO_CHANNELS],
    openapi_extra=API_USERS,
)
async def create_channel(
    body: ChannelIn, who: PayHeroPrincipal, session: Session, clock: ClockDep
) -> dict[str, Any]:
    """Register your paybill, till or bank account as a channel that collections can pay into."""
    channel = await collections.create_channel(
        session, who, channel_type=body.channel_type, short_code=str(body.short_code),
        account_number=body.account_number, description=body.description, now=clock.now(),
    )  # fmt: skip
    return await _channel_out(session, channel, clock.now())


PerPage = page_size_query(100)
OptionalPerPage = page_size_query(100, optional=True)


def _pagination(total: int, page: int, per: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / per))
    return {
        "count": total,
        "next_page": page + 1 if page < pages else None,
        "num_pages": pages,
        "page": page,
        "per": per,
        "prev_page": page - 1 if page > 1 else None,
    }


@router.get(
    "/payment_channels",
    name="Channels.List",
    summary="List payment channels",
    tags=[PAYHERO_CHANNELS],
    openapi_extra=API_USERS,
)
async def list_channels(
    who: PayHeroPrincipal,
    session: Session,
    clock: ClockDep,
    is_active: bool | None = None,
    page: PageQuery = 1,
    per: PerPage = 20,
) -> dict[str, Any]:
    """Your payment channels, a page at a time."""
    found, total = await collections.list_channels(
        session, who, is_active=is_active, page=page, per=per, now=clock.now()
    )
    return {
        "payment_channels": [await _channel_out(session, c, clock.now()) for c in found],
        "pagination": _pagination(total, page, per),
    }


@router.get(
    "/payment_channels/{channel_id}",
    name="Channels.Read",
    summary="Get a payment channel",
    tags=[PAYHERO_CHANNELS],
    openapi_extra=API_USERS,
)
async def read_channel(
    channel_id: Annotated[int, BeforeValidator(schemas.plain_integer), Path(ge=1, le=MAX_ID)],
    who: PayHeroPrincipal,
    session: Session,
    clock: ClockDep,
) -> dict[str, Any]:
    """One of your payment channels, by its id."""
    return await _channel_out(session, await collections.get_channel(session, who, channel_id), clock.now())


def _status_out(collection: Collection) -> dict[str, Any]:
    return {
        "transaction_date": iso(collection.completed_at or collection.created_at),
        "provider": collection.provider,
        "success": collection.status == "SUCCESS",
        "merchant": "",
        "payment_reference": collection.external_reference or "",
        "third_party_reference": collection.mpesa_receipt or "",
        "status": payhero_status(collection.status),
        "reference": collection.reference,
        "CheckoutRequestID": collection.checkout_request_id,
        "provider_reference": collection.mpesa_receipt or "",
        "result_code": collection.result_code,
        "result_desc": collection.result_desc or "",
    }


@router.get(
    "/transaction-status",
    name="Transactions.ReadStatus",
    summary="Get a transaction's status",
    tags=[PAYHERO_PAYMENTS],
    openapi_extra=API_USERS,
)
async def transaction_status(
    who: PayHeroPrincipal, session: Session, reference: Annotated[str, Query(min_length=1, max_length=100)]
) -> dict[str, Any]:
    """Where a collection or a withdrawal is, by the `reference` its request was answered with."""
    payout = await payouts.find_by_reference(session, who, reference)
    if payout is not None:
        return _payout_status_out(payout)
    return _status_out(await collections.find_by_reference(session, who, reference))


def _payout_status_out(payout: Payout) -> dict[str, Any]:
    return {
        "transaction_date": iso(payout.completed_at or payout.created_at),
        "provider": payouts.payout_provider(payout),
        "success": payout.status == "SUCCESS",
        "merchant": "",
        "payment_reference": payout.external_reference or "",
        "third_party_reference": payout.transaction_id or "",
        "status": payhero_status(payout.status),
        "reference": payout.reference,
        "CheckoutRequestID": "",
        "provider_reference": payout.transaction_id or "",
        "result_code": payout.result_code,
        "result_desc": payout.result_desc or "",
    }


def _collection_row(c: Collection) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "account_id": str(c.client_id),
        "transaction_type": "inbound_payment"
        if c.purpose != CollectionPurpose.TOP_UP
        else "service_wallet_top_up",
        "description": f"KES {whole_shillings(c.amount)} from +{c.phone}",
        "amount": whole_shillings(c.amount),
        "cost": whole_shillings(c.fee),
        "transaction_reference": c.reference,
        "provider_reference": c.mpesa_receipt or "",
        "status": payhero_status(c.status),
        "external_reference": c.external_reference or "",
        "gateway": c.provider,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def _payout_row(p: Payout) -> dict[str, Any]:
    """A withdrawal: money out of the payments wallet, so a negative amount."""
    return {
        "id": str(p.id),
        "account_id": str(p.client_id),
        "transaction_type": "outbound_payment",
        "description": f"KES {whole_shillings(p.amount)} to {payout_destination(p)}",
        "amount": -whole_shillings(p.amount),
        "cost": whole_shillings(p.fee),
        "transaction_reference": p.reference,
        "provider_reference": p.transaction_id or "",
        "status": payhero_status(p.status),
        "external_reference": p.external_reference or "",
        "gateway": payouts.payout_provider(p),
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


@router.get(
    "/transactions",
    name="Transactions.List",
    summary="List transactions",
    tags=[PAYHERO_PAYMENTS],
    openapi_extra=API_USERS,
)
async def transactions(
    who: PayHeroPrincipal,
    session: Session,
    page: PageQuery = 1,
    per: OptionalPerPage = None,
    per_page: OptionalPerPage = None,
) -> dict[str, Any]:
    """Your collections and withdrawals, a page at a time."""
    size = per or per_page or 20
    found, total = await payouts.list_transactions(session, who, page=page, per=size)
    rows = [_collection_row(row) if isinstance(row, Collection) else _payout_row(row) for row in found]
    return {"transactions": rows, "pagination": _pagination(total, page, size)}
