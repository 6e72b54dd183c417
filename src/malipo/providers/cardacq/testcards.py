"""The simulated issuer's test cards: what it does with each public test card number (Stripe's,
cards-3ds.md §6). Any other Luhn-valid number is approved without 3-D Secure; docs/card-acquirer.md
has the table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from malipo.providers.cardacq import codes

__all__ = ["APPROVES", "TEST_CARDS", "IssuerBehaviour", "ThreeDs"]

ThreeDs = Literal["not_required", "frictionless", "challenge", "unsupported", "lookup_fails"]


@dataclass(frozen=True, slots=True)
class IssuerBehaviour:
    """What the simulated issuer does with a card: its 3-D Secure answer and its decision
    (``response``, an ISO 8583 code) without 3DS or after authentication."""

    response: str = codes.APPROVED
    three_ds: ThreeDs = "not_required"


APPROVES = IssuerBehaviour()
TEST_CARDS: Mapping[str, IssuerBehaviour] = MappingProxyType(
    {
        "4242424242424242": APPROVES,
        "4000056655665556": APPROVES,
        "5555555555554444": APPROVES,
        "2223003122003222": APPROVES,
        "378282246310005": IssuerBehaviour(three_ds="unsupported"),
        "4000000000000002": IssuerBehaviour(response=codes.DO_NOT_HONOUR),
        "4000000000009995": IssuerBehaviour(response=codes.INSUFFICIENT_FUNDS),
        "4000000000009987": IssuerBehaviour(response=codes.LOST_CARD),
        "4000000000009979": IssuerBehaviour(response=codes.STOLEN_CARD),
        "4000000000000069": IssuerBehaviour(response=codes.EXPIRED_CARD),
        "4000000000000127": IssuerBehaviour(response=codes.INCORRECT_CVC),
        "4000000000000119": IssuerBehaviour(response=codes.SYSTEM_MALFUNCTION),
        "4100000000000019": IssuerBehaviour(response=codes.SUSPECTED_FRAUD),
        "4000000000003055": IssuerBehaviour(three_ds="frictionless"),
        "4000000000003220": IssuerBehaviour(three_ds="challenge"),
        "4000002760003184": IssuerBehaviour(three_ds="challenge"),
        "4000008400001629": IssuerBehaviour(response=codes.DO_NOT_HONOUR, three_ds="challenge"),
        "4000008260003178": IssuerBehaviour(response=codes.INSUFFICIENT_FUNDS, three_ds="challenge"),
        "4000008400001280": IssuerBehaviour(three_ds="lookup_fails"),
    }
)
