"""One rule for every phone number (SMS, WhatsApp, mobile money), and Kenyan mobiles for M-Pesa.

Before: the collections' normaliser let ``phonenumbers`` drop what it did not understand (a NUL
or a newline inside a number vanished), and any valid number of any country was sent to M-Pesa
(``+1 202 555 0100`` was accepted, then failed at Daraja with 1025).
"""

from __future__ import annotations

import pytest

from malipo.collections.service import payer_phone
from malipo.core.errors import ValidationFailed
from malipo.core.phones import InvalidNumber, to_e164


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0712345678", "+254712345678"),
        ("254712345678", "+254712345678"),
        ("+254712345678", "+254712345678"),
        ("+254 712 345 678", "+254712345678"),
        ("0712-345-678", "+254712345678"),
        (" 0712345678 ", "+254712345678"),
        ("254708374149", "+254708374149"),  # Daraja's sandbox test number
    ],
)
def test_the_ways_people_write_a_kenyan_mobile_number_are_read(raw: str, e164: str) -> None:
    assert to_e164(raw, "KE") == e164
    assert to_e164(raw, "KE", mobile_only=True) == e164
    assert payer_phone(raw) == e164.lstrip("+")


@pytest.mark.parametrize(
    "raw",
    [
        "0712\x00345678",
        "0712\n345678",
        "0712345678\x00",
        "\x000712345678",
        "0712\u202e345678",
        "0712\u200b345678",
        "0712\t345678",
    ],
)
def test_a_control_character_anywhere_refuses_the_number(raw: str) -> None:
    with pytest.raises(InvalidNumber, match="control character"):
        to_e164(raw, "KE")
    with pytest.raises(ValidationFailed) as refused:
        payer_phone(raw)
    assert [e.field for e in refused.value.errors] == ["phone_number"]


@pytest.mark.parametrize(
    "raw",
    [
        "tel:0712345678",
        "0712345abc",
        "\u0660\u0667\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
        "07+12345678",
    ],
)
def test_anything_but_digits_and_their_separators_is_refused(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        to_e164(raw, "KE")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("+1 202 555 0100", "US"),
        ("+44 20 7946 0958", "GB"),
        ("+255 712 345 678", "TZ"),
        ("+254202222222", "not a mobile number"),  # a Nairobi landline
    ],
)
def test_mobile_money_needs_a_kenyan_mobile_number(raw: str, why: str) -> None:
    with pytest.raises(InvalidNumber, match=why):
        to_e164(raw, "KE", mobile_only=True)
    with pytest.raises(ValidationFailed) as refused:
        payer_phone(raw, field="phone_number")
    assert [e.field for e in refused.value.errors] == ["phone_number"]
    assert why in refused.value.errors[0].message


def test_an_sms_may_still_go_to_another_country() -> None:
    # The rule for reading a number is one; only mobile money adds "a Kenyan mobile".
    assert to_e164("+1 202 555 0100", "KE") == "+12025550100"
