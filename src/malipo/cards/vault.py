"""The card vault's secrets: the PAN sealed with AES-GCM, its keyed fingerprint, and the CVV held in
memory only until the authorisation that uses it.

- The PAN is sealed with the process's ``Encryptor`` (``MALIPO_ENCRYPTION_KEY``, the key SMTP
  passwords use) under the context ``card-pan:{token}``: the ciphertext opens only for its own
  token (a ciphertext copied to another row does not decrypt), and carries its key id so that keys
  can be rotated. One key, one rotation procedure: a second key would double the key management
  without separating anything the context does not already separate.
- The fingerprint is an HMAC-SHA256 of the PAN under a key derived from ``MALIPO_SECRET_KEY`` and
  the client's id: the same card tokenised twice by one client has one fingerprint, and two
  clients' fingerprints of one card differ (no linking across tenants).
- The CVV is never written to disk (PCI DSS 3.3.1): it is kept sealed (3.3.2) in this process's
  memory, keyed by token, for at most ``CVV_TTL``, and taken (removed) by the first authorisation.
  With several API processes the authorisation must reach the process that tokenised, or it goes
  without CVV, which the simulator accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from datetime import datetime, timedelta

from malipo.config import Settings
from malipo.core.crypto import encryptor

CVV_TTL = timedelta(minutes=10)


def seal_pan(token: str, pan: str) -> tuple[str, str]:
    """``(ciphertext, key_id)`` of ``pan`` for ``token``."""
    sealed = encryptor().encrypt(pan, context=f"card-pan:{token}")
    return sealed, sealed.partition(":")[0]


def open_pan(token: str, sealed: str) -> str:
    return encryptor().decrypt(sealed, context=f"card-pan:{token}")


def fingerprint(settings: Settings, client_id: uuid.UUID, pan: str) -> str:
    assert settings.secret_key is not None, "settings.require_secrets() first"
    key = hmac.new(
        settings.secret_key.get_secret_value().encode(),
        f"card-fingerprint:{client_id}".encode(),
        hashlib.sha256,
    ).digest()
    return hmac.new(key, pan.encode(), hashlib.sha256).hexdigest()


class CvvStore:
    """Sealed CVVs by token, each for at most ``ttl``; ``take`` removes what it returns."""

    def __init__(self, ttl: timedelta = CVV_TTL) -> None:
        self.ttl = ttl
        self._held: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def put(self, token: str, cvv: str, now: datetime) -> None:
        sealed = encryptor().encrypt(cvv, context=f"card-cvv:{token}")
        with self._lock:
            self._purge(now)
            self._held[token] = (sealed, now + self.ttl)

    def take(self, token: str, now: datetime) -> str | None:
        with self._lock:
            self._purge(now)
            held = self._held.pop(token, None)
        return None if held is None else encryptor().decrypt(held[0], context=f"card-cvv:{token}")

    def holds(self, token: str, now: datetime) -> bool:
        with self._lock:
            self._purge(now)
            return token in self._held

    def _purge(self, now: datetime) -> None:
        for token in [t for t, (_, until) in self._held.items() if until <= now]:
            del self._held[token]


cvvs = CvvStore()
