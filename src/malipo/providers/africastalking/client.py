"""The Africa's Talking SMS API: send a message, read delivery reports.

:class:`AfricasTalkingClient` posts the form AT documents to
``{base_url}/version1/messaging`` with the ``apiKey`` header and
``Accept: application/json`` and returns one :class:`RecipientResult` per
recipient. AT answers a request it could read with HTTP 201 even when some or
all recipients were refused, so per-recipient outcomes are results, not
errors; only a request that failed as a whole raises :class:`SmsProviderError`.

:func:`parse_delivery_report` reads the form AT posts to the delivery report
callback URL.

The API key never appears in a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx

from malipo.core.logging import get_logger

__all__ = [
    "ACCEPTED_STATUS_CODES",
    "LIVE_BASE_URL",
    "MESSAGING_PATH",
    "RETRYABLE_STATUS_CODES",
    "SANDBOX_BASE_URL",
    "STATUS_NAMES",
    "AfricasTalkingClient",
    "DeliveryReport",
    "DeliveryState",
    "InvalidDeliveryReport",
    "RecipientResult",
    "SmsProviderError",
    "parse_delivery_report",
]

log = get_logger("malipo.providers.africastalking")

LIVE_BASE_URL = "https://api.africastalking.com"
SANDBOX_BASE_URL = "https://api.sandbox.africastalking.com"
MESSAGING_PATH = "/version1/messaging"

# Recipient statusCode -> AT's status name (101 is shown as "Success" in replies).
STATUS_NAMES: dict[int, str] = {
    100: "Processed",
    101: "Sent",
    102: "Queued",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}
ACCEPTED_STATUS_CODES = frozenset({100, 101, 102})
# AT's own transient failures. 502 RejectedByGateway is a downstream verdict on the message, and
# 405 InsufficientBalance needs the operator to top up: sending again soon would fail the same way.
RETRYABLE_STATUS_CODES = frozenset({500, 501})

DeliveryState = Literal["delivered", "failed", "sent"]
# Delivery report status -> malipo's state. "sent" is not final: a later report follows.
_DELIVERY_STATES: dict[str, DeliveryState] = {
    "Success": "delivered",
    "Failed": "failed",
    "Rejected": "failed",
    "AbsentSubscriber": "failed",
    "Expired": "failed",
    "Sent": "sent",
    "Submitted": "sent",
    "Buffered": "sent",
}
_DEFAULT_TIMEOUT = 10.0


class SmsProviderError(Exception):
    """A send request failed as a whole; no recipient result is known.

    ``retryable`` is True when sending the same request again later may work:
    connection failures, timeouts, HTTP 429 and 5xx. A refused API key (401),
    any other 4xx, or a reply that is not AT's JSON are not retryable: the
    configuration or the request must change first. ``status`` is the HTTP
    status when there was a reply.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class InvalidDeliveryReport(ValueError):
    """A delivery report callback lacks the fields every report carries (``id``, ``status``)."""


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """AT's verdict on one recipient of a send request.

    ``message_id`` is None when AT gave none (it sends the string ``"None"``
    for refused recipients); ``cost`` is AT's string, e.g. ``"KES 0.8000"``
    or ``"0"``.
    """

    number: str
    status: str
    status_code: int
    message_id: str | None
    cost: str
    message_parts: int | None = None

    @property
    def accepted(self) -> bool:
        """AT took the message for this recipient (Processed, Sent/Success or Queued)."""
        return self.status_code in ACCEPTED_STATUS_CODES

    @property
    def retryable(self) -> bool:
        """Refused for a transient reason on AT's side: sending to this recipient again may work."""
        return not self.accepted and (
            self.status_code in RETRYABLE_STATUS_CODES
            or (self.status_code >= 500 and self.status_code not in STATUS_NAMES)
        )


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One delivery report callback, with AT's status normalised to ``status``.

    ``status`` is ``"delivered"`` (Success), ``"failed"`` (Failed, Rejected,
    AbsentSubscriber, Expired) or ``"sent"`` (Sent, Submitted, Buffered, and any
    status this module does not know: not final, a later report may follow).
    """

    message_id: str
    status: DeliveryState
    raw_status: str
    failure_reason: str | None
    phone_number: str | None
    network_code: str | None = None
    retry_count: int | None = None

    @property
    def final(self) -> bool:
        """No further report is expected for this message."""
        return self.status != "sent"


def parse_delivery_report(form: Mapping[str, str]) -> DeliveryReport:
    """Read AT's delivery report form (``id``, ``status``, ``phoneNumber``, ``networkCode``,
    ``failureReason``, ``retryCount``).

    Raises :class:`InvalidDeliveryReport` when ``id`` or ``status`` is missing or empty.
    """
    message_id = (form.get("id") or "").strip()
    raw_status = (form.get("status") or "").strip()
    if not message_id or not raw_status:
        raise InvalidDeliveryReport("a delivery report needs both 'id' and 'status'")
    retry_count = (form.get("retryCount") or "").strip()
    return DeliveryReport(
        message_id=message_id,
        status=_DELIVERY_STATES.get(raw_status, "sent"),
        raw_status=raw_status,
        failure_reason=_blank_to_none(form.get("failureReason")),
        phone_number=_blank_to_none(form.get("phoneNumber")),
        network_code=_blank_to_none(form.get("networkCode")),
        retry_count=int(retry_count) if retry_count.isdigit() else None,
    )


class AfricasTalkingClient:
    """Sends SMS through Africa's Talking (or anything speaking its protocol, like the simulator).

    ``base_url`` is the API root without the path: :data:`LIVE_BASE_URL`,
    :data:`SANDBOX_BASE_URL` or a simulator's URL. Pass ``http`` to share a
    client (it stays the caller's to close); otherwise one is made with
    ``timeout`` and closed by :meth:`aclose` or ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> None:
        if not api_key:
            raise ValueError("an Africa's Talking API key is required")
        self.base_url = base_url
        self.username = username
        self._api_key = api_key
        self._own_http = http is None
        self.http = http if http is not None else httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return f"AfricasTalkingClient(base_url={self.base_url!r}, username={self.username!r})"

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + MESSAGING_PATH

    async def send(self, to: list[str], message: str, sender_id: str | None = None) -> list[RecipientResult]:
        """Send ``message`` to every number in ``to`` (E.164, ``+2547…``), from ``sender_id``
        or AT's shared sender when None.

        Returns AT's result for each recipient, in AT's order; check
        :attr:`RecipientResult.accepted`. Raises :class:`SmsProviderError` when
        the request as a whole failed, and ``ValueError`` for no recipients or
        a number holding a comma.
        """
        numbers = [number.strip() for number in to]
        if not numbers or not all(numbers):
            raise ValueError("at least one non-empty recipient number is required")
        if any("," in number for number in numbers):
            raise ValueError("a recipient number cannot contain a comma")
        form = {"username": self.username, "to": ",".join(numbers), "message": message}
        if sender_id:
            form["from"] = sender_id
        headers = {"apiKey": self._api_key, "Accept": "application/json"}

        try:
            response = await self.http.post(self.endpoint, data=form, headers=headers)
        except httpx.UnsupportedProtocol as exc:  # a base URL that is not http(s): configuration
            raise SmsProviderError(
                f"Africa's Talking base URL is not usable: {exc}", retryable=False
            ) from exc
        except httpx.TimeoutException as exc:
            log.warning("sms.africastalking.timeout", recipients=len(numbers))
            raise SmsProviderError(
                f"Africa's Talking did not answer in time: {type(exc).__name__}", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            log.warning("sms.africastalking.unreachable", recipients=len(numbers), error=type(exc).__name__)
            raise SmsProviderError(
                f"Africa's Talking could not be reached: {type(exc).__name__}", retryable=True
            ) from exc

        results = self._read_reply(response)
        log.info(
            "sms.africastalking.sent",
            recipients=len(numbers),
            accepted=sum(result.accepted for result in results),
            status_codes=sorted({result.status_code for result in results}),
        )
        return results

    def _read_reply(self, response: httpx.Response) -> list[RecipientResult]:
        status = response.status_code
        if status >= 400:
            # AT's error bodies are short text ("The supplied authentication is invalid").
            body = response.text[:200].strip()
            retryable = status >= 500 or status == 429
            log.warning("sms.africastalking.refused", http_status=status, body=body)
            raise SmsProviderError(
                f"Africa's Talking answered HTTP {status}: {body or response.reason_phrase}",
                retryable=retryable,
                status=status,
            )
        try:
            data = response.json()
            reply = data["SMSMessageData"]
            recipients = reply.get("Recipients") or []
            results = [_recipient(item) for item in recipients]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SmsProviderError(
                f"Africa's Talking answered HTTP {status} with a body that is not its JSON reply",
                retryable=False,
                status=status,
            ) from exc
        if not results:
            # E.g. {"Message": "InvalidSenderId", "Recipients": []}: nothing was sent to anyone.
            summary = str(reply.get("Message") or "no recipients in the reply")[:200]
            raise SmsProviderError(
                f"Africa's Talking sent to no recipient: {summary}", retryable=False, status=status
            )
        return results

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AfricasTalkingClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _recipient(item: Any) -> RecipientResult:
    code = int(item["statusCode"])
    message_id = str(item.get("messageId") or "")
    parts = item.get("messageParts")
    return RecipientResult(
        number=str(item["number"]),
        status=str(item.get("status") or STATUS_NAMES.get(code, "Unknown")),
        status_code=code,
        message_id=None if message_id in ("", "None") else message_id,
        cost=str(item.get("cost") or "0"),
        message_parts=int(parts) if parts is not None else None,
    )


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None
