"""Cards: authorise (with 3-D Secure), capture, void, refund; the PAN and CVV never in a repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from malipo.core.cards import mask_pan
from malipo.providers.base.common import RailError


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
