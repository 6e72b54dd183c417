"""Daraja's wire shapes, spelt exactly as Daraja spells them, and its small protocol rules.

Requests are what malipo sends; replies and callbacks are what Daraja sends back and are read
leniently: unknown fields are kept, numbers arriving where strings are expected are accepted
(``ResponseCode`` is ``"0"`` in one sample and ``0`` in another), and a list that Daraja
sometimes sends as a single object (``ResultParameter``, ``ReferenceItem``) is read either way.
Look callback items up by name with the helpers, never by position.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "B2B_ACCOUNT_REFERENCE_MAX",
    "B2B_COMMAND_IDS",
    "B2C_COMMAND_IDS",
    "BUSINESS_PAY_BILL",
    "BUY_GOODS",
    "EAT",
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
    Amount: int
    PartyA: str
    PartyB: str
    PhoneNumber: str
    CallBackURL: str
    AccountReference: str
    TransactionDesc: str


class StkPushReply(_Wire):
    """The synchronous acknowledgement; ``ResponseCode == "0"`` means accepted for processing."""

    MerchantRequestID: str
    CheckoutRequestID: str
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
    ResultCode: str
    ResultDesc: str


class CallbackItem(_Wire):
    """One ``{Name, Value}`` of ``CallbackMetadata.Item``; ``Balance`` comes without a ``Value``."""

    Name: str
    Value: int | float | str | None = None


class StkCallbackMetadata(_Wire):
    """``CallbackMetadata``: the ``Item`` list."""

    Item: list[CallbackItem] = Field(default_factory=list)

    _normalise = field_validator("Item", mode="before")(_as_list)


class StkCallback(_Wire):
    """``Body.stkCallback``: metadata is present only when ``ResultCode == 0``."""

    MerchantRequestID: str
    CheckoutRequestID: str
    ResultCode: int
    ResultDesc: str
    CallbackMetadata: StkCallbackMetadata | None = None

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
        value = self.item("Amount")
        if value is None:
            return None
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"Amount {value!r} is not whole shillings")
        return int(number)

    @property
    def mpesa_receipt_number(self) -> str | None:
        value = self.item("MpesaReceiptNumber")
        return None if value is None else str(value)

    @property
    def transaction_date(self) -> datetime | None:
        """``TransactionDate`` (a number ``YYYYMMDDHHmmss``, Kenya time) as an aware datetime."""
        value = self.item("TransactionDate")
        return None if value is None else parse_daraja_time(int(value))

    @property
    def phone_number(self) -> str | None:
        """The payer's MSISDN as text (Daraja sends it as a number)."""
        value = self.item("PhoneNumber")
        if value is None:
            return None
        return str(int(value)) if isinstance(value, float) else str(value)


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
    Amount: int
    PartyA: str
    PartyB: str
    Remarks: str
    QueueTimeOutURL: str
    ResultURL: str
    Occasion: str | None = None


class B2CReply(_Wire):
    """The synchronous acknowledgement of a B2C request (also of transaction status)."""

    ConversationID: str
    OriginatorConversationID: str
    ResponseCode: str
    ResponseDescription: str


class KeyValue(_Wire):
    """One ``{Key, Value}`` of ``ResultParameter`` or ``ReferenceItem``; values keep their JSON types."""

    Key: str
    Value: Any = None


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

    ResultType: int
    ResultCode: int
    ResultDesc: str
    OriginatorConversationID: str
    ConversationID: str
    TransactionID: str | None = None
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
    Amount: int
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
