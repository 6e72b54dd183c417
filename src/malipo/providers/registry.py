"""Which provider serves a rail: by rail, network code, mode and settings.

Sandbox (test mode) traffic always goes to the simulators; live traffic to the configured
provider, or to the simulator when none is configured (a fresh install works end to end).
Mobile money is chosen by network code: M-Pesa (63902) is Daraja; Airtel Money and T-Kash have
no connector yet and are refused with :class:`ProviderUnavailable` (nothing is sent or held).
"""

from __future__ import annotations

import httpx

from malipo.config import Settings
from malipo.providers.africastalking.client import LIVE_BASE_URL as AT_LIVE_BASE_URL
from malipo.providers.base import MobileMoney, ProviderUnavailable
from malipo.providers.daraja.connection import daraja_client
from malipo.providers.daraja.mobile_money import DarajaMobileMoney

__all__ = [
    "MOBILE_NETWORKS",
    "MPESA",
    "ProviderUnavailable",
    "UnknownNetwork",
    "daraja_client",
    "live_rails",
    "mobile_money_for",
    "require_mobile_network",
]

MPESA = "63902"
# Every mobile network malipo names (Pay Hero's network codes), served or not.
MOBILE_NETWORKS = {MPESA: "M-Pesa", "63903": "Airtel Money", "63907": "T-Kash"}
# The networks with a connector, by provider.
_SERVED = {MPESA: "daraja"}


class UnknownNetwork(ValueError):
    """Not a mobile network code malipo knows."""

    def __init__(self, network_code: str) -> None:
        super().__init__(f"unknown mobile network code {network_code!r}")
        self.network_code = network_code


def require_mobile_network(network_code: str) -> str:
    """The provider serving ``network_code`` ("daraja"). Raises :class:`UnknownNetwork`, or
    :class:`ProviderUnavailable` for a network with no connector yet."""
    if network_code not in MOBILE_NETWORKS:
        raise UnknownNetwork(network_code)
    provider = _SERVED.get(network_code)
    if provider is None:
        raise ProviderUnavailable(network_code, MOBILE_NETWORKS[network_code])
    return provider


def mobile_money_for(
    settings: Settings, network_code: str, mode: str, http: httpx.AsyncClient | None = None
) -> MobileMoney:
    """The rail that moves money on ``network_code`` in ``mode`` ("live" or "test"). Without
    ``http`` it only parses callbacks and builds nothing that talks to the provider."""
    require_mobile_network(network_code)
    return DarajaMobileMoney(settings, mode, http)


def live_rails(settings: Settings) -> dict[str, str]:
    """Where each rail's live-mode traffic goes: a real provider, or ``"simulator"``.

    Sandbox (``mk_test_``) traffic always goes to the simulators. Operator mail is "mailbox" when
    no SMTP server is configured (kept for ``malipo mail list``).
    """
    return {
        "mpesa": settings.daraja_base_url or "simulator",
        "sms": (settings.africastalking_base_url or AT_LIVE_BASE_URL)
        if settings.africastalking_api_key is not None
        else "simulator",
        "whatsapp": settings.whatsapp_cloud_base_url or "simulator",
        "operator_mail": "smtp" if settings.smtp_url is not None else "mailbox",
    }
