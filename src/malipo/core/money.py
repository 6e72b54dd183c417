"""Money: an integer count of minor units plus an ISO 4217 currency code.

Floats never hold money. A float may *arrive* (JSON numbers are parsed as floats; the HTTP
layer refuses any JSON number a float cannot carry exactly), and :meth:`Money.parse` turns it
into its shortest round-trip text (``repr``) before reading it as a decimal, so ``10.1`` means
ten and ten hundredths and never ``10.0999999...``. Text is read strictly: plain ASCII digits,
one ``.``, an optional exponent; no sign, no surrounding spaces, no ``_`` or ``,``. Nothing in
this module returns a float; fee and split arithmetic is done on integers only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Literal

from malipo.core.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_MINOR_UNITS",
    "Money",
    "Rounding",
    "exponent",
    "sum_money",
]

#: ISO 4217 minor-unit exponents (number of decimal places) of the supported currencies.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        # East Africa
        "KES": 2,
        "UGX": 0,
        "TZS": 2,
        "RWF": 0,
        "BIF": 0,
        "ETB": 2,
        "SOS": 2,
        "SSP": 2,
        "DJF": 0,
        "ERN": 2,
        "SDG": 2,
        # West Africa
        "NGN": 2,
        "GHS": 2,
        "XOF": 0,
        "SLE": 2,
        "SLL": 2,
        "GMD": 2,
        "GNF": 0,
        "LRD": 2,
        "CVE": 2,
        # Central Africa
        "XAF": 0,
        "CDF": 2,
        "STN": 2,
        # Southern Africa
        "ZAR": 2,
        "ZMW": 2,
        "MWK": 2,
        "MZN": 2,
        "BWP": 2,
        "NAD": 2,
        "LSL": 2,
        "SZL": 2,
        "AOA": 2,
        "MGA": 2,
        "MUR": 2,
        "SCR": 2,
        "KMF": 0,
        # North Africa and the Middle East
        "EGP": 2,
        "MAD": 2,
        "DZD": 2,
        "TND": 3,
        "LYD": 3,
        "KWD": 3,
        "BHD": 3,
        "OMR": 3,
        "JOD": 3,
        "IQD": 3,
        "AED": 2,
        "SAR": 2,
        # Elsewhere
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "CHF": 2,
        "CAD": 2,
        "AUD": 2,
        "CNY": 2,
        "INR": 2,
        "JPY": 0,
    }
)

#: The largest magnitude of a minor-unit amount that :meth:`Money.parse` accepts: what fits a
#: signed 64-bit (PostgreSQL ``BIGINT``) column.
MAX_MINOR_UNITS = 2**63 - 1

Rounding = Literal["half_up", "up", "down"]

# A plain ASCII decimal literal with an optional exponent: no "+", no spaces, no thousands
# separators, no underscores, no non-ASCII digits, no "NaN"/"Infinity".
_DECIMAL_TEXT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# More significant digits than this can never fit in MAX_MINOR_UNITS (< 10**19).
_MAX_DIGITS = len(str(MAX_MINOR_UNITS))


def _normalise_currency(currency: object, *, field: str = "currency") -> str:
    if not isinstance(currency, str) or not currency.isascii():
        raise UnknownCurrency(str(currency), field=field)
    code = currency.upper()
    if code not in CURRENCY_EXPONENTS:
        raise UnknownCurrency(currency, field=field)
    return code


def exponent(currency: str) -> int:
    """The number of decimal places of ``currency`` (case-insensitive); UnknownCurrency otherwise."""
    return CURRENCY_EXPONENTS[_normalise_currency(currency)]


def _places_message(code: str, places: int) -> str:
    if places == 0:
        return f"{code} amounts have no decimal places (whole units only)"
    plural = "place" if places == 1 else "places"
    return f"{code} amounts have at most {places} decimal {plural}"


def _to_decimal_input(value: object, field: str) -> Decimal:
    """Turn an accepted input into a finite Decimal, exactly; InvalidAmount otherwise."""
    if isinstance(value, bool):
        raise InvalidAmount("must be a number, not a boolean", field=field)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAmount("must be a finite number", field=field)
        # Shortest text that round-trips to the same float: what the sender wrote.
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount("must be a finite number", field=field)
        return value
    if isinstance(value, str):
        text = value
        if text != text.strip():
            raise InvalidAmount("must not have spaces around it", field=field)
        if text.startswith("+"):
            raise InvalidAmount("must be written without a '+' sign", field=field)
        if "," in text:
            raise InvalidAmount(
                "must use '.' as the decimal point and no thousands separators (',')", field=field
            )
        if not _DECIMAL_TEXT.fullmatch(text):
            try:
                special = Decimal(text)
            except (InvalidOperation, ValueError):
                special = None
            if special is not None and not special.is_finite():
                raise InvalidAmount("must be a finite number", field=field)
            raise InvalidAmount("must be a number", field=field)
        return Decimal(text)
    raise InvalidAmount("must be a number", field=field)


def _decimal_to_minor(value: Decimal, code: str, field: str) -> int:
    """Exact magnitude of a finite Decimal in minor units, without any context rounding."""
    places = CURRENCY_EXPONENTS[code]
    _sign, digits, exp = value.as_tuple()
    if not isinstance(exp, int):  # "n"/"N"/"F": the caller lets only finite values through
        raise InvalidAmount("must be a finite number", field=field)
    # Drop trailing zeros of the coefficient: "10.500" has the same value as "10.5".
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    exp += len(digits) - end
    digits = digits[:end]
    if digits == (0,):
        return 0
    shift = exp + places  # minor = coefficient * 10**shift
    if shift < 0:
        raise InvalidAmount(_places_message(code, places), field=field)
    # Guard before building the integer, so "1E+999999999" costs nothing.
    if len(digits) + shift > _MAX_DIGITS:
        raise InvalidAmount("is too large", field=field)
    return int("".join(map(str, digits))) * 10**shift


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units (``amount``) of an ISO 4217 ``currency`` (stored upper case).

    ``amount`` may be zero or negative: those are arithmetic results (refunds, balances). Input
    from outside goes through :meth:`parse`, which only accepts positive amounts (or zero when
    asked) that fit a signed 64-bit column.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        amount: object = self.amount
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"Money.amount must be an int of minor units, not {type(amount).__name__}")
        if type(amount) is not int:  # an int subclass (IntEnum, ...): keep a plain int
            object.__setattr__(self, "amount", int(amount))
        object.__setattr__(self, "currency", _normalise_currency(self.currency))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def parse(
        cls,
        value: int | float | str | Decimal,
        currency: str,
        *,
        field: str = "amount",
        allow_zero: bool = False,
    ) -> Money:
        """Read a major-unit amount (``"10.50"`` KES) into minor units (1050).

        Accepts ``int``, ``Decimal``, a plain decimal string (exponent notation allowed; no sign,
        surrounding spaces, underscores or thousands separators) or a ``float`` (read through its
        shortest round-trip text); never a boolean. Raises
        InvalidAmount naming ``field`` for anything that is not a finite number, has more decimal
        places than the currency, is not greater than zero (zero is allowed with ``allow_zero``),
        or does not fit a signed 64-bit count of minor units; UnknownCurrency for the currency.
        """
        code = _normalise_currency(currency)
        places = CURRENCY_EXPONENTS[code]
        number = _to_decimal_input(value, field)
        if number < 0 or (isinstance(value, str) and value.startswith("-")):  # "-0" too
            raise InvalidAmount(
                "must not be negative" if allow_zero else "must be greater than zero", field=field
            )
        if isinstance(value, int):
            # Exact already; the bit-length guard keeps a huge int from being multiplied out.
            minor = value * 10**places if value.bit_length() <= 64 else MAX_MINOR_UNITS + 1
        else:
            minor = _decimal_to_minor(number, code, field)
        if minor > MAX_MINOR_UNITS:
            raise InvalidAmount("is too large", field=field)
        if minor == 0 and not allow_zero:
            raise InvalidAmount("must be greater than zero", field=field)
        return cls(minor, code)

    @classmethod
    def of_minor(cls, amount: int, currency: str) -> Money:
        """``Money(amount, currency)``: ``amount`` is already in minor units."""
        return cls(amount, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    # -- views --------------------------------------------------------------------------------

    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS[self.currency]

    def to_decimal(self) -> Decimal:
        """The exact major-unit value with the currency's places: ``Decimal("10.50")``."""
        sign, digits, _ = Decimal(self.amount).as_tuple()  # exact: an int converts without rounding
        return Decimal((sign, digits, -self.exponent))

    def format(self) -> str:
        """Major units as plain text: ``"10.50"``, ``"100"`` (UGX), ``"-3.25"``."""
        places = self.exponent
        if places == 0:
            return str(self.amount)
        whole, fraction = divmod(abs(self.amount), 10**places)
        sign = "-" if self.amount < 0 else ""
        return f"{sign}{whole}.{fraction:0{places}d}"

    def __str__(self) -> str:
        return f"{self.currency} {self.format()}"

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    # -- arithmetic ---------------------------------------------------------------------------

    def _same_currency(self, other: Money, operation: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot {operation} {self.currency} and {other.currency}")

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError(
                f"Money can only be multiplied by an int, not {type(factor).__name__}; "
                "use percentage() or allocate() for fractions"
            )
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    # -- comparison ---------------------------------------------------------------------------

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount >= other.amount

    # -- fees and splits ----------------------------------------------------------------------

    def percentage(self, basis_points: int, rounding: Rounding = "half_up") -> Money:
        """``amount * basis_points / 10000`` rounded to a whole minor unit, in integers only.

        ``rounding`` follows the Decimal names and is symmetric about zero: ``"half_up"`` rounds
        a half away from zero, ``"up"`` rounds any remainder away from zero, ``"down"`` truncates
        toward zero. 150 basis points are 1.5%.
        """
        if isinstance(basis_points, bool) or not isinstance(basis_points, int):
            raise TypeError(f"basis_points must be an int, not {type(basis_points).__name__}")
        product = self.amount * basis_points
        quotient, remainder = divmod(abs(product), 10_000)
        if rounding == "half_up":
            if 2 * remainder >= 10_000:
                quotient += 1
        elif rounding == "up":
            if remainder:
                quotient += 1
        elif rounding != "down":
            raise ValueError(f"rounding must be 'half_up', 'up' or 'down', not {rounding!r}")
        return Money(-quotient if product < 0 else quotient, self.currency)

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split into parts proportional to ``ratios`` that always sum exactly to ``self``.

        Each part gets its floor share; the leftover minor units go one each to the first parts
        with a non-zero ratio. A part with ratio 0 gets nothing. Negative amounts split like their
        absolute value, negated.
        """
        weights = list(ratios)
        if not weights:
            raise ValueError("allocate needs at least one ratio")
        for weight in weights:
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise TypeError(f"ratios must be ints, not {type(weight).__name__}")
            if weight < 0:
                raise ValueError("ratios must not be negative")
        total = sum(weights)
        if total == 0:
            raise ValueError("ratios must not all be zero")
        magnitude = abs(self.amount)
        shares = [magnitude * weight // total for weight in weights]
        leftover = magnitude - sum(shares)
        for index, weight in enumerate(weights):
            if leftover == 0:
                break
            if weight:
                shares[index] += 1
                leftover -= 1
        sign = -1 if self.amount < 0 else 1
        return [Money(sign * share, self.currency) for share in shares]


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """The total of ``items`` (zero when empty); CurrencyMismatch if any is in another currency."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total
