"""The ISO 20022 codes of the bank rail: transaction statuses (``TxSts``) as neutral statuses, and
the status reason codes (ExternalStatusReason1Code) malipo knows, in words.

A reason code malipo does not know passes through as it came (the rail's ``AddtlInf``, or a
generic description, says what it means); a rejection without a reason is recorded as MS03.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from malipo.providers.base import Status

__all__ = [
    "BLOCKED_ACCOUNT",
    "CLOSED_ACCOUNT",
    "DUPLICATION",
    "INCORRECT_ACCOUNT",
    "INSUFFICIENT_FUNDS",
    "NARRATIVE",
    "NOT_SPECIFIED",
    "RAIL_REFUSED",
    "REASONS",
    "REGULATORY",
    "describe",
    "status_of",
]

INCORRECT_ACCOUNT = "AC01"
CLOSED_ACCOUNT = "AC04"
BLOCKED_ACCOUNT = "AC06"
INSUFFICIENT_FUNDS = "AM04"
DUPLICATION = "AM05"
REGULATORY = "RR04"
NARRATIVE = "NARR"
NOT_SPECIFIED = "MS03"

# ExternalStatusReason1Code → what it means (ISO 20022 external code set, shortened).
REASONS: Mapping[str, str] = MappingProxyType(
    {
        INCORRECT_ACCOUNT: "Incorrect account number: the creditor account does not exist at that bank",
        "AC03": "Invalid creditor account number",
        CLOSED_ACCOUNT: "Closed account number",
        "AC05": "Closed debtor account number",
        BLOCKED_ACCOUNT: "Blocked account: the account is blocked for credits",
        "AG01": "Transaction forbidden on this type of account",
        "AG02": "Invalid bank operation code",
        INSUFFICIENT_FUNDS: "Insufficient funds in the debtor account",
        DUPLICATION: "Duplicate payment: a transfer with this EndToEndId already exists",
        "BE01": "The creditor's name does not match the account holder",
        "RC01": "Invalid bank identifier (the creditor bank code is not known)",
        REGULATORY: "Regulatory reason: the transfer was stopped for regulatory or sanctions reasons",
        "FF01": "Invalid file format: the message is not a valid transfer",
        NARRATIVE: "See the rail's narrative",
        "MS02": "Not specified: reason given by the creditor",
        NOT_SPECIFIED: "Not specified: a technical problem at the rail or an agent",
        "TM01": "The transfer was received after the cut-off time",
    }
)

_STATUS: Mapping[str, Status] = MappingProxyType(
    {
        "ACSC": Status.SUCCEEDED,
        "RJCT": Status.FAILED,
        "ACTC": Status.PENDING,
        "ACCP": Status.PENDING,
        "ACSP": Status.PENDING,
        "PDNG": Status.PENDING,
    }
)

# The RailError.result_code of a transfer the rail did not take (there is no ISO code for
# "never arrived"); its result_desc says why.
RAIL_REFUSED = 1


def status_of(tx_sts: str) -> Status:
    """A TxSts as a neutral status: ACSC settled, RJCT failed, ACTC/ACCP/ACSP/PDNG pending; any
    other value UNKNOWN."""
    return _STATUS.get(tx_sts, Status.UNKNOWN)


def describe(code: str, additional: str | None = None) -> str:
    """A reason code in words: malipo's description, with the rail's own words when it gave
    any (NARR is the rail's words alone)."""
    known = REASONS.get(code)
    if code == NARRATIVE and additional:
        return additional
    if known is None:
        return f"Rejected by the bank rail ({code})" + (f": {additional}" if additional else "")
    if additional and additional.strip().lower() != known.lower():
        return f"{known} ({additional})"
    return known
