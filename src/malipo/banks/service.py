"""The banks registry: which bank or mobile-money operator a 3-digit code (or an account number) names.

What callers can rely on:
- ``list_banks`` answers the registry by code, filtered by country, kind and active state.
- ``get_bank`` answers one row, active or not; a code that is not 3 digits is a ValidationFailed and
  an unknown one a NotFound, both naming ``code``.
- ``bank_for_account`` answers the active bank (or mobile-money operator) whose code is the account
  number's first 3 digits; anything else is a ValidationFailed naming ``accountNumber`` (a malformed
  number, an unknown prefix, an inactive bank), so a payment to it is refused before anything moves.
- ``create_bank`` and ``update_bank`` (operators) validate everything before they write and name
  the field that is wrong (the API's camelCase names). The code scheme of ``malipo.banks.seed``
  holds for every row: ``0xx`` Sierra Leone banks, ``1xx`` Kenyan banks (``1`` + the Pay Hero code
  when there is one), ``9xx`` mobile-money operators and nothing else.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Final, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.banks import repository
from malipo.banks.models import CODE_PATTERN, MAX_NAME, Bank, BankKind, BankRail, Country
from malipo.core.errors import Conflict, NotFound, ValidationFailed
from malipo.http.schemas import control_character

_CODE = re.compile(CODE_PATTERN, re.ASCII)
_PAYHERO_CODE = re.compile(r"[0-9]{2}", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{4,34}", re.ASCII)
# ISO 9362: institution (4 letters), country (2 letters), location (2), optional branch (3).
_BIC = re.compile(r"[A-Z]{4}([A-Z]{2})[A-Z0-9]{2}(?:[A-Z0-9]{3})?", re.ASCII)

# The first digit of a bank's code, by country; mobile-money operators' codes start with 9.
_BANK_CODE_FIRST_DIGIT = {Country.SL: "0", Country.KE: "1"}
_MOBILE_MONEY_FIRST_DIGIT = "9"
_RAILS = {
    BankKind.BANK: (BankRail.BANKRAIL, BankRail.MPESA_B2B),
    BankKind.MOBILE_MONEY: (BankRail.MOBILE_MONEY,),
}
_DEFAULT_RAIL = {
    (BankKind.BANK, Country.SL): BankRail.BANKRAIL,
    (BankKind.BANK, Country.KE): BankRail.MPESA_B2B,
    (BankKind.MOBILE_MONEY, Country.SL): BankRail.MOBILE_MONEY,
    (BankKind.MOBILE_MONEY, Country.KE): BankRail.MOBILE_MONEY,
}


_E = TypeVar("_E", bound=Enum)


class Unset(Enum):
    """Marks an ``update_bank`` argument not given (``None`` clears ``swift``)."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


# -- reading values ----------------------------------------------------------------------------


def _choice(kind: type[_E], value: object, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise ValidationFailed.for_field(field, f"must be one of {allowed}") from None


def parse_code(value: object, *, field: str = "code") -> str:
    """A bank code: exactly 3 ASCII digits; ValidationFailed naming ``field`` otherwise."""
    if not isinstance(value, str) or not _CODE.match(value):
        raise ValidationFailed.for_field(field, "must be exactly 3 digits")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationFailed.for_field("name", "must be text")
    name = value.strip()
    if not name:
        raise ValidationFailed.for_field("name", "must not be empty")
    if len(name) > MAX_NAME:
        raise ValidationFailed.for_field("name", f"must be at most {MAX_NAME} characters")
    if control_character(name) is not None:
        raise ValidationFailed.for_field("name", "must not contain control characters")
    return name


def _swift(value: object, country: Country) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed.for_field("swift", "must be text or null")
    bic = value.strip().upper()
    found = _BIC.fullmatch(bic)
    if found is None:
        raise ValidationFailed.for_field(
            "swift", "must be a SWIFT/BIC code: 8 or 11 letters and digits (AAAABBCC or AAAABBCCDDD)"
        )
    if found[1] != country.value:
        raise ValidationFailed.for_field("swift", f"is a BIC of {found[1]}, not of {country.value}")
    return bic


def _rail(value: object, kind: BankKind) -> BankRail:
    rail = _choice(BankRail, value, "rail")
    if rail not in _RAILS[kind]:
        allowed = ", ".join(r.value for r in _RAILS[kind])
        raise ValidationFailed.for_field("rail", f"a {kind.value} is paid by {allowed}, not {rail.value}")
    return rail


def _check_code_scheme(code: str, country: Country, kind: BankKind) -> None:
    if kind == BankKind.MOBILE_MONEY:
        if not code.startswith(_MOBILE_MONEY_FIRST_DIGIT):
            raise ValidationFailed.for_field("code", "a mobile-money operator's code is 900 to 999")
        return
    first = _BANK_CODE_FIRST_DIGIT[country]
    if not code.startswith(first):
        raise ValidationFailed.for_field(
            "code", f"a bank of {country.value} has a code from {first}00 to {first}99"
        )


def _payhero_code(value: object, code: str, country: Country, kind: BankKind) -> str | None:
    if value is None:
        return None
    if country != Country.KE or kind != BankKind.BANK:
        raise ValidationFailed.for_field("payheroCode", "only a Kenyan bank has a Pay Hero bank code")
    if not isinstance(value, str) or not _PAYHERO_CODE.fullmatch(value):
        raise ValidationFailed.for_field("payheroCode", "must be exactly 2 digits")
    if code != "1" + value:
        raise ValidationFailed.for_field(
            "code", f"a Kenyan bank with Pay Hero code {value} has code 1{value}"
        )
    return value


# -- reading the registry ----------------------------------------------------------------------


async def list_banks(
    session: AsyncSession,
    *,
    country: Country | str | None = None,
    kind: BankKind | str | None = None,
    active: bool | None = None,
) -> list[Bank]:
    """The registry by code; each filter given (``country`` SL or KE, ``kind`` bank or
    mobile_money, ``active``) narrows it. An unknown filter value is a ValidationFailed naming it."""
    return await repository.bank_rows(
        session,
        country=None if country is None else _choice(Country, country, "country").value,
        kind=None if kind is None else _choice(BankKind, kind, "kind").value,
        active=active,
    )


async def get_bank(session: AsyncSession, code: str) -> Bank:
    """The bank (or mobile-money operator) with ``code``, active or not."""
    row = await repository.bank_row(session, parse_code(code))
    if row is None:
        raise NotFound.for_field("code", f"no bank has code {code}")
    return row


async def bank_for_account(session: AsyncSession, account_number: str) -> Bank:
    """The active bank whose code is the first 3 digits of ``account_number`` (4 to 34 digits).

    A code of ``9xx`` answers a mobile-money operator: its ``kind`` tells the caller which it is.
    """
    if not isinstance(account_number, str) or not _ACCOUNT.fullmatch(account_number):
        raise ValidationFailed.for_field(
            "accountNumber", "must be 4 to 34 digits, the first 3 its bank's code"
        )
    prefix = account_number[:3]
    row = await repository.bank_row(session, prefix)
    if row is None:
        raise ValidationFailed.for_field("accountNumber", f"no bank has code {prefix} (its first 3 digits)")
    if not row.active:
        raise ValidationFailed.for_field(
            "accountNumber", f"bank {prefix} ({row.name}) is not active: payments to it are refused"
        )
    return row


# -- the operator's changes --------------------------------------------------------------------


async def create_bank(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    country: Country | str,
    kind: BankKind | str,
    rail: BankRail | str | None = None,
    swift: str | None = None,
    payhero_code: str | None = None,
    active: bool = True,
    now: datetime,
) -> Bank:
    """Add a bank or mobile-money operator. ``rail`` defaults to the usual one of its kind and
    country (Sierra Leone banks ``bankrail``, Kenyan banks ``mpesa_b2b``, operators
    ``mobile_money``). A code or Pay Hero code already in use is a Conflict naming it."""
    code = parse_code(code)
    the_country = _choice(Country, country, "country")
    the_kind = _choice(BankKind, kind, "kind")
    _check_code_scheme(code, the_country, the_kind)
    row = Bank(
        code=code,
        name=_name(name),
        swift=_swift(swift, the_country),
        country=the_country.value,
        kind=the_kind.value,
        rail=(_DEFAULT_RAIL[the_kind, the_country] if rail is None else _rail(rail, the_kind)).value,
        payhero_code=_payhero_code(payhero_code, code, the_country, the_kind),
        active=_active(active),
        created_at=now,
        updated_at=now,
    )
    if await repository.bank_row(session, code) is not None:
        raise Conflict.for_field("code", f"bank {code} exists already")
    if row.payhero_code is not None and await repository.bank_with_payhero_code(session, row.payhero_code):
        raise Conflict.for_field(
            "payheroCode", f"a bank with Pay Hero code {row.payhero_code} exists already"
        )
    try:
        async with session.begin_nested():
            await repository.add_bank(session, row)
    except IntegrityError:  # added at the same moment by another request
        raise Conflict.for_field("code", f"bank {code} exists already") from None
    return row


def _active(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed.for_field("active", "must be true or false")
    return value


async def update_bank(
    session: AsyncSession,
    code: str,
    *,
    name: str | Unset = UNSET,
    swift: str | Unset | None = UNSET,
    active: bool | Unset = UNSET,
    rail: BankRail | str | Unset = UNSET,
    now: datetime,
) -> Bank:
    """Change the given fields of bank ``code`` (``swift=None`` clears it); the others stay.
    Nothing is written unless every given field is valid."""
    row = await get_bank(session, code)
    country, kind = Country(row.country), BankKind(row.kind)
    values: dict[str, object] = {}
    if not isinstance(name, Unset):
        values["name"] = _name(name)
    if not isinstance(swift, Unset):
        values["swift"] = _swift(swift, country)
    if not isinstance(active, Unset):
        values["active"] = _active(active)
    if not isinstance(rail, Unset):
        values["rail"] = _rail(rail, kind).value
    for field, value in values.items():
        setattr(row, field, value)
    if values:
        row.updated_at = now
        await session.flush()
    return row
