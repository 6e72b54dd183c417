"""The simulator's scripted outcomes, by the payer's or payee's number (national form, as Airtel
receives it; malipo is given ``2547…`` or ``07…``). Any number not listed pays. The tables are
described in :mod:`malipo.providers.airtel.simulator` and ``docs/airtel-money.md``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COLLECTION_OUTCOMES",
    "COLLECTION_PAID",
    "DISBURSEMENT_OUTCOMES",
    "DISBURSEMENT_PAID",
    "Scripted",
]


@dataclass(frozen=True, slots=True)
class Scripted:
    """What the simulated payer (or Airtel) does: the final ``status`` (TS or TF) with its DP code
    and message; ``callback``: whether a callback is posted; ``answers``: whether the payer acts
    at all (False: the prompt is never answered and expires); ``at_once``: a disbursement answered
    in its reply (False: in progress, finished after the delay)."""

    status: str
    response_code: str
    message: str
    callback: bool = True
    answers: bool = True
    at_once: bool = True


COLLECTION_PAID = Scripted("TS", "DP00800001001", "Transaction Successful")
COLLECTION_OUTCOMES: dict[str, Scripted] = {
    # Declined: the payer's wallet does not hold enough.
    "733000001": Scripted("TF", "DP00800001007", "Not enough balance"),
    # The payer entered a wrong PIN.
    "733000002": Scripted("TF", "DP00800001002", "Incorrect Pin"),
    # Never answered: no callback; enquiry says TIP until the prompt expires, then TF (timed out).
    "733000003": Scripted("TF", "DP00800001024", "Transaction Timed Out", callback=False, answers=False),
    # Paid, but the callback is lost: only the enquiry tells.
    "733000004": Scripted("TS", "DP00800001001", "Transaction Successful", callback=False),
    # The payer refused the prompt.
    "733000005": Scripted("TF", "DP00800001008", "Refused"),
}

DISBURSEMENT_PAID = Scripted("TS", "DP00900001001", "Success")
DISBURSEMENT_OUTCOMES: dict[str, Scripted] = {
    # Refused at once: the disbursement account does not hold enough.
    "733000011": Scripted("TF", "DP00900001007", "Insufficient funds"),
    # Refused at once: the payee is not an Airtel Money user.
    "733000012": Scripted("TF", "DP00900001012", "Invalid mobile number"),
    # In progress (DP00900001006), paid after the delay; a callback is posted.
    "733000013": Scripted("TS", "DP00900001001", "Success", at_once=False),
    # In progress, paid after the delay; no callback: only the enquiry tells.
    "733000014": Scripted("TS", "DP00900001001", "Success", at_once=False, callback=False),
    # In progress, then failed; a callback is posted.
    "733000015": Scripted("TF", "DP00900001005", "Transaction failed", at_once=False),
}
