"""The callback URLs malipo hands Daraja: its routes under the public URL, with the secret token
that finds the collection or payout (the token is derived domain-side and stored nowhere)."""

from __future__ import annotations

CALLBACK_PREFIX = "/callbacks/daraja"


def stk_callback_url(public_url: str, token: str) -> str:
    """An STK push's CallBackURL."""
    return f"{public_url}{CALLBACK_PREFIX}/{token}"


def result_url(public_url: str, token: str) -> str:
    """A B2C or B2B request's ResultURL."""
    return f"{public_url}{CALLBACK_PREFIX}/{token}/result"


def timeout_url(public_url: str, token: str) -> str:
    """A B2C or B2B request's QueueTimeOutURL."""
    return f"{public_url}{CALLBACK_PREFIX}/{token}/timeout"


def status_url(public_url: str, token: str) -> str:
    """A transaction-status query's ResultURL and QueueTimeOutURL."""
    return f"{public_url}{CALLBACK_PREFIX}/{token}/status"


def reversal_url(public_url: str, token: str) -> str:
    """A reversal's ResultURL and QueueTimeOutURL (one address: the body says which it is)."""
    return f"{public_url}{CALLBACK_PREFIX}/{token}/reversal"


def balance_url(public_url: str, token: str) -> str:
    """An account balance query's ResultURL and QueueTimeOutURL."""
    return f"{public_url}{CALLBACK_PREFIX}/{token}/balance"
