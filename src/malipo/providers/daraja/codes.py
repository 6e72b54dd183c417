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


# Gateway error codes (reference §I) that say "too many requests": not a refusal, wait and send
# again. Seconds to wait: a spike arrest (TPS) clears in moments, a quota takes longer.
SPIKE_ARREST = "500.003.02"
QUOTA_VIOLATION = "500.003.03"
RATE_LIMIT_BACKOFF: dict[str, float] = {SPIKE_ARREST: 30.0, QUOTA_VIOLATION: 300.0}
# "The transaction is being processed": ask again later, never a failure (reference §4, §I).
BEING_PROCESSED = "500.001.1001"
# An expired or invalid access token: fetch a new token once and send again once (§1, §I).
EXPIRED_TOKEN = "404.001.03"  # noqa: S105 - an error code, not a secret

# What the merchant reads for the final codes that need more than Daraja's own words
# (reference §G, §H): every one is final (FAILED), none retried by malipo. Codes whose own words
# are clear (1, 1032, 1037, 2001) pass through as Daraja says them.
EXPLAINED: dict[int, str] = {
    17: "M-Pesa refused a second request for the same amount to the same customer within 2 minutes;"
    " wait 2 minutes before asking again",
    26: "M-Pesa was too busy to process the request; ask again later",
    1001: "The payer's M-Pesa is busy with another transaction (unable to lock subscriber);"
    " ask again in a minute",
    1019: "The payer did not complete the M-Pesa prompt in time (transaction expired)",
    1025: "M-Pesa could not send the prompt (the prompt text is too long)",
    2028: "The shortcode is not permitted for this transaction type (product assignment);"
    " check the paybill/till configuration",
    8006: "The M-Pesa security credential is locked",
    9999: "M-Pesa could not send the prompt",
}
# Reversal results (reference §C); their codes are strings.
REVERSAL_EXPLAINED: dict[str, str] = {
    "R000001": "The transaction has already been reversed",
    "R000002": "M-Pesa does not know the original transaction (OriginalTransactionID invalid)",
    "1": "The shortcode's balance is insufficient for the reversal",
    "11": "The shortcode's account is inactive",
    "21": "The initiator is not allowed to reverse (missing reversal role)",
    "2001": "The initiator information is invalid",
    "2006": "Declined by an account rule",
    "2028": "The shortcode is not permitted to reverse (product assignment)",
    "8006": "The security credential is locked",
}


def explain(result_code: int, description: str) -> str:
    """A final result's description for the merchant: malipo's words for codes that need them,
    with Daraja's own kept after them."""
    known = EXPLAINED.get(result_code)
    if known is None or not description or known.lower() == description.lower():
        return known or description
    return f"{known} ({description})"[:STATUS_DESC_MAX]


def explain_reversal(result_code: str, description: str) -> str:
    known = REVERSAL_EXPLAINED.get(result_code)
    return (f"{known} ({description})" if known else description)[:STATUS_DESC_MAX]


def retry_after(error_code: str | None) -> float | None:
    """Seconds to wait before sending again after a gateway error, when it is a rate limit."""
    return RATE_LIMIT_BACKOFF.get(error_code or "")


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
