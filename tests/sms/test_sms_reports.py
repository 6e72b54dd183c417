"""Delivery reports applied in batches: the rules per report (duplicates, unknown ids, out of
order, final messages), the acknowledgement only after commit, and the simulator's bounded
report senders. Runs on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.providers.africastalking.client import DeliveryReport, parse_delivery_report
from malipo.providers.africastalking.simulator import create_simulator_app
from malipo.providers.registry import at_report_token
from malipo.sms import delivery_reports
from malipo.sms import service as sms
from malipo.sms.delivery_reports import DeliveryReportBatcher
from malipo.sms.models import SmsMessage, SmsStatus
from tests.fixtures.messaging import make_merchant, serve_messaging


def _report(gateway_id: str, raw_status: str, failure_reason: str | None = None) -> DeliveryReport:
    form = {"id": gateway_id, "status": raw_status}
    if failure_reason:
        form["failureReason"] = failure_reason
    return parse_delivery_report(form)


async def _messages(db: Database, clock: FrozenClock, states: dict[str, str]) -> dict[str, uuid.UUID]:
    """One SMS per ``gateway id -> status`` (a ``queued`` one has no gateway id, as in life)."""
    merchant = await make_merchant(db, clock, uuid.uuid4().hex[:8], funds=0)
    now = clock.now()
    ids = {}
    async with db.transaction() as session:
        for gateway_id, status in states.items():
            message = SmsMessage(
                client_id=merchant.client_id, mode="test", phone_number="+254712345678", message="hi",
                segments=1, encoding="GSM-7", cost=80, currency="KES", status=status, attempts=1,
                refunded=False, created_at=now, updated_at=now,
                gateway_message_id=None if status == SmsStatus.QUEUED else gateway_id,
            )  # fmt: skip
            session.add(message)
            await session.flush()
            ids[gateway_id] = message.id
    return ids


async def _state(db: Database, sms_id: uuid.UUID) -> tuple[str, str | None, str | None, bool]:
    async with db.transaction() as session:
        row = (
            await session.execute(
                select(
                    SmsMessage.status,
                    SmsMessage.gateway_status,
                    SmsMessage.failure_reason,
                    SmsMessage.delivered_at.is_not(None),
                ).where(SmsMessage.id == sms_id)
            )
        ).one()
    return row[0], row[1], row[2], bool(row[3])


async def test_a_batch_applies_each_report_in_order_and_final_messages_never_move(
    db: Database, clock: FrozenClock
) -> None:
    ids = await _messages(
        db,
        clock,
        {
            "AT-ok": SmsStatus.SENT,
            "AT-buffered": SmsStatus.SENT,
            "AT-late": SmsStatus.SENT,
            "AT-failing": SmsStatus.SENT,
            "AT-refunded": SmsStatus.FAILED,
            "AT-queued": SmsStatus.QUEUED,
        },
    )
    reports = [
        _report("AT-ok", "Success"),
        _report("AT-ok", "Success"),  # a repeat in the same batch
        _report("AT-nobody", "Success"),  # no such message
        _report("AT-buffered", "Buffered"),
        _report("AT-buffered", "Success"),  # the later report of the same message
        _report("AT-late", "Success"),
        _report("AT-late", "Buffered"),  # out of order: delivered stays delivered
        _report("AT-failing", "Failed", "UserInBlacklist"),
        _report("AT-refunded", "Success"),  # failed (refused at send) is final
        _report("AT-queued", "Success"),  # not sent yet: its gateway id is not known
    ]
    async with db.transaction() as session:
        outcomes = await sms.apply_delivery_reports(session, reports, now=clock.now())
    assert outcomes == [
        "updated",
        "unchanged",
        "unknown",
        "updated",
        "updated",
        "updated",
        "unchanged",
        "updated",
        "unchanged",
        "unknown",
    ]
    assert await _state(db, ids["AT-ok"]) == ("delivered", "Success", None, True)
    assert await _state(db, ids["AT-buffered"]) == ("delivered", "Success", None, True)
    assert await _state(db, ids["AT-late"]) == ("delivered", "Success", None, True)
    assert await _state(db, ids["AT-failing"]) == ("failed", "Failed", "UserInBlacklist", False)
    assert await _state(db, ids["AT-refunded"]) == ("failed", None, None, False)
    assert await _state(db, ids["AT-queued"]) == ("queued", None, None, False)

    # The same reports again, and contrary ones: nothing changes any more.
    again = [*reports, _report("AT-ok", "Failed", "Expired"), _report("AT-failing", "Success")]
    async with db.transaction() as session:
        outcomes = await sms.apply_delivery_reports(session, again, now=clock.now())
    assert set(outcomes) == {"unchanged", "unknown"}
    assert await _state(db, ids["AT-ok"]) == ("delivered", "Success", None, True)
    assert await _state(db, ids["AT-failing"]) == ("failed", "Failed", "UserInBlacklist", False)


async def test_a_non_final_report_keeps_a_sent_message_sent(db: Database, clock: FrozenClock) -> None:
    ids = await _messages(db, clock, {"AT-1": SmsStatus.SENT})
    async with db.transaction() as session:
        assert await sms.apply_delivery_reports(session, [_report("AT-1", "Buffered")], now=clock.now()) == [
            "updated"
        ]
    assert await _state(db, ids["AT-1"]) == ("sent", "Buffered", None, False)
    async with db.transaction() as session:
        assert await sms.apply_delivery_reports(session, [], now=clock.now()) == []


class _ObservedDatabase:
    """A Database whose transactions record when they committed, and can be made to fail."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.commits = 0
        self.fail_next = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.db.transaction() as session:
            yield session
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("the commit failed")
        self.commits += 1


async def test_the_batcher_answers_each_report_only_after_its_batch_committed(
    db: Database, clock: FrozenClock
) -> None:
    gateway_ids = [f"AT-{n}" for n in range(40)]
    ids = await _messages(db, clock, dict.fromkeys(gateway_ids, SmsStatus.SENT))
    observed = _ObservedDatabase(db)
    batcher = DeliveryReportBatcher(observed, clock, max_batch=16)  # type: ignore[arg-type]

    async def report(gateway_id: str) -> tuple[str, int]:
        outcome = await batcher.apply(_report(gateway_id, "Success"))
        return outcome, observed.commits  # the commits seen when the answer came

    answers = await asyncio.gather(*(report(gateway_id) for gateway_id in [*gateway_ids, "AT-x"]))
    assert [outcome for outcome, _ in answers] == ["updated"] * 40 + ["unknown"]
    assert all(commits >= 1 for _, commits in answers)
    # Grouped: 41 reports arriving together take a few transactions, not 41.
    assert 1 < observed.commits <= 4
    for sms_id in ids.values():
        assert (await _state(db, sms_id))[0] == "delivered"


async def test_a_batch_that_fails_to_commit_is_acknowledged_to_nobody_and_changes_nothing(
    db: Database, clock: FrozenClock
) -> None:
    ids = await _messages(db, clock, {"AT-1": SmsStatus.SENT, "AT-2": SmsStatus.SENT})
    observed = _ObservedDatabase(db)
    batcher = DeliveryReportBatcher(observed, clock)  # type: ignore[arg-type]
    observed.fail_next = True
    with capture_logs() as logs:
        results = await asyncio.gather(
            batcher.apply(_report("AT-1", "Success")),
            batcher.apply(_report("AT-2", "Success")),
            return_exceptions=True,
        )
    assert [type(result) for result in results] == [RuntimeError, RuntimeError]
    failed = [log for log in logs if log["event"] == "group_commit.failed"]
    assert [log["batch"] for log in failed] == ["sms delivery reports"]
    assert (await _state(db, ids["AT-1"]))[0] == "sent"
    assert (await _state(db, ids["AT-2"]))[0] == "sent"
    # The provider sends them again; now they go through.
    assert await batcher.apply(_report("AT-1", "Success")) == "updated"
    assert (await _state(db, ids["AT-1"]))[0] == "delivered"


class _StalledDatabase:
    """A Database whose transactions wait for ``release`` before they commit."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.db.transaction() as session:
            yield session
            self.inside.set()
            await self.release.wait()


@pytest.mark.parametrize("when", ["before it starts", "before it commits"])
async def test_a_batcher_stopped_acknowledges_nothing_it_has_not_committed(
    db: Database, clock: FrozenClock, when: str
) -> None:
    ids = await _messages(db, clock, {"AT-1": SmsStatus.SENT})
    stalled = _StalledDatabase(db)
    batcher = DeliveryReportBatcher(stalled, clock)  # type: ignore[arg-type]
    waiting = asyncio.ensure_future(batcher.apply(_report("AT-1", "Success")))
    await asyncio.sleep(0)  # apply() ran and made a writer
    writer = batcher._writer
    assert writer is not None
    if when == "before it commits":
        await stalled.inside.wait()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await _state(db, ids["AT-1"]))[0] == "sent"
    # A later report is written by a new writer.
    stalled.release.set()
    assert await batcher.apply(_report("AT-1", "Success")) == "updated"


# -- through the callback route ---------------------------------------------------------------


def test_the_callback_route_acknowledges_after_commit_and_refuses_what_it_could_not_record(
    settings: Settings, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = serve_messaging(settings, live_server)
    url = f"{world.url}/callbacks/africastalking/{at_report_token(world.settings)}"
    ids = world.run(lambda db: _messages(db, world.clock, {"AT-a": SmsStatus.SENT, "AT-b": SmsStatus.SENT}))

    ok = httpx.post(url, data={"id": "AT-a", "status": "Success"})
    assert (ok.status_code, ok.text) == (200, "OK")
    # Acknowledged means committed: any other connection sees it at once.
    assert world.run(lambda db: _state(db, ids["AT-a"]))[0] == "delivered"
    repeat = httpx.post(url, data={"id": "AT-a", "status": "Failed", "failureReason": "Expired"})
    assert repeat.status_code == 200
    assert world.run(lambda db: _state(db, ids["AT-a"]))[0] == "delivered"

    with capture_logs() as logs:
        unknown = httpx.post(url, data={"id": "AT-nobody", "status": "Success"})
    assert unknown.status_code == 503
    assert [log["gateway_message_id"] for log in logs if log["event"] == "sms.delivery_report_unknown"] == [
        "AT-nobody"
    ]

    async def broken(*_args: Any, **_kwargs: Any) -> list[str]:
        raise RuntimeError("database gone")

    monkeypatch.setattr(delivery_reports.sms, "apply_delivery_reports", broken)
    refused = httpx.post(url, data={"id": "AT-b", "status": "Success"})
    assert refused.status_code == 503  # not acknowledged: the provider sends it again
    monkeypatch.undo()
    assert world.run(lambda db: _state(db, ids["AT-b"]))[0] == "sent"
    assert httpx.post(url, data={"id": "AT-b", "status": "Success"}).status_code == 200
    assert world.run(lambda db: _state(db, ids["AT-b"]))[0] == "delivered"
    world.http.close()


# -- the simulator's report senders -----------------------------------------------------------


async def test_the_simulator_posts_a_bulks_reports_a_few_at_a_time_and_retries_refused_ones() -> None:
    in_flight, most, seen = 0, 0, []
    refused_once: set[str] = set()

    async def receive(request: Request) -> Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.001)
            form = dict(parse_qsl((await request.body()).decode()))
            if form["id"] not in refused_once and len(refused_once) < 5:
                refused_once.add(str(form["id"]))
                return PlainTextResponse("try later", status_code=503)
            seen.append(form)
            return PlainTextResponse("OK")
        finally:
            in_flight -= 1

    inbox = Starlette(routes=[Route("/reports", receive, methods=["POST"])])
    report_http = httpx.AsyncClient(transport=httpx.ASGITransport(inbox))
    app = create_simulator_app(
        delivery_report_url="http://malipo.test/reports",
        report_http=report_http,
        report_concurrency=3,
        report_retry_delay=0.01,
    )
    numbers = [f"+2547{10_000_000 + n:08d}" for n in range(120)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://at.test") as http:
        reply = await http.post(
            "/version1/messaging",
            data={"username": "sandbox", "to": ",".join(numbers), "message": "Sale!"},
            headers={"apiKey": "k", "Accept": "application/json"},
        )
        assert reply.status_code == 201
        await app.drain()
    await app.aclose()
    await report_http.aclose()
    assert 1 < most <= 3
    assert sorted(form["phoneNumber"] for form in seen) == numbers
    assert len(app.reports) == 120
    assert all(report.delivered for report in app.reports)
    assert sorted(report.attempts for report in app.reports)[-5:] == [2] * 5
    assert app.pending_reports == 0
