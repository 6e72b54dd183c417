"""Airtel's callback authentication: a ``hash`` beside ``transaction`` in the callback body.

With "callback authentication" on in Airtel's portal, each callback carries ``hash``: the base64 of
HMAC-SHA256 over the callback content, keyed with the app's callback private key
(``MALIPO_AIRTEL_CALLBACK_KEY``). Which bytes are hashed is not byte-exact in Airtel's documents
(reference: airtel-money-api.md §callback): integrators hash the ``transaction`` object as received,
its compact JSON, or ``{"transaction": …}``. A hash over any of those forms is taken; nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

_TRANSACTION_KEY = re.compile(rb'"transaction"\s*:\s*')


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def callback_hash(transaction: dict[str, Any], key: bytes) -> str:
    """What Airtel (and the simulator) put in ``hash`` for ``transaction``."""
    return base64.b64encode(hmac.digest(key, _compact(transaction), hashlib.sha256)).decode()


def _raw_transaction(body: bytes, transaction: Any) -> bytes | None:
    """The bytes of the top-level ``transaction`` value exactly as they came."""
    found = _TRANSACTION_KEY.search(body)
    if found is None:
        return None
    try:
        text = body.decode()
        start = len(body[: found.end()].decode())
        value, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:  # not UTF-8, or not JSON there
        return None
    return text[start:end].encode() if value == transaction else None


def hash_ok(body: bytes, key: bytes) -> bool:
    """Whether ``body`` carries a ``hash`` that ``key`` made over its ``transaction``."""
    try:
        parsed = json.loads(body)
        claimed = base64.b64decode(parsed["hash"], validate=True)
        transaction = parsed["transaction"]
    except (ValueError, KeyError, TypeError):
        return False
    forms = [_compact(transaction), _compact({"transaction": transaction})]
    raw = _raw_transaction(body, transaction)
    if raw is not None:
        forms.append(raw)
    return any(hmac.compare_digest(hmac.digest(key, form, hashlib.sha256), claimed) for form in forms)
