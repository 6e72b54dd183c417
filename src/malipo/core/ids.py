"""Identifiers: UUIDs for native objects, short references for Pay Hero ones.

Native ids are UUIDv7 (time-ordered), so new rows land at the end of a B-tree
index instead of at random pages; they are still opaque to clients.
"""

from __future__ import annotations

import os
import secrets
import string
import time
import uuid

_REFERENCE_ALPHABET = string.ascii_uppercase + string.digits


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    return uuid.UUID(int=value)


# Random bytes below this map evenly onto the 36 characters (7 x 36); the rest are drawn again.
_EVEN_BELOW = 256 - 256 % len(_REFERENCE_ALPHABET)


def new_reference(length: int = 10) -> str:
    """A short upper-case reference like ``E8UWT7CLUW`` (Pay Hero's style): each character drawn
    uniformly from the OS's random bytes (one call for all, not one per character)."""
    chosen: list[str] = []
    while len(chosen) < length:
        picks = os.urandom(length + 4)
        chosen += [_REFERENCE_ALPHABET[b % len(_REFERENCE_ALPHABET)] for b in picks if b < _EVEN_BELOW]
    return "".join(chosen[:length])


def new_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (callback URLs, reset links)."""
    return secrets.token_urlsafe(nbytes)
