"""Daraja's field checks and identifiers, as the simulator applies and makes them."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from starlette.requests import Request

from malipo.core.ids import new_reference
from malipo.providers.daraja.schemas import (
    EAT,
    INVALID_REQUEST,
    SHORTCODE_IDENTIFIER,
)

_MSISDN = re.compile(r"254(?:7\d{8}|1[01]\d{7})")
_SHORTCODE = re.compile(r"\d{5,7}")
_PARTY = re.compile(r"\d{5,12}")  # a shortcode, till or MSISDN
_IDENTIFIER_TYPE = re.compile(r"[124]")
_SHORTCODE_IDENTIFIER = re.compile(SHORTCODE_IDENTIFIER)
_TIMESTAMP = re.compile(r"\d{14}")
_WHOLE_NUMBER = re.compile(r"\d+")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


class _Rejected(Exception):
    """Answer the request with Daraja's error body."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def _invalid(field_name: str) -> NoReturn:
    raise _Rejected(400, INVALID_REQUEST, f"Bad Request - Invalid {field_name}")


# --------------------------------------------------------------------------- field checks


def _text(
    body: Mapping[str, Any],
    name: str,
    *,
    max_length: int | None = None,
    min_length: int = 1,
    required: bool = True,
) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            _invalid(name)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        _invalid(name)
    text = str(value)
    if len(text.strip()) < min_length or (max_length is not None and len(text) > max_length):
        _invalid(name)
    return text


def _matching(body: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    """A number-like field (Daraja takes ``174379`` or ``"174379"``) whose text matches ``pattern``."""
    text = _text(body, name)
    if not pattern.fullmatch(text):
        _invalid(name)
    return text


def _amount(body: Mapping[str, Any], name: str = "Amount") -> int:
    """Whole shillings, at least 1: ``1``, ``1.0`` or ``"1"``."""
    value = body.get(name)
    whole_int = isinstance(value, int) and not isinstance(value, bool)
    whole_float = isinstance(value, float) and value.is_integer()
    whole_text = isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()) is not None
    if value is None or not (whole_int or whole_float or whole_text):
        _invalid(name)
    amount = int(value)
    if amount < 1:
        _invalid(name)
    return amount


def _url(body: Mapping[str, Any], name: str) -> str:
    """An http(s) URL; Daraja wants https, the simulator also takes http for loopback receivers."""
    url = _text(body, name)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _invalid(name)
    return url


def _timestamp(body: Mapping[str, Any]) -> str:
    timestamp = _matching(body, "Timestamp", _TIMESTAMP)
    try:
        datetime.strptime(timestamp, "%Y%m%d%H%M%S")
    except ValueError:
        _invalid("Timestamp")
    return timestamp


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        _invalid("JSON")
    if not isinstance(body, dict):
        _invalid("JSON")
    return body


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, secret = decoded.partition(":")
    return (key, secret) if colon else None


# --------------------------------------------------------------------------- identifiers


def _request_id() -> str:
    return "-".join((secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(8)))


def _merchant_request_id() -> str:
    return f"{10_000 + secrets.randbelow(90_000)}-{100_000_000 + secrets.randbelow(900_000_000)}-1"


def _conversation_id(now: datetime) -> str:
    return f"AG_{now.astimezone(EAT):%Y%m%d}_{secrets.token_hex(10)}"


def _receipt() -> str:
    """Ten upper-case letters and digits starting with a letter, like ``LGR7OWQX0R``."""
    return secrets.choice(string.ascii_uppercase) + new_reference(9)


def _eat(now: datetime) -> datetime:
    return now.astimezone(EAT)
