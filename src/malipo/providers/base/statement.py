"""What a rail says it moved in a window of time: its statement, in neutral terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RailTransaction:
    """One transaction on the rail's statement. ``amount`` is in minor units of ``currency``;
    ``receipt`` is the rail's own id (M-Pesa's receipt); ``direction`` is ``"in"`` for money paid
    to us, ``"out"`` for money we paid. ``reference`` is the bill reference / account reference the
    payer gave, None where the rail says none; ``party`` the payer's number as the rail shows it
    (it may be masked or truncated)."""

    receipt: str
    amount: int
    currency: str
    completed_at: datetime
    direction: str = "in"
    party: str | None = None
    reference: str | None = None
    kind: str | None = None  # the rail's own word for it (Daraja: ``c2b-pay-bill-debit``)


class StatementUnavailable(Exception):
    """The rail will not give this statement: ``window_expired`` when the period asked about is
    older than the rail keeps (Daraja's Pull Transactions: 48 hours), otherwise the rail refused or
    could not be reached (``retryable``)."""

    def __init__(self, message: str, *, window_expired: bool = False, retryable: bool = False) -> None:
        super().__init__(message)
        self.window_expired = window_expired
        self.retryable = retryable
