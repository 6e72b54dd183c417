"""/api/v1 routes of the reports: card payments and checkout sessions, listed and summed.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. A client's
portal user sees its own client's rows; operator staff every client's, or one client's with
``clientId``. Both modes unless ``mode`` says which; every row says its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from malipo.cards import service as cards
from malipo.checkout import service as checkout
from malipo.core.money import Money
from malipo.http.csvfiles import csv_response, csv_text
from malipo.http.deps import Session
from malipo.http.permissions import CA, OP, CurrentPrincipal, callers
from malipo.http.schemas import IsoDateTime, PageQuery, page_size_query
from malipo.http.tags import REPORTS
from malipo.reports import service
from malipo.reports.schemas import (
    CardCurrencySummary,
    CardReportPage,
    CardReportRow,
    CardReportSummary,
    SessionCurrencySummary,
    SessionReportPage,
    SessionReportRow,
    SessionReportSummary,
    StatusTotal,
)

router = APIRouter(prefix="/reports", tags=[REPORTS])

PageSize = page_size_query(200, alias="pageSize")
ClientFilter = Annotated[
    uuid.UUID | None,
    Query(
        alias="clientId",
        description="Operators: only this client's rows (default: every client's). A client's portal "
        "users see only their own client's: naming another is a 404.",
    ),
]
Mode = Annotated[
    Literal["live", "test"] | None,
    Query(description="Only live or only sandbox (test) rows; both when left out"),
]
From = Annotated[
    IsoDateTime | None,
    Query(
        alias="from",
        description="From this time (inclusive): ISO 8601 with its zone, e.g. 2026-01-01T00:00:00Z",
    ),
]
To = Annotated[
    IsoDateTime | None,
    Query(
        description="Before this time (exclusive), at most 366 days after `from`, "
        "e.g. 2026-02-01T00:00:00+03:00"
    ),
]
Format = Annotated[
    Literal["json", "csv"],
    Query(alias="format", description="json (default), or csv: the page's rows with a header row"),
]
CardStatus = Annotated[
    cards.AuthorizationStatus | None, Query(description="Only authorisations in this status")
]
SessionStatus = Annotated[checkout.SessionStatus | None, Query(description="Only sessions in this status")]

_CSV_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV (`format=csv`)",
    }
}


def _money(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def _csv(rows: Sequence[BaseModel], columns: Iterable[str], name: str) -> Response:
    """The rows as CSV (their JSON field names as the header), cells safe for spreadsheets."""
    values = (row.model_dump(mode="json", by_alias=True) for row in rows)
    return csv_response(csv_text(list(columns), values), f"{name}.csv")


def _columns(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


# -- cards --------------------------------------------------------------------------------------------


def card_row(auth: cards.CardAuthorization) -> CardReportRow:
    c = auth.currency
    return CardReportRow(
        authorization_id=auth.id, client_id=auth.client_id, mode=auth.mode, reference=auth.reference,
        order_id=auth.order_id, status=auth.status, amount=_money(auth.amount, c),
        captured_amount=_money(auth.captured_amount, c), refunded_amount=_money(auth.refunded_amount, c),
        fee=_money(auth.fee, c), currency=c, brand=auth.brand, bin=auth.bin, last4=auth.last4,
        response_code=auth.response_code, created_at=auth.created_at, authorized_at=auth.authorized_at,
        captured_at=auth.captured_at, closed_at=auth.closed_at,
    )  # fmt: skip


async def _card_page(
    session: Session, who: CurrentPrincipal, *, client_id: uuid.UUID | None, mode: str | None,
    status: str | None, since: datetime | None, until: datetime | None, page: int, page_size: int,
    output: str, name: str,
) -> CardReportPage | Response:  # fmt: skip
    since, until = service.window(since, until)
    scope = await service.client_filter(session, who, client_id)
    rows, total = await cards.report_authorizations(
        session, who, client_id=scope, mode=mode, status=status, since=since, until=until, page=page,
        page_size=page_size,
    )  # fmt: skip
    items = [card_row(r) for r in rows]
    if output == "csv":
        return _csv(items, _columns(CardReportRow), name)
    return CardReportPage(page=page, page_size=page_size, total=total, items=items)


@router.get(
    "/cards", response_model=CardReportPage, name="Reports.Cards", summary="Card payments, newest first",
    responses=_CSV_REPLY, openapi_extra=callers(OP, CA),
)  # fmt: skip
async def card_payments(
    who: CurrentPrincipal, session: Session, status: CardStatus = None, client_id: ClientFilter = None,
    mode: Mode = None, page: PageQuery = 1, page_size: PageSize = 50, output: Format = "json",
) -> CardReportPage | Response:  # fmt: skip
    """Card authorisations (with their capture, refunds and fee), optionally of one status, a page
    at a time. `format=csv` gives the same page as CSV."""
    return await _card_page(
        session, who, client_id=client_id, mode=mode, status=status, since=None, until=None, page=page,
        page_size=page_size, output=output, name="card-payments",
    )  # fmt: skip


@router.get(
    "/cards/range", response_model=CardReportPage, name="Reports.CardsRange",
    summary="Card payments made in a date range", responses=_CSV_REPLY, openapi_extra=callers(OP, CA),
)  # fmt: skip
async def card_payments_in_range(
    who: CurrentPrincipal,
    session: Session,
    from_: Annotated[
        IsoDateTime, Query(alias="from", description="From this time (inclusive), e.g. 2026-01-01T00:00:00Z")
    ],
    to: Annotated[
        IsoDateTime, Query(description="Before this time (exclusive), at most 366 days after `from`")
    ],
    status: CardStatus = None,
    client_id: ClientFilter = None,
    mode: Mode = None,
    page: PageQuery = 1,
    page_size: PageSize = 50,
    output: Format = "json",
) -> CardReportPage | Response:
    """Card authorisations created in [`from`, `to`), newest first, a page at a time (`format=csv`:
    the page as CSV). Both times carry their zone; `from` must be before `to`."""
    return await _card_page(
        session, who, client_id=client_id, mode=mode, status=status, since=from_, until=to, page=page,
        page_size=page_size, output=output, name="card-payments",
    )  # fmt: skip


def _totals(by_status: dict[str, service.StatusSum], currency: str) -> dict[str, StatusTotal]:
    return {s: StatusTotal(count=t.count, amount=_money(t.amount, currency)) for s, t in by_status.items()}


@router.get(
    "/cards/summary", response_model=CardReportSummary, name="Reports.CardsSummary",
    summary="Card payments summed per currency", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def card_summary(
    who: CurrentPrincipal, session: Session, from_: From = None, to: To = None,
    client_id: ClientFilter = None, mode: Mode = None,
) -> CardReportSummary:  # fmt: skip
    """Per currency: how many authorisations, the amount authorised, captured and refunded, the
    fees, and each status's count and amount. Everything unless `from` and `to` say when."""
    since, until = service.window(from_, to)
    scope = await service.client_filter(session, who, client_id)
    found = await service.card_summary(session, who, client_id=scope, mode=mode, since=since, until=until)
    return CardReportSummary(
        from_=since, to=until, client_id=scope, mode=mode,
        currencies=[
            CardCurrencySummary(
                currency=e.currency, count=e.count, authorized=_money(e.approved, e.currency),
                captured=_money(e.captured, e.currency), refunded=_money(e.refunded, e.currency),
                fees=_money(e.fees, e.currency), by_status=_totals(e.by_status, e.currency),
            )
            for e in found
        ],
    )  # fmt: skip


# -- checkout -----------------------------------------------------------------------------------------


def session_row(cs: checkout.CheckoutSession) -> SessionReportRow:
    return SessionReportRow(
        session_id=cs.public_id, client_id=cs.client_id, mode=cs.mode, status=cs.status, method=cs.method,
        amount=_money(cs.amount, cs.currency), currency=cs.currency, order_id=cs.order_id,
        description=cs.description, attempts=cs.attempts, link_id=cs.link_id, created_at=cs.created_at,
        expires_at=cs.expires_at, completed_at=cs.completed_at,
    )  # fmt: skip


@router.get(
    "/checkout/sessions", response_model=SessionReportPage, name="Reports.CheckoutSessions",
    summary="Checkout sessions, newest first", responses=_CSV_REPLY, openapi_extra=callers(OP, CA),
)  # fmt: skip
async def checkout_sessions(
    who: CurrentPrincipal, session: Session, status: SessionStatus = None, from_: From = None, to: To = None,
    client_id: ClientFilter = None, mode: Mode = None, page: PageQuery = 1, page_size: PageSize = 50,
    output: Format = "json",
) -> SessionReportPage | Response:  # fmt: skip
    """Hosted checkout sessions (optionally of one status, created in [`from`, `to`)), a page at a
    time. `format=csv` gives the same page as CSV."""
    since, until = service.window(from_, to)
    scope = await service.client_filter(session, who, client_id)
    rows, total = await checkout.report_sessions(
        session, who, client_id=scope, mode=mode, status=status, since=since, until=until, page=page,
        page_size=page_size,
    )  # fmt: skip
    items = [session_row(r) for r in rows]
    if output == "csv":
        return _csv(items, _columns(SessionReportRow), "checkout-sessions")
    return SessionReportPage(page=page, page_size=page_size, total=total, items=items)


@router.get(
    "/checkout/summary", response_model=SessionReportSummary, name="Reports.CheckoutSummary",
    summary="Checkout volume and sessions by status, per currency", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def checkout_summary(
    who: CurrentPrincipal, session: Session, from_: From = None, to: To = None,
    client_id: ClientFilter = None, mode: Mode = None,
) -> SessionReportSummary:  # fmt: skip
    """Per currency: how many sessions and their amount, how many were paid and for how much
    (`volume`), the conversion (paid / all) and each status's count and amount; the counts and
    conversion over every currency too. Everything unless `from` and `to` say when."""
    since, until = service.window(from_, to)
    scope = await service.client_filter(session, who, client_id)
    found = await service.session_summary(session, who, client_id=scope, mode=mode, since=since, until=until)
    count = sum(e.count for e in found)
    completed = sum(e.completed.count for e in found)
    return SessionReportSummary(
        from_=since, to=until, client_id=scope, mode=mode, count=count, completed=completed,
        conversion=service.conversion(completed, count),
        currencies=[
            SessionCurrencySummary(
                currency=e.currency, count=e.count, total=_money(e.amount, e.currency),
                completed=e.completed.count, volume=_money(e.completed.amount, e.currency),
                conversion=service.conversion(e.completed.count, e.count),
                by_status=_totals(e.by_status, e.currency),
            )
            for e in found
        ],
    )  # fmt: skip
