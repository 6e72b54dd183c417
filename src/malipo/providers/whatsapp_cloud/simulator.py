"""A simulator of Meta's WhatsApp Cloud API ``messages`` endpoint, for tests and sandbox mode.

``POST /{version}/{phone_number_id}/messages`` takes the same Bearer token and JSON body as the
real API and answers in its shapes: ``{"messaging_product", "contacts", "messages": [{"id":
"wamid.…"}]}`` or a Graph error ``{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}``.

Authentication: with ``tokens`` (phone_number_id -> token) only those pairs pass; an unknown token
is 401 code 190, a known token used for another number is 400 code 100 subcode 33. Without
``tokens`` any non-empty token passes for any phone_number_id.

The body is checked strictly (an unknown field is refused too, to catch typos): messaging_product
``whatsapp``, recipient_type ``individual`` if given, ``to`` 8-15 digits with an optional ``+``,
and one message object, named by ``type``:

- ``text``: text.body 1-4096 characters, text.preview_url a boolean;
- ``image``: image.link (an absolute http(s) URL) or image.id (an uploaded media id), not both,
  and image.caption up to 1024 characters;
- ``document``: the same as an image, plus document.filename.

Anything else is HTTP 400 code 100 with the reason in ``error_data.details``. Media links are
checked, not fetched.

The recipient's last four digits choose the outcome (:data:`TEST_NUMBERS`):

======  =====  ======  ============================================================  =========
ends    HTTP   code    reply                                                         retryable
======  =====  ======  ============================================================  =========
0001    400    131026  Message undeliverable                                         no
0002    400    130429  Rate limit hit (throughput)                                   yes
0003    400    131056  Pair rate limit hit (same recipient too often)                yes
0004    400    131047  Re-engagement message (outside the 24-hour window)            no
0005    500    131000  Something went wrong                                          yes
0009    200    -       accepted; the ``sent`` webhook is followed by ``failed`` 131026  -
other   200    -       accepted; ``sent`` then ``delivered`` webhooks                 -
======  =====  ======  ============================================================  =========

With ``status_webhook_url`` each accepted message gets its status webhooks, one POST per status,
each ``status_delay`` seconds after the previous step, in Meta's ``whatsapp_business_account``
envelope (signed with ``X-Hub-Signature-256`` when ``app_secret`` is given). Unlike Meta, a
delivery that fails is logged and not retried. Every request to the endpoint is recorded in
``app.state.messages`` (a list of :class:`ReceivedMessage`) for tests and the developer to inspect.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.core.logging import get_logger

__all__ = [
    "BUSINESS_ACCOUNT_ID",
    "DISPLAY_PHONE_NUMBER",
    "MAX_BODY_CHARS",
    "MAX_CAPTION_CHARS",
    "TEST_NUMBERS",
    "ReceivedMessage",
    "SimulatedOutcome",
    "create_simulator_app",
]

log = get_logger("malipo.providers.whatsapp_cloud.simulator")

MAX_BODY_CHARS = 4096
MAX_CAPTION_CHARS = 1024  # an image's or document's caption
# What the simulated business account and number look like in webhooks' ``entry.id`` and ``metadata``.
BUSINESS_ACCOUNT_ID = "100000000000001"
DISPLAY_PHONE_NUMBER = "15550001234"

_VERSION = re.compile(r"v\d+\.\d+")
_RECIPIENT = re.compile(r"\+?\d{8,15}")
# The message objects, each under the key its ``type`` names, and the fields each may hold.
_MESSAGE_FIELDS = {
    "text": frozenset({"body", "preview_url"}),
    "image": frozenset({"id", "link", "caption"}),
    "document": frozenset({"id", "link", "caption", "filename"}),
}
_TOP_LEVEL_FIELDS = frozenset(
    {"messaging_product", "recipient_type", "to", "type", "context", "biz_opaque_callback_data"}
) | frozenset(_MESSAGE_FIELDS)
_LINK = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SimulatedOutcome:
    """What the simulator does for a test number: an error reply, or acceptance and a final status."""

    http_status: int
    code: int | None = None
    title: str | None = None
    details: str | None = None
    final_status: str = "delivered"  # the webhook after ``sent`` for an accepted message


_ACCEPTED = SimulatedOutcome(200)
_UNDELIVERABLE = "Message failed to send because the recipient is not reachable on WhatsApp."

TEST_NUMBERS: dict[str, SimulatedOutcome] = {
    "0001": SimulatedOutcome(400, 131026, "Message undeliverable", _UNDELIVERABLE),
    "0002": SimulatedOutcome(
        400, 130429, "Rate limit hit", "Cloud API message throughput has been reached for this phone number."
    ),
    "0003": SimulatedOutcome(
        400,
        131056,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time.",
    ),
    "0004": SimulatedOutcome(
        400,
        131047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    "0005": SimulatedOutcome(
        500, 131000, "Something went wrong", "Message failed to send due to an unknown error."
    ),
    "0009": SimulatedOutcome(200, 131026, "Message undeliverable", _UNDELIVERABLE, final_status="failed"),
}


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One request the simulator received, and what it answered."""

    version: str
    phone_number_id: str
    body: Any  # the parsed JSON, or None when the body was not JSON
    http_status: int
    message_id: str | None = None  # set when accepted
    error_code: int | None = None  # set when refused


class _GraphError(Exception):
    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        *,
        details: str | None = None,
        subcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.details = details
        self.subcode = subcode

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return JSONResponse({"error": error}, status_code=self.http_status)


def _invalid(details: str) -> _GraphError:
    return _GraphError(400, 100, "(#100) Invalid parameter", details=details)


def create_simulator_app(
    *,
    tokens: dict[str, str] | None = None,
    status_webhook_url: str | None = None,
    status_delay: float = 0.0,
    app_secret: str | None = None,
) -> Starlette:
    """A Starlette app that behaves like the Cloud API's send-message endpoint (see the module doc)."""
    messages: list[ReceivedMessage] = []
    webhook_tasks: set[asyncio.Task[None]] = set()

    async def send_message(request: Request) -> JSONResponse:
        version = request.path_params["version"]
        phone_number_id = request.path_params["phone_number_id"]
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        try:
            _authenticate(request.headers.get("authorization"), phone_number_id, tokens)
            if not _VERSION.fullmatch(version):
                raise _invalid(f"unknown Graph API version {version!r}; expected e.g. v23.0")
            to = _validate(body)
            outcome = TEST_NUMBERS.get(to[-4:], _ACCEPTED)
            if outcome.http_status != 200 and outcome.code is not None:
                raise _GraphError(
                    outcome.http_status,
                    outcome.code,
                    f"(#{outcome.code}) {outcome.title}",
                    details=outcome.details,
                )
        except _GraphError as refused:
            messages.append(
                ReceivedMessage(version, phone_number_id, body, refused.http_status, error_code=refused.code)
            )
            return refused.response()

        wa_id = to.removeprefix("+")
        message_id = "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()
        messages.append(ReceivedMessage(version, phone_number_id, body, 200, message_id=message_id))
        if status_webhook_url:
            task = asyncio.create_task(
                _deliver_statuses(
                    status_webhook_url, status_delay, app_secret, phone_number_id, message_id, wa_id, outcome
                )
            )
            webhook_tasks.add(task)
            task.add_done_callback(webhook_tasks.discard)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [{"id": message_id}],
            }
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            pending = list(webhook_tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    app = Starlette(
        routes=[Route("/{version}/{phone_number_id}/messages", send_message, methods=["POST"])],
        lifespan=lifespan,
    )
    app.state.messages = messages
    app.state.webhook_tasks = webhook_tasks
    return app


# -- checks --------------------------------------------------------------------------------------


def _authenticate(authorization: str | None, phone_number_id: str, tokens: dict[str, str] | None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
    if tokens is None:
        return
    if not any(hmac.compare_digest(token, known) for known in tokens.values()):
        raise _GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
    expected = tokens.get(phone_number_id)
    if expected is None or not hmac.compare_digest(token, expected):
        raise _GraphError(
            400,
            100,
            f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, cannot be loaded "
            "due to missing permissions, or does not support this operation.",
            subcode=33,
        )


def _validate(body: Any) -> str:
    """The recipient of a valid message body; raises code 100 naming the first problem."""
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    unknown = sorted(set(body) - _TOP_LEVEL_FIELDS)
    if unknown:
        raise _invalid(f"unknown parameter(s): {', '.join(unknown)}")
    if body.get("messaging_product") != "whatsapp":
        raise _invalid("messaging_product must be 'whatsapp'")
    if body.get("recipient_type", "individual") != "individual":
        raise _invalid("recipient_type must be 'individual'")
    to = body.get("to")
    if not isinstance(to, str) or not _RECIPIENT.fullmatch(to):
        raise _invalid("to must be a phone number of 8 to 15 digits, optionally starting with +")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in _MESSAGE_FIELDS:
        raise _invalid(
            "type must be 'text', 'image' or 'document' (the message types the simulator supports)"
        )
    for other in _MESSAGE_FIELDS:
        if other != kind and other in body:
            raise _invalid(f"type must be {other!r} to send a {other} object; got type {kind!r}")
    content = body.get(kind)
    if not isinstance(content, dict):
        what = "a body" if kind == "text" else "a link or an id"
        raise _invalid(f"{kind} must be an object with {what}")
    unknown = sorted(set(content) - _MESSAGE_FIELDS[kind])
    if unknown:
        raise _invalid(f"unknown parameter(s) in {kind}: {', '.join(unknown)}")
    if kind == "text":
        _validate_text(content)
    else:
        _validate_media(kind, content)
    context = body.get("context")
    if context is not None and not (isinstance(context, dict) and isinstance(context.get("message_id"), str)):
        raise _invalid("context must be an object with a message_id")
    return to


def _validate_text(text: dict[str, Any]) -> None:
    message = text.get("body")
    if not isinstance(message, str) or not 1 <= len(message) <= MAX_BODY_CHARS:
        raise _invalid(f"text.body must be a string of 1 to {MAX_BODY_CHARS} characters")
    if not isinstance(text.get("preview_url", False), bool):
        raise _invalid("text.preview_url must be a boolean")


def _validate_media(kind: str, media: dict[str, Any]) -> None:
    """An image or document: a hosted ``link`` or an uploaded ``id`` (Meta takes one, never both)."""
    link, media_id = media.get("link"), media.get("id")
    if link is None and media_id is None:
        raise _invalid(f"{kind} must have a link (a hosted media URL) or an id (an uploaded media id)")
    if link is not None and media_id is not None:
        raise _invalid(f"{kind} must have a link or an id, not both")
    if link is not None and not (isinstance(link, str) and _LINK.fullmatch(link)):
        raise _invalid(f"{kind}.link must be an absolute http or https URL")
    if media_id is not None and not (isinstance(media_id, str) and media_id.strip()):
        raise _invalid(f"{kind}.id must be a non-empty string")
    caption = media.get("caption")
    if caption is not None and not (isinstance(caption, str) and len(caption) <= MAX_CAPTION_CHARS):
        raise _invalid(f"{kind}.caption must be a string of at most {MAX_CAPTION_CHARS} characters")
    filename = media.get("filename")
    if filename is not None and not (isinstance(filename, str) and filename.strip()):
        raise _invalid(f"{kind}.filename must be a non-empty string")


# -- status webhooks -----------------------------------------------------------------------------


async def _deliver_statuses(
    url: str,
    delay: float,
    app_secret: str | None,
    phone_number_id: str,
    message_id: str,
    wa_id: str,
    outcome: SimulatedOutcome,
) -> None:
    """``sent`` then the outcome's final status, one webhook each, in order."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        for state in ("sent", outcome.final_status):
            await asyncio.sleep(delay)
            status = _status(state, message_id, wa_id, outcome)
            payload = _envelope(phone_number_id, status)
            raw = json.dumps(payload, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json"}
            if app_secret is not None:
                digest = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature-256"] = f"sha256={digest}"
            try:
                response = await http.post(url, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                log.warning(
                    "whatsapp_simulator.webhook_failed", message_id=message_id, status=state, error=repr(exc)
                )
                return
            if not response.is_success:
                log.warning(
                    "whatsapp_simulator.webhook_refused",
                    message_id=message_id,
                    status=state,
                    http_status=response.status_code,
                )


def _status(state: str, message_id: str, wa_id: str, outcome: SimulatedOutcome) -> dict[str, Any]:
    status: dict[str, Any] = {
        "id": message_id,
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": wa_id,
    }
    if state == "failed":
        status["errors"] = [
            {
                "code": outcome.code,
                "title": outcome.title,
                "message": outcome.title,
                "error_data": {"details": outcome.details},
            }
        ]
    else:
        status["conversation"] = {
            "id": hashlib.sha256(wa_id.encode()).hexdigest()[:32],
            "origin": {"type": "service"},
        }
        status["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    return status


def _envelope(phone_number_id: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": BUSINESS_ACCOUNT_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": [status],
                        },
                    }
                ],
            }
        ],
    }
