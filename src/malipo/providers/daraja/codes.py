"""Daraja's result codes, and the ones malipo records for what Daraja leaves unsaid.

malipo's result codes for M-Pesa are Daraja's own (merchants read them through the Pay Hero
surface), so a code Daraja sends passes through; these are the decisions malipo makes where
Daraja gives no code, or gives one that would mislead a merchant.
"""

from __future__ import annotations

from malipo.providers.base import Status

SUCCESS = 0
# Daraja's generic failure; what a refused or timed-out payout is recorded with.
FAILED = 1
# Daraja's "error sending push request": a refused push is recorded with it, not with 1, which
# merchants read as the payer's insufficient balance.
REFUSED_PUSH = 1025
# Daraja's "no response from user": the payer never answered the prompt.
NO_ANSWER = 1037

PAYER_DID_NOT_ANSWER = "The payer did not answer the M-Pesa prompt in time"
NO_ANSWER_FROM_MPESA = "No answer from M-Pesa for this request"
# STK query descriptions carry this prefix; the callbacks' descriptions do not.
STK_QUERY_PREFIX = "[STK_CB - ]"
# A status query's outcome description is stored in a column of this size.
STATUS_DESC_MAX = 300


def status_of(result_code: int) -> Status:
    """Daraja's final result code as a neutral status: 0 paid, anything else failed."""
    return Status.SUCCEEDED if result_code == SUCCESS else Status.FAILED


def refused_push(description: str) -> tuple[int, str]:
    """The outcome of a push Daraja refused (or never took)."""
    return REFUSED_PUSH, f"M-Pesa refused the request: {description}"


def refused_payout(description: str) -> tuple[int, str]:
    """The outcome of a B2C or B2B request Daraja refused (or never took)."""
    return FAILED, f"M-Pesa refused the payout: {description}"


def stk_query_desc(description: str) -> str:
    """An STK query's description as the callback would have said it."""
    return description.removeprefix(STK_QUERY_PREFIX).strip()


def queue_timeout(result_code: int, description: str) -> tuple[int, str]:
    """A request that timed out in Daraja's queue: nothing was paid."""
    return result_code or FAILED, f"Timed out in M-Pesa's queue: {description}"


def no_completed_payout(result_code: int, description: str) -> tuple[int, str]:
    """A status query that found no completed payout (recorded once no query is left)."""
    return result_code or FAILED, f"No completed payout at M-Pesa: {description}"[:STATUS_DESC_MAX]
