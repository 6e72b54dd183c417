"""SMS segment counting: GSM-7 septets with the extension table, UCS-2 code units, part boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malipo.core.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentInfo, count_segments, is_gsm7

EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair in UTF-16

CASES = [
    # (label, text, encoding, characters, segments)
    ("empty", "", "GSM-7", 0, 1),
    ("one char", "a", "GSM-7", 1, 1),
    ("160 gsm", "a" * 160, "GSM-7", 160, 1),
    ("161 gsm", "a" * 161, "GSM-7", 161, 2),
    ("306 gsm", "a" * 306, "GSM-7", 306, 2),
    ("307 gsm", "a" * 307, "GSM-7", 307, 3),
    ("459 gsm", "a" * 459, "GSM-7", 459, 3),
    ("460 gsm", "a" * 460, "GSM-7", 460, 4),
    ("accented letters in the basic table", "Ça coute 5€? àéèùìò ÄÖÑÜäöñü", "GSM-7", 29, 1),
    ("û is not in the table", "Ça coûte 5€? àéèùìò ÄÖÑÜäöñü", "UCS-2", 28, 1),
    ("basic table only", "Δ_ΦΓΛΩΠΨΣΘΞ@£$¥¤§¿¡ÆæßÉØøÅå\r\n", "GSM-7", 29, 1),
    ("one euro costs 2", "€", "GSM-7", 2, 1),
    ("every extension char", "^{}\\[~]|€\f", "GSM-7", 20, 1),
    ("80 euros fill one message", "€" * 80, "GSM-7", 160, 1),
    ("159 plus a euro overflows", "a" * 159 + "€", "GSM-7", 161, 2),
    ("158 plus a euro fits", "a" * 158 + "€", "GSM-7", 160, 1),
    # Multipart: 153 septets a part. 152 + € = 154 -> 2 septets would straddle; € moves to part 2.
    ("euro at the 153 boundary moves", "a" * 152 + "€" + "a" * 153, "GSM-7", 307, 3),
    ("euro just before the boundary", "a" * 151 + "€" + "a" * 153, "GSM-7", 306, 2),
    ("euro just after the boundary", "a" * 153 + "€" + "a" * 151, "GSM-7", 306, 2),
    ("76 euros a part", "€" * 152, "GSM-7", 304, 2),
    ("153 euros need 3 parts", "€" * 153, "GSM-7", 306, 3),
    ("70 ucs-2", "Ж" * 70, "UCS-2", 70, 1),
    ("71 ucs-2", "Ж" * 71, "UCS-2", 71, 2),
    ("134 ucs-2", "Ж" * 134, "UCS-2", 134, 2),
    ("135 ucs-2", "Ж" * 135, "UCS-2", 135, 3),
    ("one non-gsm char turns all to ucs-2", "a" * 100 + "ç", "UCS-2", 101, 2),
    ("emoji is 2 units", EMOJI, "UCS-2", 2, 1),
    ("35 emoji fill one message", EMOJI * 35, "UCS-2", 70, 1),
    ("69 units plus an emoji overflows", "Ж" * 69 + EMOJI, "UCS-2", 71, 2),
    # 66 + emoji: the pair would straddle the 67-unit part boundary, so it moves to part 2.
    ("emoji at the 67 boundary moves", "Ж" * 66 + EMOJI + "Ж" * 67, "UCS-2", 135, 3),
    ("emoji just before the boundary", "Ж" * 65 + EMOJI + "Ж" * 67, "UCS-2", 134, 2),
    ("extension chars count 1 in ucs-2", "€Ж", "UCS-2", 2, 1),
    ("tab is not gsm", "a\tb", "UCS-2", 3, 1),
]


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_count_segments(text: str, encoding: str, characters: int, segments: int) -> None:
    assert count_segments(text) == SegmentInfo(encoding, characters, segments)  # type: ignore[arg-type]


def test_the_alphabet_has_127_basic_and_10_extension_characters() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes less the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert "\x1b" not in GSM7_BASIC
    # Greek capitals, not their Latin lookalikes or the ohm sign.
    assert {"\u03a9", "\u0394"} <= GSM7_BASIC
    assert "\u2126" not in GSM7_BASIC


def test_is_gsm7() -> None:
    assert is_gsm7("Hello {world} €5")
    assert not is_gsm7("Habari 😀")
    assert not is_gsm7("ç")  # only the capital Ç is in the table


# Mostly GSM text with extension characters, some UCS-2 and astral characters: boundaries get crossed.
_CHARS = st.one_of(
    st.sampled_from("ab €{"),
    st.sampled_from(sorted(GSM7_EXTENSION)),
    st.characters(codec="utf-8"),
    st.just(EMOJI),
)


@given(text=st.text(_CHARS, max_size=400), extra=st.text(_CHARS, min_size=1, max_size=20))
def test_appending_never_reduces_segments(text: str, extra: str) -> None:
    before = count_segments(text)
    after = count_segments(text + extra)
    assert after.segments >= before.segments
    assert after.characters >= before.characters or after.encoding != before.encoding


@given(text=st.text(_CHARS, max_size=400))
def test_segments_hold_the_text(text: str) -> None:
    info = count_segments(text)
    single, per_part = (160, 153) if info.encoding == "GSM-7" else (70, 67)
    if info.characters <= single:
        assert info.segments == 1
    else:
        # No more parts than needed with one unit lost at each boundary, no fewer than a perfect fill.
        assert -(-info.characters // per_part) <= info.segments <= -(-info.characters // (per_part - 1))
