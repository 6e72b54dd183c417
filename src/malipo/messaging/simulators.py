"""The Africa's Talking and WhatsApp Cloud simulators, mounted inside ``malipo serve``.

Mounted at ``/_sim/africastalking`` and ``/_sim/whatsapp``; the connectors reach
them at ``MALIPO_PUBLIC_URL`` plus that path (``malipo.messaging.connectors``), and
they post delivery reports and status webhooks back to malipo's own callback
routes. Each simulator is built on its first request, so it reads the public URL
as it is then (tests learn their server's port only once it listens).

Reports wait a moment before they are sent: the worker records a message's
gateway id after it has read the provider's reply, and a report must not
overtake that. An Africa's Talking report that still finds no message is
answered 503 and retried by the simulator.

A mounted app's own lifespan does not run: :meth:`MessagingSimulators.aclose` is
called from the application's lifespan instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from malipo.config import Settings
from malipo.messaging.connectors import (
    AT_SIMULATOR_PATH,
    WHATSAPP_SIMULATOR_PATH,
    at_report_url,
    whatsapp_simulator_token,
    whatsapp_webhook_url,
)
from malipo.providers.africastalking.simulator import AfricasTalkingSimulator, create_simulator_app
from malipo.providers.whatsapp_cloud.simulator import create_simulator_app as create_whatsapp_simulator

__all__ = ["MessagingSimulators", "mount_simulators"]

REPORT_DELAY_SECONDS = 0.3


class _BuiltOnFirstUse:
    """An ASGI app made by ``factory`` on its first request (and only then)."""

    def __init__(self, factory: Callable[[], ASGIApp]) -> None:
        self._factory = factory
        self.app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # never called for a mount; nothing to start
        if self.app is None:
            self.app = self._factory()
        await self.app(scope, receive, send)


class _PacedPoster:
    """What the AT simulator posts delivery reports with: an HTTP client that lets a few posts out
    at a time. A bulk's thousands of reports are due at once; handed to httpx together they all
    wait in its connection pool, whose bookkeeping grows with the queue, and they starve the very
    process that has to answer them."""

    def __init__(self, concurrency: int) -> None:
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._slots = asyncio.Semaphore(concurrency)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            return await self._http.post(url, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()


class MessagingSimulators:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # A bulk's reports come all at once: they queue for a connection rather than give up.
        self._report_http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0), limits=httpx.Limits(max_connections=32)
        )
        self.sms = _BuiltOnFirstUse(self._sms)
        self.whatsapp = _BuiltOnFirstUse(self._whatsapp)

    def _sms(self) -> AfricasTalkingSimulator:
        return create_simulator_app(
            delivery_report_url=at_report_url(self.settings),
            report_delay=REPORT_DELAY_SECONDS,
            report_attempts=6,
            report_retry_delay=0.25,
            # A bulk's reports come all at once: they queue for a connection rather than give up.
            report_http=httpx.AsyncClient(
                timeout=httpx.Timeout(60.0), limits=httpx.Limits(max_connections=32)
            ),
        )

    def _whatsapp(self) -> ASGIApp:
        token = whatsapp_simulator_token(self.settings)
        return create_whatsapp_simulator(
            status_webhook_url=whatsapp_webhook_url(self.settings, token), status_delay=1.0
        )

    @property
    def sms_app(self) -> AfricasTalkingSimulator | None:
        return self.sms.app  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Cancel pending reports and webhooks (the mounted apps' lifespans never run)."""
        if self.sms.app is not None:
            await self.sms.app.aclose()
            await self._report_http.aclose()
        if self.whatsapp.app is not None:
            tasks = list(self.whatsapp.app.state.webhook_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def mount_simulators(app: Any, settings: Settings) -> MessagingSimulators:
    simulators = MessagingSimulators(settings)
    app.mount(AT_SIMULATOR_PATH, simulators.sms)
    app.mount(WHATSAPP_SIMULATOR_PATH, simulators.whatsapp)
    app.state.messaging_simulators = simulators
    return simulators
