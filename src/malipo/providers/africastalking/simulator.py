"""A local Africa's Talking SMS API: the same endpoint, form, replies and delivery reports.

``create_simulator_app()`` returns an ASGI app answering
``POST /version1/messaging`` the way AT does (see
``shared/reference/sms-whatsapp-apis.md``):

* the ``apiKey`` header is checked: against the ``api_keys`` given (key ->
  username), or any non-empty key by default. A missing or wrong key gets
  HTTP 401 ``text/plain`` "The supplied authentication is invalid";
* a missing ``username``, ``to`` or ``message`` gets HTTP 400 ``text/plain``;
* otherwise HTTP 201 with ``{"SMSMessageData": {"Message": "Sent to N/M Total
  Cost: KES X", "Recipients": [...]}}``, one recipient per number in ``to``.
  Accepted ones are ``status: "Success"``, ``statusCode: 101``, a
  ``messageId`` like ``ATXid_<32 hex>``, ``cost`` of ``cost_per_segment`` per
  segment (``"KES 0.8000"``) and ``messageParts``. A number that is not
  E.164 (``+`` and 8-15 digits) gets 403 InvalidPhoneNumber; a ``from`` not in
  ``sender_ids`` (when given) gets 402 InvalidSenderId; refused recipients
  have ``cost: "0"`` and ``messageId: "None"``. The reply is always JSON.

After the reply has been sent, and ``report_delay`` seconds later, each
accepted recipient's delivery report is POSTed form-encoded (``id``,
``status``, ``phoneNumber``, ``networkCode``, ``failureReason`` when failed,
``retryCount``) to ``delivery_report_url``, an attribute read at report time,
so an app that mounts the simulator can point it at itself once it knows its
own URL. A report is tried ``report_attempts`` times until it gets a 2xx
(waiting ``report_retry_delay``, doubled each time, between tries); with no
URL none is sent. A recipient's reports go out in order, each once the one
before it was answered or given up.

Reports are posted by ``report_concurrency`` sender tasks working through one
schedule, one report per request (as AT does): a bulk's thousands of reports
are due at once, and a task per report would hand them all to the HTTP
client's connection pool together, whose bookkeeping grows with its queue.

Outcomes are chosen by recipient number (:data:`TEST_NUMBERS`); any other
valid number is accepted and reported ``Success``:

================  ===========================  ==========================================
number            at send                      delivery reports
================  ===========================  ==========================================
+254711000001     101 Success                  Failed, failureReason UserInBlacklist
+254711000002     101 Success                  AbsentSubscriber
+254711000003     406 UserInBlacklist          none (refused)
+254711000004     101 Success                  none, ever
+254711000005     500 InternalServerError      none (refused, retryable)
+254711000006     101 Success                  Buffered, then Success
================  ===========================  ==========================================

Every request that passed authentication is recorded in ``app.messages``
(also ``app.state.messages``) and every report attempted in ``app.reports``
(``app.state.reports``), for tests and local inspection.

Pending reports are kept by the app and sent from its event loop; they are
dropped when the app's lifespan ends, or by ``await app.aclose()`` for an app
mounted inside another one (a mounted app's own lifespan does not run).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import re
import secrets
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from malipo.core.logging import get_logger
from malipo.core.segments import count_segments
from malipo.providers.africastalking.client import MESSAGING_PATH, STATUS_NAMES

__all__ = [
    "AUTH_FAILED_BODY",
    "NUMBER_ABSENT_SUBSCRIBER",
    "NUMBER_BUFFERED_THEN_DELIVERED",
    "NUMBER_DELIVERY_FAILED",
    "NUMBER_NO_REPORT",
    "NUMBER_PROVIDER_ERROR",
    "NUMBER_REJECTED_AT_SEND",
    "TEST_NUMBERS",
    "AfricasTalkingSimulator",
    "NumberOutcome",
    "SentReport",
    "SimulatedMessage",
    "create_simulator_app",
]

log = get_logger("malipo.providers.africastalking.simulator")

AUTH_FAILED_BODY = "The supplied authentication is invalid"

_SUCCESS_CODE = 101
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


@dataclass(frozen=True, slots=True)
class NumberOutcome:
    """What the simulator does for one recipient: its statusCode at send, then its delivery reports.

    ``reports`` are ``(status, failureReason)`` pairs, sent in order; only
    recipients accepted at send (statusCode 101) get any.
    """

    status_code: int = _SUCCESS_CODE
    reports: tuple[tuple[str, str | None], ...] = (("Success", None),)


NUMBER_DELIVERY_FAILED = "+254711000001"
NUMBER_ABSENT_SUBSCRIBER = "+254711000002"
NUMBER_REJECTED_AT_SEND = "+254711000003"
NUMBER_NO_REPORT = "+254711000004"
NUMBER_PROVIDER_ERROR = "+254711000005"
NUMBER_BUFFERED_THEN_DELIVERED = "+254711000006"

TEST_NUMBERS: Mapping[str, NumberOutcome] = {
    NUMBER_DELIVERY_FAILED: NumberOutcome(reports=(("Failed", "UserInBlacklist"),)),
    NUMBER_ABSENT_SUBSCRIBER: NumberOutcome(reports=(("AbsentSubscriber", None),)),
    NUMBER_REJECTED_AT_SEND: NumberOutcome(status_code=406, reports=()),
    NUMBER_NO_REPORT: NumberOutcome(reports=()),
    NUMBER_PROVIDER_ERROR: NumberOutcome(status_code=500, reports=()),
    NUMBER_BUFFERED_THEN_DELIVERED: NumberOutcome(reports=(("Buffered", None), ("Success", None))),
}
_DEFAULT_OUTCOME = NumberOutcome()


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One authenticated send request as the simulator received and answered it."""

    username: str
    to: list[str]
    message: str
    sender_id: str | None
    segments: int
    recipients: list[dict[str, object]]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class SentReport:
    """One delivery report the simulator tried to POST: ``http_status`` is None when no reply came."""

    url: str
    form: dict[str, str]
    attempts: int
    http_status: int | None

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


@dataclass(slots=True)
class _PendingReport:
    """One accepted recipient's reports: ``step`` is the next to send, ``attempt`` its tries so far."""

    message_id: str
    number: str
    reports: tuple[tuple[str, str | None], ...]
    step: int = 0
    attempt: int = 0


class AfricasTalkingSimulator(Starlette):
    """The simulator app (see the module docstring); build it with :func:`create_simulator_app`."""

    def __init__(
        self,
        *,
        delivery_report_url: str | None,
        report_delay: float,
        api_keys: Mapping[str, str] | None,
        sender_ids: Collection[str] | None,
        currency: str,
        cost_per_segment: Decimal,
        report_attempts: int,
        report_retry_delay: float,
        report_http: httpx.AsyncClient | None,
        report_concurrency: int,
    ) -> None:
        super().__init__(
            routes=[Route(MESSAGING_PATH, self._send_sms, methods=["POST"])],
            lifespan=self._lifespan,
        )
        self.delivery_report_url = delivery_report_url
        self.report_delay = report_delay
        self.api_keys = dict(api_keys) if api_keys is not None else None
        self.sender_ids = frozenset(sender_ids) if sender_ids is not None else None
        self.currency = currency
        self.cost_per_segment = cost_per_segment
        self.report_attempts = max(1, report_attempts)
        self.report_retry_delay = report_retry_delay
        self.messages: list[SimulatedMessage] = []
        self.reports: list[SentReport] = []
        self.state.messages = self.messages
        self.state.reports = self.reports
        self.report_concurrency = max(1, report_concurrency)
        self._report_http = report_http
        self._own_report_http = report_http is None
        # Reports by due time (loop time, then arrival order); those due are handed to the senders.
        self._schedule: list[tuple[float, int, _PendingReport]] = []
        self._order = itertools.count()
        self._due: asyncio.Queue[_PendingReport] | None = None
        self._rescheduled: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outstanding = 0
        self._idle: asyncio.Event | None = None

    # -- inspection --------------------------------------------------------------------------------

    @property
    def pending_reports(self) -> int:
        """Recipients whose delivery reports are still to be sent."""
        return self._outstanding

    def clear(self) -> None:
        """Forget recorded messages and reports (pending reports still go out)."""
        self.messages.clear()
        self.reports.clear()

    async def drain(self) -> None:
        """Wait until every pending delivery report has been sent or given up (same event loop only)."""
        while self._outstanding and self._idle is not None:
            await self._idle.wait()

    async def aclose(self) -> None:
        """Drop pending delivery reports, stop the senders and close the HTTP client made for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._schedule.clear()
        self._due = self._rescheduled = None
        self._loop = None
        self._outstanding = 0
        if self._idle is not None:
            self._idle.set()
        if self._own_report_http and self._report_http is not None:
            await self._report_http.aclose()
            self._report_http = None

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    # -- the API -----------------------------------------------------------------------------------

    async def _send_sms(self, request: Request) -> Response:
        api_key = request.headers.get("apikey", "")
        if not api_key:
            return PlainTextResponse(AUTH_FAILED_BODY, status_code=401)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        for name in ("username", "to", "message"):
            if not form.get(name):
                return PlainTextResponse(f"Request is missing required form field '{name}'", status_code=400)
        username = form["username"]
        if self.api_keys is not None and self.api_keys.get(api_key) != username:
            return PlainTextResponse(AUTH_FAILED_BODY, status_code=401)

        message = form["message"]
        sender_id = form.get("from") or None
        numbers = [number.strip() for number in form["to"].split(",") if number.strip()]
        segments = count_segments(message).segments
        recipients: list[dict[str, object]] = []
        pending: list[_PendingReport] = []
        accepted, total = 0, Decimal(0)
        for number in numbers:
            outcome = TEST_NUMBERS.get(number, _DEFAULT_OUTCOME)
            if not _E164.fullmatch(number):
                code = 403
            elif self.sender_ids is not None and sender_id is not None and sender_id not in self.sender_ids:
                code = 402
            else:
                code = outcome.status_code
            if code != _SUCCESS_CODE:
                recipients.append(
                    {
                        "cost": "0",
                        "messageId": "None",
                        "number": number,
                        "status": STATUS_NAMES.get(code, "Unknown"),
                        "statusCode": code,
                    }
                )
                continue
            message_id = f"ATXid_{secrets.token_hex(16)}"
            cost = self.cost_per_segment * segments
            accepted += 1
            total += cost
            recipients.append(
                {
                    "statusCode": _SUCCESS_CODE,
                    "number": number,
                    "cost": self._money(cost),
                    "status": "Success",
                    "messageId": message_id,
                    "messageParts": segments,
                }
            )
            if outcome.reports:
                pending.append(_PendingReport(message_id, number, outcome.reports))

        self.messages.append(SimulatedMessage(username, numbers, message, sender_id, segments, recipients))
        summary = f"Sent to {accepted}/{len(numbers)} Total Cost: {self._money(total) if total else '0'}"
        body = {"SMSMessageData": {"Message": summary, "Recipients": recipients}}
        # Scheduled only once the reply is on the wire, so a report never overtakes its messageId.
        return JSONResponse(body, status_code=201, background=BackgroundTask(self._schedule_reports, pending))

    def _money(self, amount: Decimal) -> str:
        return f"{self.currency} {amount:.4f}"

    # -- delivery reports --------------------------------------------------------------------------

    async def _schedule_reports(self, pending: list[_PendingReport]) -> None:
        # Async on purpose: Starlette runs a sync background function in a thread, without a loop.
        if not pending:
            return
        self._start_senders()
        assert self._idle is not None
        self._outstanding += len(pending)
        self._idle.clear()
        due = asyncio.get_running_loop().time() + self.report_delay
        for item in pending:
            self._plan(item, due)

    def _start_senders(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._tasks:
            return
        # First use, or the loop that ran the senders is gone (a new server of the same app).
        self._loop = loop
        self._schedule.clear()
        self._outstanding = 0
        self._due = asyncio.Queue()
        self._rescheduled = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks = [
            asyncio.create_task(self._release_due(self._due, self._rescheduled), name="at-simulator reports")
        ]
        self._tasks += [
            asyncio.create_task(self._send_due(self._due), name=f"at-simulator report sender {n}")
            for n in range(self.report_concurrency)
        ]

    def _plan(self, item: _PendingReport, due: float) -> None:
        assert self._rescheduled is not None
        heapq.heappush(self._schedule, (due, next(self._order), item))
        self._rescheduled.set()

    def _finish(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0 and self._idle is not None:
            self._outstanding = 0
            self._idle.set()

    async def _release_due(self, due: asyncio.Queue[_PendingReport], rescheduled: asyncio.Event) -> None:
        """Move reports from the schedule to the senders' queue as they fall due."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._schedule and self._schedule[0][0] <= now:
                due.put_nowait(heapq.heappop(self._schedule)[2])
            rescheduled.clear()
            wait = self._schedule[0][0] - now if self._schedule else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rescheduled.wait(), timeout=wait)

    async def _send_due(self, due: asyncio.Queue[_PendingReport]) -> None:
        while True:
            item = await due.get()
            try:
                await self._send_step(item)
            except Exception:  # a sender must outlive any one report
                log.exception("sms.simulator.report_error", message_id=item.message_id)
                self._finish()

    async def _send_step(self, item: _PendingReport) -> None:
        """One try of ``item``'s next report; then its retry, its next report, or its end is planned."""
        url = self.delivery_report_url
        if not url:
            self._finish()
            return
        status, failure_reason = item.reports[item.step]
        form = {
            "id": item.message_id,
            "status": status,
            "phoneNumber": item.number,
            "networkCode": _network_code(item.number),
            "retryCount": "0",
        }
        if failure_reason:
            form["failureReason"] = failure_reason
        item.attempt += 1
        http_status = await self._post_report(url, form, item.attempt)
        delivered = http_status is not None and 200 <= http_status < 300
        loop = asyncio.get_running_loop()
        if not delivered and item.attempt < self.report_attempts:
            self._plan(item, loop.time() + self.report_retry_delay * 2 ** (item.attempt - 1))
            return
        report = SentReport(url=url, form=form, attempts=item.attempt, http_status=http_status)
        self.reports.append(report)
        if not delivered:
            log.warning("sms.simulator.report_given_up", attempts=item.attempt, http_status=http_status)
        item.step += 1
        item.attempt = 0
        if item.step < len(item.reports):
            self._plan(item, loop.time())
        else:
            self._finish()

    async def _post_report(self, url: str, form: dict[str, str], attempt: int) -> int | None:
        if self._report_http is None:
            self._report_http = httpx.AsyncClient(
                timeout=30.0, limits=httpx.Limits(max_connections=self.report_concurrency)
            )
        try:
            response = await self._report_http.post(url, data=form)
        except httpx.HTTPError as exc:
            log.warning("sms.simulator.report_failed", attempt=attempt, error=type(exc).__name__)
            return None
        return response.status_code


def create_simulator_app(
    *,
    delivery_report_url: str | None = None,
    report_delay: float = 0.0,
    api_keys: Mapping[str, str] | None = None,
    sender_ids: Collection[str] | None = None,
    currency: str = "KES",
    cost_per_segment: Decimal = Decimal("0.8"),
    report_attempts: int = 3,
    report_retry_delay: float = 0.2,
    report_http: httpx.AsyncClient | None = None,
    report_concurrency: int = 4,
) -> AfricasTalkingSimulator:
    """An Africa's Talking SMS simulator (see the module docstring for its behaviour).

    ``api_keys`` maps each accepted key to its username (None: any non-empty
    key, any username); ``sender_ids`` lists the allowed ``from`` values (None:
    any). ``report_http`` is the client delivery reports are posted with (one
    is made when None and closed with the app); ``report_concurrency`` is how
    many reports are in flight at once at most.
    """
    return AfricasTalkingSimulator(
        delivery_report_url=delivery_report_url,
        report_delay=report_delay,
        api_keys=api_keys,
        sender_ids=sender_ids,
        currency=currency,
        cost_per_segment=cost_per_segment,
        report_attempts=report_attempts,
        report_retry_delay=report_retry_delay,
        report_http=report_http,
        report_concurrency=report_concurrency,
    )


def _network_code(number: str) -> str:
    """A plausible MCC+MNC for the number: Safaricom or Airtel for Kenyan ones, else unknown."""
    if number.startswith(("+25470", "+25471", "+25472", "+25474", "+25479", "+254110", "+254111")):
        return "63902"
    if number.startswith(("+25473", "+25475", "+25478", "+254100", "+254101", "+254102")):
        return "63903"
    return ""
