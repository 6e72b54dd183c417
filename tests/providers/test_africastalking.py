"""The Africa's Talking client against the simulator, over real HTTP on loopback, with a real
delivery report receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from structlog.testing import capture_logs

from malipo.providers.africastalking.client import (
    AfricasTalkingClient,
    InvalidDeliveryReport,
    SmsProviderError,
    parse_delivery_report,
)
from malipo.providers.africastalking.simulator import (
    AUTH_FAILED_BODY,
    NUMBER_ABSENT_SUBSCRIBER,
    NUMBER_BUFFERED_THEN_DELIVERED,
    NUMBER_DELIVERY_FAILED,
    NUMBER_NO_REPORT,
    NUMBER_PROVIDER_ERROR,
    NUMBER_REJECTED_AT_SEND,
    AfricasTalkingSimulator,
    create_simulator_app,
)
from tests.fixtures.servers import LiveServer, free_port

USERNAME = "malipo"
API_KEY = "atsk_9f2c0e7d41b8a6553e0c1d2f"
GOOD_NUMBER = "+254712345678"
OTHER_GOOD_NUMBER = "+254733000111"

StartServer = Callable[[object], LiveServer]
T = TypeVar("T")


class Receiver:
    """A delivery report endpoint: records each form; answers ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.forms: list[dict[str, str]] = []
        self.fail_first = fail_first
        self.requests = 0
        self.app = Starlette(routes=[Route("/sms/reports", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.requests += 1
        if self.requests <= self.fail_first:
            return PlainTextResponse("try later", status_code=500)
        self.forms.append(dict(parse_qsl((await request.body()).decode())))
        return PlainTextResponse("ok")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.forms) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} delivery reports, got {self.forms}")
            await asyncio.sleep(0.01)
        return self.forms

    def by_id(self, message_id: str) -> list[dict[str, str]]:
        return [form for form in self.forms if form.get("id") == message_id]


async def eventually(read: Callable[[], list[T]], timeout: float = 5.0) -> list[T]:
    """``read()`` once it is non-empty (the simulator records a report after the receiver has it)."""
    deadline = time.monotonic() + timeout
    while not (found := read()):
        if time.monotonic() > deadline:
            raise AssertionError("nothing arrived in time")
        await asyncio.sleep(0.01)
    return found


def count_schedules(app: AfricasTalkingSimulator) -> list[int]:
    """Each send's delivery reports are scheduled by a background task after its reply; this lists
    every such scheduling, by its number of recipients with reports (0 included)."""
    scheduled: list[int] = []
    schedule = app._schedule_reports

    async def counted(pending: list[Any]) -> None:
        await schedule(pending)
        scheduled.append(len(pending))

    app._schedule_reports = counted  # type: ignore[method-assign]
    return scheduled


async def settled(app: AfricasTalkingSimulator, scheduled: list[int], sends: int) -> None:
    """Wait until the reports of ``sends`` sends are scheduled and every one of them delivered or given
    up: a report not received by then is never sent."""
    await eventually(lambda: [True] if len(scheduled) >= sends and app.pending_reports == 0 else [])


@pytest.fixture
def receiver(live_server: StartServer) -> tuple[Receiver, LiveServer]:
    receiver = Receiver()
    return receiver, live_server(receiver.app)


@pytest.fixture
def simulator(
    live_server: StartServer, receiver: tuple[Receiver, LiveServer]
) -> tuple[AfricasTalkingSimulator, LiveServer]:
    app = create_simulator_app(
        delivery_report_url=receiver[1].url + "/sms/reports",
        api_keys={API_KEY: USERNAME},
        sender_ids={"MALIPO"},
        report_retry_delay=0.01,
    )
    app.scheduled = count_schedules(app)  # type: ignore[attr-defined]
    return app, live_server(app)


async def send(server: LiveServer, to: list[str], message: str = "Your code is 123456", **kwargs: object):
    async with AfricasTalkingClient(server.url, USERNAME, API_KEY) as client:
        return await client.send(to, message, **kwargs)  # type: ignore[arg-type]


# -- sending ---------------------------------------------------------------------------------------


async def test_single_recipient_is_accepted_and_its_delivery_report_arrives(simulator, receiver) -> None:
    app, server = simulator
    [result] = await send(server, [GOOD_NUMBER], "Payment of KES 100 received", sender_id="MALIPO")

    assert result.accepted
    assert not result.retryable
    assert (result.number, result.status, result.status_code) == (GOOD_NUMBER, "Success", 101)
    assert result.message_id is not None
    assert result.message_id.startswith("ATXid_")
    assert len(result.message_id) == len("ATXid_") + 32
    assert (result.cost, result.message_parts) == ("KES 0.8000", 1)

    [form] = await receiver[0].wait_for(1)
    report = parse_delivery_report(form)
    assert (report.message_id, report.status, report.raw_status) == (
        result.message_id,
        "delivered",
        "Success",
    )
    assert report.final
    assert report.phone_number == GOOD_NUMBER
    assert report.failure_reason is None
    assert (report.network_code, report.retry_count) == ("63902", 0)

    [received] = app.messages
    assert received.username == USERNAME
    assert received.to == [GOOD_NUMBER]
    assert received.message == "Payment of KES 100 received"
    assert received.sender_id == "MALIPO"
    assert app.state.messages is app.messages
    [sent] = await eventually(lambda: app.reports)
    assert sent.delivered
    assert sent.attempts == 1


async def test_each_recipient_gets_its_own_result_in_order(simulator, receiver) -> None:
    app, server = simulator
    to = [GOOD_NUMBER, "0712345678", NUMBER_REJECTED_AT_SEND, NUMBER_PROVIDER_ERROR, NUMBER_DELIVERY_FAILED]
    results = await send(server, to)

    assert [r.number for r in results] == to
    assert [(r.status, r.status_code) for r in results] == [
        ("Success", 101),
        ("InvalidPhoneNumber", 403),
        ("UserInBlacklist", 406),
        ("InternalServerError", 500),
        ("Success", 101),
    ]
    assert [r.accepted for r in results] == [True, False, False, False, True]
    assert [r.retryable for r in results] == [False, False, False, True, False]
    for refused in results[1:4]:
        assert (refused.message_id, refused.cost, refused.message_parts) == (None, "0", None)
    assert len({results[0].message_id, results[4].message_id}) == 2

    # Reports only for the accepted two: one delivered, one failed with its reason.
    forms = await receiver[0].wait_for(2)
    reports = {parse_delivery_report(form).phone_number: parse_delivery_report(form) for form in forms}
    assert reports[GOOD_NUMBER].status == "delivered"
    failed = reports[NUMBER_DELIVERY_FAILED]
    assert (failed.message_id, failed.status, failed.raw_status) == (
        results[4].message_id,
        "failed",
        "Failed",
    )
    assert failed.failure_reason == "UserInBlacklist"
    await settled(app, app.scheduled, sends=1)
    assert len(receiver[0].forms) == 2


async def test_reply_has_at_shape_and_total_cost(simulator) -> None:
    _app, server = simulator
    async with httpx.AsyncClient() as http:
        response = await http.post(
            server.url + "/version1/messaging",
            data={"username": USERNAME, "to": f"{GOOD_NUMBER},{OTHER_GOOD_NUMBER},+1", "message": "a" * 161},
            headers={"apiKey": API_KEY, "Accept": "application/json"},
        )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 2/3 Total Cost: KES 3.2000"
    first, _second, invalid = data["Recipients"]
    assert first["cost"] == "KES 1.6000"
    assert first["messageParts"] == 2
    assert invalid == {
        "cost": "0",
        "messageId": "None",
        "number": "+1",
        "status": "InvalidPhoneNumber",
        "statusCode": 403,
    }


async def test_multipart_message_costs_per_segment(simulator) -> None:
    _app, server = simulator
    [result] = await send(server, [GOOD_NUMBER], "Ж" * 71)
    assert (result.cost, result.message_parts) == ("KES 1.6000", 2)


async def test_sender_id_not_registered_is_refused_for_every_recipient(simulator, receiver) -> None:
    app, server = simulator
    results = await send(server, [GOOD_NUMBER, OTHER_GOOD_NUMBER], sender_id="SOMEONE")
    assert [(r.status, r.status_code, r.accepted, r.retryable) for r in results] == [
        ("InvalidSenderId", 402, False, False)
    ] * 2
    await settled(app, app.scheduled, sends=1)
    assert receiver[0].forms == []


async def test_reports_follow_the_test_number_table(simulator, receiver) -> None:
    app, server = simulator
    results = await send(server, [NUMBER_ABSENT_SUBSCRIBER, NUMBER_BUFFERED_THEN_DELIVERED, NUMBER_NO_REPORT])
    assert all(result.accepted for result in results)
    absent, buffered, silent = results

    await receiver[0].wait_for(3)
    [absent_report] = [parse_delivery_report(form) for form in receiver[0].by_id(absent.message_id or "")]
    assert (absent_report.status, absent_report.raw_status) == ("failed", "AbsentSubscriber")

    steps = [parse_delivery_report(form) for form in receiver[0].by_id(buffered.message_id or "")]
    assert [(step.raw_status, step.status, step.final) for step in steps] == [
        ("Buffered", "sent", False),
        ("Success", "delivered", True),
    ]
    await settled(app, app.scheduled, sends=1)
    assert receiver[0].by_id(silent.message_id or "") == []
    assert len(receiver[0].forms) == 3


async def test_delivery_report_url_can_be_set_after_start_and_reports_are_retried(live_server) -> None:
    flaky = Receiver(fail_first=1)
    receiver_server = live_server(flaky.app)
    app = create_simulator_app(report_retry_delay=0.01)
    scheduled = count_schedules(app)
    server = live_server(app)

    await send(server, [GOOD_NUMBER])  # no URL yet: no report
    await settled(app, scheduled, sends=1)
    assert flaky.requests == 0

    app.delivery_report_url = receiver_server.url + "/sms/reports"
    [result] = await send(server, [GOOD_NUMBER])
    [form] = await flaky.wait_for(1)
    assert form["id"] == result.message_id
    assert flaky.requests == 2
    [sent] = await eventually(lambda: app.reports)
    assert (sent.attempts, sent.http_status, sent.delivered) == (2, 200, True)


async def test_pending_reports_are_cancelled_when_the_simulator_stops(receiver) -> None:
    app = create_simulator_app(delivery_report_url=receiver[1].url + "/sms/reports", report_delay=30)
    with LiveServer(app) as server:
        await send(server, [GOOD_NUMBER, OTHER_GOOD_NUMBER])
        await eventually(lambda: [app.pending_reports] if app.pending_reports == 2 else [])
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert app.pending_reports == 0
    assert receiver[0].forms == []


async def test_simulator_mounted_in_process_reports_through_the_given_client() -> None:
    """As malipo runs it: inside another app, no lifespan, reports sent with a client it is given."""
    inbox = Receiver()
    report_http = httpx.AsyncClient(transport=httpx.ASGITransport(inbox.app))
    app = create_simulator_app(delivery_report_url="http://malipo.test/sms/reports", report_http=report_http)
    host = Starlette(routes=[Mount("/simulators/africastalking", app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(host)) as http:
        client = AfricasTalkingClient(
            "http://malipo.test/simulators/africastalking", USERNAME, API_KEY, http=http
        )
        [result] = await client.send([GOOD_NUMBER], "hello")
        await app.drain()
    await app.aclose()
    assert not report_http.is_closed  # the caller's client
    await report_http.aclose()
    [form] = inbox.forms
    assert parse_delivery_report(form).message_id == result.message_id


# -- failures of the whole request -----------------------------------------------------------------


async def test_wrong_api_key_is_not_retryable_and_never_shown(simulator) -> None:
    _app, server = simulator
    wrong_key = "atsk_wrong_0000000000000000"
    with capture_logs() as logs:
        async with AfricasTalkingClient(server.url, USERNAME, wrong_key) as client:
            assert wrong_key not in repr(client)
            with pytest.raises(SmsProviderError) as caught:
                await client.send([GOOD_NUMBER], "hello")
    assert not caught.value.retryable
    assert caught.value.status == 401
    assert AUTH_FAILED_BODY in str(caught.value)
    assert wrong_key not in str(caught.value)
    assert wrong_key not in repr(logs)


async def test_key_of_another_username_is_refused(simulator) -> None:
    _app, server = simulator
    async with AfricasTalkingClient(server.url, "someone-else", API_KEY) as client:
        with pytest.raises(SmsProviderError) as caught:
            await client.send([GOOD_NUMBER], "hello")
    assert (caught.value.status, caught.value.retryable) == (401, False)


async def test_any_key_is_accepted_by_default(live_server) -> None:
    server = live_server(create_simulator_app())
    async with AfricasTalkingClient(server.url, "sandbox", "anything") as client:
        [result] = await client.send([GOOD_NUMBER], "hello")
    assert result.accepted


async def test_unreachable_provider_is_retryable() -> None:
    async with AfricasTalkingClient(f"http://127.0.0.1:{free_port()}", USERNAME, API_KEY) as client:
        with pytest.raises(SmsProviderError) as caught:
            await client.send([GOOD_NUMBER], "hello")
    assert caught.value.retryable
    assert caught.value.status is None


async def test_base_url_that_is_not_http_is_not_retryable() -> None:
    async with AfricasTalkingClient("ftp://127.0.0.1", USERNAME, API_KEY) as client:
        with pytest.raises(SmsProviderError) as caught:
            await client.send([GOOD_NUMBER], "hello")
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (503, "Service Unavailable", True),
        (500, "oops", True),
        (429, "slow down", True),
        (400, "Request is missing required form field 'to'", False),
    ],
)
async def test_http_errors_carry_retryability(live_server, status: int, body: str, retryable: bool) -> None:
    app = Starlette(
        routes=[Route("/version1/messaging", lambda _r: PlainTextResponse(body, status), methods=["POST"])]
    )
    server = live_server(app)
    with pytest.raises(SmsProviderError) as caught:
        await send(server, [GOOD_NUMBER])
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert body in str(caught.value)


@pytest.mark.parametrize(
    "reply",
    [
        PlainTextResponse("<html>not AT</html>", 200),
        JSONResponse({"unexpected": True}, 201),
        JSONResponse({"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}, 201),
    ],
    ids=["not-json", "not-at-json", "no-recipients"],
)
async def test_unusable_success_reply_is_not_retryable(live_server, reply: Response) -> None:
    app = Starlette(routes=[Route("/version1/messaging", lambda _r: reply, methods=["POST"])])
    server = live_server(app)
    with pytest.raises(SmsProviderError) as caught:
        await send(server, [GOOD_NUMBER])
    assert not caught.value.retryable


async def test_client_posts_at_form_and_headers(live_server) -> None:
    seen: list[tuple[dict[str, str], dict[str, str]]] = []

    async def capture(request: Request) -> Response:
        seen.append((dict(request.headers), dict(parse_qsl((await request.body()).decode()))))
        recipient = {"statusCode": 102, "number": GOOD_NUMBER, "cost": "KES 0.8000", "status": "Queued"}
        return JSONResponse({"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [recipient]}}, 201)

    server = live_server(Starlette(routes=[Route("/version1/messaging", capture, methods=["POST"])]))
    async with httpx.AsyncClient() as http:
        client = AfricasTalkingClient(server.url + "/", USERNAME, API_KEY, http=http)
        [queued] = await client.send(
            [" +254712345678", OTHER_GOOD_NUMBER], "Habari, €5 & more", sender_id="MALIPO"
        )
        [no_sender] = await client.send([GOOD_NUMBER], "x")
        await client.aclose()
        assert not http.is_closed  # the caller's client stays open

    assert (queued.accepted, queued.status_code, queued.message_id) == (True, 102, None)
    assert no_sender.accepted
    (headers, form), (_, form_without_sender) = seen
    assert headers["apikey"] == API_KEY
    assert headers["accept"] == "application/json"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert form == {
        "username": USERNAME,
        "to": f"{GOOD_NUMBER},{OTHER_GOOD_NUMBER}",
        "message": "Habari, €5 & more",
        "from": "MALIPO",
    }
    assert "from" not in form_without_sender


async def test_send_needs_recipients() -> None:
    async with AfricasTalkingClient("http://127.0.0.1:9", USERNAME, API_KEY) as client:
        with pytest.raises(ValueError, match="recipient"):
            await client.send([], "hello")
        with pytest.raises(ValueError, match="comma"):
            await client.send(["+254712345678,+254733000111"], "hello")


# -- delivery report parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("Success", "delivered"),
        ("Failed", "failed"),
        ("Rejected", "failed"),
        ("AbsentSubscriber", "failed"),
        ("Expired", "failed"),
        ("Sent", "sent"),
        ("Submitted", "sent"),
        ("Buffered", "sent"),
        ("SomethingNew", "sent"),
    ],
)
def test_delivery_report_status_is_normalised(raw: str, state: str) -> None:
    report = parse_delivery_report({"id": "ATXid_1", "status": raw, "phoneNumber": GOOD_NUMBER})
    assert (report.status, report.raw_status) == (state, raw)


def test_delivery_report_optional_fields() -> None:
    report = parse_delivery_report(
        {"id": "ATXid_1", "status": "Rejected", "failureReason": "DeliveryFailure", "retryCount": "2"}
    )
    assert (report.failure_reason, report.retry_count, report.phone_number, report.network_code) == (
        "DeliveryFailure",
        2,
        None,
        None,
    )
    blank = parse_delivery_report(
        {"id": "ATXid_1", "status": "Success", "failureReason": "", "retryCount": ""}
    )
    assert (blank.failure_reason, blank.retry_count) == (None, None)


@pytest.mark.parametrize("form", [{"status": "Success"}, {"id": "ATXid_1"}, {"id": " ", "status": "Success"}])
def test_delivery_report_without_id_or_status_is_invalid(form: dict[str, str]) -> None:
    with pytest.raises(InvalidDeliveryReport):
        parse_delivery_report(form)
