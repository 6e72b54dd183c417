"""Which connector a send uses, and where providers post their reports back.

- SMS: a sandbox (test) key always goes to the Africa's Talking simulator; a live
  key goes to Africa's Talking when ``MALIPO_AFRICASTALKING_API_KEY`` is set, else
  to the simulator too (a fresh install works with no outside account).
- WhatsApp: a sandbox key, a session bound to the simulator, or no
  ``MALIPO_WHATSAPP_CLOUD_BASE_URL`` all mean the simulator; otherwise the Cloud
  API with the session's own credentials.

The simulators are mounted inside ``malipo serve`` (``malipo.messaging.simulators``)
and reached at ``MALIPO_PUBLIC_URL + /_sim/…``, so a separate ``malipo worker``
reaches them too.

Reports come back to ``/callbacks/africastalking/{token}`` and
``/callbacks/whatsapp/{token}``. The Africa's Talking token belongs to the
operator's AT account (one delivery report URL per account), the simulator's
WhatsApp token to the simulator; both are derived from ``MALIPO_SECRET_KEY``, so
every process computes the same ones and nobody else can. A Cloud session has its
own random token.
"""

from __future__ import annotations

from typing import Literal

import httpx

from malipo.config import Settings
from malipo.core.crypto import derived_token
from malipo.identity.models import KeyMode
from malipo.providers.africastalking.client import LIVE_BASE_URL, AfricasTalkingClient
from malipo.providers.whatsapp_cloud.client import WhatsAppCloudClient

__all__ = [
    "AT_SIMULATOR_PATH",
    "SIMULATOR_PHONE_NUMBER_ID",
    "WHATSAPP_SIMULATOR_PATH",
    "at_report_path",
    "at_report_token",
    "at_report_url",
    "sms_client",
    "sms_uses_simulator",
    "whatsapp_backend",
    "whatsapp_client",
    "whatsapp_simulator_token",
    "whatsapp_webhook_url",
]

AT_SIMULATOR_PATH = "/_sim/africastalking"
WHATSAPP_SIMULATOR_PATH = "/_sim/whatsapp"
# What the simulator's sessions send "from"; the simulator accepts any token for any number.
SIMULATOR_PHONE_NUMBER_ID = "100000000000001"
_SIMULATOR_KEY = "simulator"

Backend = Literal["cloud", "simulator"]


def _derived_token(settings: Settings, purpose: str) -> str:
    assert settings.secret_key is not None, "settings.require_secrets() first"
    # Cached: every delivery report checks its URL's token (a bulk's thousands within seconds).
    return derived_token(settings.secret_key.get_secret_value(), purpose)


def at_report_token(settings: Settings) -> str:
    return _derived_token(settings, "callbacks:africastalking")


def at_report_path(settings: Settings) -> str:
    """The delivery report route's path in this app (where the mounted simulator posts)."""
    return f"/callbacks/africastalking/{at_report_token(settings)}"


def at_report_url(settings: Settings) -> str:
    """The delivery report URL to set in Africa's Talking's dashboard."""
    return settings.public_url + at_report_path(settings)


def whatsapp_simulator_token(settings: Settings) -> str:
    return _derived_token(settings, "callbacks:whatsapp-simulator")


def whatsapp_webhook_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/callbacks/whatsapp/{token}"


def sms_uses_simulator(settings: Settings, mode: str) -> bool:
    return mode == KeyMode.TEST.value or settings.africastalking_api_key is None


def sms_client(settings: Settings, mode: str, http: httpx.AsyncClient) -> AfricasTalkingClient:
    """The Africa's Talking client for a send in ``mode`` (see the module docstring)."""
    if sms_uses_simulator(settings, mode):
        return AfricasTalkingClient(
            settings.public_url + AT_SIMULATOR_PATH, "sandbox", _SIMULATOR_KEY, http=http
        )
    assert settings.africastalking_api_key is not None
    return AfricasTalkingClient(
        settings.africastalking_base_url or LIVE_BASE_URL,
        settings.africastalking_username,
        settings.africastalking_api_key.get_secret_value(),
        http=http,
    )


def whatsapp_backend(settings: Settings, mode: str, session_backend: str) -> Backend:
    if mode == KeyMode.TEST.value or session_backend != "cloud" or not settings.whatsapp_cloud_base_url:
        return "simulator"
    return "cloud"


def whatsapp_client(
    settings: Settings,
    backend: Backend,
    *,
    phone_number_id: str | None,
    access_token: str | None,
    http: httpx.AsyncClient,
) -> WhatsAppCloudClient:
    if backend == "simulator":
        return WhatsAppCloudClient(
            settings.public_url + WHATSAPP_SIMULATOR_PATH,
            phone_number_id or SIMULATOR_PHONE_NUMBER_ID,
            _SIMULATOR_KEY,
            http=http,
        )
    assert settings.whatsapp_cloud_base_url is not None
    return WhatsAppCloudClient(
        settings.whatsapp_cloud_base_url, phone_number_id or "", access_token or "", http=http
    )
