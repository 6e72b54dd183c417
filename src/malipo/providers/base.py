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

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BalanceOutcome",
    "BankTransfer",
    "BusinessPayment",
    "CallbackProblem",
    "CardAcquirer",
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
    "ReversalRequest",
    "Sms",
    "Status",
    "TransferAccepted",
    "TransferOutcome",
    "WhatsApp",
]


class Status(StrEnum):
    """Where a request stands, as far as the rail says."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The rail has it and has not finished: ask again later.
    PENDING = "pending"
    # The rail gave no answer (unreachable, or it no longer knows the request).
    UNKNOWN = "unknown"


class NotSupported(Exception):
    """The provider has no such operation (yet)."""


class ProviderUnavailable(Exception):
    """No connector serves this network yet; nothing was sent."""

    def __init__(self, network_code: str, name: str) -> None:
        super().__init__(f"{name} ({network_code}) is not available yet")
        self.network_code = network_code
        self.name = name


class RailError(Exception):
    """A call to the rail that failed.

    ``not_taken`` is True only when the provider certainly did not take the request (it never
    reached it, or it said no): only then may the domain retry or fail it. Otherwise sending again
    could charge or pay twice. ``retryable`` says whether the same request may succeed later.
    ``result_code`` and ``result_desc`` are the outcome to record when the domain gives up on it.
    """

    def __init__(
        self, message: str, *, retryable: bool, not_taken: bool, result_code: int, result_desc: str
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.not_taken = not_taken
        self.result_code = result_code
        self.result_desc = result_desc


@dataclass(frozen=True, slots=True)
class CallbackProblem:
    """One field of a provider's callback body that is out of bounds (dotted path, message)."""

    field: str
    message: str


class MalformedCallback(ValueError):
    """A callback body that is not what the provider sends: ``problems`` names at most five fields."""

    def __init__(self, what: str, count: int, problems: Sequence[CallbackProblem]) -> None:
        named = ", ".join(problem.field for problem in problems)
        super().__init__(f"{what}: {count} problem(s) ({named})")
        self.what = what
        self.count = count
        self.problems = tuple(problems)


# --------------------------------------------------------------------------- mobile money


@dataclass(frozen=True, slots=True)
class PushRequest:
    """Prompt ``phone`` to pay ``amount`` (minor units) for our ``reference``. ``callback_token``
    is the secret the provider puts in the callback URL it hands the rail (the domain finds the
    collection by it)."""

    reference: str
    amount: int
    phone: str
    callback_token: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PushAccepted:
    """The rail took the push; the outcome comes later (callback or query)."""

    provider_reference: str  # what a query asks about (Daraja: CheckoutRequestID)
    provider_request_id: str | None = None  # Daraja: MerchantRequestID


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """How a push collection ended (or stands). ``amount`` and ``party`` are what the rail says
    was paid and by whom, None where it said nothing (compare them with what was asked)."""

    status: Status
    result_code: int
    result_desc: str
    receipt: str | None = None
    provider_reference: str | None = None
    provider_request_id: str | None = None
    amount: int | None = None
    party: str | None = None
    # Why the rail gave no answer (UNKNOWN), for the logs.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PhonePayment:
    """Pay ``amount`` (minor units) to ``phone``. ``our_id`` is unique per payout and sent with it
    (Daraja: OriginatorConversationID, which makes a repeat a refused duplicate)."""

    reference: str
    amount: int
    phone: str
    our_id: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class BusinessPayment:
    """Pay ``amount`` (minor units) to a paybill or till, for ``account`` there (a bank account)."""

    reference: str
    amount: int
    paybill: str
    account: str
    our_id: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class PayoutAccepted:
    provider_reference: str  # Daraja: ConversationID


@dataclass(frozen=True, slots=True)
class PayoutOutcome:
    """A payout's result. ``our_id`` and ``provider_reference`` are the ids the rail names (check
    them against the payout's); ``amount``, ``party`` and ``account`` what it says it paid."""

    status: Status
    result_code: int
    result_desc: str
    receipt: str | None = None
    our_id: str | None = None
    provider_reference: str | None = None
    amount: int | None = None
    party: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutStatusQuery:
    """Ask the rail about a payout whose result never came; the answer arrives at the rail's
    status callback. ``query_id`` is the id the rail knows it by, ``attempt`` our query count."""

    query_id: str
    attempt: int
    callback_token: str


@dataclass(frozen=True, slots=True)
class PayoutStatusAnswer:
    """The answer to a payout status query. ``completed``: the rail reports the payout done and
    ``outcome`` is its result (check its ids). Otherwise ``attempt`` is the query it answers
    (None when it cannot tell) and ``outcome`` the failure to record when no query is left."""

    completed: bool
    outcome: PayoutOutcome
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class ReversalRequest:
    receipt: str
    amount: int
    reference: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class BalanceOutcome:
    amounts: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class MobileMoney(Protocol):
    """A mobile-money rail: collect by push, pay phones and businesses, and read its callbacks."""

    name: str
    # The longest account reference a business payment may carry (a bank account number).
    account_reference_max: int

    async def push_collection(self, request: PushRequest) -> PushAccepted:
        """Raises :class:`RailError` when the push failed (see ``not_taken``)."""
        ...

    async def query_push(self, provider_reference: str) -> PushOutcome:
        """The push's outcome; PENDING or UNKNOWN carry the outcome to record on giving up."""
        ...

    def no_answer(self) -> PushOutcome:
        """The outcome of a push that was made and that nobody answered."""
        ...

    def parse_push_callback(self, body: bytes) -> PushOutcome:
        """The rail's push callback body → outcome; :class:`MalformedCallback` if it is not one."""
        ...

    async def pay_phone(self, payment: PhonePayment) -> PayoutAccepted: ...

    async def pay_business(self, payment: BusinessPayment) -> PayoutAccepted: ...

    def payout_query_id(self, *, to_business: bool, our_id: str, provider_reference: str | None) -> str:
        """The id a status query about a payout asks the rail about."""
        ...

    async def query_payout(self, query: PayoutStatusQuery) -> None:
        """Ask about a payout; the answer arrives at the rail's status callback."""
        ...

    def parse_payout_result(self, body: bytes, *, to_business: bool) -> PayoutOutcome: ...

    def parse_payout_timeout(self, body: bytes) -> PayoutOutcome: ...

    def parse_payout_status(self, body: bytes) -> PayoutStatusAnswer: ...

    def callback_reply(self) -> dict[str, Any]:
        """What the rail expects back from a callback malipo took."""
        ...

    async def reverse(self, request: ReversalRequest) -> PayoutAccepted:
        """Raises :class:`NotSupported` until the provider's reversal exists."""
        ...

    async def balance(self) -> BalanceOutcome:
        """Raises :class:`NotSupported` until the provider's balance query exists."""
        ...


# --------------------------------------------------------------------------- messaging


@runtime_checkable
class Sms(Protocol):
    """An SMS gateway (Africa's Talking today): one message to many numbers, a result per number."""

    async def send(self, to: list[str], message: str, sender_id: str | None = None) -> Sequence[Any]: ...


@runtime_checkable
class WhatsApp(Protocol):
    """A WhatsApp Business sender (the Cloud API today)."""

    async def send_text(self, to: str, body: str, preview_url: bool = False) -> Any: ...

    async def send_image(self, to: str, link: str, caption: str | None = None) -> Any: ...

    async def send_document(
        self, to: str, link: str, caption: str | None = None, filename: str | None = None
    ) -> Any: ...


@runtime_checkable
class Email(Protocol):
    """An outgoing mail server (SMTP today): a built message in, the server's reply out."""

    async def deliver(self, message: EmailMessage) -> str: ...


# --------------------------------------------------------------------------- bank transfers


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """Pay ``amount`` (minor units of ``currency``) from ``debtor_account`` to ``creditor_account``
    at the bank ``creditor_bank_code`` (its 3-digit code). ``end_to_end_id`` is ours, unique per
    transfer and sent with it: the rail refuses a second transfer with the same one (a repeat is a
    duplicate, never a second payment) and answers status queries by it. ``debtor_name`` is the
    merchant the money is paid for (the ultimate debtor); ``remittance`` the text the creditor sees
    (at most 140 characters). ``callback_token`` is the secret the provider puts in the status
    callback URL it hands the rail (the domain finds the transfer by it)."""

    end_to_end_id: str
    amount: int
    currency: str
    debtor_account: str
    debtor_name: str
    creditor_account: str
    creditor_bank_code: str
    remittance: str
    callback_token: str
    creditor_name: str | None = None


@dataclass(frozen=True, slots=True)
class TransferAccepted:
    """The rail took the transfer (ISO 20022 ACTC/PDNG, or ACSC when it settled at once).
    ``outcome`` is what the acknowledgement already says (PENDING, or final)."""

    provider_reference: str  # the rail's transaction id
    outcome: TransferOutcome


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """Where a credit transfer stands: SUCCEEDED (settled, ACSC), FAILED (rejected, RJCT, with the
    ISO 20022 ``reason_code`` such as AC01, AC04, AM04 or RR04), PENDING (accepted, not settled) or
    UNKNOWN (the rail does not know it, or gave no answer). ``end_to_end_id``, ``amount``,
    ``currency`` and ``creditor_account`` are what the rail says (None where it said nothing):
    compare them with what was asked before money moves."""

    status: Status
    end_to_end_id: str | None = None
    provider_reference: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    amount: int | None = None
    currency: str | None = None
    creditor_account: str | None = None
    creditor_bank_code: str | None = None
    # Why the rail gave no answer (UNKNOWN), for the logs.
    error: str | None = None
    # UNKNOWN because the rail answered it has no such transfer: it never arrived, and sending it
    # again (with the same EndToEndId) is safe.
    not_found: bool = False


@runtime_checkable
class BankTransfer(Protocol):
    """A bank credit-transfer rail: send a transfer, receive its status at a callback, and ask for
    it when the callback is late."""

    name: str

    async def send_transfer(self, request: CreditTransfer) -> TransferAccepted:
        """Raises :class:`RailError` when the rail did not take it (see ``not_taken``); a
        rejection the rail decides at once comes back as an accepted FAILED outcome."""
        ...

    async def query_transfer(self, end_to_end_id: str) -> TransferOutcome:
        """The transfer's status now; UNKNOWN when the rail does not know it or cannot be reached."""
        ...

    def parse_status_report(self, body: bytes) -> TransferOutcome:
        """The rail's status callback body → outcome; :class:`MalformedCallback` if it is not one."""
        ...

    def callback_reply(self) -> dict[str, Any]:
        """What the rail expects back from a status callback malipo took."""
        ...


# --------------------------------------------------------------------------- coming next


class CardAcquirer(Protocol):
    """A card acquirer with 3-D Secure (declared only: its connector comes next)."""

    async def authorise(self, request: Any) -> Any: ...

    async def capture(self, request: Any) -> Any: ...

    async def refund(self, request: Any) -> Any: ...
