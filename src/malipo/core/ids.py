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


def new_reference(length: int = 10) -> str:
    """A short upper-case reference like ``E8UWT7CLUW`` (Pay Hero's style)."""
    return "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(length))


def new_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (callback URLs, reset links)."""
    return secrets.token_urlsafe(nbytes)
