"""Which provider serves a rail: by rail, network code, mode and settings.

Sandbox (test mode) traffic always goes to the simulators; live traffic to the configured
provider, or to the simulator when none is configured (a fresh install works end to end).
Mobile money is chosen by network code: M-Pesa (63902) is Daraja, Airtel Money (63903) is
Airtel's Open API (``MALIPO_AIRTEL_BASE_URL``; the simulator at ``/_sim/airtel`` otherwise);
T-Kash has no connector yet and is refused with :class:`ProviderUnavailable` (nothing is sent
or held).

Airtel posts its callbacks to one URL per app, set in its portal: ``airtel_callback_url``. Its
token is derived from ``MALIPO_SECRET_KEY``, one for the simulator and one for Airtel itself, and
each says which modes' requests its callbacks may settle (``airtel_callback_modes``): the
simulator's never settle a live request that Airtel serves.

- SMS: a sandbox (test) key always goes to the Africa's Talking simulator; a live key goes to
  Africa's Talking when ``MALIPO_AFRICASTALKING_API_KEY`` is set, else to the simulator too.
- WhatsApp: a sandbox key, a session bound to the simulator, or no
  ``MALIPO_WHATSAPP_CLOUD_BASE_URL`` all mean the simulator; otherwise the Cloud API with the
  session's own credentials.
- Operator mail: SMTP when ``MALIPO_SMTP_URL`` is set, else the mailbox (``malipo mail list``).
- Bank transfers: a sandbox key always goes to the bank rail simulator (``/_sim/bank``, or
  ``MALIPO_BANK_RAIL_SIMULATOR_URL``); a live key goes to ``MALIPO_BANK_RAIL_BASE_URL`` when set,
  else to the simulator too.
- Cards: a sandbox key always goes to the card acquirer simulator (``/_sim/cards``, or
  ``MALIPO_CARD_ACQUIRER_SIMULATOR_URL``); a live key goes to ``MALIPO_CARD_ACQUIRER_BASE_URL``
  when set, else to the simulator too.

The messaging simulators are mounted inside ``malipo serve`` (``malipo.providers.simulators``)
and reached at ``MALIPO_PUBLIC_URL + /_sim/…``, so a separate ``malipo worker`` reaches them too.

Reports come back to ``/callbacks/africastalking/{token}`` and ``/callbacks/whatsapp/{token}``.
The Africa's Talking token belongs to the operator's AT account (one delivery report URL per
account), the simulator's WhatsApp token to the simulator; both are derived from
``MALIPO_SECRET_KEY``, so every process computes the same ones and nobody else can. A Cloud
session has its own random token.
"""

from __future__ import annotations

import hmac
from typing import Literal

import httpx

from malipo.config import Settings
from malipo.core.crypto import derived_token
from malipo.providers.africastalking.client import LIVE_BASE_URL as AT_LIVE_BASE_URL
from malipo.providers.africastalking.client import AfricasTalkingClient
from malipo.providers.airtel import payer as airtel_payer
from malipo.providers.airtel import signing as airtel_signing
from malipo.providers.airtel.connection import SIMULATOR_PATH as AIRTEL_SIMULATOR_PATH
from malipo.providers.airtel.connection import airtel_simulator_url, uses_simulator
from malipo.providers.airtel.mobile_money import AirtelMobileMoney
from malipo.providers.bankrail.client import BankRailClient
from malipo.providers.base import BankTransfer, CardAcquirer, MobileMoney, ProviderUnavailable
from malipo.providers.cardacq.client import CardAcquirerClient
from malipo.providers.daraja import payer as daraja_payer
from malipo.providers.daraja.connection import daraja_client
from malipo.providers.daraja.mobile_money import DarajaMobileMoney
from malipo.providers.smtp.client import SmtpClient, parse_smtp_url
from malipo.providers.whatsapp_cloud.client import WhatsAppCloudClient

__all__ = [
    "AIRTEL",
    "AIRTEL_SIMULATOR_PATH",
    "AT_SIMULATOR_PATH",
    "BANK_SIMULATOR_PATH",
    "CARD_SIMULATOR_PATH",
    "MOBILE_NETWORKS",
    "MPESA",
    "SIMULATOR_PHONE_NUMBER_ID",
    "WHATSAPP_SIMULATOR_PATH",
    "ProviderUnavailable",
    "UnknownNetwork",
    "airtel_callback_authentic",
    "airtel_callback_key",
    "airtel_callback_modes",
    "airtel_callback_path",
    "airtel_callback_url",
    "airtel_simulator_callback_key",
    "airtel_simulator_url",
    "at_report_path",
    "at_report_token",
    "at_report_url",
    "bank_rail_simulator_url",
    "bank_transfer_for",
    "card_acquirer_for",
    "card_acquirer_simulator_url",
    "daraja_client",
    "live_rails",
    "mobile_money_for",
    "operator_mail",
    "payer_message",
    "require_mobile_network",
    "sms_client",
    "sms_uses_simulator",
    "whatsapp_backend",
    "whatsapp_client",
    "whatsapp_simulator_token",
    "whatsapp_webhook_url",
]

# A sandbox (``mk_test_``) key's mode: its traffic always goes to the simulators.
TEST_MODE = "test"

MPESA = "63902"
AIRTEL = "63903"
# Every mobile network malipo names (Pay Hero's network codes), served or not.
MOBILE_NETWORKS = {MPESA: "M-Pesa", AIRTEL: "Airtel Money", "63907": "T-Kash"}
# The networks with a connector, by provider.
_SERVED = {MPESA: "daraja", AIRTEL: "airtel"}


class UnknownNetwork(ValueError):
    """Not a mobile network code malipo knows."""

    def __init__(self, network_code: str) -> None:
        super().__init__(f"unknown mobile network code {network_code!r}")
        self.network_code = network_code


def require_mobile_network(network_code: str) -> str:
    """The provider serving ``network_code`` ("daraja", "airtel"). Raises :class:`UnknownNetwork`, or
    :class:`ProviderUnavailable` for a network with no connector yet."""
    if network_code not in MOBILE_NETWORKS:
        raise UnknownNetwork(network_code)
    provider = _SERVED.get(network_code)
    if provider is None:
        raise ProviderUnavailable(network_code, MOBILE_NETWORKS[network_code])
    return provider


def payer_message(network_code: str, result_code: int | None, result_desc: str | None) -> str:
    """The words a payer reads on malipo's pages for a prompt on ``network_code`` that ended
    without a payment (each provider's own table: the codes are the rail's)."""
    if require_mobile_network(network_code) == "airtel":
        return airtel_payer.payer_message(result_code, result_desc)
    return daraja_payer.payer_message(result_code, result_desc)


def mobile_money_for(
    settings: Settings, network_code: str, mode: str, http: httpx.AsyncClient | None = None
) -> MobileMoney:
    """The rail that moves money on ``network_code`` in ``mode`` ("live" or "test"). Without
    ``http`` it only parses callbacks and builds nothing that talks to the provider."""
    if require_mobile_network(network_code) == "airtel":
        return AirtelMobileMoney(settings, mode, http)
    return DarajaMobileMoney(settings, mode, http)


def _airtel_token(settings: Settings, simulator: bool) -> str:
    return _derived_token(settings, "callbacks:airtel-simulator" if simulator else "callbacks:airtel")


def airtel_callback_key(settings: Settings, token: str) -> bytes | None:
    """The key a callback to ``token``'s address must be signed with (its ``hash``): the
    simulator's, derived from ``MALIPO_SECRET_KEY``; Airtel's, ``MALIPO_AIRTEL_CALLBACK_KEY``
    when callback authentication is on; None: the address alone is the credential."""
    if hmac.compare_digest(token, _airtel_token(settings, simulator=True)):
        return airtel_simulator_callback_key(settings)
    key = settings.airtel_callback_key
    return key.get_secret_value().encode() if key is not None else None


def airtel_callback_authentic(settings: Settings, token: str, body: bytes) -> bool:
    """Whether a callback to ``token``'s address is signed as it must be (always, when its
    address needs no signature)."""
    key = airtel_callback_key(settings, token)
    return key is None or airtel_signing.hash_ok(body, key)


def airtel_simulator_callback_key(settings: Settings) -> bytes:
    return _derived_token(settings, "callbacks:airtel-simulator-hash").encode()


def airtel_callback_path(settings: Settings, *, simulator: bool = False) -> str:
    """The path of the Airtel callback route for Airtel itself, or for the simulator."""
    return f"/callbacks/airtel/{_airtel_token(settings, simulator)}"


def airtel_callback_url(settings: Settings, *, simulator: bool = False) -> str:
    """The callback URL to set in Airtel's portal for malipo's app (``simulator``: the one the
    mounted simulator posts to)."""
    return settings.public_url + airtel_callback_path(settings, simulator=simulator)


def airtel_callback_modes(settings: Settings, token: str) -> frozenset[str]:
    """The modes whose Airtel requests a callback with ``token`` in its URL may settle: the
    simulator's settle those the simulator serves, Airtel's those Airtel serves; none for an
    unknown token."""
    if hmac.compare_digest(token, _airtel_token(settings, simulator=True)):
        return frozenset(mode for mode in ("test", "live") if uses_simulator(settings, mode))
    if settings.airtel_base_url and hmac.compare_digest(token, _airtel_token(settings, simulator=False)):
        return frozenset({"live"})
    return frozenset()


def live_rails(settings: Settings) -> dict[str, str]:
    """Where each rail's live-mode traffic goes: a real provider, or ``"simulator"``.

    Sandbox (``mk_test_``) traffic always goes to the simulators. Operator mail is "mailbox" when
    no SMTP server is configured (kept for ``malipo mail list``).
    """
    return {
        "mpesa": settings.daraja_base_url or "simulator",
        "airtel": settings.airtel_base_url or "simulator",
        "sms": (settings.africastalking_base_url or AT_LIVE_BASE_URL)
        if settings.africastalking_api_key is not None
        else "simulator",
        "whatsapp": settings.whatsapp_cloud_base_url or "simulator",
        "bank": settings.bank_rail_base_url or "simulator",
        "cards": settings.card_acquirer_base_url or "simulator",
        "operator_mail": "smtp" if settings.smtp_url is not None else "mailbox",
    }


# --------------------------------------------------------------------------- bank transfers

BANK_SIMULATOR_PATH = "/_sim/bank"
# The simulator takes any non-empty key.
_BANK_SIMULATOR_KEY = "malipo-sandbox"


def bank_rail_simulator_url(settings: Settings) -> str:
    """Where simulated bank traffic goes: the mounted simulator at the public URL, unless set."""
    return settings.bank_rail_simulator_url or settings.public_url + BANK_SIMULATOR_PATH


def bank_transfer_for(settings: Settings, mode: str, http: httpx.AsyncClient | None = None) -> BankTransfer:
    """The bank rail for ``mode`` ("live" or "test"): the configured rail for a live key when
    ``MALIPO_BANK_RAIL_BASE_URL`` is set, else the simulator. Without ``http`` it only parses
    callbacks."""
    if mode != TEST_MODE and settings.bank_rail_base_url:
        key = settings.bank_rail_api_key
        assert key is not None, "Settings refuses a bank rail base URL without its API key"
        return BankRailClient(
            base_url=settings.bank_rail_base_url,
            api_key=key.get_secret_value(),
            public_url=settings.public_url,
            http=http,
        )
    return BankRailClient(
        base_url=bank_rail_simulator_url(settings),
        api_key=_BANK_SIMULATOR_KEY,
        public_url=settings.public_url,
        http=http,
    )


# --------------------------------------------------------------------------- cards

CARD_SIMULATOR_PATH = "/_sim/cards"
# The simulator takes any non-empty key.
_CARD_SIMULATOR_KEY = "malipo-sandbox"


def card_acquirer_simulator_url(settings: Settings) -> str:
    """Where simulated card traffic goes: the mounted simulator at the public URL, unless set."""
    return settings.card_acquirer_simulator_url or settings.public_url + CARD_SIMULATOR_PATH


def card_acquirer_for(settings: Settings, mode: str, http: httpx.AsyncClient | None = None) -> CardAcquirer:
    """The card acquirer for ``mode`` ("live" or "test"): the configured acquirer for a live key
    when ``MALIPO_CARD_ACQUIRER_BASE_URL`` is set, else the simulator. Without ``http`` it can make
    no call (a RuntimeError says so)."""
    if mode != TEST_MODE and settings.card_acquirer_base_url:
        key = settings.card_acquirer_api_key
        assert key is not None, "Settings refuses a card acquirer base URL without its API key"
        return CardAcquirerClient(
            base_url=settings.card_acquirer_base_url, api_key=key.get_secret_value(), http=http
        )
    return CardAcquirerClient(
        base_url=card_acquirer_simulator_url(settings), api_key=_CARD_SIMULATOR_KEY, http=http
    )


# --------------------------------------------------------------------------- messaging

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
    return mode == TEST_MODE or settings.africastalking_api_key is None


def sms_client(settings: Settings, mode: str, http: httpx.AsyncClient) -> AfricasTalkingClient:
    """The Africa's Talking client for a send in ``mode`` (see the module docstring)."""
    if sms_uses_simulator(settings, mode):
        return AfricasTalkingClient(
            settings.public_url + AT_SIMULATOR_PATH, "sandbox", _SIMULATOR_KEY, http=http
        )
    assert settings.africastalking_api_key is not None
    return AfricasTalkingClient(
        settings.africastalking_base_url or AT_LIVE_BASE_URL,
        settings.africastalking_username,
        settings.africastalking_api_key.get_secret_value(),
        http=http,
    )


def whatsapp_backend(settings: Settings, mode: str, session_backend: str) -> Backend:
    if mode == TEST_MODE or session_backend != "cloud" or not settings.whatsapp_cloud_base_url:
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


def operator_mail(settings: Settings) -> SmtpClient | None:
    """The SMTP server operator mail goes through; None: it stays in the mailbox. Raises
    :class:`~malipo.providers.smtp.client.SmtpUrlError` for a URL that cannot be used."""
    if settings.smtp_url is None:
        return None
    return SmtpClient(parse_smtp_url(settings.smtp_url.get_secret_value()))
