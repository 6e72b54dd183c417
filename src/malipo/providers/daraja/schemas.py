"""Daraja's wire shapes, spelt exactly as Daraja spells them, and its small protocol rules.

Requests are what malipo sends; replies and callbacks are what Daraja sends back and are read
leniently: unknown fields are kept, numbers arriving where strings are expected are accepted
(``ResponseCode`` is ``"0"`` in one sample and ``0`` in another), and a list that Daraja
sometimes sends as a single object (``ResultParameter``, ``ReferenceItem``) is read either way.
Look callback items up by name with the helpers, never by position.

What Daraja sends is bounded before malipo reads it: every integer within the column or the
range it lands in (``ResultCode`` within a 32-bit integer, strictly an integer in callbacks),
every string no longer than the column it is stored in (a receipt in ``String(30)``), numbers
finite. A callback outside these bounds is malformed and refused, whatever the database.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

__all__ = [
    "B2B_ACCOUNT_REFERENCE_MAX",
    "B2B_COMMAND_IDS",
    "B2C_COMMAND_IDS",
    "BUSINESS_PAY_BILL",
    "BUY_GOODS",
    "EAT",
    "INT32_MAX",
    "INT32_MIN",
    "INVALID_ACCESS_TOKEN",
    "INVALID_AUTHENTICATION",
    "INVALID_GRANT_TYPE",
    "INVALID_REQUEST",
    "PAYBILL",
    "PROCESSING_ERROR",
    "SANDBOX_MSISDN",
    "SANDBOX_PASSKEY",
    "SANDBOX_SHORTCODE",
    "SHORTCODE_IDENTIFIER",
    "AccessTokenReply",
    "B2BReply",
    "B2BRequest",
    "B2CReply",
    "B2CRequest",
    "CallbackItem",
    "DarajaErrorBody",
    "DarajaResult",
    "KeyValue",
    "ReferenceItemList",
    "ResultBody",
    "ResultParameterList",
    "StkCallback",
    "StkCallbackBody",
    "StkCallbackMetadata",
    "StkCallbackPayload",
    "StkPushReply",
    "StkPushRequest",
    "StkQueryReply",
    "StkQueryRequest",
    "TransactionStatusReply",
    "TransactionStatusRequest",
    "daraja_timestamp",
    "parse_daraja_time",
    "shillings_to_minor",
    "stk_password",
]

#: Kenya time (no daylight saving), in which Daraja timestamps are written.
EAT = timezone(timedelta(hours=3), "EAT")

#: Public sandbox values from Daraja's docs and simulator (not secrets).
SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SANDBOX_MSISDN = "254708374149"

PAYBILL = "CustomerPayBillOnline"
BUY_GOODS = "CustomerBuyGoodsOnline"
B2C_COMMAND_IDS = frozenset({"BusinessPayment", "SalaryPayment", "PromotionPayment"})
BUSINESS_PAY_BILL = "BusinessPayBill"
B2B_COMMAND_IDS = frozenset(
    {
        BUSINESS_PAY_BILL,
        "BusinessBuyGoods",
        "DisburseFundsToBusiness",
        "BusinessToBusinessTransfer",
        "MerchantToMerchantTransfer",
    }
)
#: Daraja takes at most this many characters of ``AccountReference`` in a B2B payment.
B2B_ACCOUNT_REFERENCE_MAX = 13
#: ``SenderIdentifierType`` and ``RecieverIdentifierType`` of B2B: an organisation shortcode.
SHORTCODE_IDENTIFIER = "4"

# Gateway-level error codes (section 2 of the reference).
INVALID_ACCESS_TOKEN = "404.001.03"  # noqa: S105  # an error code, not a secret
INVALID_REQUEST = "400.002.02"
PROCESSING_ERROR = "500.001.1001"
INVALID_AUTHENTICATION = "400.008.01"
INVALID_GRANT_TYPE = "400.008.02"

_TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"

#: Bounds of the ``Integer`` columns a result code lands in (PostgreSQL's ``integer``).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: The largest amount in shillings malipo reads from Daraja (M-Pesa's largest is far below).
_AMOUNT_MAX = 10**9
#: Any other integer Daraja sends (balances, dates as numbers): within a 64-bit integer.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Any other string Daraja sends in a callback.
_TEXT_MAX = 1000

#: A result code: an integer (strictly, in callbacks) that fits the column it is stored in.
ResultCodeInt = Annotated[StrictInt, Field(ge=INT32_MIN, le=INT32_MAX)]
#: Lengths of the columns Daraja's ids, receipts and descriptions are stored in.
RequestId = Annotated[str, Field(min_length=1, max_length=60)]
Receipt = Annotated[str, Field(max_length=30)]
Description = Annotated[str, Field(max_length=300)]
Amount = Annotated[int, Field(ge=1, le=_AMOUNT_MAX)]


def daraja_timestamp(when: datetime) -> str:
    """``when`` as Daraja's ``YYYYMMDDHHmmss`` in Kenya time; ``when`` must be timezone-aware."""
    if when.tzinfo is None:
        raise ValueError("daraja_timestamp needs a timezone-aware datetime")
    return when.astimezone(EAT).strftime(_TIMESTAMP_FORMAT)


def parse_daraja_time(value: str | int) -> datetime:
    """A Daraja ``YYYYMMDDHHmmss`` (string or number) as an aware datetime in Kenya time."""
    return datetime.strptime(str(value), _TIMESTAMP_FORMAT).replace(tzinfo=EAT)


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """The STK ``Password``: base64 of shortcode, passkey and timestamp run together."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


class _Wire(BaseModel):
    """Daraja JSON: unknown fields kept, numbers accepted where Daraja's samples show strings."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


def _as_list(value: Any) -> Any:
    """Daraja sends a one-element list as the bare element in some replies."""
    return [value] if isinstance(value, dict) else value


def _bounded_value(value: Any) -> Any:
    """A callback item's value within bounds: integers in 64 bits, floats finite, strings short."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError("integer out of range")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("number out of range")
    if isinstance(value, str) and len(value) > _TEXT_MAX:
        raise ValueError(f"longer than {_TEXT_MAX} characters")
    return value


def shillings_to_minor(value: Any) -> int:
    """An amount Daraja sends in shillings (``1``, ``1.0``, ``"1.00"``) in cents; ValueError if
    it is not a number of cents from 0 to the bound."""
    if isinstance(value, bool) or value is None:
        raise ValueError("not an amount")
    try:
        number = Decimal(str(value)) * 100
    except InvalidOperation:
        raise ValueError("not an amount") from None
    if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= _AMOUNT_MAX * 100:
        raise ValueError("not an amount in whole cents within bounds")
    return int(number)


def _digits(value: Any, *, max_length: int = 20) -> str | None:
    """A phone number or shortcode as text (Daraja may send it as a number)."""
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not a phone number")
        value = int(value)
    text = str(value)
    if len(text) > max_length:
        raise ValueError(f"longer than {max_length} characters")
    return text


# --------------------------------------------------------------------------- common


class AccessTokenReply(_Wire):
    """``GET /oauth/v1/generate``: ``expires_in`` is a string of seconds (``"3599"``)."""

    access_token: str = Field(repr=False)
    expires_in: str


class DarajaErrorBody(_Wire):
    """The gateway's error body: ``{"requestId", "errorCode", "errorMessage"}``."""

    requestId: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None


# --------------------------------------------------------------------------- STK push and query


class StkPushRequest(_Wire):
    """``POST /mpesa/stkpush/v1/processrequest``."""

    BusinessShortCode: str
    Password: str = Field(repr=False)
    Timestamp: str
    TransactionType: str
    Amount: Amount
    PartyA: str
    PartyB: str
    PhoneNumber: str
    CallBackURL: str
    AccountReference: str
    TransactionDesc: str


class StkPushReply(_Wire):
    """The synchronous acknowledgement; ``ResponseCode == "0"`` means accepted for processing."""

    MerchantRequestID: RequestId
    CheckoutRequestID: RequestId
    ResponseCode: str
    ResponseDescription: str
    CustomerMessage: str | None = None


class StkQueryRequest(_Wire):
    """``POST /mpesa/stkpushquery/v1/query``."""

    BusinessShortCode: str
    Password: str = Field(repr=False)
    Timestamp: str
    CheckoutRequestID: str


class StkQueryReply(_Wire):
    """An answered STK query. ``ResultCode`` is a *string* here (an integer in callbacks)."""

    ResponseCode: str
    ResponseDescription: str
    MerchantRequestID: str | None = None
    CheckoutRequestID: str | None = None
    ResultCode: Annotated[str, Field(pattern=r"^-?[0-9]{1,10}$")]
    ResultDesc: Description

    @field_validator("ResultCode")
    @classmethod
    def _code_in_range(cls, value: str) -> str:
        if not INT32_MIN <= int(value) <= INT32_MAX:
            raise ValueError("ResultCode out of range")
        return value


class CallbackItem(_Wire):
    """One ``{Name, Value}`` of ``CallbackMetadata.Item``; ``Balance`` comes without a ``Value``."""

    Name: str = Field(max_length=100)
    Value: int | float | str | None = None

    _bounded = field_validator("Value")(_bounded_value)


class StkCallbackMetadata(_Wire):
    """``CallbackMetadata``: the ``Item`` list."""

    Item: list[CallbackItem] = Field(default_factory=list)

    _normalise = field_validator("Item", mode="before")(_as_list)


class StkCallback(_Wire):
    """``Body.stkCallback``: metadata is present only when ``ResultCode == 0``."""

    MerchantRequestID: RequestId
    CheckoutRequestID: RequestId
    ResultCode: ResultCodeInt
    ResultDesc: Description
    CallbackMetadata: StkCallbackMetadata | None = None

    @model_validator(mode="after")
    def _known_items(self) -> StkCallback:
        """The items malipo stores or compares are read now: a bad one makes the callback malformed."""
        self.amount_minor  # noqa: B018
        self.mpesa_receipt_number  # noqa: B018
        self.phone_number  # noqa: B018
        return self

    def metadata(self) -> dict[str, Any]:
        """The metadata items by name (an item without a value maps to ``None``)."""
        if self.CallbackMetadata is None:
            return {}
        return {item.Name: item.Value for item in self.CallbackMetadata.Item}

    def item(self, name: str) -> Any:
        """One metadata item's value, ``None`` when absent."""
        return self.metadata().get(name)

    @property
    def amount(self) -> int | None:
        """The amount paid in whole shillings (Daraja may send ``1`` or ``1.0``)."""
        minor = self.amount_minor
        if minor is None:
            return None
        if minor % 100:
            raise ValueError(f"Amount {self.item('Amount')!r} is not whole shillings")
        return minor // 100

    @property
    def amount_minor(self) -> int | None:
        """The amount paid in cents; ValueError if it is not an amount."""
        value = self.item("Amount")
        return None if value is None else shillings_to_minor(value)

    @property
    def mpesa_receipt_number(self) -> str | None:
        value = self.item("MpesaReceiptNumber")
        if value is None:
            return None
        text = str(value)
        if len(text) > 30:
            raise ValueError("MpesaReceiptNumber is longer than 30 characters")
        return text

    @property
    def transaction_date(self) -> datetime | None:
        """``TransactionDate`` (a number ``YYYYMMDDHHmmss``, Kenya time) as an aware datetime."""
        value = self.item("TransactionDate")
        return None if value is None else parse_daraja_time(int(value))

    @property
    def phone_number(self) -> str | None:
        """The payer's MSISDN as text (Daraja sends it as a number; masked or hashed in some APIs)."""
        return _digits(self.item("PhoneNumber"), max_length=64)  # 64: a SHA-256 hex (hidden MSISDN)


class StkCallbackBody(_Wire):
    stkCallback: StkCallback


class StkCallbackPayload(_Wire):
    """What Daraja POSTs to ``CallBackURL``: ``{"Body": {"stkCallback": {...}}}``."""

    Body: StkCallbackBody

    @property
    def callback(self) -> StkCallback:
        return self.Body.stkCallback


# --------------------------------------------------------------------------- B2C and results


class B2CRequest(_Wire):
    """``POST /mpesa/b2c/v3/paymentrequest``."""

    OriginatorConversationID: str
    InitiatorName: str
    SecurityCredential: str = Field(repr=False)
    CommandID: str
    Amount: Amount
    PartyA: str
    PartyB: str
    Remarks: str
    QueueTimeOutURL: str
    ResultURL: str
    Occasion: str | None = None


class B2CReply(_Wire):
    """The synchronous acknowledgement of a B2C request (also of transaction status)."""

    ConversationID: RequestId
    OriginatorConversationID: Annotated[str, Field(max_length=100)]
    ResponseCode: str
    ResponseDescription: str


class KeyValue(_Wire):
    """One ``{Key, Value}`` of ``ResultParameter`` or ``ReferenceItem``; values keep their JSON types."""

    Key: str = Field(max_length=100)
    Value: Any = None

    _bounded = field_validator("Value")(_bounded_value)


class ResultParameterList(_Wire):
    """``ResultParameters``: the ``ResultParameter`` list."""

    ResultParameter: list[KeyValue] = Field(default_factory=list)

    _normalise = field_validator("ResultParameter", mode="before")(_as_list)


class ReferenceItemList(_Wire):
    """``ReferenceData``: the ``ReferenceItem`` list (a single object in most samples)."""

    ReferenceItem: list[KeyValue] = Field(default_factory=list)

    _normalise = field_validator("ReferenceItem", mode="before")(_as_list)


class DarajaResult(_Wire):
    """``Result`` of an asynchronous command (B2C, B2B, transaction status, a queue timeout)."""

    ResultType: Annotated[StrictInt, Field(ge=0, le=9)]
    ResultCode: ResultCodeInt
    ResultDesc: Description
    OriginatorConversationID: RequestId
    ConversationID: RequestId
    TransactionID: Receipt | None = None
    ResultParameters: ResultParameterList | None = None
    ReferenceData: ReferenceItemList | None = None

    def parameters(self) -> dict[str, Any]:
        """``ResultParameters`` by ``Key`` (their order varies between messages)."""
        if self.ResultParameters is None:
            return {}
        return {item.Key: item.Value for item in self.ResultParameters.ResultParameter}

    def parameter(self, key: str) -> Any:
        """One result parameter's value, ``None`` when absent. Some keys hold spaces."""
        return self.parameters().get(key)

    def references(self) -> dict[str, Any]:
        if self.ReferenceData is None:
            return {}
        return {item.Key: item.Value for item in self.ReferenceData.ReferenceItem}

    @model_validator(mode="after")
    def _known_parameters(self) -> DarajaResult:
        """The parameters malipo stores or compares are read now: a bad one makes it malformed."""
        parameters = self.parameters()
        for key in ("TransactionReceipt", "ReceiptNo"):
            value = parameters.get(key)
            if value is not None and len(str(value)) > 30:
                raise ValueError(f"{key} is longer than 30 characters")
        for key in ("TransactionAmount", "Amount"):
            if parameters.get(key) not in (None, ""):
                shillings_to_minor(parameters[key])
        return self

    def amount_minor(self, key: str) -> int | None:
        """A result parameter holding shillings, in cents (None when absent)."""
        value = self.parameter(key)
        return None if value in (None, "") else shillings_to_minor(value)


class ResultBody(_Wire):
    """What Daraja POSTs to ``ResultURL`` (and ``QueueTimeOutURL``): ``{"Result": {...}}``."""

    Result: DarajaResult


class B2BRequest(_Wire):
    """``POST /mpesa/b2b/v1/paymentrequest`` (Business Pay Bill): shortcode to a paybill.

    ``RecieverIdentifierType`` is Daraja's own spelling. ``OriginatorConversationID`` is not in
    Daraja's published B2B fields (B2C v3 has it): malipo sends its own id so that a gateway that
    honours it (the simulator does) refuses a duplicate; the ack's ids are the ones to keep.
    """

    Initiator: str
    SecurityCredential: str = Field(repr=False)
    CommandID: str = BUSINESS_PAY_BILL
    SenderIdentifierType: str = SHORTCODE_IDENTIFIER
    RecieverIdentifierType: str = SHORTCODE_IDENTIFIER
    Amount: Amount
    PartyA: str
    PartyB: str
    AccountReference: str = Field(max_length=B2B_ACCOUNT_REFERENCE_MAX)
    Requester: str | None = None
    Remarks: str
    QueueTimeOutURL: str
    ResultURL: str
    Occasion: str | None = None
    OriginatorConversationID: str | None = None


class B2BReply(B2CReply):
    """The synchronous acknowledgement of a B2B request; the result arrives at ``ResultURL``."""


class TransactionStatusRequest(_Wire):
    """``POST /mpesa/transactionstatus/v1/query``: give ``TransactionID`` or ``OriginalConversationID``."""

    Initiator: str
    SecurityCredential: str = Field(repr=False)
    CommandID: str = "TransactionStatusQuery"
    TransactionID: str | None = None
    OriginalConversationID: str | None = None
    PartyA: str
    IdentifierType: str
    ResultURL: str
    QueueTimeOutURL: str
    Remarks: str
    Occasion: str | None = None


class TransactionStatusReply(B2CReply):
    """The synchronous acknowledgement; the answer arrives later at ``ResultURL``."""


# --------------------------------------------------------------------------- C2B register URL (v2)


class C2bRegisterRequest(BaseModel):
    ShortCode: str
    ResponseType: str  # Completed | Cancelled
    ConfirmationURL: str
    ValidationURL: str


class C2bRegisterReply(_Wire):
    # Daraja's samples spell it "OriginatorCoversationID"; accept both.
    OriginatorCoversationID: str | None = None
    OriginatorConversationID: str | None = None
    ResponseCode: str
    ResponseDescription: str | None = None
