"""Card numbers: Luhn, brand by BIN (longest prefix first), and the BIN + last 4 mask."""

from __future__ import annotations

import pytest

from malipo.core.cards import card_brand, luhn_valid, mask_pan


@pytest.mark.parametrize(
    ("pan", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3566002020360505", "jcb"),
        ("36227206271667", "diners"),
        ("6200000000000005", "unionpay"),
        ("5060990000000000", "verve"),  # Verve's 506099 wins over Maestro's 50…
        ("6304000000000000", "maestro"),
    ],
)
def test_the_brand_is_read_from_the_longest_bin_prefix(pan: str, brand: str) -> None:
    assert card_brand(pan) == brand


def test_luhn() -> None:
    assert luhn_valid("4242424242424242")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4242424242424241")
    assert not luhn_valid("42424242424242a2")
    assert not luhn_valid("00000000000")  # too short to be a card


def test_the_mask_keeps_bin_and_last_four() -> None:
    assert mask_pan("4242424242424242") == "424242******4242"
    assert mask_pan("378282246310005") == "378282*****0005"
    assert mask_pan("1234") == "****"
