"""Requests and replies of the pricing routes (/api/v1/clients/{id}/pricing).

On the wire a percentage is a number or decimal string (``1.5`` is 1.5 %), and amounts are
numbers or decimal strings in major units of the client's currency (``"15.00"``); replies
give all four as strings.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from malipo.http.schemas import CamelModel


def _number_input(value: Any) -> Any:
    # A boolean is a JSON type of its own, not 1 or 0.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number or a decimal string")
    return value


Number = Annotated[int | float | str, BeforeValidator(_number_input)]


class TariffIn(CamelModel):
    """A merchant's whole tariff for one kind: every field is required (PUT replaces it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"percent": "1.5", "fixed": "0", "minimum": "1.00", "maximum": "1000.00"}]
        }
    )

    percent: Number = Field(
        description="Percentage of the amount, 0 to 100, two decimals at most", examples=["1.5"]
    )
    fixed: Number = Field(description="Added to every fee, ≥ 0, major units", examples=["0"])
    minimum: Number = Field(description="The smallest fee, ≥ 0, major units", examples=["1.00"])
    maximum: Number = Field(description="The largest fee, ≥ minimum, major units", examples=["1000.00"])


class TariffOut(CamelModel):
    kind: Literal["collection", "payout", "card"]
    percent: str
    fixed: str
    minimum: str
    maximum: str
    currency: str
    source: Literal["merchant", "default"] = Field(
        description="`merchant`: set for this client; `default`: the gateway's settings"
    )
    updated_at: datetime | None


class PricingOut(CamelModel):
    client_id: uuid.UUID
    collection: TariffOut
    payout: TariffOut
    card: TariffOut
