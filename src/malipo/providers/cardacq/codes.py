"""The card acquirer's codes: ISO 8583 field 39 response codes in words, the acquirer's states as
neutral statuses, EMV 3-D Secure ``transStatus`` values and the ECI each brand uses, and the
acquirer's refusal codes with the ISO code malipo records for each.

A response code malipo does not know passes through as it came ("Declined (code XY)").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from malipo.providers.base import CardState, CardStatus

__all__ = [
    "APPROVED",
    "AUTHENTICATION_REQUIRED",
    "DO_NOT_HONOUR",
    "EXPIRED_CARD",
    "INCORRECT_CVC",
    "INSUFFICIENT_FUNDS",
    "INVALID_AMOUNT",
    "INVALID_CARD_NUMBER",
    "INVALID_MERCHANT",
    "INVALID_TRANSACTION",
    "LOST_CARD",
    "REFUSALS",
    "RESPONSE_CODES",
    "SOFT_DECLINES",
    "STOLEN_CARD",
    "SUSPECTED_FRAUD",
    "SYSTEM_MALFUNCTION",
    "TRANS_STATUSES",
    "card_state",
    "describe",
    "eci_for",
    "status_of",
]

APPROVED = "00"
INVALID_MERCHANT = "03"
DO_NOT_HONOUR = "05"
INVALID_TRANSACTION = "12"
INVALID_AMOUNT = "13"
INVALID_CARD_NUMBER = "14"
LOST_CARD = "41"
STOLEN_CARD = "43"
INSUFFICIENT_FUNDS = "51"
EXPIRED_CARD = "54"
SUSPECTED_FRAUD = "59"
AUTHENTICATION_REQUIRED = "1A"
SYSTEM_MALFUNCTION = "96"
# Visa's "decline for CVV2 failure" (not in the ISO 8583 base list; Mastercard and others vary).
INCORRECT_CVC = "N7"

# ISO 8583 field 39 (Visa/Mastercard meanings, shortened).
RESPONSE_CODES: Mapping[str, str] = MappingProxyType(
    {
        APPROVED: "Approved",
        "01": "Refer to card issuer",
        "02": "Refer to card issuer, special condition",
        INVALID_MERCHANT: "Invalid merchant",
        "04": "Pick up card",
        DO_NOT_HONOUR: "Do not honour",
        "07": "Pick up card, special condition (fraud)",
        "10": "Partial approval",
        INVALID_TRANSACTION: "Invalid transaction",
        INVALID_AMOUNT: "Invalid amount",
        INVALID_CARD_NUMBER: "Invalid card number",
        "15": "No such issuer",
        "19": "Re-enter transaction",
        LOST_CARD: "Lost card, pick up",
        STOLEN_CARD: "Stolen card, pick up",
        "46": "Closed account",
        INSUFFICIENT_FUNDS: "Not sufficient funds",
        EXPIRED_CARD: "Expired card",
        "55": "Incorrect PIN",
        "57": "Transaction not permitted to cardholder",
        "58": "Transaction not permitted at terminal",
        SUSPECTED_FRAUD: "Suspected fraud",
        "61": "Exceeds withdrawal amount limit",
        "62": "Restricted card",
        "65": "Exceeds withdrawal frequency limit",
        AUTHENTICATION_REQUIRED: "Additional customer authentication required",
        "91": "Issuer or switch inoperative",
        SYSTEM_MALFUNCTION: "System malfunction",
        INCORRECT_CVC: "Incorrect CVC (CVV2 failure)",
    }
)

# Soft declines: the same card may succeed later (Primer's mapping); every other decline is hard.
SOFT_DECLINES = frozenset({"01", "02", DO_NOT_HONOUR, "19", INSUFFICIENT_FUNDS, "55", "61", "65",
                           AUTHENTICATION_REQUIRED, "91", SYSTEM_MALFUNCTION})  # fmt: skip

# EMV 3-D Secure 2 transStatus.
TRANS_STATUSES: Mapping[str, str] = MappingProxyType(
    {
        "Y": "Authenticated",
        "A": "Attempted: not authenticated, proof of the attempt",
        "N": "Not authenticated: transaction denied",
        "U": "Authentication could not be performed",
        "R": "Rejected by the issuer",
        "C": "Challenge required",
        "I": "Informational only",
    }
)

# The acquirer's refusal codes (ErrorBody.error.code) → the ISO 8583 code malipo records for the
# refused request (RailError.result_code, as an int).
REFUSALS: Mapping[str, str] = MappingProxyType(
    {
        "unauthorized": INVALID_MERCHANT,
        "invalid_request": INVALID_TRANSACTION,
        "idempotency_key_missing": INVALID_TRANSACTION,
        "idempotency_conflict": INVALID_TRANSACTION,
        "duplicate_reference": INVALID_TRANSACTION,
        "not_found": INVALID_TRANSACTION,
        "invalid_state": INVALID_TRANSACTION,
        "already_captured": INVALID_TRANSACTION,
        "authorisation_expired": INVALID_TRANSACTION,
        "currency_mismatch": INVALID_TRANSACTION,
        "invalid_pares": INVALID_TRANSACTION,
        "pares_expired": INVALID_TRANSACTION,
        "amount_exceeds_authorised": INVALID_AMOUNT,
        "amount_exceeds_captured": INVALID_AMOUNT,
    }
)

_STATUS: Mapping[str, CardStatus] = MappingProxyType(
    {
        "pending_3ds": CardStatus.CHALLENGE_REQUIRED,
        "declined": CardStatus.DECLINED,
        "failed_3ds": CardStatus.FAILED_3DS,
        # Every later state was approved first.
        "authorised": CardStatus.APPROVED,
        "captured": CardStatus.APPROVED,
        "partially_refunded": CardStatus.APPROVED,
        "refunded": CardStatus.APPROVED,
        "voided": CardStatus.APPROVED,
        "expired": CardStatus.APPROVED,
    }
)

# ECI by brand family and transStatus: Visa, Amex, JCB, Diners and the rest use 05/06/07,
# Mastercard (and Maestro) 02/01/00.
_ECI: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {"mastercard": ("02", "01", "00"), "maestro": ("02", "01", "00")}
)
_ECI_DEFAULT = ("05", "06", "07")


def status_of(state: str) -> CardStatus:
    """An acquirer state as the neutral decision: ``pending_3ds`` CHALLENGE_REQUIRED, ``declined``
    DECLINED, ``failed_3ds`` FAILED_3DS, every state after an approval APPROVED; else UNKNOWN."""
    return _STATUS.get(state, CardStatus.UNKNOWN)


def card_state(state: str) -> CardState | None:
    """An acquirer state as malipo's :class:`CardState` (None for one it does not know)."""
    try:
        return CardState(state)
    except ValueError:
        return None


def describe(code: str | None, summary: str | None = None) -> str:
    """A response code in words (the acquirer's own summary when malipo does not know the code)."""
    if code is None:
        return summary or "No response code"
    known = RESPONSE_CODES.get(code)
    if known is not None:
        return known
    return summary or f"Declined (code {code})"


def eci_for(brand: str | None, trans_status: str | None) -> str:
    """The ECI of an e-commerce authorisation: authenticated (Y) 05 / Mastercard 02, attempted (A)
    06 / 01, anything else (no 3DS, U, I) 07 / 00."""
    authenticated, attempted, plain = _ECI.get(brand or "", _ECI_DEFAULT)
    if trans_status == "Y":
        return authenticated
    if trans_status == "A":
        return attempted
    return plain
