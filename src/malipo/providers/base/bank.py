"""Bank credit transfers, in ISO 20022 terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from malipo.providers.base.common import Status


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """Pay ``amount`` (minor units of ``currency``) from ``debtor_account`` to ``creditor_account``
    at the bank ``creditor_bank_code`` (its 3-digit code). ``end_to_end_id`` is ours, unique per
    transfer and sent with it: the rail refuses a second transfer with the same one (a repeat is a
    duplicate, never a second payment) and answers status queries by it. ``debtor_name`` is the
    merchant the money is paid for (the ultimate debtor); ``remittance`` the text the creditor sees
    (at most 140 characters). ``callback_token`` is the secret the provider puts in the status
    callback URL it hands the rail (the domain finds the transfer by it)."""

    end_to_end_id: str
    amount: int
    currency: str
    debtor_account: str
    debtor_name: str
    creditor_account: str
    creditor_bank_code: str
    remittance: str
    callback_token: str
    creditor_name: str | None = None


@dataclass(frozen=True, slots=True)
class TransferAccepted:
    """The rail took the transfer (ISO 20022 ACTC/PDNG, or ACSC when it settled at once).
    ``outcome`` is what the acknowledgement already says (PENDING, or final)."""

    provider_reference: str  # the rail's transaction id
    outcome: TransferOutcome


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """Where a credit transfer stands: SUCCEEDED (settled, ACSC), FAILED (rejected, RJCT, with the
    ISO 20022 ``reason_code`` such as AC01, AC04, AM04 or RR04), PENDING (accepted, not settled) or
    UNKNOWN (the rail does not know it, or gave no answer). ``end_to_end_id``, ``amount``,
    ``currency`` and ``creditor_account`` are what the rail says (None where it said nothing):
    compare them with what was asked before money moves."""

    status: Status
    end_to_end_id: str | None = None
    provider_reference: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    amount: int | None = None
    currency: str | None = None
    creditor_account: str | None = None
    creditor_bank_code: str | None = None
    # Why the rail gave no answer (UNKNOWN), for the logs.
    error: str | None = None
    # UNKNOWN because the rail answered it has no such transfer: it never arrived, and sending it
    # again (with the same EndToEndId) is safe.
    not_found: bool = False


@runtime_checkable
class BankTransfer(Protocol):
    """A bank credit-transfer rail: send a transfer, receive its status at a callback, and ask for
    it when the callback is late."""

    name: str

    async def send_transfer(self, request: CreditTransfer) -> TransferAccepted:
        """Raises :class:`RailError` when the rail did not take it (see ``not_taken``); a
        rejection the rail decides at once comes back as an accepted FAILED outcome."""
        ...

    async def query_transfer(self, end_to_end_id: str) -> TransferOutcome:
        """The transfer's status now; UNKNOWN when the rail does not know it or cannot be reached."""
        ...

    def parse_status_report(self, body: bytes) -> TransferOutcome:
        """The rail's status callback body → outcome; :class:`MalformedCallback` if it is not one."""
        ...

    def callback_reply(self) -> dict[str, Any]:
        """What the rail expects back from a status callback malipo took."""
        ...
