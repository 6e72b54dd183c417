"""pacs.002 status reports → neutral :class:`TransferOutcome`: the synchronous answer to a transfer,
a query's answer, and the status callback are read the same way."""

from __future__ import annotations

from pydantic import ValidationError

from malipo.providers.bankrail import codes
from malipo.providers.bankrail.schemas import StatusReport
from malipo.providers.base import CallbackProblem, MalformedCallback, Status, TransferOutcome

__all__ = ["NOT_A_STATUS_REPORT", "outcome_of", "parse_status_report", "read_status_report"]

NOT_A_STATUS_REPORT = "not a bank rail status report (pacs.002)"
# How many out-of-bounds fields a refusal names.
_PROBLEMS_SHOWN = 5


def read_status_report(body: bytes | str) -> StatusReport:
    """The body as a bounded pacs.002; :class:`MalformedCallback` naming at most five bad fields."""
    try:
        return StatusReport.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            CallbackProblem(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
            for error in exc.errors(include_url=False, include_input=False)[:_PROBLEMS_SHOWN]
        ]
        raise MalformedCallback(NOT_A_STATUS_REPORT, exc.error_count(), problems) from None


def outcome_of(report: StatusReport) -> TransferOutcome:
    """What a status report says: the status, the reason of a rejection (MS03 when the rail gave
    none) and what the rail says the transfer was (None where it said nothing)."""
    tx = report.TxInfAndSts
    status = codes.status_of(tx.TxSts)
    reason_code: str | None = None
    reason: str | None = None
    if tx.StsRsnInf is not None:
        reason_code = tx.StsRsnInf.Rsn.Cd
        reason = codes.describe(reason_code, tx.StsRsnInf.AddtlInf)
    elif status is Status.FAILED:
        reason_code = codes.NOT_SPECIFIED
        reason = codes.describe(reason_code)
    original = tx.OrgnlTxRef
    amount = original.IntrBkSttlmAmt if original is not None else None
    return TransferOutcome(
        status=status,
        end_to_end_id=tx.OrgnlEndToEndId,
        provider_reference=tx.AcctSvcrRef,
        reason_code=reason_code,
        reason=reason,
        amount=amount.minor() if amount is not None else None,
        currency=amount.Ccy if amount is not None else None,
        creditor_account=original.CdtrAcct.number if original and original.CdtrAcct else None,
        creditor_bank_code=original.CdtrAgt.code if original and original.CdtrAgt else None,
    )


def parse_status_report(body: bytes | str) -> TransferOutcome:
    """A status callback's body → outcome; :class:`MalformedCallback` if it is not a pacs.002."""
    return outcome_of(read_status_report(body))
