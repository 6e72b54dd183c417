"""One-time codes that step a transfer up: six digits, good for five minutes, kept only as an HMAC.

The HMAC is keyed with the gateway's secret key and bound to the transfer, so a code read from one
transfer's row says nothing of another's, and a copy of the database alone cannot test guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

OTP_DIGITS = 6
OTP_TTL = timedelta(minutes=5)
MAX_FAILURES = 5  # wrong codes before the transfer is cancelled
MAX_RESENDS = 3
RESEND_INTERVAL = timedelta(seconds=30)


def new_code() -> str:
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


def code_hash(secret_key: str, transfer_id: uuid.UUID, code: str) -> str:
    message = f"transfer-otp:{transfer_id}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def code_matches(secret_key: str, transfer_id: uuid.UUID, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(code_hash(secret_key, transfer_id, code), stored_hash)
