"""/api/v1 routes of per-merchant pricing: operators set a client's tariffs; the client reads its own.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.tags import PRICING
from malipo.identity import clients
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.pricing.schemas import PricingOut, TariffIn, TariffOut

router = APIRouter(tags=[PRICING])


def tariff_out(tariff: pricing.Tariff, currency: str) -> TariffOut:
    return TariffOut(
        kind=tariff.kind.value,  # type: ignore[arg-type]
        percent=tariff.percent,
        fixed=Money(tariff.fixed, currency).format(),
        minimum=Money(tariff.minimum, currency).format(),
        maximum=Money(tariff.maximum, currency).format(),
        currency=currency,
        source=tariff.source,
        updated_at=tariff.updated_at,
    )


@router.get(
    "/clients/{id:uuid}/pricing", response_model=PricingOut, name="Pricing.Read",
    summary="Get a client's fees",
    openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def read_pricing(
    id: uuid.UUID, who: CurrentPrincipal, session: Session, settings: SettingsDep
) -> PricingOut:
    """The client's collection, payout and card fees: its own if an operator set them, else the
    defaults."""
    client = await clients.get_client(session, who, id)
    collection, payout, card = await pricing.pricing_of(session, settings, client)
    return PricingOut(
        client_id=client.id,
        collection=tariff_out(collection, client.currency),
        payout=tariff_out(payout, client.currency),
        card=tariff_out(card, client.currency),
    )


@router.put(
    "/clients/{id:uuid}/pricing/{kind}", response_model=TariffOut, name="Pricing.Update",
    summary="Set a client's collection or payout fee",
    openapi_extra=callers(OP),
)  # fmt: skip
async def update_pricing(
    id: uuid.UUID, kind: PricingKind, body: TariffIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> TariffOut:
    """Set the client's fee for `collection` or `payout`: `percent` of the amount plus `fixed`,
    kept within [`minimum`, `maximum`]. It applies from the client's next request, sandbox and live."""
    client = await clients.get_client(session, who, id)
    tariff = await pricing.set_pricing(
        session, client, kind, percent=body.percent, fixed=body.fixed, minimum=body.minimum,
        maximum=body.maximum, now=clock.now(),
    )  # fmt: skip
    return tariff_out(tariff, client.currency)
