"""Fees: a merchant's own tariff when the operator set one, else the defaults from settings.

What callers can rely on:
- ``fee(session, settings, client_id, kind, amount)`` is the fee of ``amount``: ``percent`` of it
  plus ``fixed``, kept within ``[minimum, maximum]``, rounded half up to a whole minor unit.
- ``set_pricing`` validates everything before it writes (percent 0 to 100 with at most two
  decimals, amounts ≥ 0 in the client's currency, minimum ≤ maximum), naming the field that is
  wrong, and replaces the merchant's tariff of that kind; it takes effect on the next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.errors import FieldError, ValidationFailed
from malipo.core.money import Money
from malipo.identity.models import Client
from malipo.pricing import repository
from malipo.pricing.models import MerchantPricing, PricingKind

Source = Literal["merchant", "default"]
MAX_BASIS_POINTS = 10_000  # 100 %


def fee_of(amount: Money, *, percent_bp: int, fixed: int, minimum: int, maximum: int) -> Money:
    """The one fee computation: ``percent_bp`` basis points of ``amount`` (rounded half up to a
    minor unit) plus ``fixed``, kept within [``minimum``, ``maximum``]; minor units of its currency."""
    currency = amount.currency
    charged = amount.percentage(percent_bp) + Money(fixed, currency)
    return min(max(charged, Money(minimum, currency)), Money(maximum, currency))


@dataclass(frozen=True, slots=True)
class Tariff:
    """A tariff in integers: basis points and minor units of the transaction's currency."""

    kind: PricingKind
    percent_bp: int
    fixed: int
    minimum: int
    maximum: int
    source: Source
    updated_at: datetime | None = None

    def fee(self, amount: Money) -> Money:
        return fee_of(
            amount, percent_bp=self.percent_bp, fixed=self.fixed, minimum=self.minimum, maximum=self.maximum
        )

    @property
    def percent(self) -> str:
        """``"1.5"`` for 150 basis points, ``"0"`` for none."""
        return format(Decimal(self.percent_bp) / 100, "f")


# -- reading values ----------------------------------------------------------------------


def parse_percent(value: object, *, field: str = "percent") -> int:
    """A percentage (``1.5``, ``"1.5"``, ``2``) in basis points; ValidationFailed naming ``field``."""
    if isinstance(value, bool):
        raise ValidationFailed.for_field(field, "must be a number, not a boolean")
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, int | str | Decimal):
            number = Decimal(str(value).strip())
        else:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise ValidationFailed.for_field(field, "must be a number") from None
    if not number.is_finite():
        raise ValidationFailed.for_field(field, "must be a finite number")
    if not 0 <= number <= 100:
        raise ValidationFailed.for_field(field, "must be from 0 to 100")
    basis_points = number * 100
    if basis_points != basis_points.to_integral_value():
        raise ValidationFailed.for_field(field, "has at most two decimal places (a basis point)")
    return int(basis_points)


def _default(settings: Settings, kind: PricingKind, currency: str) -> Tariff:
    if kind == PricingKind.COLLECTION:
        values = (
            settings.collection_fee_percent,
            settings.collection_fee_fixed,
            settings.collection_fee_min,
            settings.collection_fee_max,
        )
    elif kind == PricingKind.CARD:
        values = (
            settings.card_fee_percent,
            settings.card_fee_fixed,
            settings.card_fee_min,
            settings.card_fee_max,
        )
    else:
        values = (
            settings.payout_fee_percent,
            settings.payout_fee_fixed,
            settings.payout_fee_min,
            settings.payout_fee_max,
        )
    percent, fixed, minimum, maximum = values
    return Tariff(
        kind=kind,
        # Whole basis points: a finer percent in the settings is cut, never rounded up.
        percent_bp=int(Decimal(percent) * 100),
        fixed=Money.parse(fixed, currency, allow_zero=True).amount,
        minimum=Money.parse(minimum, currency, allow_zero=True).amount,
        maximum=Money.parse(maximum, currency, allow_zero=True).amount,
        source="default",
    )


def _from_row(row: MerchantPricing) -> Tariff:
    return Tariff(
        kind=PricingKind(row.kind), percent_bp=row.percent_bp, fixed=row.fixed, minimum=row.minimum,
        maximum=row.maximum, source="merchant", updated_at=row.updated_at,
    )  # fmt: skip


# -- what a merchant pays ----------------------------------------------------------------


async def tariff_for(
    session: AsyncSession, settings: Settings, client_id: uuid.UUID, kind: PricingKind, currency: str
) -> Tariff:
    """The merchant's own tariff of ``kind`` if the operator set one, else the settings' defaults."""
    row = await repository.tariff_row(session, client_id, kind)
    return _from_row(row) if row is not None else _default(settings, kind, currency)


async def fee(
    session: AsyncSession, settings: Settings, client_id: uuid.UUID, kind: PricingKind, amount: Money
) -> Money:
    tariff = await tariff_for(session, settings, client_id, kind, amount.currency)
    return tariff.fee(amount)


async def pricing_of(session: AsyncSession, settings: Settings, client: Client) -> list[Tariff]:
    """Every tariff of ``client`` (collections, payouts, cards), each its own or the default."""
    own = {PricingKind(r.kind): r for r in await repository.tariff_rows(session, client.id)}
    return [
        _from_row(own[kind]) if kind in own else _default(settings, kind, client.currency)
        for kind in PricingKind
    ]


# -- setting it --------------------------------------------------------------------------


async def set_pricing(
    session: AsyncSession,
    client: Client,
    kind: PricingKind,
    *,
    percent: object,
    fixed: object,
    minimum: object,
    maximum: object,
    now: datetime,
) -> Tariff:
    """Replace ``client``'s tariff of ``kind``; amounts in major units of the client's currency."""
    percent_bp = parse_percent(percent)
    amounts = {}
    for name, value in (("fixed", fixed), ("minimum", minimum), ("maximum", maximum)):
        if not isinstance(value, int | float | str | Decimal) or isinstance(value, bool):
            raise ValidationFailed.for_field(name, "must be a number or a decimal string")
        amounts[name] = Money.parse(value, client.currency, field=name, allow_zero=True).amount
    if amounts["minimum"] > amounts["maximum"]:
        raise ValidationFailed(
            "minimum: must not be more than maximum",
            errors=[
                FieldError("minimum", "must not be more than maximum"),
                FieldError("maximum", "must not be less than minimum"),
            ],
        )
    values = {"percent_bp": percent_bp, **amounts, "updated_at": now}
    row = await repository.tariff_row(session, client.id, kind)
    if row is None:
        try:
            async with session.begin_nested():
                row = MerchantPricing(client_id=client.id, kind=kind, created_at=now, **values)
                await repository.add_tariff(session, row)
        except IntegrityError:  # set at the same moment by another request: update that one
            row = await repository.tariff_row(session, client.id, kind)
            if row is None:
                raise
    for name, value in values.items():
        setattr(row, name, value)
    await session.flush()
    return _from_row(row)
