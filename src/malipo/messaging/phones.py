"""Phone numbers to E.164, read the way a merchant's customers write them.

``0712345678`` is read in the merchant's country (+254712345678 for KE);
``254712345678`` (Pay Hero's international form without ``+``) and
``+254712345678`` are read as international. Anything ``phonenumbers`` does
not consider a valid number is refused with the reason.
"""

from __future__ import annotations

import functools

import phonenumbers

__all__ = ["InvalidNumber", "to_e164"]

_MAX_INPUT = 32


class InvalidNumber(ValueError):
    """A number that cannot be read as a valid phone number; the message says why."""


@functools.lru_cache(maxsize=65_536)
def to_e164(raw: str, country: str) -> str:
    """``raw`` as E.164 (``+254712345678``), local numbers read in ``country`` (ISO 3166 alpha-2).

    Raises :class:`InvalidNumber` for anything that is not a valid number.
    """
    if not isinstance(raw, str):
        raise InvalidNumber("must be a string")
    text = raw.strip()
    if not text:
        raise InvalidNumber("is empty")
    if len(text) > _MAX_INPUT:
        raise InvalidNumber("is too long to be a phone number")
    candidates = [text]
    digits = text.replace(" ", "").replace("-", "")
    if digits.isdigit() and not digits.startswith("0"):
        # 2547…: international without the plus, as Pay Hero's examples write it.
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, country.upper() or None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidNumber(f"{text!r} is not a valid phone number (local numbers are read as {country.upper()})")
