"""Phone numbers to E.164, read the way a merchant's customers write them: one rule for SMS,
WhatsApp and mobile money.

``0712345678`` is read in the merchant's country (+254712345678 for KE);
``254712345678`` (Pay Hero's international form without ``+``) and
``+254712345678`` are read as international. Digits may be grouped with spaces,
``-``, ``.`` or parentheses; nothing else is read: a control character (a NUL, a
newline …), a letter or any other symbol anywhere refuses the number instead of being
dropped. Anything ``phonenumbers`` does not consider a valid number is refused with the
reason.

Mobile money (``to_e164(..., mobile_only=True)``) also needs a mobile number of the network's
country: M-Pesa, Airtel Money and T-Kash serve Kenyan mobile numbers only.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

__all__ = ["InvalidNumber", "to_e164"]

_MAX_INPUT = 32
# An optional leading "+", then digits and the separators people group them with.
_WRITTEN_NUMBER = re.compile(r"\+?[0-9(][0-9 ()\-.]*", re.ASCII)
_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


class InvalidNumber(ValueError):
    """A number that cannot be read as a valid phone number; the message says why."""


def _shown(raw: str) -> str:
    return repr(raw[:_MAX_INPUT] + ("…" if len(raw) > _MAX_INPUT else ""))


def _parsed(raw: object, country: str) -> phonenumbers.PhoneNumber:
    if not isinstance(raw, str):
        raise InvalidNumber("must be a string")
    if len(raw) > _MAX_INPUT:
        raise InvalidNumber("is too long to be a phone number")
    text = raw.strip(" ")
    if not text:
        raise InvalidNumber("is empty")
    if not _WRITTEN_NUMBER.fullmatch(text):
        if any(not char.isprintable() for char in text):
            raise InvalidNumber(f"{_shown(raw)} contains a control character")
        raise InvalidNumber(
            f"{_shown(raw)} is not a phone number: digits only, optionally grouped with spaces or '-'"
        )
    candidates = [text]
    digits = re.sub(r"[ ()\-.]", "", text)
    if digits.isdigit() and not digits.startswith("0"):
        # 2547…: international without the plus, as Pay Hero's examples write it.
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, country.upper() or None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return parsed
    raise InvalidNumber(
        f"{_shown(raw)} is not a valid phone number (local numbers are read as {country.upper()})"
    )


@functools.lru_cache(maxsize=65_536)
def to_e164(raw: str, country: str, *, mobile_only: bool = False) -> str:
    """``raw`` as E.164 (``+254712345678``), local numbers read in ``country`` (ISO 3166 alpha-2).

    ``mobile_only`` (mobile money): it must also be a mobile number of ``country``, the network's.
    Raises :class:`InvalidNumber` for anything that is not a valid number, saying why.
    """
    parsed = _parsed(raw, country)
    if mobile_only:
        region = phonenumbers.region_code_for_number(parsed)
        if region != country.upper():
            raise InvalidNumber(
                f"{_shown(raw)} is a number of {region or 'another country'}: "
                f"this network serves {country.upper()} mobile numbers only"
            )
        if phonenumbers.number_type(parsed) not in _MOBILE_TYPES:
            raise InvalidNumber(f"{_shown(raw)} is not a mobile number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
