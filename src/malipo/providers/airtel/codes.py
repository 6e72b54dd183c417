"""Airtel Money's transaction statuses and DP codes, and the result codes malipo records for them.

malipo's result codes are the ones merchants already read through the Pay Hero surface: 0 is
paid, and a failure whose meaning M-Pesa has too gets M-Pesa's code (1 not enough balance, 2001
a wrong PIN, 1037 no answer from the payer, 1019 expired), so a merchant's handling of a
declined payment works for both networks. Airtel's own code and words stay in the description
("Airtel Money: Not enough balance (DP00800001007)"). A failure with no M-Pesa counterpart gets
malipo's :data:`DECLINED`.

Decisions rest on the transaction status (``TS``, ``TF`` …), never on ``status.success`` or the
DP code of an enquiry's envelope, which Airtel's samples show unchanged for a finished payment.
"""

from __future__ import annotations

from malipo.providers.airtel.schemas import AMBIGUOUS, EXPIRED, FAILED, IN_PROGRESS, SUCCESS
from malipo.providers.base import Status

PAID = 0
# M-Pesa's codes where Airtel's failure means the same.
NOT_ENOUGH_BALANCE = 1
WRONG_PIN = 2001
NO_ANSWER = 1037
EXPIRED_CODE = 1019
# M-Pesa's "error sending push request": a push Airtel refused (or never took).
REFUSED_PUSH = 1025
# malipo's own: Airtel Money declined for a reason M-Pesa has no code for (see the description).
DECLINED = 1098
# A refused or failed disbursement: the generic failure merchants read for M-Pesa payouts too.
PAYOUT_FAILED = 1

PAYER_DID_NOT_ANSWER = "The payer did not answer the Airtel Money prompt in time"
NO_ANSWER_FROM_AIRTEL = "No answer from Airtel Money for this request"
DESC_MAX = 300

# Collection DP codes (Airtel's Uganda portal list): what each means, and malipo's code.
COLLECTION_CODES: dict[str, tuple[int, str]] = {
    "DP00800001001": (PAID, "Success"),
    "DP00800001002": (WRONG_PIN, "Incorrect Pin"),
    "DP00800001003": (DECLINED, "Exceeds withdrawal amount limit(s)"),
    "DP00800001004": (DECLINED, "Invalid Amount"),
    "DP00800001005": (NO_ANSWER, "The payer did not enter the PIN"),
    "DP00800001007": (NOT_ENOUGH_BALANCE, "Not enough balance"),
    "DP00800001008": (DECLINED, "Refused"),
    "DP00800001009": (DECLINED, "Do not honor"),
    "DP00800001010": (DECLINED, "Transaction not permitted to Payee"),
    "DP00800001024": (NO_ANSWER, "Transaction Timed Out"),
    "DP00800001029": (EXPIRED_CODE, "Transaction Expired"),
}
# Collection DP codes that are not an outcome: still processing, or Airtel cannot tell yet.
COLLECTION_PENDING = frozenset({"DP00800001000", "DP00800001006"})
COLLECTION_NOT_FOUND = "DP00800001025"

# Disbursement DP codes: a final failure (the money did not go) or, for these, ask again.
DISBURSEMENT_SUCCESS = "DP00900001001"
DISBURSEMENT_PENDING = frozenset({"DP00900001000", "DP00900001006", "DP00900001014", "DP00900001017"})
DISBURSEMENT_NOT_FOUND = "DP00900001015"
DISBURSEMENT_CODES: dict[str, str] = {
    "DP00900001003": "Daily maximum transaction limit reached",
    "DP00900001004": "Invalid amount",
    "DP00900001005": "Transaction failed",
    "DP00900001007": "Insufficient funds in the disbursement account",
    "DP00900001009": "Invalid initiatee",
    "DP00900001010": "Payer not an allowed user",
    "DP00900001011": "A similar transaction already exists",
    "DP00900001012": "Invalid mobile number",
    "DP00900001013": "Refused",
    "DP00900001016": "Signature and payload did not match",
}
# ESB codes that leave it open whether Airtel took the request (enquire rather than send again).
AMBIGUOUS_RESULTS = frozenset({"ESB000001", "ESB000004", "ESB000014", "ESB000041", "ROUTER117"})
# "External Transaction ID already exists": Airtel has a request with this id already.
DUPLICATE_ID = "ESB000041"
NOT_FOUND_RESULT = "ESB000045"


def status_of(status: str | None) -> Status:
    """A transaction status as a neutral one: TS paid, TF (and TE) failed, anything else pending."""
    if status == SUCCESS:
        return Status.SUCCEEDED
    if status in (FAILED, EXPIRED):
        return Status.FAILED
    if status in (IN_PROGRESS, AMBIGUOUS):
        return Status.PENDING
    return Status.PENDING  # a status Airtel has not documented: ask again rather than guess


def _desc(text: str) -> str:
    return text[:DESC_MAX]


# Airtel's reason phrases (the table's), for a callback that gives the reason in words only.
_BY_REASON = {reason.lower(): dp_code for dp_code, (_code, reason) in COLLECTION_CODES.items()}


def collection_failure(dp_code: str | None, message: str | None) -> tuple[int, str]:
    """malipo's code and description of a failed collection: by ``dp_code`` when Airtel named
    one, else by its message when that is one of Airtel's reason phrases ("Not enough balance")."""
    if dp_code is None and message:
        dp_code = _BY_REASON.get(message.strip().rstrip(".").lower())
    code, reason = COLLECTION_CODES.get(dp_code or "", (DECLINED, ""))
    if code == PAID:  # a DP "success" with a TF status: the status decides
        code, reason = DECLINED, ""
    words = message or reason or "Transaction failed"
    suffix = f" ({dp_code})" if dp_code else ""
    return code, _desc(f"Airtel Money: {words}{suffix}")


def collection_success(message: str | None) -> str:
    return _desc(message or "Airtel Money: the payment was received")


def refused_push(description: str) -> tuple[int, str]:
    """The outcome of a push Airtel refused (or never took)."""
    return REFUSED_PUSH, _desc(f"Airtel Money refused the request: {description}")


def payout_failure(dp_code: str | None, message: str | None) -> tuple[int, str]:
    """malipo's code and description of a disbursement that failed (nothing was paid)."""
    words = message or DISBURSEMENT_CODES.get(dp_code or "") or "Transaction failed"
    suffix = f" ({dp_code})" if dp_code else ""
    return PAYOUT_FAILED, _desc(f"Airtel Money: {words}{suffix}")


def refused_payout(description: str) -> tuple[int, str]:
    return PAYOUT_FAILED, _desc(f"Airtel Money refused the payout: {description}")


def payout_success(message: str | None) -> str:
    return _desc(message or "Airtel Money: the payment was made")
