"""Secrets at rest: Argon2id passwords, SHA-256 API keys, AES-GCM for what must be read back."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory profile)

API_KEY_PREFIXES = {"live": "mk_live_", "test": "mk_test_"}
# How much of a key is kept in the clear to tell keys apart in lists and logs.
API_KEY_VISIBLE_CHARS = 4


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def generate_api_key(mode: str) -> tuple[str, str, str]:
    """A new API key: ``(raw, display_prefix, sha256_hash)``. Only the last two are stored."""
    raw = API_KEY_PREFIXES[mode] + secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")
    prefix = raw[: len(API_KEY_PREFIXES[mode]) + API_KEY_VISIBLE_CHARS]
    return raw, prefix, sha256_hex(raw)


def generate_password(length: int = 20) -> str:
    return secrets.token_urlsafe(length)[:length]


class Encryptor:
    """AES-256-GCM with a key id in every ciphertext, so keys can be rotated."""

    def __init__(self, key_b64: str, key_id: str = "k1") -> None:
        key = base64.b64decode(key_b64)
        if len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes, base64-encoded")
        self._keys = {key_id: AESGCM(key)}
        self._current = key_id

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{self._current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        key_id, _, body = token.partition(":")
        raw = base64.b64decode(body)
        return self._keys[key_id].decrypt(raw[:12], raw[12:], context.encode()).decode()


_encryptor: Encryptor | None = None


def configure_encryption(key_b64: str) -> None:
    """Set the process's encryption key (done when settings are loaded)."""
    global _encryptor
    _encryptor = Encryptor(key_b64)


def encryptor() -> Encryptor:
    if _encryptor is None:
        raise RuntimeError("no encryption key configured: load settings (Settings.require_secrets) first")
    return _encryptor


@functools.lru_cache(maxsize=1024)
def derived_token(secret: str, purpose: str) -> str:
    """A token only the holder of ``secret`` can make for ``purpose`` (HMAC-SHA256, hex, 40
    characters): a callback URL's secret that need not be stored anywhere to be sent again."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:40]
