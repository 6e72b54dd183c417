"""The reports' replies: rows and summaries, amounts as decimal strings beside their currency."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from malipo.http.schemas import CamelModel


class CardReportRow(CamelModel):
    authorization_id: uuid.UUID
    client_id: uuid.UUID
    mode: str = Field(description="live or test (the sandbox)")
    reference: str
    order_id: str | None
    status: str = Field(
        description="authorizing, pending_3ds, authorized, captured, partially_refunded, refunded,"
        " declined, failed_3ds, failed, voided or expired"
    )
    amount: str = Field(description="Authorised (or asked for, if not authorised)")
    captured_amount: str
    refunded_amount: str
    fee: str = Field(description="Charged on the capture")
    currency: str
    brand: str
    bin: str
    last4: str
    response_code: str | None = Field(
        description="ISO 8583 response code: 00 approved, 51 not sufficient funds, …"
    )
    created_at: datetime
    authorized_at: datetime | None
    captured_at: datetime | None
    closed_at: datetime | None = Field(description="Declined, failed, voided, expired or refunded in full")


class CardReportPage(CamelModel):
    page: int
    page_size: int
    total: int = Field(description="How many rows match, on every page")
    items: list[CardReportRow]


class StatusTotal(CamelModel):
    count: int
    amount: str


class ReportWindow(CamelModel):
    """What a summary covers."""

    from_: datetime | None = Field(alias="from", description="From this time (inclusive); null: the first")
    to: datetime | None = Field(description="Before this time; null: now")
    client_id: uuid.UUID | None = Field(description="The client reported on; null: every client")
    mode: str | None = Field(description="live or test; null: both")


class CardCurrencySummary(CamelModel):
    currency: str
    count: int = Field(description="Authorisations, whatever their status")
    authorized: str = Field(description="The amount the issuers authorised (of those not declined or failed)")
    captured: str
    refunded: str
    fees: str
    by_status: dict[str, StatusTotal] = Field(description="Every status: how many, and their amount")


class CardReportSummary(ReportWindow):
    currencies: list[CardCurrencySummary] = Field(description="One entry per currency, never added together")


class SessionReportRow(CamelModel):
    session_id: str = Field(description="`cs_…`")
    client_id: uuid.UUID
    mode: str = Field(description="live or test (the sandbox)")
    status: str = Field(description="open, pending (a payment in progress), completed or expired")
    method: str | None = Field(description="mpesa or card: the attempt in progress, or the one that paid")
    amount: str
    currency: str
    order_id: str | None
    description: str | None
    attempts: int
    link_id: uuid.UUID | None = Field(description="The payment link the session was opened from, if any")
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None


class SessionReportPage(CamelModel):
    page: int
    page_size: int
    total: int = Field(description="How many rows match, on every page")
    items: list[SessionReportRow]


class SessionCurrencySummary(CamelModel):
    currency: str
    count: int = Field(description="Sessions, whatever their status")
    total: str = Field(description="The amount of every session")
    completed: int = Field(description="Sessions paid")
    volume: str = Field(description="The amount paid (completed sessions)")
    conversion: float = Field(description="completed / count, 0 to 1 (4 decimals)")
    by_status: dict[str, StatusTotal] = Field(description="Every status: how many, and their amount")


class SessionReportSummary(ReportWindow):
    count: int = Field(description="Sessions in every currency")
    completed: int = Field(description="Sessions paid, in every currency")
    conversion: float = Field(description="completed / count over every currency, 0 to 1 (4 decimals)")
    currencies: list[SessionCurrencySummary] = Field(
        description="One entry per currency, never added together"
    )
