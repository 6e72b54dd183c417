"""SMS end to end: a live malipo, its worker, the Africa's Talking simulator posting delivery
reports back to malipo's callback route, and the service wallet charged in the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from malipo.config import Settings
from malipo.providers.africastalking.simulator import (
    NUMBER_BUFFERED_THEN_DELIVERED,
    NUMBER_DELIVERY_FAILED,
    NUMBER_PROVIDER_ERROR,
    NUMBER_REJECTED_AT_SEND,
)
from malipo.providers.registry import at_report_token
from tests.fixtures.messaging import SERVICE_FUNDS, Messaging, serve_messaging


@pytest.fixture
def world(settings: Settings, live_server: Any) -> Iterator[Messaging]:
    served = serve_messaging(settings, live_server)
    yield served
    served.http.close()


def _sms(world: Messaging, sms_id: str, headers: dict[str, str]) -> dict[str, Any]:
    reply = world.get(f"/api/v1/sms/{sms_id}", headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _final(world: Messaging, sms_id: str, headers: dict[str, str], states: tuple[str, ...]) -> dict[str, Any]:
    return world.wait_for(lambda: _sms(world, sms_id, headers), lambda m: m["status"] in states)


def test_sms_is_charged_sent_and_its_delivery_reports_update_it(world: Messaging) -> None:
    a, b = world.a, world.b
    body = {"phoneNumber": "0712345678", "message": "Your code is 4821"}
    first = world.post("/api/v1/sms/send", {**a.test, "Idempotency-Key": "otp-1"}, json=body)
    assert first.status_code == 201, first.text
    queued = first.json()
    assert queued["phoneNumber"] == "+254712345678"
    assert queued["status"] == "queued"
    assert (queued["segments"], queued["encoding"], queued["cost"], queued["currency"]) == (
        1,
        "GSM-7",
        "0.80",
        "KES",
    )
    replay = world.post("/api/v1/sms/send", {**a.test, "Idempotency-Key": "otp-1"}, json=body)
    assert replay.status_code == 201
    assert replay.json()["id"] == queued["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"

    delivered = _final(world, queued["id"], a.test, ("delivered", "failed"))
    assert delivered["status"] == "delivered"
    assert delivered["gatewayMessageId"].startswith("ATXid_")
    assert delivered["gatewayStatus"] == "Success"
    assert delivered["attempts"] == 1
    assert delivered["sentAt"]
    assert delivered["deliveredAt"]
    # Another merchant, and the same merchant's live key, do not see it.
    assert world.get(f"/api/v1/sms/{queued['id']}", b.test).status_code == 404
    assert world.get(f"/api/v1/sms/{queued['id']}", a.live).status_code == 404

    # A custom sender; the number's delivery report says it failed: failed, still charged.
    failed = world.post(
        "/api/v1/sms/send-with-sender",
        a.test,
        json={"phoneNumber": NUMBER_DELIVERY_FAILED, "message": "x" * 161, "senderId": "MALIPO"},
    )
    assert failed.status_code == 201, failed.text
    assert (failed.json()["segments"], failed.json()["cost"], failed.json()["senderId"]) == (
        2,
        "1.60",
        "MALIPO",
    )
    seen = _final(world, failed.json()["id"], a.test, ("delivered", "failed"))
    assert (seen["status"], seen["failureReason"]) == ("failed", "UserInBlacklist")

    # Bad input names the field and queues nothing.
    bad_number = world.post("/api/v1/sms/send", a.test, json={"phoneNumber": "12345", "message": "hi"})
    assert bad_number.status_code == 422
    assert bad_number.json()["errors"][0]["field"] == "phoneNumber"
    bad_sender = world.post(
        "/api/v1/sms/send-with-sender",
        a.test,
        json={"phoneNumber": "0712345678", "message": "hi", "senderId": "NOT-ALLOWED!"},
    )
    assert bad_sender.status_code == 422
    assert bad_sender.json()["errors"][0]["field"] == "senderId"
    too_long = world.post(
        "/api/v1/sms/send", a.test, json={"phoneNumber": "0712345678", "message": "x" * 321}
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["field"] == "message"

    # The live service wallet is empty: 402 naming it, nothing queued, nothing charged.
    broke = world.post("/api/v1/sms/send", a.live, json=body)
    assert broke.status_code == 402, broke.text
    assert broke.json()["code"] == "insufficient_service_balance"
    assert "service wallet" in broke.json()["detail"]

    charged = 80 + 160
    assert world.service_balance(a) == SERVICE_FUNDS - charged
    assert world.service_balance(a, "live") == 0
    assert world.ledger_problems() == []


def test_bulk_rejects_bad_entries_alone_and_refunds_what_the_provider_refused_and_reports_need_the_token(
    world: Messaging,
) -> None:
    a = world.a
    numbers = [
        "0712000111",
        "not a number",
        "+254712000111",  # the first one again
        NUMBER_REJECTED_AT_SEND,
        NUMBER_BUFFERED_THEN_DELIVERED,
        "254712000222",
    ]
    reply = world.post("/api/v1/sms/bulk", a.test, json={"phoneNumbers": numbers, "message": "Sale today!"})
    assert reply.status_code == 201, reply.text
    bulk = reply.json()
    assert bulk["accepted"] == 4
    assert [(r["index"], r["phoneNumber"]) for r in bulk["rejected"]] == [
        (1, "not a number"),
        (2, "+254712000111"),
    ]
    assert "repeats entry 0" in bulk["rejected"][1]["reason"]
    assert bulk["cost"] == "3.20"
    assert [m["phoneNumber"] for m in bulk["messages"]] == [
        "+254712000111",
        NUMBER_REJECTED_AT_SEND,
        NUMBER_BUFFERED_THEN_DELIVERED,
        "+254712000222",
    ]

    def batch() -> dict[str, Any]:
        got = world.get(f"/api/v1/sms/batches/{bulk['batchId']}", a.test)
        assert got.status_code == 200, got.text
        return got.json()

    done = world.wait_for(batch, lambda b: b["counts"]["delivered"] == 3 and b["counts"]["failed"] == 1)
    assert done["counts"] == {"queued": 0, "sent": 0, "delivered": 3, "failed": 1}
    refused = next(m for m in done["messages"] if m["phoneNumber"] == NUMBER_REJECTED_AT_SEND)
    assert refused["failureReason"] == "406 UserInBlacklist"
    assert world.get(f"/api/v1/sms/batches/{bulk['batchId']}", world.b.test).status_code == 404
    # 4 charged, the refused one given back.
    assert world.service_balance(a) == SERVICE_FUNDS - 4 * 80 + 80
    assert world.ledger_problems() == []

    form = {"id": "ATXid_" + uuid.uuid4().hex, "status": "Success", "phoneNumber": "+254712345678"}
    wrong = httpx.post(f"{world.url}/callbacks/africastalking/not-the-token", data=form)
    assert wrong.status_code == 404
    early = httpx.post(f"{world.url}/callbacks/africastalking/{at_report_token(world.settings)}", data=form)
    assert early.status_code == 503  # no such message yet: the sender is asked to try again
    malformed = httpx.post(f"{world.url}/callbacks/africastalking/{at_report_token(world.settings)}", data={})
    assert malformed.status_code == 400

    nothing = world.post("/api/v1/sms/bulk", a.test, json={"phoneNumbers": ["x", "y"], "message": "hi"})
    assert nothing.status_code == 422
    assert [e["field"] for e in nothing.json()["errors"]] == ["phoneNumbers.0", "phoneNumbers.1"]


def test_transient_provider_errors_are_retried_then_fail_and_are_refunded(world: Messaging) -> None:
    a = world.a
    reply = world.post(
        "/api/v1/sms/send", a.test, json={"phoneNumber": NUMBER_PROVIDER_ERROR, "message": "hi"}
    )
    assert reply.status_code == 201
    sms_id = reply.json()["id"]
    seen = world.wait_for(
        lambda: _sms(world, sms_id, a.test), lambda m: m["attempts"] == 1 and m["failureReason"]
    )
    assert seen["status"] == "queued"
    assert seen["failureReason"] == "500 InternalServerError"
    for attempt in range(2, 7):  # the job's limit is 6 attempts
        world.wait_for(world.running_jobs, lambda running: running == 0)  # the retry is scheduled
        world.advance(700)  # past the longest backoff
        seen = world.wait_for(lambda: _sms(world, sms_id, a.test), lambda m, n=attempt: m["attempts"] == n)
    final = _final(world, sms_id, a.test, ("failed",))
    assert final["attempts"] == 6
    assert world.service_balance(a) == SERVICE_FUNDS  # charged, then refunded
    assert world.ledger_problems() == []
