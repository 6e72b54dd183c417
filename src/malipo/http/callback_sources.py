"""Which addresses may call a rail's callback routes: ``MALIPO_DARAJA_CALLBACK_ALLOW``.

Daraja does not sign its callbacks; the secret token in each callback URL is the first guard,
this optional allow-list of source networks the second. The source address is the socket peer,
unless ``MALIPO_TRUSTED_PROXY_HEADER`` names the header your reverse proxy appends the client's
address to (``X-Forwarded-For``): then the right-most entry, the one your proxy wrote (entries to
its left are whatever the caller sent). A refused callback is a 403 and changes nothing.

Use it on a route with ``dependencies=[DarajaCallbackSource]``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Depends, Request

from malipo.config import Settings
from malipo.core.errors import Forbidden
from malipo.core.logging import get_logger

log = get_logger("malipo.callbacks")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def allowed_networks(setting: str) -> tuple[Network, ...]:
    """``"196.201.212.0/22, 10.0.0.1"`` → the networks (empty: no allow-list)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()
    )


def source_address(request: Request, settings: Settings) -> str | None:
    """The caller's address: the socket peer, or the right-most entry of the trusted proxy header."""
    header = settings.trusted_proxy_header.strip()
    if header:
        values = request.headers.getlist(header)
        entries = [entry.strip() for value in values for entry in value.split(",") if entry.strip()]
        return entries[-1] if entries else None
    return request.client.host if request.client else None


def is_allowed(address: str | None, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class CallbackSourceRefused(Forbidden):
    code = "callback_source_refused"
    title = "This address may not send callbacks"


def require_daraja_source(request: Request) -> None:
    """403 unless the request comes from a network in ``MALIPO_DARAJA_CALLBACK_ALLOW`` (or it is empty)."""
    settings: Settings = request.app.state.settings
    networks = allowed_networks(settings.daraja_callback_allow)
    if not networks:
        return
    address = source_address(request, settings)
    if not is_allowed(address, networks):
        log.warning("callback.source_refused", provider="daraja", address=address)
        raise CallbackSourceRefused("this address is not in MALIPO_DARAJA_CALLBACK_ALLOW")


DarajaCallbackSource = Depends(require_daraja_source)
