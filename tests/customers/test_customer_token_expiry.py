"""A customer token's ``exp`` must be an integer no further off than a token's lifetime: a token
signed with the right key but good for ever (a string, a bool, 1e30, 1e400 read as infinity, a
year ahead) is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest

from malipo.customers import service as customers
from tests.customers.helpers import Served
from tests.factories import bearer

LIFETIME = int(customers.CUSTOMER_TOKEN_TTL.total_seconds())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(payload: str, secret: str) -> str:
    """An HS256 token over ``payload`` as written (JSON numbers such as 1e400 kept verbatim)."""
    signing_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(payload.encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _with_exp(claims: dict[str, Any], exp_json: str, secret: str) -> str:
    body = json.dumps({k: v for k, v in claims.items() if k != "exp"})
    return _signed(body[:-1] + f', "exp": {exp_json}}}', secret)


def _balance(served: Served, token: str) -> Any:
    return served.request("GET", "/api/v1/wallet/balance", bearer(token))


@pytest.mark.parametrize(
    "exp",
    [
        pytest.param(lambda now: f'"{now + 60}"', id="a string"),
        pytest.param(lambda now: "true", id="a bool"),
        pytest.param(lambda now: f"{now + 60}.0", id="a float"),
        pytest.param(lambda now: "1e30", id="1e30"),
        pytest.param(lambda now: "1e400", id="1e400"),
        pytest.param(lambda now: str(10**30), id="a huge integer"),
        pytest.param(lambda now: str(now + LIFETIME + 1), id="beyond the lifetime"),
        pytest.param(lambda now: str(now + 365 * 86400), id="a year ahead"),
    ],
)
def test_an_exp_that_is_not_an_integer_within_the_lifetime_is_401(served: Served, exp: Any) -> None:
    customer = served.customer(served.a.test_key)
    claims = jwt.decode(customer.token, options={"verify_signature": False})
    secret = served.settings.secret_key.get_secret_value()  # type: ignore[union-attr]
    now = int(served.clock.now().timestamp())

    # The same claims re-signed as written here are good: what differs below is exp alone.
    assert _balance(served, _with_exp(claims, str(now + LIFETIME), secret)).status_code == 200
    refused = _balance(served, _with_exp(claims, exp(now), secret))
    assert refused.status_code == 401, refused.text
    assert "invalid customer token" in refused.json()["detail"]
