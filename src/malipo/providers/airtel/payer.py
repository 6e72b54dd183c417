"""What a payer reads on malipo's pages when an Airtel Money prompt did not end in a payment.

Keyed by the result codes the Airtel adapter records (``codes``: M-Pesa's codes where Airtel's
failure means the same, :data:`codes.DECLINED` otherwise); the rest get Airtel's description.
"""

from __future__ import annotations

from malipo.providers.airtel import codes

_TEXTS = {
    codes.NOT_ENOUGH_BALANCE: "Your Airtel Money balance is too low for this payment.",
    codes.EXPIRED_CODE: "The Airtel Money prompt expired before it was answered.",
    codes.NO_ANSWER: "The Airtel Money prompt was not answered. Check your phone is on, then try again.",
    codes.WRONG_PIN: "The Airtel Money PIN was wrong.",
    codes.REFUSED_PUSH: "Airtel Money could not send the prompt to your phone. Try again.",
}


def payer_message(result_code: int | None, result_desc: str | None) -> str:
    known = _TEXTS.get(result_code) if result_code is not None else None
    return known or f"Airtel Money did not take the payment: {result_desc or 'no reason given'}"
