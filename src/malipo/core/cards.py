"""Card numbers: the Luhn check, the brand by BIN prefix, and the mask PCI DSS allows (BIN and
last 4). Pure functions over digit strings; nothing here keeps or logs a card number."""

from __future__ import annotations

__all__ = ["BRANDS", "card_brand", "luhn_valid", "mask_pan"]

# (brand, prefix ranges as (low, high) of equal-length digit strings, allowed PAN lengths), from
# the published IIN ranges; the longest matching prefix wins (Verve's 5060xx over Maestro's 5018…).
BRANDS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[int, ...]], ...] = (
    ("verve", (("506099", "506198"), ("507865", "507964"), ("650002", "650027")), (16, 18, 19)),
    ("discover", (("622126", "622925"), ("6011", "6011"), ("644", "649"), ("65", "65")), (16, 17, 18, 19)),
    (
        "maestro",
        (("5018", "5018"), ("5020", "5020"), ("5038", "5038"), ("5893", "5893")),
        tuple(range(12, 20)),
    ),
    ("maestro", (("6304", "6304"), ("6759", "6759"), ("6761", "6763")), tuple(range(12, 20))),
    ("mastercard", (("2221", "2720"), ("51", "55")), (16,)),
    ("jcb", (("3528", "3589"),), (16, 17, 18, 19)),
    ("amex", (("34", "34"), ("37", "37")), (15,)),
    ("diners", (("300", "305"), ("36", "36"), ("38", "39")), (14, 15, 16)),
    ("unionpay", (("62", "62"),), (16, 17, 18, 19)),
    ("visa", (("4", "4"),), (13, 16, 19)),
)


def luhn_valid(pan: str) -> bool:
    """True when ``pan`` is 12 to 19 digits whose Luhn (mod 10) check digit is right."""
    if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
        return False
    total = 0
    for position, char in enumerate(reversed(pan)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(pan: str) -> str | None:
    """The brand whose longest BIN prefix ``pan`` starts with and whose lengths it has
    (``visa``, ``mastercard``, ``amex``, ``discover``, ``jcb``, ``diners``, ``unionpay``, ``verve``,
    ``maestro``); None when none matches."""
    best: tuple[int, str] | None = None
    for brand, ranges, lengths in BRANDS:
        if len(pan) not in lengths:
            continue
        for low, high in ranges:
            if low <= pan[: len(low)] <= high and (best is None or len(low) > best[0]):
                best = (len(low), brand)
    return best[1] if best else None


def mask_pan(pan: str) -> str:
    """``4242424242424242`` → ``424242******4242``: BIN and last 4 (PCI DSS 3.4.1); a string too
    short to be a card is all stars."""
    digits = "".join(ch for ch in pan if ch.isdigit())
    if len(digits) < 12:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]
