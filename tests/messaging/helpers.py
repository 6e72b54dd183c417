"""A live malipo for the messaging tests: its worker running, the SMS and WhatsApp simulators
mounted, and merchants A and B with sandbox and live keys, Pay Hero credentials and funded
service wallets.

The clock is frozen: a job's first attempt runs at once, a retry only once the test moves the
clock past its backoff (``Messaging.advance``). Bulk pacing is off.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from malipo.app import create_app
from malipo.auth.permissions import sync_permissions
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, LedgerAccount
from malipo.worker.models import Job, JobStatus
from tests import factories
from tests.factories import Merchant

SERVICE_FUNDS = 1_000_00  # KES 1,000.00 in each sandbox service wallet


@dataclass
class Messaging:
    url: str
    clock: FrozenClock
    settings: Settings
    app: Any
    a: Merchant
    b: Merchant
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def post(self, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.http.post(self.url + path, headers=headers, **kwargs)

    def get(self, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self.http.get(self.url + path, headers=headers, **kwargs)

    def wait_for(self, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 15.0) -> Any:
        """Poll ``read()`` until ``done`` says yes; the last value is returned (or an AssertionError)."""
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting; last seen: {value}")
            time.sleep(0.05)

    def advance(self, seconds: float) -> None:
        """Move the frozen clock: retries become due (the worker polls every 50 ms)."""
        self.clock.advance(timedelta(seconds=seconds))

    def run(self, coro_fn: Callable[[Database], Any]) -> Any:
        async def main() -> Any:
            db = Database.from_url(self.settings.resolved_database_url)
            try:
                return await coro_fn(db)
            finally:
                await db.dispose()

        return asyncio.run(main())

    def running_jobs(self) -> int:
        """Jobs a worker holds right now (0: every outcome so far is recorded)."""

        async def count(db: Database) -> int:
            async with db.transaction() as session:
                return int(
                    await session.scalar(
                        select(func.count()).select_from(Job).where(Job.status == JobStatus.RUNNING)
                    )
                    or 0
                )

        return int(self.run(count))

    def service_balance(self, merchant: Merchant, mode: str = "test") -> int:
        async def read(db: Database) -> int:
            async with db.transaction() as session:
                wallet = await session.scalar(
                    select(LedgerAccount).where(
                        LedgerAccount.client_id == merchant.client_id,
                        LedgerAccount.kind == AccountKind.SERVICE_WALLET,
                        LedgerAccount.mode == mode,
                    )
                )
                assert wallet is not None
                return int(wallet.balance)

        return int(self.run(read))

    def ledger_problems(self) -> list[str]:
        async def verify(db: Database) -> list[str]:
            async with db.transaction() as session:
                return await ledger.verify_ledger(session)

        return list(self.run(verify))


async def make_merchant(db: Database, clock: FrozenClock, tag: str, funds: int = SERVICE_FUNDS) -> Merchant:
    """Merchant ``tag`` with sandbox and live keys and ``funds`` cents in its sandbox service wallet."""
    return await factories.make_merchant(db, tag, now=clock.now(), service_funds=funds)


def serve_messaging(settings: Settings, live_server: Any, **overrides: Any) -> Messaging:
    """malipo on loopback with its worker and simulators, over the test's database."""
    settings.inprocess_worker = True
    settings.worker_poll_seconds = 0.05
    settings.sms_bulk_rate = 0
    settings.whatsapp_bulk_rate = 0
    for name, value in overrides.items():
        setattr(settings, name, value)
    clock = FrozenClock()
    app = create_app(settings, clock=clock)

    async def build() -> tuple[Merchant, Merchant]:
        db = Database.from_url(settings.resolved_database_url)
        try:
            await sync_permissions(db, app.routes, clock.now())
            return await make_merchant(db, clock, "a"), await make_merchant(db, clock, "b")
        finally:
            await db.dispose()

    a, b = asyncio.run(build())
    server = live_server(app)
    # The simulators and callbacks are reached through the public URL: this server's.
    settings.public_url = server.url
    return Messaging(server.url, clock, settings, app, a, b)


async def messaging_objects(session: Any, client_id: uuid.UUID, now: Any) -> dict[str, uuid.UUID]:
    """One sandbox SMS, SMS batch and WhatsApp batch of ``client_id`` (for tenancy checks)."""
    from malipo.messaging.models import SmsBatch, SmsMessage, WhatsAppBatch, WhatsAppSession

    sms_batch = SmsBatch(
        client_id=client_id, mode="test", message="hi", accepted=1, rejected=0, segments=1, cost=80,
        currency="KES", created_at=now,
    )  # fmt: skip
    wa_session = WhatsAppSession(
        client_id=client_id, name="shop", backend="simulator",
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add_all([sms_batch, wa_session])
    await session.flush()
    sms = SmsMessage(
        client_id=client_id, mode="test", batch_id=sms_batch.id, phone_number="+254712345678", message="hi",
        segments=1, encoding="GSM-7", cost=80, currency="KES", status="queued", attempts=0, refunded=False,
        created_at=now, updated_at=now,
    )  # fmt: skip
    wa_batch = WhatsAppBatch(
        client_id=client_id, mode="test", session_id=wa_session.id, message="hi", accepted=0, rejected=0,
        created_at=now,
    )  # fmt: skip
    session.add_all([sms, wa_batch])
    await session.flush()
    return {"sms": sms.id, "sms_batch": sms_batch.id, "whatsapp_batch": wa_batch.id}
