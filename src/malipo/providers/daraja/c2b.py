"""Daraja C2B (v2): the URL registration, the validation and confirmation bodies M-Pesa posts,
and the replies it expects. Wire shapes stay here; the domain sees :class:`C2bNotice` and
:class:`C2bVerdict` only.

Facts (reference §7, §B): M-Pesa waits about 8 s for the validation answer, then applies the
registered ``ResponseType`` (``Completed`` or ``Cancelled``); amounts are strings with decimals
(``"10.00"``); v2 masks the MSISDN (``"2547 ***** 126"``), v1 sends its SHA-256; the URLs must not
contain "M-Pesa", "Safaricom", "exe", "exec", "cmd", "SQL", "query" in any case or spelling.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import httpx

from malipo.config import Settings
from malipo.providers.base import CallbackProblem, MalformedCallback
from malipo.providers.daraja.client import DarajaError
from malipo.providers.daraja.connection import daraja_client
from malipo.providers.daraja.urls import CALLBACK_PREFIX

__all__ = [
    "C2B_PREFIX",
    "FORBIDDEN_URL_WORDS",
    "RESPONSE_TYPES",
    "C2bNotice",
    "C2bRegistration",
    "C2bVerdict",
    "c2b_urls",
    "confirmation_reply",
    "forbidden_word",
    "parse_c2b_notice",
    "register_c2b_urls",
    "validation_reply",
]

C2B_PREFIX = f"{CALLBACK_PREFIX}/c2b"
RESPONSE_TYPES = ("Completed", "Cancelled")
# Lower-cased, with "-", "_" and spaces removed before the match ("M-PESA", "m_pesa", "Mpesa").
FORBIDDEN_URL_WORDS = ("mpesa", "safaricom", "exe", "cmd", "sql", "query")
ALREADY_REGISTERED = "500.003.1001"
_MAX_MINOR = 250_000 * 100  # M-Pesa's largest single payment
_TRANS_ID = re.compile(r"^[A-Z0-9]{6,30}$")


def forbidden_word(url: str) -> str | None:
    """The word Daraja refuses that ``url`` contains (``exec`` contains ``exe``); None if it has none."""
    squashed = re.sub(r"[-_ .%]", "", url.lower())
    return next((word for word in FORBIDDEN_URL_WORDS if word in squashed), None)


def c2b_urls(public_url: str, token: str) -> tuple[str, str]:
    """The ValidationURL and ConfirmationURL of ``token``."""
    base = f"{public_url}{C2B_PREFIX}/{token}"
    return f"{base}/validation", f"{base}/confirmation"


class C2bVerdict(StrEnum):
    """The validation's answer, as Daraja's ResultCode (§7)."""

    ACCEPT = "0"
    INVALID_MSISDN = "C2B00011"
    UNKNOWN_ACCOUNT = "C2B00012"
    INVALID_AMOUNT = "C2B00013"
    INVALID_KYC = "C2B00014"
    UNKNOWN_SHORTCODE = "C2B00015"
    OTHER = "C2B00016"


def validation_reply(verdict: C2bVerdict) -> dict[str, Any]:
    return {
        "ResultCode": verdict.value,
        "ResultDesc": "Accepted" if verdict is C2bVerdict.ACCEPT else "Rejected",
    }


def confirmation_reply() -> dict[str, Any]:
    return {"ResultCode": 0, "ResultDesc": "Success"}


@dataclass(frozen=True, slots=True)
class C2bNotice:
    """A validation or confirmation body, read: ``amount`` in minor units."""

    trans_id: str
    transaction_type: str
    trans_time: str
    amount: int
    currency: str
    short_code: str
    bill_ref_number: str
    msisdn: str
    payer_name: str
    org_account_balance: str
    raw: dict[str, Any] = field(repr=False)


def _text(body: dict[str, Any], name: str, problems: list[CallbackProblem], *, max_length: int,
          required: bool = True) -> str:  # fmt: skip
    value = body.get(name)
    if value is None or value == "":
        if required:
            problems.append(CallbackProblem(name, "is required"))
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append(CallbackProblem(name, "must be a string"))
        return ""
    text = str(value).strip()
    if len(text) > max_length:
        problems.append(CallbackProblem(name, f"must be at most {max_length} characters"))
        return ""
    return text


def _amount(raw: str, problems: list[CallbackProblem]) -> int:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if (
        not value.is_finite()
        or value <= 0
        or value != value.quantize(Decimal("0.01"))
        or value * 100 > _MAX_MINOR
    ):
        if raw:
            problems.append(
                CallbackProblem("TransAmount", 'must be a positive amount in shillings ("10.00")')
            )
        return 0
    return int(value * 100)


def parse_c2b_notice(body: bytes) -> C2bNotice:
    """Read a validation or confirmation body; :class:`MalformedCallback` naming the bad fields."""
    try:
        data = json.loads(body)
    except ValueError:
        raise MalformedCallback("C2B notice", 1, [CallbackProblem("body", "is not JSON")]) from None
    if not isinstance(data, dict):
        raise MalformedCallback("C2B notice", 1, [CallbackProblem("body", "must be a JSON object")])
    problems: list[CallbackProblem] = []
    trans_id = _text(data, "TransID", problems, max_length=30)
    if trans_id and not _TRANS_ID.match(trans_id):
        problems.append(CallbackProblem("TransID", "must be M-Pesa's receipt (letters and digits)"))
    short_code = _text(data, "BusinessShortCode", problems, max_length=12)
    if short_code and not short_code.isdigit():
        problems.append(CallbackProblem("BusinessShortCode", "must be digits"))
    amount = _amount(_text(data, "TransAmount", problems, max_length=20), problems)
    names = (
        _text(data, n, problems, max_length=100, required=False)
        for n in ("FirstName", "MiddleName", "LastName")
    )
    notice = C2bNotice(
        trans_id=trans_id,
        transaction_type=_text(data, "TransactionType", problems, max_length=40, required=False),
        trans_time=_text(data, "TransTime", problems, max_length=20, required=False),
        amount=amount,
        currency="KES",
        short_code=short_code,
        bill_ref_number=_text(data, "BillRefNumber", problems, max_length=40, required=False),
        msisdn=_text(data, "MSISDN", problems, max_length=80, required=False),
        payer_name=" ".join(n for n in names if n),
        org_account_balance=_text(data, "OrgAccountBalance", problems, max_length=30, required=False),
        raw=data,
    )
    if problems:
        raise MalformedCallback("C2B notice", len(problems), problems[:5])
    return notice


@dataclass(frozen=True, slots=True)
class C2bRegistration:
    """Daraja's answer to a URL registration: ``registered`` (also when the URLs were registered
    already, Daraja's ``500.003.1001`` in production), the reply to keep, a reason otherwise."""

    registered: bool
    reply: dict[str, Any]
    retryable: bool = False


async def register_c2b_urls(
    settings: Settings, mode: str, http: httpx.AsyncClient, *, short_code: str, response_type: str,
    validation_url: str, confirmation_url: str,
) -> C2bRegistration:  # fmt: skip
    """Register the URLs of ``short_code`` with Daraja (v2) in ``mode``."""
    client = daraja_client(settings, mode, http)
    try:
        reply = await client.register_c2b_urls(
            short_code=short_code, response_type=response_type, validation_url=validation_url,
            confirmation_url=confirmation_url,
        )  # fmt: skip
    except DarajaError as exc:
        body = {"errorCode": exc.error_code, "errorMessage": exc.error_message, "status": exc.status}
        if exc.error_code == ALREADY_REGISTERED and "already registered" in (exc.error_message or "").lower():
            return C2bRegistration(True, body)
        return C2bRegistration(False, body, retryable=exc.retryable)
    return C2bRegistration(True, reply.model_dump(exclude_none=True))
