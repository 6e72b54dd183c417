"""The card acquirer's wire protocol: a small JSON API in the shape public PSP APIs have (Stripe,
Checkout.com, Adyen): snake_case fields, amounts as integers in minor units, ISO 4217 currencies,
ISO 8583 field 39 response codes, EMV 3-D Secure 2 fields, and an ``Idempotency-Key`` header on
every POST (malipo sends its own id of the authorisation, capture, void or refund).

=============================================================  =====================================
call                                                           answer
=============================================================  =====================================
``POST /v1/authorisations``                                    201 :class:`AuthorisationResponse`
``GET /v1/authorisations/{reference}``                         200 :class:`AuthorisationResponse`
``POST /v1/authorisations/{reference}/3ds-completions``        200 :class:`AuthorisationResponse`
``POST /v1/authorisations/{reference}/captures``               201 :class:`CaptureResponse`
``POST /v1/authorisations/{reference}/voids``                  201 :class:`VoidResponse`
``POST /v1/authorisations/{reference}/refunds``                201 :class:`RefundResponse`
=============================================================  =====================================

A refusal is a 4xx with :class:`ErrorBody` (``{"error": {"code", "message", "fields"}}``). Unknown
fields are ignored. The card number and CVC are ``SecretStr``: a model's ``repr`` never shows them.
docs/card-acquirer.md has an example of every message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from malipo.core.money import CURRENCY_EXPONENTS

__all__ = [
    "AUTHORISATIONS_PATH",
    "IDEMPOTENCY_HEADER",
    "STATES",
    "AuthorisationRequest",
    "AuthorisationResponse",
    "CaptureBody",
    "CaptureResponse",
    "CardIn",
    "CardOut",
    "ErrorBody",
    "ErrorDetail",
    "RefundBody",
    "RefundResponse",
    "ThreeDsCompletion",
    "ThreeDsIn",
    "ThreeDsOut",
    "VoidBody",
    "VoidResponse",
]

AUTHORISATIONS_PATH = "/v1/authorisations"
IDEMPOTENCY_HEADER = "Idempotency-Key"

# An authorisation's state at the acquirer (the ``status`` of an AuthorisationResponse).
State = Literal[
    "pending_3ds", "authorised", "declined", "failed_3ds", "captured", "partially_refunded", "refunded",
    "voided", "expired",
]  # fmt: skip
STATES: tuple[str, ...] = (
    "pending_3ds", "authorised", "declined", "failed_3ds", "captured", "partially_refunded", "refunded",
    "voided", "expired",
)  # fmt: skip

# Our ids (authorisation reference, capture/void/refund ids, idempotency keys).
Reference = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Minor units, above zero (at most 10^15: no currency needs more).
MinorAmount = Annotated[int, Field(gt=0, le=10**15, strict=True)]
ResponseCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{2}$")]
ReturnUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _known_currency(value: str) -> str:
    if value not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {value}")
    return value


# --------------------------------------------------------------------------- authorisation


class CardIn(_Wire):
    """The card: ``number`` 12 to 19 digits, ``expiry_month`` 1 to 12, ``expiry_year`` four digits,
    ``cvc`` 3 to 4 digits (optional: a stored-credential authorisation goes without)."""

    number: SecretStr
    expiry_month: int = Field(ge=1, le=12)
    expiry_year: int = Field(ge=2000, le=2100)
    cvc: SecretStr | None = None
    holder_name: Annotated[str, StringConstraints(min_length=1, max_length=140)] | None = None

    @field_validator("number")
    @classmethod
    def _digits(cls, value: SecretStr) -> SecretStr:
        number = value.get_secret_value()
        if not (number.isascii() and number.isdigit() and 12 <= len(number) <= 19):
            raise ValueError("number must be 12 to 19 digits")
        return value

    @field_validator("cvc")
    @classmethod
    def _cvc_digits(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            cvc = value.get_secret_value()
            if not (cvc.isascii() and cvc.isdigit() and 3 <= len(cvc) <= 4):
                raise ValueError("cvc must be 3 or 4 digits")
        return value


class ThreeDsIn(_Wire):
    """3-D Secure: where the ACS page sends the payer back (``return_url``), and the requestor's
    challenge preference (EMV ``threeDSRequestorChallengeInd``: 01 no preference, 02 no challenge
    requested, 03 challenge requested, 04 challenge mandated)."""

    return_url: ReturnUrl
    challenge_indicator: Literal["01", "02", "03", "04"] = "01"


class AuthorisationRequest(_Wire):
    """The body of ``POST /v1/authorisations`` (its ``Idempotency-Key`` is ``reference``)."""

    reference: Reference
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    amount: MinorAmount
    currency: CurrencyCode
    card: CardIn
    three_ds: ThreeDsIn

    _currency = field_validator("currency")(_known_currency)


class CardOut(_Wire):
    """The card as the acquirer shows it: BIN, last 4, brand and expiry — never the number."""

    bin: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,8}$")]
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
    brand: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None


class ThreeDsOut(_Wire):
    """How the payer was (or is to be) authenticated. ``trans_status`` Y/A/N/U/R/C/I; ``eci`` and
    ``authentication_value`` when Y or A; ``acs_url`` and ``trans_id`` while a challenge waits."""

    version: str = "2.2.0"
    trans_id: str | None = None
    trans_status: Literal["Y", "A", "N", "U", "R", "C", "I"] | None = None
    eci: Annotated[str, StringConstraints(pattern=r"^[0-9]{2}$")] | None = None
    authentication_value: Annotated[str, StringConstraints(max_length=64)] | None = None
    acs_url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class AuthorisationResponse(_Wire):
    """An authorisation: the answer to the POST, to a query and to a 3DS completion. ``id`` is the
    acquirer's reference, ``reference`` ours."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    reference: Reference
    order_id: str | None = None
    status: State
    response_code: ResponseCode | None = None
    response_summary: Annotated[str, StringConstraints(max_length=200)] | None = None
    auth_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{6}$")] | None = None
    amount: MinorAmount
    currency: CurrencyCode
    captured_amount: int = Field(default=0, ge=0)
    refunded_amount: int = Field(default=0, ge=0)
    card: CardOut | None = None
    # The e-commerce indicator the authorisation carried (05/02 authenticated … 07/00 without 3DS).
    eci: Annotated[str, StringConstraints(pattern=r"^[0-9]{2}$")] | None = None
    three_ds: ThreeDsOut | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


class ThreeDsCompletion(_Wire):
    """The body of ``POST /v1/authorisations/{reference}/3ds-completions``."""

    pares: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


# --------------------------------------------------------------------------- modifications


class CaptureBody(_Wire):
    capture_id: Reference
    amount: MinorAmount
    currency: CurrencyCode


class CaptureResponse(_Wire):
    id: str
    capture_id: Reference
    reference: Reference
    amount: MinorAmount
    currency: CurrencyCode
    released_amount: int = Field(ge=0)
    status: State


class VoidBody(_Wire):
    void_id: Reference


class VoidResponse(_Wire):
    id: str
    void_id: Reference
    reference: Reference
    released_amount: int = Field(ge=0)
    currency: CurrencyCode
    status: State


class RefundBody(_Wire):
    refund_id: Reference
    amount: MinorAmount
    currency: CurrencyCode


class RefundResponse(_Wire):
    id: str
    refund_id: Reference
    reference: Reference
    amount: MinorAmount
    currency: CurrencyCode
    refunded_amount: int = Field(ge=0)
    status: State


# --------------------------------------------------------------------------- errors


class ErrorDetail(_Wire):
    """Why a request was refused: a code (``unauthorized``, ``invalid_request``, ``not_found``,
    ``amount_exceeds_authorised``, …; docs/card-acquirer.md lists them), a message, the fields."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    message: Annotated[str, StringConstraints(max_length=500)] = ""
    fields: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=20
    )


class ErrorBody(_Wire):
    """The body of every 4xx: ``{"error": {"code", "message", "fields"}}``."""

    error: ErrorDetail
