"""Builds the FastAPI application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from malipo import __version__
from malipo.api.health import router as health_router
from malipo.api.openapi import build_openapi
from malipo.api.payhero import router as payhero_router
from malipo.api.payhero.compat import JsonBodyByDefault
from malipo.api.payhero.mode import ModeHeader
from malipo.api.v1 import router as v1_router
from malipo.collections.c2b.callbacks import router as c2b_callbacks_router
from malipo.collections.callbacks import router as provider_callbacks_router
from malipo.collections.service import callback_writer, collection_intake
from malipo.config import Settings, load_settings
from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.http.errors import install_error_handlers
from malipo.http.middleware import RequestContextMiddleware
from malipo.http.permissions import sync_permissions
from malipo.identity.audit import AuditRecorder
from malipo.identity.sessions import LoginRateLimiter
from malipo.migrate import current_revision, head_revision
from malipo.payouts.bulk import result_writer as payout_result_writer
from malipo.payouts.callbacks import router as payout_callbacks_router
from malipo.providers.bankrail.simulator import BankRailSimulator
from malipo.providers.bankrail.simulator import create_simulator_app as create_bank_simulator
from malipo.providers.cardacq.simulator import CardAcquirerSimulator
from malipo.providers.cardacq.simulator import create_simulator_app as create_card_simulator
from malipo.providers.daraja.simulator import create_simulator_app as create_daraja_simulator
from malipo.providers.registry import BANK_SIMULATOR_PATH, CARD_SIMULATOR_PATH, live_rails
from malipo.providers.simulators import (
    AirtelSimulatorMount,
    MessagingSimulators,
    mount_airtel_simulator,
    mount_simulators,
)
from malipo.railbalances.callbacks import router as balance_callbacks_router
from malipo.reconciliation.tasks import ensure_daily as schedule_reconciliation
from malipo.refunds.callbacks import router as refund_callbacks_router
from malipo.sms.callbacks import router as sms_callbacks_router
from malipo.transfers.callbacks import router as transfer_callbacks_router
from malipo.web.checkout import PayerLimits
from malipo.web.checkout import router as pages_router
from malipo.web.portal import router as portal_router
from malipo.whatsapp.callbacks import router as whatsapp_callbacks_router
from malipo.worker.registry import load_job_modules
from malipo.worker.runner import Worker

log = get_logger("malipo.app")

DESCRIPTION = """\
A self-hosted payment gateway for mobile money, bank and card rails.

* **Native API** under `/api/v1`: camelCase JSON, errors as RFC 9457 `application/problem+json`.
* **Pay Hero-compatible API** under `/api/v2` and `/mailer`: snake_case JSON, errors as
  `{error_code, error_message, status_code}`; point an existing Pay Hero client at malipo's base URL.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
) -> FastAPI:
    """The application. ``database`` and ``clock`` are injectable for tests."""
    settings = settings or load_settings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database.from_settings(settings)
        app.state.db = db
        app.state.collection_intake = collection_intake(db, settings, clock)
        app.state.collection_callbacks = callback_writer(db, clock)
        app.state.payout_results = payout_result_writer(db, settings, clock)
        revision = await current_revision(db.engine)
        if revision == app.state.migration_head:
            created = await sync_permissions(db, app.routes, clock.now())
            if created:
                log.info("permissions.created", count=created)
            await schedule_reconciliation(db, settings, clock)
        else:
            # Serve anyway, so /readyz can say why this instance is not ready.
            log.error("database.not_migrated", revision=revision, head=app.state.migration_head)
        audit: AuditRecorder | None = None
        if settings.audit_enabled:
            audit = AuditRecorder(db, flush_seconds=settings.audit_flush_seconds)
            app.state.audit = audit
            await audit.start()
        worker: Worker | None = None
        # Always: enqueue() checks the job kind even where no worker runs in this process.
        load_job_modules(settings.job_modules)
        if settings.inprocess_worker:
            # Its running jobs get the server's grace period at most (see stop_taking_work).
            grace = min(settings.worker_shutdown_grace_seconds, settings.shutdown_grace_seconds)
            worker = Worker(db, settings, clock=clock, shutdown_grace_seconds=grace)
            db.on_jobs_committed(worker.wake)
            await worker.start()
        elif db.dialect == "postgresql":
            db.notify_outbox = True  # wake the `malipo worker` processes
        app.state.worker = worker
        _log_started(settings, db.dialect, inprocess_worker=worker is not None)
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            if audit is not None:
                await audit.stop()
            if simulators is not None:
                await simulators.aclose()
            if bank_simulator is not None:
                await bank_simulator.aclose()
            if card_simulator is not None:
                await card_simulator.aclose()
            if airtel_simulator is not None:
                await airtel_simulator.aclose()
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="malipo",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.migration_head = head_revision()
    app.state.login_limiter = LoginRateLimiter.from_settings(settings)
    app.state.payer_limits = PayerLimits.from_settings(settings)

    install_error_handlers(app)
    app.add_middleware(JsonBodyByDefault)
    app.add_middleware(
        RequestContextMiddleware, max_body_bytes=settings.max_body_bytes,
        large_bodies={"/api/v1/disbursements/batches": settings.disbursement_max_body_bytes},
    )  # fmt: skip
    # Outermost: the mode goes on every Pay Hero reply, the last-resort 500 included.
    app.add_middleware(ModeHeader)

    # Starlette tries routes in order: the providers' callbacks and the Pay Hero surface (the
    # hot paths, few routes) before the many /api/v1 routes. No two routers share a path.
    app.include_router(health_router)
    app.include_router(provider_callbacks_router)
    app.include_router(c2b_callbacks_router)
    app.include_router(payout_callbacks_router)
    app.include_router(refund_callbacks_router)
    app.include_router(balance_callbacks_router)
    app.include_router(transfer_callbacks_router)
    app.include_router(sms_callbacks_router)
    app.include_router(whatsapp_callbacks_router)
    app.include_router(payhero_router)
    app.include_router(v1_router)
    app.include_router(portal_router)
    app.include_router(pages_router)
    # The SMS and WhatsApp simulators that connectors use by default (and sandbox keys always).
    simulators: MessagingSimulators | None = (
        mount_simulators(app, settings) if settings.simulators_enabled else None
    )

    if not settings.daraja_simulator_url:
        # Sandbox keys (and live ones with no Daraja configured) talk to this, over real HTTP.
        app.mount(
            "/_sim/daraja",
            create_daraja_simulator(callback_delay=settings.daraja_simulator_delay),
            name="daraja-simulator",
        )

    airtel_simulator: AirtelSimulatorMount | None = None
    if not settings.airtel_simulator_url:
        # Sandbox keys (and live ones with no Airtel configured) talk to this, over real HTTP; it
        # calls back malipo's Airtel callback address (the simulator's) over real HTTP too.
        airtel_simulator = mount_airtel_simulator(app, settings)
    app.state.airtel_simulator = airtel_simulator

    bank_simulator: BankRailSimulator | None = None
    if not settings.bank_rail_simulator_url:
        # Sandbox keys (and live ones with no bank rail configured) send bank transfers here.
        bank_app = create_bank_simulator(callback_delay=settings.bank_rail_simulator_delay)
        bank_simulator = bank_app.state.simulator
        app.mount(BANK_SIMULATOR_PATH, bank_app, name="bank-simulator")
    app.state.bank_simulator = bank_simulator

    card_simulator: CardAcquirerSimulator | None = None
    if not settings.card_acquirer_simulator_url:
        # Sandbox keys (and live ones with no acquirer configured) authorise cards here; the payer's
        # browser opens its 3-D Secure page here too.
        card_app = create_card_simulator(clock=clock)
        card_simulator = card_app.state.simulator
        app.mount(CARD_SIMULATOR_PATH, card_app, name="card-simulator")
    app.state.card_simulator = card_simulator

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def stop_taking_work(app: FastAPI) -> None:
    """The server is stopping (SIGTERM): the in-process worker stops claiming jobs now and starts
    finishing or releasing those it runs, while the requests in flight finish (the lifespan's end
    then waits for it). Jobs that those requests queue wait for the next worker."""
    worker: Worker | None = getattr(app.state, "worker", None)
    if worker is not None:
        worker.request_stop()


def _log_started(settings: Settings, database: str, *, inprocess_worker: bool) -> None:
    """One event: the public URL in use (and where it came from), which rails are live and which
    simulated. Sandbox keys always use the simulators."""
    rails = live_rails(settings)
    live = sorted(name for name, target in rails.items() if target not in ("simulator", "mailbox"))
    log.info(
        "app.started",
        database=database,
        inprocess_worker=inprocess_worker,
        public_url=settings.public_url,
        public_url_from="the listening address" if settings.public_url_derived else "MALIPO_PUBLIC_URL",
        live=live,
        simulated=sorted(set(rails) - set(live)),
        sandbox="simulated",
    )
    if live and _is_loopback(settings.public_url):
        log.warning(
            "public_url.local",
            public_url=settings.public_url,
            live=live,
            hint="providers cannot call back to this address: set MALIPO_PUBLIC_URL to one they can reach",
        )


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"
