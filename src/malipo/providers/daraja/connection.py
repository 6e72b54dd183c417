"""Which Daraja client serves a mode: live Daraja when ``MALIPO_DARAJA_BASE_URL`` is set and the
key is live, else the simulator (sandbox keys always; a fresh install works end to end)."""

from __future__ import annotations

import httpx

from malipo.config import Settings
from malipo.providers.daraja.client import DarajaClient
from malipo.providers.daraja.schemas import SANDBOX_PASSKEY, SANDBOX_SHORTCODE


def daraja_simulator_url(settings: Settings) -> str:
    """Where simulated Daraja traffic goes: the mounted simulator at the public URL, unless set."""
    return settings.daraja_simulator_url or f"{settings.public_url}/_sim/daraja"


# One client per (http pool, mode, endpoint): each keeps its OAuth token until it expires, so
# a worker logs in to Daraja once an hour, not once per push.
_CLIENTS: dict[tuple[int, str, str, str], DarajaClient] = {}


def daraja_client(settings: Settings, mode: str, http: httpx.AsyncClient) -> DarajaClient:
    """The Daraja client for ``mode`` ("live" or "test"), reused while ``http`` lives."""
    live = mode == "live" and bool(settings.daraja_base_url)
    base = settings.daraja_base_url if live else daraja_simulator_url(settings)
    key = (id(http), "live" if live else "sim", str(base), settings.daraja_shortcode if live else "")
    found = _CLIENTS.get(key)
    if found is None or found._http is not http:  # the same id() may be a new pool
        if len(_CLIENTS) > 64:  # pools come and go in tests; never grow without bound
            _CLIENTS.clear()
        found = _CLIENTS[key] = _new_client(settings, live, http)
    return found


def _new_client(settings: Settings, live: bool, http: httpx.AsyncClient) -> DarajaClient:
    if live:
        assert settings.daraja_base_url
        secret = settings.daraja_consumer_secret
        passkey = settings.daraja_passkey
        credential = settings.daraja_b2c_security_credential
        return DarajaClient(
            base_url=settings.daraja_base_url,
            consumer_key=settings.daraja_consumer_key.get_secret_value()
            if settings.daraja_consumer_key
            else "",
            consumer_secret=secret.get_secret_value() if secret else "",
            shortcode=settings.daraja_shortcode,
            passkey=passkey.get_secret_value() if passkey else "",
            b2c_initiator=settings.daraja_b2c_initiator,
            b2c_security_credential=credential.get_secret_value() if credential else "",
            http=http,
        )
    return DarajaClient(
        base_url=daraja_simulator_url(settings),
        consumer_key="malipo-sandbox",
        consumer_secret="malipo-sandbox",  # noqa: S106 - the simulator's, not a secret
        shortcode=SANDBOX_SHORTCODE,
        passkey=SANDBOX_PASSKEY,
        b2c_initiator="testapi",
        b2c_security_credential="simulated",
        http=http,
    )
