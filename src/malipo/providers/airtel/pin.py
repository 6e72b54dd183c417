"""The disbursement PIN, encrypted as Airtel asks: RSA with PKCS#1 v1.5 padding under the public
key Airtel publishes for the country (``MALIPO_AIRTEL_PIN_PUBLIC_KEY``), base64.

The key is given as Airtel publishes it (base64 of the DER ``SubjectPublicKeyInfo``, ``MIGf…``)
or as PEM. Each encryption is randomised (PKCS#1 v1.5 padding), so the same PIN never shows the
same ciphertext twice; the PIN itself is never logged.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["InvalidPinKey", "encrypt_pin", "load_public_key"]


class InvalidPinKey(ValueError):
    """Not an RSA public key in a form Airtel publishes."""


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """The RSA public key of ``text``: PEM, or base64 of its DER form."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise InvalidPinKey(f"not an RSA public key (PEM, or base64 DER): {type(exc).__name__}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidPinKey("the PIN key must be an RSA public key")
    return key


def encrypt_pin(pin: str, key: rsa.RSAPublicKey) -> str:
    """``pin`` encrypted under ``key`` (RSA/ECB/PKCS1Padding), base64: Airtel's ``pin`` field."""
    return base64.b64encode(key.encrypt(pin.encode(), padding.PKCS1v15())).decode()
