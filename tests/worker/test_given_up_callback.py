"""A merchant callback refused for the last time: a warning, and the batch counts it failed."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import ClientType
from malipo.webhooks import service as webhooks
from malipo.webhooks import tasks  # noqa: F401  (registers webhook.deliver)
from malipo.webhooks.models import DeliveryStatus, WebhookDelivery
from malipo.worker.models import Job, JobStatus
from malipo.worker.runner import Worker
from tests.fixtures.servers import LiveServer


async def _down(request: Request) -> PlainTextResponse:
    return PlainTextResponse("merchant is down", status_code=503)


async def test_a_callback_given_up_on_is_a_warning_and_counted_failed(
    db: Database, settings: Settings, clock: FrozenClock, live_server: Callable[[object], LiveServer]
) -> None:
    from starlette.applications import Starlette

    merchant = live_server(Starlette(routes=[Route("/callback", _down, methods=["POST"])]))
    settings.webhook_max_attempts = 1
    async with db.transaction() as session:
        client = await identity.create_client(
            session, name="Shop", client_type=ClientType.COMPANY, email="shop@example.com", now=clock.now()
        )
        delivery = webhooks.queue(
            session, client_id=client.id, mode="test", event="collection.completed", subject_reference="R1",
            url=f"{merchant.url}/callback", payload={"status": True}, now=clock.now(),
        )  # fmt: skip

    worker = Worker(db, settings, clock=clock)
    with structlog.testing.capture_logs() as events:
        assert await worker.run_once() == 1
    await worker.aclose()

    async with db.transaction() as session:
        found = await session.get(WebhookDelivery, delivery.id)
        assert found is not None
        assert (found.status, found.attempts, found.last_status_code) == (DeliveryStatus.FAILED, 1, 503)
        [job] = list(await session.scalars(select(Job).where(Job.kind == webhooks.DELIVER_JOB)))
    assert job.status == JobStatus.SUCCEEDED, "the job did its work: it is finished, not retried nor dead"

    [given_up] = [e for e in events if e["event"] == "webhook.given_up"]
    assert given_up["log_level"] == "warning"
    assert given_up["delivery_id"] == str(delivery.id)
    assert "HTTP 503" in given_up["error"]
    [done] = [e for e in events if e["event"] == "jobs.done"]
    assert done["failed"] == 1
    assert not [e for e in events if e["log_level"] in ("error", "critical")]
