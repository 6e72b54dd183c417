"""The reports' rules: whose rows a caller sees, the time window, and the sums per currency.

What callers can rely on:
- ``client_filter``: a client's portal user sees its own client's rows only, and naming another
  client (``clientId``) is a 404, as it is for an operator naming no client at all; an operator
  sees every client's unless it names one.
- ``window``: ``from`` inclusive, ``to`` exclusive, both with their time zone; ``from`` must be
  before ``to``, and the two at most ``MAX_RANGE`` apart (422 naming the field otherwise).
- Sums never mix currencies: each summary holds one entry per currency, amounts in minor units
  here (the endpoints format them).

The rows come from each domain's public report functions (``cards.service.report_*``,
``checkout.service.report_*``), which scope them to the caller's client once more.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.cards import service as cards
from malipo.checkout import service as checkout
from malipo.core.errors import FieldError, NotFound, ValidationFailed
from malipo.identity import clients
from malipo.identity.principals import Principal

MAX_RANGE = timedelta(days=366)
CARD_STATUSES = tuple(cards.AuthorizationStatus)
SESSION_STATUSES = tuple(checkout.SessionStatus)


class ClientNotFound(NotFound):
    code = "client_not_found"
    title = "No such client"


async def client_filter(
    session: AsyncSession, who: Principal, client_id: uuid.UUID | None
) -> uuid.UUID | None:
    """The client whose rows to report (None: every client's, for operators only)."""
    if client_id is None:
        return who.client_id
    client = await clients.client_by_id(session, client_id)
    if client is None or not who.sees_client(client.id):
        raise ClientNotFound(f"no client {client_id}", errors=[FieldError("clientId", "no such client")])
    return client.id


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed.for_field(name, "must fall between the years 1 and 9999 in UTC") from None


def window(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """[``since``, ``until``) in UTC, checked: in order, and at most ``MAX_RANGE`` long."""
    since, until = _utc(since, "from"), _utc(until, "to")
    if since is not None and until is not None:
        if since >= until:
            raise ValidationFailed.for_field("from", "must be before `to`")
        if until - since > MAX_RANGE:
            raise ValidationFailed.for_field("to", f"must be at most {MAX_RANGE.days} days after `from`")
    return since, until


# -- summaries -------------------------------------------------------------------------------------


@dataclass
class StatusSum:
    count: int = 0
    amount: int = 0


@dataclass
class CardCurrency:
    """One currency's authorisations: how many, and the amounts (minor units)."""

    currency: str
    count: int = 0
    approved: int = 0
    captured: int = 0
    refunded: int = 0
    fees: int = 0
    by_status: dict[str, StatusSum] = field(
        default_factory=lambda: {s.value: StatusSum() for s in CARD_STATUSES}
    )


@dataclass
class SessionCurrency:
    """One currency's checkout sessions: how many, how many paid, and their amounts (minor units)."""

    currency: str
    count: int = 0
    amount: int = 0
    by_status: dict[str, StatusSum] = field(
        default_factory=lambda: {s.value: StatusSum() for s in SESSION_STATUSES}
    )

    @property
    def completed(self) -> StatusSum:
        return self.by_status[checkout.SessionStatus.COMPLETED]


def conversion(completed: int, count: int) -> float:
    """The share of sessions paid, 0 to 1 (4 decimals); 0 when there are none."""
    return round(completed / count, 4) if count else 0.0


def _add(by_status: dict[str, StatusSum], status: str, count: int, amount: int) -> None:
    found = by_status.setdefault(status, StatusSum())  # a status the enum has not named yet still counts
    found.count += count
    found.amount += amount


async def card_summary(
    session: AsyncSession, who: Principal, *, client_id: uuid.UUID | None, mode: str | None,
    since: datetime | None, until: datetime | None,
) -> list[CardCurrency]:  # fmt: skip
    """Per currency (alphabetical): the authorisations' count, approved, captured, refunded and fees."""
    found: dict[str, CardCurrency] = {}
    for row in await cards.report_totals(
        session, who, client_id=client_id, mode=mode, since=since, until=until
    ):
        entry = found.setdefault(row.currency, CardCurrency(row.currency))
        entry.count += row.count
        entry.approved += row.approved
        entry.captured += row.captured
        entry.refunded += row.refunded
        entry.fees += row.fee
        _add(entry.by_status, row.status, row.count, row.amount)
    return [found[currency] for currency in sorted(found)]


async def session_summary(
    session: AsyncSession, who: Principal, *, client_id: uuid.UUID | None, mode: str | None,
    since: datetime | None, until: datetime | None,
) -> list[SessionCurrency]:  # fmt: skip
    """Per currency (alphabetical): the sessions' count and amount, by status."""
    found: dict[str, SessionCurrency] = {}
    for row in await checkout.report_totals(
        session, who, client_id=client_id, mode=mode, since=since, until=until
    ):
        entry = found.setdefault(row.currency, SessionCurrency(row.currency))
        entry.count += row.count
        entry.amount += row.amount
        _add(entry.by_status, row.status, row.count, row.amount)
    return [found[currency] for currency in sorted(found)]
