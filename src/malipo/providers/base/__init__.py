"""The seam between malipo's domains and the rails: one Protocol per capability, with
provider-neutral requests and outcomes.

A domain asks a rail for something with a request dataclass and reads back an outcome
dataclass; it never sees a provider's wire shapes, result codes or callback URLs. Amounts are
minor units (cents) on this side; each provider converts at its own edge. ``result_code`` and
``result_desc`` are malipo's result code and description (for M-Pesa, Daraja's own codes,
which merchants already read through the Pay Hero surface), decided by the provider package.

A provider that lacks an operation raises :class:`NotSupported`; a network malipo has no
connector for yet is refused by the registry with :class:`ProviderUnavailable`.
"""

from __future__ import annotations

from malipo.providers.base.bank import (
    BankTransfer,
    CreditTransfer,
    TransferAccepted,
    TransferOutcome,
)
from malipo.providers.base.cards import (
    AuthorisationOutcome,
    CaptureOutcome,
    CaptureRequest,
    CardAcquirer,
    CardAuthorisation,
    CardRequestRefused,
    CardState,
    CardStatus,
    RefundOutcome,
    RefundRequest,
    VoidOutcome,
    VoidRequest,
)
from malipo.providers.base.common import (
    CallbackProblem,
    MalformedCallback,
    NotSupported,
    ProviderUnavailable,
    RailError,
    Status,
)
from malipo.providers.base.messaging import (
    Email,
    Sms,
    WhatsApp,
)
from malipo.providers.base.mobile_money import (
    BalanceLine,
    BalanceOutcome,
    BusinessPayment,
    MobileMoney,
    PayoutAccepted,
    PayoutOutcome,
    PayoutStatusAnswer,
    PayoutStatusQuery,
    PhonePayment,
    PushAccepted,
    PushOutcome,
    PushRequest,
    ReversalAccepted,
    ReversalOutcome,
    ReversalRequest,
)
from malipo.providers.base.statement import RailTransaction, StatementUnavailable

__all__ = [
    "AuthorisationOutcome",
    "BalanceLine",
    "BalanceOutcome",
    "BankTransfer",
    "BusinessPayment",
    "CallbackProblem",
    "CaptureOutcome",
    "CaptureRequest",
    "CardAcquirer",
    "CardAuthorisation",
    "CardRequestRefused",
    "CardState",
    "CardStatus",
    "CreditTransfer",
    "Email",
    "MalformedCallback",
    "MobileMoney",
    "NotSupported",
    "PayoutAccepted",
    "PayoutOutcome",
    "PayoutStatusAnswer",
    "PayoutStatusQuery",
    "PhonePayment",
    "ProviderUnavailable",
    "PushAccepted",
    "PushOutcome",
    "PushRequest",
    "RailError",
    "RailTransaction",
    "RefundOutcome",
    "RefundRequest",
    "ReversalAccepted",
    "ReversalOutcome",
    "ReversalRequest",
    "Sms",
    "StatementUnavailable",
    "Status",
    "TransferAccepted",
    "TransferOutcome",
    "VoidOutcome",
    "VoidRequest",
    "WhatsApp",
]
