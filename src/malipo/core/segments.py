"""How many SMS segments (PDUs) a text takes, counted the way handsets and SMSCs split it.

A text made only of characters in the GSM 03.38 default alphabet and its
extension table is sent as GSM-7: a single message carries 160 septets, a
part of a concatenated message 153 (the user-data header takes 7). The
extension characters ``^ { } \\ [ ~ ] | €`` and form feed are sent as an
escape septet plus one more, so each counts 2, and the pair is never split
across two parts: when it would straddle a boundary it moves to the next part.

Any other character makes the whole text UCS-2 (UTF-16 in practice): 70 code
units in a single message, 67 per part. A character outside the Basic
Multilingual Plane (most emoji) is a surrogate pair of 2 units, which is also
never split across parts.

The empty text counts as 1 segment: a message is sent as at least one PDU,
and every text malipo sends is non-empty anyway.

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM7_MULTIPART",
    "GSM7_SINGLE",
    "UCS2_MULTIPART",
    "UCS2_SINGLE",
    "Encoding",
    "SegmentInfo",
    "count_segments",
    "is_gsm7",
]

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE = 160
GSM7_MULTIPART = 153
UCS2_SINGLE = 70
UCS2_MULTIPART = 67

# The default alphabet in code order, 0x00-0x7F, without 0x1B (the escape to the extension
# table, not a character a text can hold). Written with escapes where a lookalike exists
# (Greek capitals, not Latin ones or the ohm sign).
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039eÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Sent as ESC + one septet: 2 septets each.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """The encoding a text needs, its length in that encoding's units and its segment count.

    ``characters`` is in septets for GSM-7 (an extension character counts 2)
    and in UTF-16 code units for UCS-2 (an emoji counts 2).
    """

    encoding: Encoding
    characters: int
    segments: int


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM 03.38 default alphabet or its extension."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def count_segments(text: str) -> SegmentInfo:
    """The encoding, length and number of segments of ``text`` (see the module docstring)."""
    if is_gsm7(text):
        costs = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return SegmentInfo("GSM-7", sum(costs), _pack(costs, GSM7_SINGLE, GSM7_MULTIPART))
    # Code points above the BMP are a surrogate pair in UTF-16.
    costs = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return SegmentInfo("UCS-2", sum(costs), _pack(costs, UCS2_SINGLE, UCS2_MULTIPART))


def _pack(costs: list[int], single: int, multipart: int) -> int:
    """Segments needed for units of the given sizes, no unit split across two segments."""
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multipart:
            segments += 1
            used = 0
        used += cost
    return segments
