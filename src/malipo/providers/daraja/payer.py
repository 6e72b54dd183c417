"""What a payer reads on malipo's pages when an M-Pesa prompt did not end in a payment.

Keyed by the STK result codes malipo records (reference §G); a code without a text here gets
M-Pesa's own description.
"""

from __future__ import annotations

_TEXTS = {
    1: "Your M-Pesa balance is too low for this payment.",
    1019: "The M-Pesa prompt expired before it was answered.",
    1032: "You cancelled the M-Pesa prompt.",
    1037: "Your phone could not be reached. Check it is on and has signal, then try again.",
    2001: "The M-Pesa PIN was wrong.",
}


def payer_message(result_code: int | None, result_desc: str | None) -> str:
    known = _TEXTS.get(result_code) if result_code is not None else None
    return known or f"M-Pesa did not take the payment: {result_desc or 'no reason given'}"
