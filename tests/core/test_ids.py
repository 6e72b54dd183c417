"""Identifiers: references are Pay Hero-shaped and drawn from the whole alphabet; ids are UUIDv7."""

from __future__ import annotations

import string
from collections import Counter

from malipo.core.ids import new_id, new_reference


def test_references_are_upper_case_letters_and_digits_of_the_length_asked() -> None:
    for length in (1, 8, 10, 40):
        reference = new_reference(length)
        assert len(reference) == length
        assert set(reference) <= set(string.ascii_uppercase + string.digits)


def test_every_character_is_drawn_and_none_is_favoured() -> None:
    counts = Counter("".join(new_reference() for _ in range(36_000)))  # 10,000 of each expected
    assert set(counts) == set(string.ascii_uppercase + string.digits)
    # One standard deviation is ~99 here, so +/-600 fails by chance about once in 10^7 runs; a
    # byte taken modulo 36 (256 = 7 x 36 + 4) would put 4 characters ~12 % (1,250) above.
    assert all(9_400 < n < 10_600 for n in counts.values()), counts
    assert len({new_reference() for _ in range(1000)}) == 1000


def test_ids_are_uuid7_and_rise_with_time() -> None:
    ids = [new_id() for _ in range(100)]
    assert {i.version for i in ids} == {7}
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)
