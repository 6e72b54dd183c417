"""What the simulator remembers of each request it took, and of each callback it sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from malipo.providers.daraja.simulator.outcomes import Outcome

# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class StkPush:
    merchant_request_id: str
    checkout_request_id: str
    shortcode: str
    transaction_type: str
    party_b: str
    phone: str
    amount: int
    account_reference: str
    callback_url: str
    outcome: Outcome
    created_at: datetime
    result: Outcome | None = None  # set once the customer has acted (or the prompt expired)
    receipt: str | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class B2CPayment:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    command_id: str
    amount: int
    party_a: str
    phone: str
    remarks: str
    occasion: str
    result_url: str
    queue_timeout_url: str
    created_at: datetime
    result: Outcome | None = None
    transaction_id: str | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class B2BPayment:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    command_id: str
    amount: int
    party_a: str
    party_b: str
    account_reference: str
    requester: str
    remarks: str
    occasion: str
    result_url: str
    queue_timeout_url: str
    created_at: datetime
    result: Outcome | None = None
    transaction_id: str | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class StatusQuery:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    transaction_id: str
    original_conversation_id: str
    result_url: str
    occasion: str
