"""Money: integer minor units, exact parsing, integer-only fees and splits."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malipo.core.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency
from malipo.core.money import CURRENCY_EXPONENTS, MAX_MINOR_UNITS, Money, exponent, sum_money

REQUIRED_EXPONENTS = {
    "KES": 2, "SLE": 2, "SLL": 2, "UGX": 0, "TZS": 2, "RWF": 0, "BIF": 0, "ETB": 2, "NGN": 2, "GHS": 2,
    "XOF": 0, "XAF": 0, "ZAR": 2, "ZMW": 2, "MWK": 2, "MZN": 2, "CDF": 2, "SOS": 2, "SSP": 2, "EGP": 2,
    "MAD": 2, "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3, "BHD": 3, "OMR": 3, "TND": 3, "JOD": 3,
}  # fmt: skip

CURRENCIES = sorted(CURRENCY_EXPONENTS)
currencies = st.sampled_from(CURRENCIES)
valid_minor = st.integers(min_value=1, max_value=MAX_MINOR_UNITS)


def assert_invalid(exc: pytest.ExceptionInfo[InvalidAmount], field: str, *words: str) -> None:
    assert type(exc.value) is InvalidAmount
    assert len(exc.value.errors) == 1
    assert exc.value.errors[0].field == field
    message = exc.value.errors[0].message
    for word in words:
        assert word in message, message
    assert exc.value.detail == f"{field}: {message}"


# -- currency table ---------------------------------------------------------------------------


def test_required_exponents_are_present() -> None:
    for code, places in REQUIRED_EXPONENTS.items():
        assert CURRENCY_EXPONENTS[code] == places, code
        assert exponent(code) == places
        assert exponent(code.lower()) == places


def test_currency_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["XXX"] = 2  # type: ignore[index]


# Non-ASCII letters whose upper case is ASCII ("INR", "SOS") must not sneak in.
@pytest.mark.parametrize("code", ["XXX", "", "KE", "KESS", " KES", "\u0131nr", "\u017fos"])
def test_exponent_rejects_unknown_currency(code: str) -> None:
    with pytest.raises(UnknownCurrency) as exc:
        exponent(code)
    assert exc.value.errors[0].field == "currency"
    assert "unsupported currency" in exc.value.errors[0].message


# -- the value object -------------------------------------------------------------------------


def test_constructor_normalises_currency() -> None:
    m = Money(1050, "kes")
    assert m.currency == "KES"
    assert m == Money(1050, "KES")
    assert hash(m) == hash(Money(1050, "KES"))
    assert Money.of_minor(1050, "Kes") == m
    assert Money.zero("ugx") == Money(0, "UGX")


@pytest.mark.parametrize("amount", [10.5, Decimal(10), "10", True, False, None, Fraction(1)])
def test_constructor_rejects_non_int_amount(amount: Any) -> None:
    with pytest.raises(TypeError, match="int"):
        Money(amount, "KES")


def test_constructor_rejects_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency):
        Money(100, "XYZ")
    with pytest.raises(UnknownCurrency):
        Money(100, None)  # type: ignore[arg-type]


def test_constructor_accepts_zero_and_negative() -> None:
    assert Money(0, "KES").is_zero
    assert Money(-5, "KES").is_negative
    assert Money(5, "KES").is_positive
    assert not Money(0, "KES").is_positive
    assert not Money(0, "KES").is_negative


def test_money_is_frozen() -> None:
    m = Money(1, "KES")
    with pytest.raises(AttributeError):
        m.amount = 2  # type: ignore[misc]


# -- parsing: accepted inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (10, "KES", 1000),
        ("10", "KES", 1000),
        ("10.5", "KES", 1050),
        ("10.50", "KES", 1050),
        ("10.500", "KES", 1050),  # trailing zeros beyond the exponent are fine
        ("10.50000000000000000000000000000000", "KES", 1050),
        (".5", "KES", 50),
        ("10.", "KES", 1000),
        ("1E+2", "KES", 10000),
        ("1e2", "UGX", 100),
        ("1.5e1", "UGX", 15),
        ("25E-1", "KES", 250),
        (Decimal("1E+2"), "KES", 10000),
        (Decimal("10.50"), "KES", 1050),
        (Decimal("100.0"), "UGX", 100),
        ("100", "UGX", 100),
        ("1.234", "KWD", 1234),
        ("0.001", "BHD", 1),
        (10.1, "KES", 1010),  # via repr: never 1009.999...
        (0.29, "KES", 29),
        (1.15, "KES", 115),
        (100.0, "UGX", 100),
        (1e2, "JPY", 100),
        ("10.50", "kes", 1050),
    ],
)
def test_parse_accepts(value: Any, currency: str, minor: int) -> None:
    m = Money.parse(value, currency)
    assert m == Money(minor, currency.upper())
    assert type(m.amount) is int


def test_parse_largest_amount() -> None:
    assert Money.parse(MAX_MINOR_UNITS, "UGX").amount == MAX_MINOR_UNITS
    assert Money.parse("92233720368547758.07", "KES").amount == MAX_MINOR_UNITS


def test_parse_zero_when_allowed() -> None:
    for value in (0, "0", "0.00", Decimal("0E-10"), 0.0, -0.0):
        assert Money.parse(value, "KES", allow_zero=True) == Money(0, "KES")


# -- parsing: rejected inputs -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "abc", "10abc", "1.2.3", "1e", "e5", ".", "1 000", "1_000"])
def test_parse_rejects_garbage(value: str) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="body.amount")
    assert_invalid(exc, "body.amount", "must be a number")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("+5", ("'+' sign",)),
        ("+5 ", ("spaces",)),
        (" 5", ("spaces",)),
        ("   ", ("spaces",)),
        ("5\n", ("spaces",)),
        ("\t10.50", ("spaces",)),
        ("-5", ("greater than zero",)),
        ("-0", ("greater than zero",)),
        ("1_000", ("must be a number",)),
        ("1_000.00", ("must be a number",)),
        ("\u0661\u0660", ("must be a number",)),  # Arabic-Indic digits
        ("\uff11\uff10", ("must be a number",)),  # full-width digits
    ],
)
def test_parse_refuses_signs_spaces_and_underscores(value: str, words: tuple[str, ...]) -> None:
    # int() and Decimal() read all of these; an amount a client means is written plainly.
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="amount")
    assert_invalid(exc, "amount", *words)


@pytest.mark.parametrize("value", [None, [1], {"a": 1}, b"10", object()])
def test_parse_rejects_other_types(value: Any) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="x")
    assert_invalid(exc, "x", "must be a number")


@pytest.mark.parametrize("value", [True, False])
def test_parse_rejects_bool(value: bool) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="amt")
    assert_invalid(exc, "amt", "must be a number", "boolean")


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        "NaN",
        "inf",
        "Infinity",
        "-Infinity",
    ],
)
def test_parse_rejects_non_finite(value: Any) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="amount")
    assert_invalid(exc, "amount", "finite")


@pytest.mark.parametrize("value", ["1,000.25", "10,50", "1,000"])
def test_parse_rejects_thousands_separators(value: str) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="body.amount")
    assert_invalid(exc, "body.amount", "thousands separators")


@pytest.mark.parametrize(
    ("value", "currency", "words"),
    [
        ("10.505", "KES", ("KES amounts have at most 2 decimal places",)),
        ("10.5001", "KES", ("at most 2 decimal places",)),
        (Decimal("0.001"), "USD", ("USD amounts have at most 2 decimal places",)),
        ("1.0001", "KWD", ("KWD amounts have at most 3 decimal places",)),
        ("100.5", "UGX", ("UGX amounts", "no decimal places")),
        ("1E-1", "JPY", ("JPY amounts", "no decimal places")),
        (0.1 + 0.2, "KES", ("at most 2 decimal places",)),  # 0.30000000000000004
        (10.005, "KES", ("at most 2 decimal places",)),
    ],
)
def test_parse_rejects_too_many_places(value: Any, currency: str, words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, currency, field="amount")
    assert_invalid(exc, "amount", *words)


@pytest.mark.parametrize("value", [0, "0", "0.00", 0.0, Decimal(0), "-0", -1, "-10.50", -0.5, Decimal("-1")])
def test_parse_rejects_zero_and_negative(value: Any) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="body.amount")
    assert_invalid(exc, "body.amount", "must be greater than zero")


@pytest.mark.parametrize("value", [-1, "-0.01", Decimal("-5"), -2.5])
def test_parse_allow_zero_still_rejects_negative(value: Any) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, "KES", field="balance", allow_zero=True)
    assert_invalid(exc, "balance", "negative")


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (MAX_MINOR_UNITS + 1, "UGX"),
        (2**63 // 100 + 1, "KES"),
        pytest.param(10**5000, "KES", id="10**5000"),
        ("92233720368547758.08", "KES"),
        ("1E+17", "KES"),
        ("1E+999999999", "KES"),
        pytest.param("9" * 5000, "UGX", id="9*5000"),
        (Decimal("1E+30"), "KES"),
        (1e20, "KES"),
        (1e308, "UGX"),
    ],
)
def test_parse_rejects_too_large(value: Any, currency: str) -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, currency, field="amount")
    assert_invalid(exc, "amount", "is too large")


def test_parse_rejects_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency) as exc:
        Money.parse("10", "XXX", field="amount")
    assert exc.value.errors[0].field == "currency"
    assert "XXX" in exc.value.errors[0].message


def test_parse_tiny_exponent_is_cheap_and_rejected() -> None:
    with pytest.raises(InvalidAmount) as exc:
        Money.parse("1E-999999999", "KES")
    assert_invalid(exc, "amount", "decimal places")


# -- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "decimal", "text"),
    [
        (Money(1050, "KES"), Decimal("10.50"), "10.50"),
        (Money(100, "UGX"), Decimal(100), "100"),
        (Money(-325, "KES"), Decimal("-3.25"), "-3.25"),
        (Money(-5, "KES"), Decimal("-0.05"), "-0.05"),
        (Money(0, "KES"), Decimal("0.00"), "0.00"),
        (Money(1, "KWD"), Decimal("0.001"), "0.001"),
        (Money(0, "JPY"), Decimal(0), "0"),
        (
            Money(10**30 + 1, "KES"),
            Decimal("10000000000000000000000000000.01"),
            "10000000000000000000000000000.01",
        ),
    ],
)
def test_formatting(money: Money, decimal: Decimal, text: str) -> None:
    assert money.to_decimal() == decimal
    assert str(money.to_decimal()) == str(decimal)  # quantized: Decimal("10.50"), not "10.5"
    assert money.format() == text
    assert str(money) == f"{money.currency} {text}"


def test_str() -> None:
    assert str(Money(1050, "KES")) == "KES 10.50"
    assert str(Money(100, "UGX")) == "UGX 100"


# -- arithmetic and comparison ----------------------------------------------------------------


def test_add_and_subtract() -> None:
    a, b = Money(1050, "KES"), Money(250, "KES")
    assert a + b == Money(1300, "KES")
    assert a - b == Money(800, "KES")
    assert b - a == Money(-800, "KES")
    assert -a == Money(-1050, "KES")
    assert +a == a
    assert abs(Money(-1050, "KES")) == a


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_currency_mismatch(operation: Any) -> None:
    with pytest.raises(CurrencyMismatch) as exc:
        operation(Money(100, "KES"), Money(100, "UGX"))
    assert "KES" in exc.value.detail
    assert "UGX" in exc.value.detail


def test_equality_is_dataclass_equality() -> None:
    assert Money(100, "KES") == Money(100, "KES")
    assert Money(100, "KES") != Money(100, "UGX")
    assert Money(100, "KES") != Money(101, "KES")
    assert Money(100, "KES") != 100


def test_comparisons() -> None:
    small, big = Money(100, "KES"), Money(200, "KES")
    assert small < big
    assert small <= big
    assert small <= Money(100, "KES")
    assert big > small
    assert big >= small
    assert not big < small
    assert sorted([big, small]) == [small, big]
    assert max(small, big) == big


@pytest.mark.parametrize("other", [1, 1.5, Decimal(1), "1"])
def test_arithmetic_with_non_money_is_type_error(other: Any) -> None:
    m = Money(100, "KES")
    with pytest.raises(TypeError):
        m + other
    with pytest.raises(TypeError):
        m - other
    with pytest.raises(TypeError):
        _ = m < other


def test_multiply_by_int() -> None:
    m = Money(1050, "KES")
    assert m * 3 == Money(3150, "KES")
    assert 3 * m == Money(3150, "KES")
    assert m * 0 == Money(0, "KES")
    assert m * -2 == Money(-2100, "KES")


@pytest.mark.parametrize("factor", [1.5, 2.0, Decimal(2), Fraction(1, 2), True, "2"])
def test_multiply_by_non_int_is_type_error(factor: Any) -> None:
    m = Money(1050, "KES")
    with pytest.raises(TypeError):
        m * factor
    with pytest.raises(TypeError):
        factor * m
    with pytest.raises(TypeError):
        m * Money(1, "KES")


def test_sum_money() -> None:
    items = [Money(100, "KES"), Money(250, "kes"), Money(-50, "KES")]
    assert sum_money(items, "KES") == Money(300, "KES")
    assert sum_money([], "UGX") == Money(0, "UGX")
    assert sum_money(iter(items), "kes") == Money(300, "KES")
    with pytest.raises(CurrencyMismatch):
        sum_money([Money(100, "KES"), Money(100, "TZS")], "KES")
    with pytest.raises(CurrencyMismatch):
        sum_money([Money(100, "KES")], "UGX")


# -- fees -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bps", "rounding", "expected"),
    [
        (10000, 150, "half_up", 150),  # 1.5% of 100.00
        (1050, 150, "half_up", 16),  # 15.75 -> 16
        (1050, 150, "down", 15),
        (1050, 150, "up", 16),
        (100, 50, "half_up", 1),  # 0.5 -> 1 (half away from zero)
        (100, 50, "down", 0),
        (100, 49, "half_up", 0),  # 0.49 -> 0
        (100, 49, "up", 1),
        (-100, 50, "half_up", -1),  # -0.5 -> -1 (away from zero)
        (-1050, 150, "down", -15),
        (-1050, 150, "up", -16),
        (0, 150, "up", 0),
        (12345, 0, "up", 0),
        (12345, 10000, "half_up", 12345),
        (MAX_MINOR_UNITS, 9999, "half_up", (MAX_MINOR_UNITS * 9999 + 5000) // 10000),
    ],
)
def test_percentage(amount: int, bps: int, rounding: Any, expected: int) -> None:
    result = Money(amount, "KES").percentage(bps, rounding)
    assert result == Money(expected, "KES")
    assert type(result.amount) is int


def test_percentage_default_is_half_up() -> None:
    assert Money(100, "KES").percentage(50) == Money(1, "KES")


def test_percentage_rejects_bad_arguments() -> None:
    m = Money(100, "KES")
    with pytest.raises(ValueError, match="rounding"):
        m.percentage(50, "bankers")  # type: ignore[arg-type]
    for bad in (1.5, Decimal(1), True, "150"):
        with pytest.raises(TypeError):
            m.percentage(bad)  # type: ignore[arg-type]


# -- splits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "ratios", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (5, [1, 1, 1], [2, 2, 1]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (100, [70, 30], [70, 30]),
        (101, [70, 30], [71, 30]),
        (5, [0, 1, 1], [0, 3, 2]),
        (0, [1, 2], [0, 0]),
        (7, [3], [7]),
    ],
)
def test_allocate(amount: int, ratios: list[int], expected: list[int]) -> None:
    parts = Money(amount, "KES").allocate(ratios)
    assert parts == [Money(e, "KES") for e in expected]


def test_allocate_rejects_bad_ratios() -> None:
    m = Money(100, "KES")
    with pytest.raises(ValueError, match="at least one"):
        m.allocate([])
    with pytest.raises(ValueError, match="zero"):
        m.allocate([0, 0])
    with pytest.raises(ValueError, match="negative"):
        m.allocate([2, -1])
    with pytest.raises(TypeError):
        m.allocate([0.5, 0.5])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        m.allocate([True, 1])


# -- properties -------------------------------------------------------------------------------


@given(currency=currencies, minor=valid_minor)
def test_round_trip_through_text_and_decimal(currency: str, minor: int) -> None:
    m = Money(minor, currency)
    assert Money.parse(m.format(), currency) == m
    assert Money.parse(m.to_decimal(), currency) == m
    assert Money.parse(str(m.to_decimal()), currency.lower()) == m


@st.composite
def currency_and_decimal(draw: st.DrawFn) -> tuple[str, Decimal]:
    currency = draw(currencies)
    places = CURRENCY_EXPONENTS[currency]
    value = draw(
        st.decimals(
            min_value=Decimal(1).scaleb(-places),
            max_value=Decimal(MAX_MINOR_UNITS).scaleb(-places),
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    )
    return currency, value


@given(pair=currency_and_decimal(), extra_zeros=st.integers(min_value=0, max_value=5))
def test_parse_decimal_is_exact(pair: tuple[str, Decimal], extra_zeros: int) -> None:
    currency, value = pair
    assert Money.parse(value, currency).to_decimal() == value
    text = str(value)
    assert Money.parse(text, currency).to_decimal() == value
    padded = (text if "." in text else text + ".") + "0" * extra_zeros
    if "E" not in text:
        assert Money.parse(padded, currency).to_decimal() == value


def _walk(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _walk(item)]
    if isinstance(value, Money):
        return [value, value.amount, value.currency]
    return [value]


@given(
    currency=currencies,
    a=st.integers(min_value=-(2**70), max_value=2**70),
    b=st.integers(min_value=-(2**70), max_value=2**70),
    bps=st.integers(min_value=0, max_value=20_000),
    ratios=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=6),
    factor=st.integers(min_value=-100, max_value=100),
)
def test_no_float_is_ever_produced(
    currency: str, a: int, b: int, bps: int, ratios: list[int], factor: int
) -> None:
    x, y = Money(a, currency), Money(b, currency)
    results: list[object] = [
        x.to_decimal(),
        x.format(),
        str(x),
        x.amount,
        x + y,
        x - y,
        -x,
        abs(x),
        x * factor,
        factor * x,
        x.percentage(bps, "half_up"),
        x.percentage(bps, "up"),
        x.percentage(bps, "down"),
        x.allocate(ratios),
        sum_money([x, y], currency),
    ]
    if 0 < x.amount <= MAX_MINOR_UNITS:
        results.append(Money.parse(x.to_decimal(), currency))
    for leaf in _walk(results):
        assert type(leaf) is not float
        assert type(leaf) in (int, str, Decimal, Money)
    for leaf in _walk(results):
        if isinstance(leaf, Money):
            assert type(leaf.amount) is int


@given(
    currency=currencies,
    amount=st.integers(min_value=-(2**64), max_value=2**64),
    ratios=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=10).filter(any),
)
def test_allocate_sums_to_original(currency: str, amount: int, ratios: list[int]) -> None:
    m = Money(amount, currency)
    parts = m.allocate(ratios)
    assert len(parts) == len(ratios)
    assert sum_money(parts, currency) == m
    for part, ratio in zip(parts, ratios, strict=True):
        if ratio == 0:
            assert part.is_zero
        floor_share = abs(amount) * ratio // sum(ratios)  # leftover units go one each to the first parts
        assert abs(part.amount) - floor_share in (0, 1)


@given(
    currency=currencies,
    amount=st.integers(min_value=-(2**64), max_value=2**64),
    count=st.integers(min_value=1, max_value=50),
    weight=st.integers(min_value=1, max_value=1000),
)
def test_allocate_equal_ratios_differ_by_at_most_one(
    currency: str, amount: int, count: int, weight: int
) -> None:
    m = Money(amount, currency)
    parts = m.allocate([weight] * count)
    assert sum_money(parts, currency) == m
    amounts = [p.amount for p in parts]
    assert max(amounts) - min(amounts) <= 1
    # the leftover goes to the first parts
    assert [abs(a) for a in amounts] == sorted((abs(a) for a in amounts), reverse=True)


def _half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * math.floor(abs(value) + Fraction(1, 2))


@given(
    currency=currencies,
    amount=st.integers(min_value=-(2**64), max_value=2**64),
    bps=st.integers(min_value=-20_000, max_value=20_000),
)
def test_percentage_matches_exact_fraction(currency: str, amount: int, bps: int) -> None:
    m = Money(amount, currency)
    exact = Fraction(amount * bps, 10_000)
    sign = -1 if exact < 0 else 1
    assert m.percentage(bps, "half_up").amount == _half_up(exact)
    assert m.percentage(bps).amount == _half_up(exact)
    assert m.percentage(bps, "up").amount == sign * math.ceil(abs(exact))
    assert m.percentage(bps, "down").amount == sign * math.floor(abs(exact))


@given(
    currency=currencies,
    minor=st.integers(min_value=0, max_value=MAX_MINOR_UNITS),
    zeros=st.integers(min_value=0, max_value=10),
    digit=st.integers(min_value=1, max_value=9),
    as_decimal=st.booleans(),
)
def test_more_places_than_exponent_always_rejected(
    currency: str, minor: int, zeros: int, digit: int, as_decimal: bool
) -> None:
    places = CURRENCY_EXPONENTS[currency]
    text = Money(minor, currency).format()
    if places == 0:
        text += "."
    text += "0" * zeros + str(digit)
    value: str | Decimal = Decimal(text) if as_decimal else text
    with pytest.raises(InvalidAmount) as exc:
        Money.parse(value, currency, field="body.amount", allow_zero=True)
    assert_invalid(exc, "body.amount", "decimal place")
