"""Airtel Money Open API wire shapes: the requests malipo sends and the replies and callbacks it
reads.

Airtel's published samples disagree with each other in places (``expires_in`` a string or a
number, ``success`` false on a successful enquiry, ``id`` echoed as ``false``): the reply models
accept every variant seen and ignore fields they do not use, and decisions rest on
``data.transaction.status`` rather than on ``status.success`` or ``status.response_code``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AMBIGUOUS",
    "BALANCE_PATH",
    "COLLECTION_PATH",
    "DISBURSEMENT_PATH",
    "EXPIRED",
    "FAILED",
    "IN_PROGRESS",
    "SUCCESS",
    "TOKEN_PATH",
    "BalanceReply",
    "CallbackBody",
    "CallbackTransaction",
    "CollectionRequest",
    "DisbursementRequest",
    "Envelope",
    "ReplyStatus",
    "TokenReply",
    "TransactionReply",
    "collection_enquiry_path",
    "disbursement_enquiry_path",
]

TOKEN_PATH = "/auth/oauth2/token"  # noqa: S105 - a path
COLLECTION_PATH = "/merchant/v1/payments/"  # the trailing slash as Airtel documents it
DISBURSEMENT_PATH = "/standard/v2/disbursements/"
BALANCE_PATH = "/standard/v1/users/balance"

# data.transaction.status (an enquiry) and transaction.status_code (a callback).
SUCCESS = "TS"
FAILED = "TF"
AMBIGUOUS = "TA"
IN_PROGRESS = "TIP"
EXPIRED = "TE"  # one third-party source only: read as a failure


def collection_enquiry_path(transaction_id: str) -> str:
    return f"/standard/v1/payments/{transaction_id}"


def disbursement_enquiry_path(transaction_id: str) -> str:
    return f"/standard/v1/disbursements/{transaction_id}"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --------------------------------------------------------------------------- OAuth


class TokenRequest(_Wire):
    client_id: str
    client_secret: str
    grant_type: str = "client_credentials"


class TokenReply(_Wire):
    access_token: str = Field(min_length=1)
    # A string in the docs' sample ("180"), a number in the mock: both read.
    expires_in: int | str = 180
    token_type: str = "bearer"  # noqa: S105 - a scheme

    def lifetime(self, default: int = 180) -> int:
        try:
            return max(1, int(self.expires_in))
        except ValueError:
            return default


# --------------------------------------------------------------------------- envelopes


class ReplyStatus(_Wire):
    """Airtel's ``status`` object: ``code`` is an HTTP-like string, ``result_code`` the ESB code,
    ``response_code`` the product's DP code."""

    code: str | None = None
    message: str | None = None
    result_code: str | None = None
    response_code: str | None = None
    success: bool | None = None

    @field_validator("code", "result_code", "response_code", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return None if value is None else str(value)


class ReplyTransaction(_Wire):
    # Some samples echo ``"id": false``: never relied on.
    id: str | bool | None = None
    status: str | None = None
    message: str | None = None
    airtel_money_id: str | None = None
    reference_id: str | None = None


class TransactionData(_Wire):
    transaction: ReplyTransaction | None = None


class Envelope(_Wire):
    """Any business reply: ``data`` (absent from errors) and ``status``."""

    data: TransactionData | None = None
    status: ReplyStatus | None = None


class TransactionReply(Envelope):
    """A collection's or a disbursement's reply, or an enquiry's answer."""

    @property
    def transaction(self) -> ReplyTransaction:
        return (self.data.transaction if self.data else None) or ReplyTransaction()


class BalanceData(_Wire):
    balance: Decimal | None = None
    currency: str | None = None
    account_status: str | None = None


class BalanceReply(_Wire):
    data: BalanceData | None = None
    status: ReplyStatus | None = None


# --------------------------------------------------------------------------- requests


class Subscriber(_Wire):
    country: str
    currency: str
    msisdn: str


class CollectionTransaction(_Wire):
    amount: int | Decimal
    country: str
    currency: str
    id: str


class CollectionRequest(_Wire):
    """USSD push: prompt ``subscriber.msisdn`` (without country code) to pay ``transaction.amount``
    (major units) for our ``transaction.id``."""

    reference: str
    subscriber: Subscriber
    transaction: CollectionTransaction


class Payee(_Wire):
    msisdn: str
    currency: str
    wallet_type: str = "NORMAL"
    name: str | None = None


class DisbursementTransaction(_Wire):
    amount: int | Decimal
    id: str
    type: str = "B2C"


class DisbursementRequest(_Wire):
    """Disbursement (v2): ``pin`` is the merchant's PIN encrypted with Airtel's RSA key."""

    payee: Payee
    reference: str
    pin: str
    transaction: DisbursementTransaction


# --------------------------------------------------------------------------- callbacks


class CallbackTransaction(BaseModel):
    """Airtel's callback ``transaction``: our id, its status code, a text and Airtel's receipt.

    ``amount`` and ``code`` are not in Airtel's published samples; when a callback carries them
    they are read (and ``amount`` compared with what was asked)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=100)
    status_code: str = Field(min_length=1, max_length=10)
    message: str | None = Field(default=None, max_length=1000)
    airtel_money_id: str | None = Field(default=None, max_length=60)
    amount: Decimal | None = Field(default=None, ge=0, le=Decimal("1e12"))
    code: str | None = Field(default=None, max_length=40)

    @field_validator("airtel_money_id", "message", "code", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class CallbackBody(BaseModel):
    """``{"transaction": {...}}``, with ``hash`` when callback authentication is on."""

    model_config = ConfigDict(extra="ignore")

    transaction: CallbackTransaction
    hash: str | None = Field(default=None, max_length=200)
