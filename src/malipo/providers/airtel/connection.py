"""Which Airtel client serves a mode: Airtel's Open API when ``MALIPO_AIRTEL_BASE_URL`` is set and
the key is live, else the simulator (sandbox keys always; a fresh install works end to end).

The mounted simulator takes only malipo's own sandbox credentials, derived from
``MALIPO_SECRET_KEY``: every malipo process computes the same ones, and nobody outside can make
the simulator post a callback to malipo's Airtel callback address.
"""

from __future__ import annotations

import httpx

from malipo.config import Settings
from malipo.core.crypto import derived_token
from malipo.providers.airtel.client import AirtelClient

__all__ = [
    "SIMULATOR_CLIENT_ID",
    "SIMULATOR_PATH",
    "airtel_client",
    "airtel_simulator_url",
    "simulator_credentials",
    "uses_simulator",
]

SIMULATOR_PATH = "/_sim/airtel"
SIMULATOR_CLIENT_ID = "malipo-sandbox"


def airtel_simulator_url(settings: Settings) -> str:
    """Where simulated Airtel traffic goes: the mounted simulator at the public URL, unless set."""
    return settings.airtel_simulator_url or settings.public_url + SIMULATOR_PATH


def uses_simulator(settings: Settings, mode: str) -> bool:
    """Whether ``mode``'s Airtel traffic goes to the simulator (sandbox, or no Airtel configured)."""
    return mode != "live" or not settings.airtel_base_url


def simulator_credentials(settings: Settings) -> tuple[str, str]:
    """(client id, client secret) of malipo's app at the simulator."""
    assert settings.secret_key is not None, "settings.require_secrets() first"
    return SIMULATOR_CLIENT_ID, derived_token(settings.secret_key.get_secret_value(), "airtel-simulator")


# One client per (http pool, endpoint): each keeps its OAuth token until shortly before it expires.
_CLIENTS: dict[tuple[int, str, str], AirtelClient] = {}


def airtel_client(settings: Settings, mode: str, http: httpx.AsyncClient) -> AirtelClient:
    """The Airtel client for ``mode`` ("live" or "test"), reused while ``http`` lives."""
    simulated = uses_simulator(settings, mode)
    if simulated:
        base = airtel_simulator_url(settings)
        client_id, secret = simulator_credentials(settings)
    else:
        assert settings.airtel_base_url
        assert settings.airtel_client_id
        assert settings.airtel_client_secret
        base = settings.airtel_base_url
        client_id, secret = settings.airtel_client_id, settings.airtel_client_secret.get_secret_value()
    key = (id(http), base, client_id)
    found = _CLIENTS.get(key)
    if found is None or found.http is not http:  # the same id() may be a new pool
        if len(_CLIENTS) > 64:  # pools come and go in tests; never grow without bound
            _CLIENTS.clear()
        found = _CLIENTS[key] = AirtelClient(
            base_url=base, client_id=client_id, client_secret=secret, country=settings.airtel_country,
            currency=settings.airtel_currency, http=http,
        )  # fmt: skip
    return found
