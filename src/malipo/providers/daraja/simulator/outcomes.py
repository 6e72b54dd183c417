"""The simulator's scripted outcomes: which phone or account gets which result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

DEFAULT_PORT = 8701


class Delivery(StrEnum):
    """How an outcome reaches the merchant."""

    RESULT = "result"  # POSTed to CallBackURL / ResultURL
    LOST = "lost"  # the transaction completes but its notification never arrives
    UNANSWERED = "unanswered"  # STK: the customer never answers; the prompt expires, no callback
    QUEUE_TIMEOUT = "queue_timeout"  # B2C, B2B: timed out in Daraja's queue; QueueTimeOutURL is told


@dataclass(frozen=True, slots=True)
class Outcome:
    result_code: int
    result_desc: str
    delivery: Delivery = Delivery.RESULT

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0


_PROCESSED = "The service request is processed successfully."
_INSUFFICIENT = "The balance is insufficient for the transaction."
_INITIATOR_INVALID = "The initiator information is invalid."

STK_SUCCESS = Outcome(0, _PROCESSED)
#: STK push outcomes by the ``PhoneNumber`` prompted; any other number pays.
STK_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "254700000001": Outcome(1032, "Request cancelled by user"),
        "254700000002": Outcome(1037, "DS timeout user cannot be reached"),
        "254700000003": Outcome(1, _INSUFFICIENT),
        "254700000004": Outcome(2001, _INITIATOR_INVALID),
        "254700000005": Outcome(1037, "DS timeout user cannot be reached", Delivery.UNANSWERED),
        "254700000006": Outcome(0, _PROCESSED, Delivery.LOST),
        "254700000007": Outcome(1019, "Transaction has expired"),
        "254700000008": Outcome(
            1001, "Unable to lock subscriber, a transaction is already in process for the current subscriber"
        ),
    }
)
#: From this many shillings an STK push by an unlisted number fails with ResultCode 1.
STK_INSUFFICIENT_FROM = 1_000_000

B2C_SUCCESS = Outcome(0, _PROCESSED)
#: B2C outcomes by the receiving ``PartyB``; any other number is paid.
B2C_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "254700000011": Outcome(2001, _INITIATOR_INVALID),
        "254700000012": Outcome(1, _INSUFFICIENT),
        "254700000013": Outcome(
            2040,
            "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the"
            " service.",
        ),
        "254700000014": Outcome(1, "The service request has timed out.", Delivery.QUEUE_TIMEOUT),
        "254700000015": Outcome(0, _PROCESSED, Delivery.LOST),
    }
)
B2B_SUCCESS = Outcome(0, _PROCESSED)
#: B2B outcomes by ``AccountReference`` (the bank account paid); any other account is paid.
B2B_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "1000000021": Outcome(2001, _INITIATOR_INVALID),
        "1000000022": Outcome(1, _INSUFFICIENT),
        "1000000023": Outcome(12, "The receiver account does not exist."),
        "1000000024": Outcome(1, "The service request has timed out.", Delivery.QUEUE_TIMEOUT),
        "1000000025": Outcome(0, _PROCESSED, Delivery.LOST),
        "1000000026": Outcome(17, "Internal failure", Delivery.LOST),
    }
)
_B2C_INSUFFICIENT = Outcome(1, _INSUFFICIENT)
_INITIATOR_REJECTED = Outcome(2001, _INITIATOR_INVALID)
_STATUS_FOUND = Outcome(0, _PROCESSED)
_STATUS_NOT_FOUND = Outcome(2032, "The transaction receipt number does not exist.")

_STK_QUERY_ACCEPTED = "The service request has been accepted successsfully"  # sic: Daraja's spelling
_B2C_ACCEPTED = "Accept the service request successfully."
_PAYBILL_NAME = "Simulated Paybill"
_STK_ACCEPTED = "Success. Request accepted for processing"
_CUSTOMER_NAME = "John Doe"
_BUSINESS_NAME = "Simulated Business"
_REASON_TYPES = {
    "BusinessPayment": "Business Payment to Customer via API",
    "SalaryPayment": "Salary Payment via API",
    "PromotionPayment": "Promotion Payment via API",
}

_B2B_REASON_TYPES = {
    "BusinessPayBill": "Business Pay Bill",
    "BusinessBuyGoods": "Business Buy Goods",
}
