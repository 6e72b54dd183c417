"""Base models of the native API, and the input types both surfaces share.

Every integer a client sends has bounds (:data:`Id`, :data:`PageNumber`), so no id or offset
ever passes a 64-bit database integer; booleans are never numbers; free text on money routes
carries no control characters (:data:`PlainText`).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from malipo.core.errors import InvalidAmount
from malipo.core.money import Money

#: The largest id a client may send: ids are 64-bit integers that JSON (and JavaScript) carry
#: exactly only up to 2**53; anything larger cannot name a row.
MAX_ID = 2**53
#: The last page a list may be asked for: (MAX_PAGE - 1) * the largest page size stays far below
#: 2**63, the largest OFFSET either database takes.
MAX_PAGE = 1_000_000

_DIGITS = re.compile(r"[0-9]{1,20}", re.ASCII)


class CamelModel(BaseModel):
    """A request or reply of /api/v1. Unknown request fields are refused, naming them."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", from_attributes=True
    )


class Message(CamelModel):
    message: str


# -- integers ------------------------------------------------------------------------------------


def plain_integer(value: Any) -> Any:
    """An integer as JSON or a query string writes it: an int, an integral number, or digits only.

    A boolean is a JSON type of its own, not 1 or 0; ``"1_000"``, ``"+5 "`` or ``" 5"`` are not
    integers (Python's ``int()`` and Pydantic's lax mode would read them). Bounds come after.
    """
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "must be an integer, not a boolean")
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise PydanticCustomError("int_parsing", "must be a whole number written with digits only")
        return int(value)
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError("int_from_float", "must be a whole number")
    if not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "must be an integer")
    return value


#: A row id sent by a client in a body: 1 to 2**53.
Id = Annotated[int, BeforeValidator(plain_integer), Field(ge=1, le=MAX_ID)]
#: A 1-based page number in a query string: 1 to MAX_PAGE.
PageQuery = Annotated[int, BeforeValidator(plain_integer), Query(ge=1, le=MAX_PAGE, description="1-based")]


def page_size_query(largest: int, *, optional: bool = False, alias: str | None = None) -> Any:
    """A page size of 1 to ``largest`` in a query string (absent: the route's default), named
    ``alias`` there if given (``pageSize`` on /api/v1)."""
    kind: Any = int | None if optional else int
    return Annotated[kind, BeforeValidator(plain_integer), Query(ge=1, le=largest, alias=alias)]


# -- amounts -------------------------------------------------------------------------------------


def _whole_shillings(value: Any) -> int:
    """Pay Hero's amounts: a whole number of shillings, read by the same rules as every amount
    (:meth:`Money.parse`: no booleans, signs, spaces, underscores or non-finite numbers)."""
    try:
        minor = Money.parse(value, "KES", field="amount", allow_zero=True).amount
    except InvalidAmount as exc:
        raise PydanticCustomError("invalid_amount", exc.errors[0].message) from None
    whole, cents = divmod(minor, 100)
    if cents:
        raise PydanticCustomError("invalid_amount", "must be a whole number of shillings")
    return whole


#: A whole number of shillings (bounds are the route's).
WholeShillings = Annotated[int, BeforeValidator(_whole_shillings)]


def _amount_input(value: Any) -> Any:
    # A boolean is a JSON type of its own, not 1 or 0.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number or a decimal string")
    return value


Amount = Annotated[
    int | float | str,
    BeforeValidator(_amount_input),
    Field(
        description="In the wallet's currency: a number or a decimal string, > 0, no more decimals "
        "than the currency has",
        examples=["10.50"],
    ),
]


# -- text ----------------------------------------------------------------------------------------

# Unicode categories refused in text: controls (NUL, newline, ESC, …), lone surrogates and
# format characters (bidirectional overrides that make "evil" read "live", zero-width spaces),
# except the joiners that emoji and some scripts need.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_JOINERS = "\u200c\u200d"


def control_character(text: str, *, allow: str = "") -> str | None:
    """The first control or invisible format character in ``text`` (other than ``allow``), or None."""
    for char in text:
        if char not in allow and char not in _JOINERS and unicodedata.category(char) in _REFUSED_CATEGORIES:
            return char
    return None


def _plain_text(text: str) -> str:
    found = control_character(text)
    if found is not None:
        raise PydanticCustomError(
            "control_character", "must not contain control characters (found {char})", {"char": repr(found)}
        )
    return text


def _message_text(text: str) -> str:
    found = control_character(text, allow="\n\r\t")
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters other than line breaks and tabs (found {char})",
            {"char": repr(found)},
        )
    return text


def _plain_text_input(value: Any) -> Any:
    return _plain_text(value) if isinstance(value, str) else value


#: One line of free text (a description, a reference, a name): no control characters at all.
PlainText = Annotated[str, AfterValidator(_plain_text)]
#: ``PlainText``'s rule as a validator that runs before the others (before whitespace is
#: stripped): ``Annotated[str, StringConstraints(...), NoControlCharacters]``.
NoControlCharacters = BeforeValidator(_plain_text_input)
#: A message body: line breaks and tabs allowed, no other control characters.
MessageText = Annotated[str, AfterValidator(_message_text)]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD``: Pydantic alone would read ``0`` as 1970-01-01 (a Unix timestamp)."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]

_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}:?\d{2})", re.ASCII
)


def _iso_datetime(value: Any) -> Any:
    """Only an ISO 8601 date-time with its time zone: Pydantic alone would read ``0.5`` as a Unix
    timestamp, and a time without a zone means a different moment on every server."""
    if isinstance(value, str) and not _ISO_DATETIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]
