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
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from malipo.core.cards import mask_pan

# fmt: off
__all__ = [
    "AuthorisationOutcome", "BalanceOutcome", "BankTransfer", "BusinessPayment", "CallbackProblem",
    "CaptureOutcome", "CaptureRequest", "CardAcquirer", "CardAuthorisation", "CardRequestRefused",
    "CardState", "CardStatus", "CreditTransfer", "Email", "MalformedCallback", "MobileMoney",
    "NotSupported", "PayoutAccepted", "PayoutOutcome", "PayoutStatusAnswer", "PayoutStatusQuery",
    "PhonePayment", "ProviderUnavailable", "PushAccepted", "PushOutcome", "PushRequest", "RailError",
    "RefundOutcome", "RefundRequest", "ReversalRequest", "Sms", "Status", "TransferAccepted",
    "TransferOutcome", "VoidOutcome", "VoidRequest", "WhatsApp",
]
# fmt: on


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


# --------------------------------------------------------------------------- cards


class CardStatus(StrEnum):
    """What the acquirer decided about an authorisation. CHALLENGE_REQUIRED: send the payer's
    browser to ``acs_url``, then complete it with the paRes the ACS page hands back; FAILED_3DS:
    the payer did not authenticate (transStatus N or R), nothing is held; UNKNOWN: no answer, or
    the acquirer does not know it."""

    APPROVED = "approved"
    DECLINED = "declined"
    CHALLENGE_REQUIRED = "challenge_required"
    FAILED_3DS = "failed_3ds"
    UNKNOWN = "unknown"


class CardState(StrEnum):
    """Where an authorisation stands at the acquirer. CAPTURED: in full or in part
    (``captured_amount``, the rest released); EXPIRED: not captured in time (7 days), released."""

    PENDING_3DS = "pending_3ds"
    AUTHORISED = "authorised"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    EXPIRED = "expired"
    DECLINED = "declined"
    FAILED_3DS = "failed_3ds"


@dataclass(frozen=True, slots=True)
class CardAuthorisation:
    """Authorise (hold) ``amount`` (minor units of ``currency``) on a card. ``reference`` is ours,
    unique per attempt and sent as the idempotency key: the acquirer answers a repeat with the
    authorisation it already has, never a second hold. ``cvv`` is held only for this call (PCI DSS
    3.3.1); neither it nor ``pan`` appears in a ``repr``. ``return_url`` is where the acquirer's ACS
    page sends the payer's browser (HTTP 303, with ``paRes`` and ``reference`` in the query) after
    a 3-D Secure challenge. ``challenge_mandated`` asks for a challenge whatever the issuer prefers
    (EMV 3DS ``threeDSRequestorChallengeInd`` 04)."""

    reference: str
    amount: int
    currency: str
    pan: str = field(repr=False)
    expiry_month: int
    expiry_year: int
    return_url: str
    order_id: str | None = None
    cvv: str | None = field(default=None, repr=False)
    cardholder_name: str | None = None
    challenge_mandated: bool = False

    @property
    def masked_pan(self) -> str:
        """The PAN as PCI DSS allows it shown: BIN (first 6) and last 4."""
        return mask_pan(self.pan)


@dataclass(frozen=True, slots=True)
class AuthorisationOutcome:
    """An authorisation as the acquirer states it. ``response_code`` is the ISO 8583 field 39 code
    ("00" approved, "05" do not honour, "51" insufficient funds, "1A" authentication required, …)
    and ``response_desc`` its meaning. For CHALLENGE_REQUIRED, ``acs_url`` is the page the payer's
    browser must open and ``three_ds_trans_id`` the 3DS transaction. ``trans_status`` (EMV 3DS
    Y/A/N/U/R/C/I), ``eci`` ("05"/"02" authenticated, "06"/"01" attempted, "07"/"00" not) and
    ``authentication_value`` (the CAVV/AAV) say how the payer was authenticated. ``amount`` and
    ``currency`` are what the acquirer holds: compare them with what was asked."""

    status: CardStatus
    reference: str | None = None
    acquirer_reference: str | None = None
    state: CardState | None = None
    auth_code: str | None = None
    response_code: str | None = None
    response_desc: str | None = None
    acs_url: str | None = None
    three_ds_trans_id: str | None = None
    trans_status: str | None = None
    eci: str | None = None
    authentication_value: str | None = None
    amount: int | None = None
    currency: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    brand: str | None = None
    card_bin: str | None = None
    card_last4: str | None = None
    expires_at: datetime | None = None  # when an uncaptured hold lapses (the acquirer's clock)
    error: str | None = None  # why the acquirer gave no answer (UNKNOWN), for the logs
    not_found: bool = False  # UNKNOWN because the acquirer has no such authorisation


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """Capture ``amount`` (≤ authorised) of the authorisation ``authorisation_reference``; one
    capture per authorisation, the remainder released. ``capture_id`` is ours (the idempotency
    key)."""

    authorisation_reference: str
    capture_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class CaptureOutcome:
    authorisation_reference: str
    capture_id: str
    acquirer_reference: str
    amount: int
    currency: str
    released_amount: int  # what the capture left of the hold, now released
    state: CardState


@dataclass(frozen=True, slots=True)
class VoidRequest:
    """Release an uncaptured authorisation. ``void_id`` is ours (the idempotency key)."""

    authorisation_reference: str
    void_id: str


@dataclass(frozen=True, slots=True)
class VoidOutcome:
    authorisation_reference: str
    void_id: str
    acquirer_reference: str
    released_amount: int
    currency: str
    state: CardState


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Refund ``amount`` of a captured authorisation; partial refunds may repeat until the captured
    amount is used up. ``refund_id`` is ours (the idempotency key)."""

    authorisation_reference: str
    refund_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    authorisation_reference: str
    refund_id: str
    acquirer_reference: str
    amount: int
    currency: str
    refunded_amount: int  # refunded so far, this refund included
    state: CardState


class CardRequestRefused(RailError):
    """The acquirer answered and said no to a request about an authorisation, for a reason of the
    request itself (``reason``: ``amount_exceeds_authorised``, ``already_captured``,
    ``amount_exceeds_captured``, ``authorisation_expired``, ``invalid_state``, ``invalid_pares``,
    ``pares_expired``, ``currency_mismatch``, ``not_found``, ``idempotency_conflict``). Nothing
    changed at the acquirer (``not_taken``), and the same request will not succeed later."""

    def __init__(self, message: str, *, reason: str, result_code: int, result_desc: str) -> None:
        super().__init__(message, retryable=False, not_taken=True, result_code=result_code,
                         result_desc=result_desc)  # fmt: skip
        self.reason = reason


@runtime_checkable
class CardAcquirer(Protocol):
    """A card acquirer with EMV 3-D Secure 2: authorise (hold), complete a challenge, capture, void,
    refund, and ask where an authorisation stands.

    Declines come back as outcomes (DECLINED with the ISO 8583 code); a request the acquirer
    refuses for what it asks (too much, wrong state, a forged paRes) raises
    :class:`CardRequestRefused`; a call that failed raises :class:`RailError` (see ``not_taken``:
    every request carries our id as its idempotency key, so sending it again is safe).
    """

    name: str

    async def authorise(self, request: CardAuthorisation) -> AuthorisationOutcome: ...

    async def complete_challenge(self, authorisation_reference: str, pares: str) -> AuthorisationOutcome:
        """Finish a 3-D Secure challenge with the ``paRes`` the ACS page handed back: APPROVED or
        DECLINED (authenticated, then the issuer's decision) or FAILED_3DS."""
        ...

    async def capture(self, request: CaptureRequest) -> CaptureOutcome: ...

    async def void(self, request: VoidRequest) -> VoidOutcome: ...

    async def refund(self, request: RefundRequest) -> RefundOutcome: ...

    async def query(self, reference: str) -> AuthorisationOutcome:
        """The authorisation now (by our reference); UNKNOWN when the acquirer does not know it
        (``not_found``) or cannot be reached."""
        ...
