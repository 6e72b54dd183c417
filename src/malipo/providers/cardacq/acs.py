"""The simulated issuer's ACS (access control server): the 3-D Secure challenge page the payer's
browser opens, and the ``paRes`` it hands back.

``GET {simulator}/acs/{trans_id}`` is a small server-rendered page: the amount, the masked card
and a one-time-code form. Its POST records the result and answers ``303 See Other`` to the
merchant's ``return_url`` with ``paRes`` and ``reference`` added to the query:

==========  ================  ====================================================
code        ``transStatus``   then
==========  ================  ====================================================
``123456``  ``Y``             authenticated: the authorisation goes on (ECI 05/02)
(other)     ``N``             not authenticated: the authorisation fails (failed_3ds)
Cancel      ``N``             as a wrong code
==========  ================  ====================================================

A ``paRes`` is ``base64url(JSON).base64url(HMAC-SHA256)`` under the simulator's own key: opaque to
the merchant, readable but not forgeable. It carries the acquirer's authorisation id, the 3DS
transaction id, ``transStatus``, the ECI, the authentication value (28 base64 characters, as
EMV's) and when it stops being accepted (``exp``, ten minutes on the simulator's clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "CODE_THAT_FAILS",
    "CODE_THAT_PASSES",
    "PARES_VALIDITY",
    "ChallengeResult",
    "InvalidPares",
    "challenge_page",
    "finished_page",
    "read_pares",
    "return_location",
    "sign_pares",
]

CODE_THAT_PASSES = "123456"
# Any other code fails; this one is the documented one.
CODE_THAT_FAILS = "000000"
PARES_VALIDITY = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    """What the ACS decided (EMV's RReq): the authorisation and 3DS transaction it is about,
    ``trans_status``, and for Y/A the ECI and authentication value."""

    authorisation_id: str
    trans_id: str
    trans_status: str
    eci: str | None
    authentication_value: str | None
    expires_at: datetime


class InvalidPares(ValueError):
    """A paRes that is not one this ACS signed (``reason`` ``invalid_pares``) or is too old
    (``pares_expired``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_pares(key: bytes, result: ChallengeResult) -> str:
    """The paRes of ``result``, signed with ``key``."""
    payload = {
        "ref": result.authorisation_id,
        "tid": result.trans_id,
        "ts": result.trans_status,
        "eci": result.eci,
        "av": result.authentication_value,
        "exp": int(result.expires_at.timestamp()),
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def read_pares(key: bytes, pares: str, now: datetime) -> ChallengeResult:
    """The result a paRes carries. Raises :class:`InvalidPares` unless ``key`` signed it and it is
    still valid at ``now``."""
    body, _, signature = pares.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise InvalidPares("invalid_pares", "the paRes is not signed by this ACS")
    try:
        payload: dict[str, Any] = json.loads(_unb64(body))
        expires_at = datetime.fromtimestamp(int(payload["exp"]), tz=now.tzinfo)
        result = ChallengeResult(
            authorisation_id=str(payload["ref"]),
            trans_id=str(payload["tid"]),
            trans_status=str(payload["ts"]),
            eci=payload.get("eci"),
            authentication_value=payload.get("av"),
            expires_at=expires_at,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPares("invalid_pares", "the paRes is unreadable") from exc
    if now >= result.expires_at:
        raise InvalidPares("pares_expired", "the paRes has expired")
    return result


def return_location(return_url: str, pares: str, reference: str) -> str:
    """``return_url`` with ``paRes`` and ``reference`` added to its query (its own query kept)."""
    parts = urlsplit(return_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("paRes", pares), ("reference", reference)]
    return urlunsplit(parts._replace(query=urlencode(query)))


_STYLE = """
body{font-family:system-ui,sans-serif;background:#f3f4f6;margin:0;padding:2rem 1rem;color:#111}
main{max-width:26rem;margin:auto;background:#fff;border-radius:.5rem;padding:1.5rem;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.2rem;margin:0 0 1rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}
dt{color:#555}dd{margin:0}label{display:block;margin:1rem 0 .3rem}
input{font-size:1.2rem;padding:.4rem;width:10rem;letter-spacing:.2rem}
button{font-size:1rem;padding:.5rem 1rem;margin:1rem .5rem 0 0}
.test{background:#fff7d6;border:1px solid #e5c100;padding:.5rem;font-size:.85rem}
"""


def challenge_page(*, amount: str, card: str, order_id: str | None, trans_id: str) -> str:
    """The challenge page: what is being paid, with which card, and the one-time-code form (it
    POSTs to its own URL)."""
    order = f"<dt>Order</dt><dd>{escape(order_id)}</dd>" if order_id else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verify your payment</title><style>{_STYLE}</style></head>
<body><main>
<h1>Verify your payment</h1>
<p>Your bank sent a one-time code to your phone. Enter it to confirm this payment.</p>
<dl><dt>Amount</dt><dd id="amount">{escape(amount)}</dd>
<dt>Card</dt><dd id="card">{escape(card)}</dd>{order}</dl>
<form method="post">
<label for="code">One-time code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8"
 required autofocus>
<div><button type="submit" name="action" value="verify">Verify</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button></div>
</form>
<p class="test">Test ACS (malipo card acquirer simulator): code <strong>{CODE_THAT_PASSES}</strong>
authenticates; any other code, such as {CODE_THAT_FAILS}, fails.
Transaction {escape(trans_id)}.</p>
</main></body></html>
"""


def finished_page(message: str) -> str:
    """The page of a challenge that can no longer be answered."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verification finished</title>
<style>{_STYLE}</style></head>
<body><main><h1>Verification finished</h1><p>{escape(message)}</p></main></body></html>
"""
