"""/api/v1 routes of a customer's wallet (customer token only): balance, top-up, transfer,
pay, statement.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
Money routes take an ``Idempotency-Key`` and answer 201 with the journal reference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from malipo.http.csvfiles import csv_chunks, csv_stream
from malipo.http.deps import ClockDep, DatabaseDep, Session
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import CurrentPrincipal, callers
from malipo.http.schemas import IsoDate
from malipo.http.tags import WALLET
from malipo.identity.principals import Audience
from malipo.wallets import service as wallets
from malipo.wallets.schemas import (
    BalanceOut,
    EntryType,
    PaymentIn,
    PaymentOut,
    StatementEntry,
    StatementOut,
    TopUpIn,
    TopUpOut,
    TransferIn,
    TransferOut,
)

CUST = Audience.CUSTOMER

router = APIRouter(tags=[WALLET])

# Bytes gathered before a chunk is sent: few writes, little memory.
_FLUSH_BYTES = 64 * 1024
_CSV_COLUMNS = ("date", "reference", "kind", "type", "description", "amount", "balance", "currency")


def _movement(movement: wallets.Movement) -> dict[str, object]:
    return {
        "reference": movement.journal.reference,
        "status": "completed",
        "amount": movement.amount.format(),
        "currency": movement.amount.currency,
        "description": movement.journal.description,
        "balance": movement.wallet.balance.format(),
        "available": movement.wallet.available.format(),
        "created_at": movement.journal.created_at,
    }


@router.get(
    "/wallet/balance",
    response_model=BalanceOut,
    name="Wallet.ReadBalance",
    summary="Get the wallet's balance",
    openapi_extra=callers(CUST),
)
async def read_balance(who: CurrentPrincipal, session: Session) -> BalanceOut:
    """The customer's balance, and what is available (the balance less funds on hold)."""
    found = await wallets.wallet_balance(session, who)
    return BalanceOut(
        customer_id=found.customer_id,
        balance=found.balance.format(),
        available=found.available.format(),
        currency=found.balance.currency,
    )


@router.post(
    "/wallet/top-up",
    response_model=TopUpOut,
    status_code=status.HTTP_201_CREATED,
    name="Wallet.TopUp",
    summary="Top up the wallet",
    openapi_extra=callers(CUST),
)
async def top_up(
    body: TopUpIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep
) -> TopUpOut:
    """Add funds: sandbox wallets at once; live wallets through collections (501 until available)."""
    reply = TopUpOut(**_movement(await wallets.top_up(session, who, body, now=clock.now())))  # type: ignore[arg-type]
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/wallet/transfer",
    response_model=TransferOut,
    status_code=status.HTTP_201_CREATED,
    name="Wallet.Transfer",
    summary="Send money to another customer",
    openapi_extra=callers(CUST),
)
async def transfer(
    body: TransferIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep
) -> TransferOut:
    """Send money to another customer of the same merchant."""
    movement = await wallets.transfer(session, who, body, now=clock.now())
    reply = TransferOut(**_movement(movement), recipient_customer_id=body.recipient_customer_id)  # type: ignore[arg-type]
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/wallet/pay",
    response_model=PaymentOut,
    status_code=status.HTTP_201_CREATED,
    name="Wallet.Pay",
    summary="Pay the merchant from the wallet",
    openapi_extra=callers(CUST),
)
async def pay(
    body: PaymentIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep
) -> PaymentOut:
    """Pay the merchant; `externalReference` is unique per merchant (a repeat is a 409)."""
    movement = await wallets.pay(session, who, body, now=clock.now())
    reply = PaymentOut(**_movement(movement), external_reference=body.external_reference)  # type: ignore[arg-type]
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


# -- statement --------------------------------------------------------------------------


def _entry(line: wallets.StatementLine) -> StatementEntry:
    return StatementEntry(
        date=line.created_at,
        reference=line.reference,
        kind=line.kind,
        type=line.type,  # type: ignore[arg-type]
        description=line.description,
        amount=line.amount.format(),
        balance=line.balance.format(),
        currency=line.amount.currency,
    )


async def _json_body(head: StatementOut, lines: AsyncIterator[wallets.StatementLine]) -> AsyncIterator[bytes]:
    opening = head.model_dump_json(by_alias=True)
    assert opening.endswith('"entries":[]}')
    buffer = opening[:-2]
    separator = ""
    async for line in lines:
        buffer += separator + _entry(line).model_dump_json(by_alias=True)
        separator = ","
        if len(buffer) >= _FLUSH_BYTES:
            yield buffer.encode()
            buffer = ""
    yield (buffer + "]}").encode()


async def _csv_rows(lines: AsyncIterator[wallets.StatementLine]) -> AsyncIterator[dict[str, object]]:
    async for line in lines:
        yield _entry(line).model_dump(mode="json", by_alias=True)


@router.get(
    "/wallet/statement",
    name="Wallet.ReadStatement",
    summary="Get the wallet's statement (JSON or CSV)",
    openapi_extra=callers(CUST),
    response_model=None,
    responses={
        200: {
            "model": StatementOut,
            "description": "The statement, streamed: JSON (`format=json`) or CSV (`format=csv`)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def read_statement(
    who: CurrentPrincipal,
    session: Session,
    db: DatabaseDep,
    start_date: Annotated[
        IsoDate | None, Query(alias="startDate", description="First day (UTC), inclusive, YYYY-MM-DD")
    ] = None,
    end_date: Annotated[
        IsoDate | None, Query(alias="endDate", description="Last day (UTC), inclusive, YYYY-MM-DD")
    ] = None,
    entry_type: Annotated[EntryType | None, Query(alias="type", description="Only credits or debits")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> StreamingResponse:
    """The wallet's entries in the date range, oldest first, each with the running balance.

    Streamed as it is read, so a long range never loads into memory.
    """
    window = await wallets.statement_window(session, who, start_date=start_date, end_date=end_date)
    lines = wallets.statement_lines(db, window, entry_type=entry_type)
    if output == "csv":
        name = f"statement-{start_date or 'start'}-{end_date or 'now'}.csv"
        return csv_stream(csv_chunks(_CSV_COLUMNS, _csv_rows(lines), flush_bytes=_FLUSH_BYTES), name)
    head = StatementOut(
        customer_id=window.customer_id,
        currency=window.currency,
        start_date=start_date,
        end_date=end_date,
        type=entry_type,
        opening_balance=window.opening_balance.format(),
        closing_balance=window.closing_balance.format(),
        entries=[],
    )
    return StreamingResponse(_json_body(head, lines), media_type="application/json")
