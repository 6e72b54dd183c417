"""The Africa's Talking and WhatsApp Cloud simulators, mounted inside ``malipo serve``.

Mounted at ``/_sim/africastalking`` and ``/_sim/whatsapp``; the connectors reach
them at ``MALIPO_PUBLIC_URL`` plus that path (``malipo.providers.registry``), and
they post delivery reports and status webhooks back to malipo's own callback
routes. Each simulator is built on its first request, so it reads the public URL
as it is then (tests learn their server's port only once it listens).

The Africa's Talking simulator posts its delivery reports into the app that
mounts it, through ``httpx.ASGITransport``: the same callback route, middleware
and answers as over the network, without a socket and an HTTP client's pool per
report. A bulk's reports are then about a third cheaper (httpx over loopback
costs ~1.3 ms of CPU per request on the development VM, in the very process
that must apply them), and they need no reachable ``MALIPO_PUBLIC_URL``. Which
process gets a report does not matter: any one can apply it.

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
from malipo.providers.africastalking.simulator import AfricasTalkingSimulator, create_simulator_app
from malipo.providers.airtel.connection import simulator_credentials
from malipo.providers.airtel.simulator import AirtelSimulator
from malipo.providers.registry import (
    AIRTEL_SIMULATOR_PATH,
    AT_SIMULATOR_PATH,
    WHATSAPP_SIMULATOR_PATH,
    airtel_callback_url,
    airtel_simulator_callback_key,
    at_report_path,
    whatsapp_simulator_token,
    whatsapp_webhook_url,
)
from malipo.providers.whatsapp_cloud.simulator import create_simulator_app as create_whatsapp_simulator

__all__ = ["AirtelSimulatorMount", "MessagingSimulators", "mount_airtel_simulator", "mount_simulators"]

REPORT_DELAY_SECONDS = 0.3
# Delivery reports in flight at once. Each is a request to this same process: enough of them for
# the callback route to write them in sizeable batches (CPU per recipient in a 10,000 bulk on the
# development VM: ~2.1 ms at 8, ~1.6-2.0 ms at 32), few enough not to crowd out the worker and
# the API (a task per report, 10,000 at once, spent most of the CPU in httpx's pool).
REPORT_CONCURRENCY = 32
# The host of the in-process report URL: only its path is routed.
_IN_PROCESS_ORIGIN = "http://malipo.internal"


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


class MessagingSimulators:
    def __init__(self, settings: Settings, host: ASGIApp) -> None:
        self.settings = settings
        self.host = host
        self._report_http: httpx.AsyncClient | None = None
        self.sms = _BuiltOnFirstUse(self._sms)
        self.whatsapp = _BuiltOnFirstUse(self._whatsapp)

    def _sms(self) -> AfricasTalkingSimulator:
        # The app's own error handlers answer its exceptions: a report that fails is a 500, retried.
        transport = httpx.ASGITransport(self.host, raise_app_exceptions=False, client=("127.0.0.1", 0))
        self._report_http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(60.0))
        return create_simulator_app(
            delivery_report_url=_IN_PROCESS_ORIGIN + at_report_path(self.settings),
            report_delay=REPORT_DELAY_SECONDS,
            report_attempts=6,
            report_retry_delay=0.25,
            report_http=self._report_http,
            report_concurrency=REPORT_CONCURRENCY,
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
        if self._report_http is not None:
            await self._report_http.aclose()
        if self.whatsapp.app is not None:
            tasks = list(self.whatsapp.app.state.webhook_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def mount_simulators(app: Any, settings: Settings) -> MessagingSimulators:
    simulators = MessagingSimulators(settings, app)
    app.mount(AT_SIMULATOR_PATH, simulators.sms)
    app.mount(WHATSAPP_SIMULATOR_PATH, simulators.whatsapp)
    app.state.messaging_simulators = simulators
    return simulators


class AirtelSimulatorMount:
    """The Airtel simulator at ``/_sim/airtel``, built on its first request: its app's callback URL
    (the one Airtel's portal would hold) is malipo's simulator callback address at the public URL
    as it is then, and it takes only malipo's own sandbox credentials. It calls back over HTTP."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mount = _BuiltOnFirstUse(self._build)

    def _build(self) -> ASGIApp:
        client_id, secret = simulator_credentials(self.settings)
        return AirtelSimulator(
            callback_url=airtel_callback_url(self.settings, simulator=True),
            callback_delay=self.settings.airtel_simulator_delay,
            credentials={client_id: secret},
            callback_key=airtel_simulator_callback_key(self.settings),
        ).app

    @property
    def simulator(self) -> AirtelSimulator:
        """The simulator (built now if no request has reached it yet)."""
        if self.mount.app is None:
            self.mount.app = self._build()
        found: AirtelSimulator = self.mount.app.state.simulator
        return found

    async def aclose(self) -> None:
        if self.mount.app is not None:
            await self.mount.app.state.simulator.aclose()


def mount_airtel_simulator(app: Any, settings: Settings) -> AirtelSimulatorMount:
    mounted = AirtelSimulatorMount(settings)
    app.mount(AIRTEL_SIMULATOR_PATH, mounted.mount, name="airtel-simulator")
    app.state.airtel_simulator = mounted
    return mounted
