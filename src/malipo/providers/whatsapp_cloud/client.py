"""Client for Meta's WhatsApp Cloud API: send a text, an image or a document, read status webhooks.

``POST {base_url}/{version}/{phone-number-id}/messages`` with ``Authorization: Bearer <token>``;
a 200 reply carries the ``wamid.…`` id that later status webhooks refer to. Every failure is a
:class:`WhatsAppError` that says whether sending again may succeed (``retryable``) and whether the
message may have gone out anyway (``maybe_sent``: the Cloud API has no idempotency key, so a retry
after a lost reply can deliver the text twice).

The access token is never logged, never put in an error and never shown by ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from malipo.core.logging import get_logger

__all__ = [
    "DEFAULT_API_VERSION",
    "RETRYABLE_CODES",
    "THROTTLING_CODES",
    "SentMessage",
    "StatusUpdate",
    "WhatsAppCloudClient",
    "WhatsAppError",
    "is_retryable",
    "parse_status_webhook",
    "verify_webhook_signature",
]

log = get_logger("malipo.providers.whatsapp_cloud")

# The newest Graph version the reference saw in Meta's examples (v19.0 - v23.0); newer lives longer.
DEFAULT_API_VERSION = "v23.0"
DEFAULT_TIMEOUT = 10.0
# RFC 6750 b64token: what may follow "Bearer " in a header.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# Graph codes that mean "too many, slow down": 4 app call limit, 80007 WABA rate limit,
# 130429 phone-number throughput, 131056 business/customer pair rate (one text per ~6 s).
THROTTLING_CODES = frozenset({4, 80007, 130429, 131056})
# Throttling plus Meta's transient failures: 1 unknown/possible server error, 2 service
# down or overloaded, 131000 something went wrong, 131016 service unavailable, 131057 account in
# maintenance mode, 133004 server temporarily unavailable. Every other code is about the request,
# the token, the recipient or the account (100, 190, 131026, 131047, 131048 spam limit, …) and
# fails again the same way until someone changes something.
RETRYABLE_CODES = THROTTLING_CODES | frozenset({1, 2, 131000, 131016, 131057, 133004})


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A text the Cloud API accepted: its ``wamid.…`` id and the recipient's WhatsApp id."""

    message_id: str
    wa_id: str


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One ``statuses[]`` item of a ``messages`` webhook: what happened to a message we sent."""

    message_id: str
    status: str  # sent | delivered | read | failed (Meta may add others; passed through as is)
    recipient_id: str | None
    error_code: int | None = None
    error_title: str | None = None
    timestamp: int | None = None  # Unix seconds, as Meta sends it (a string) turned into an int
    phone_number_id: str | None = None  # from the change's ``metadata``


class WhatsAppError(Exception):
    """A send that failed. ``code`` is Graph's ``error.code`` when the API answered with one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        maybe_sent: bool = False,
        http_status: int | None = None,
        code: int | None = None,
        error_subcode: int | None = None,
        error_type: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.maybe_sent = maybe_sent
        self.http_status = http_status
        self.code = code
        self.error_subcode = error_subcode
        self.error_type = error_type
        self.details = details
        self.fbtrace_id = fbtrace_id

    @property
    def throttled(self) -> bool:
        """Meta asked us to slow down: back off longer than for an outage."""
        return self.code in THROTTLING_CODES

    def __repr__(self) -> str:
        return (
            f"WhatsAppError({self.message!r}, retryable={self.retryable}, http_status={self.http_status}, "
            f"code={self.code}, error_subcode={self.error_subcode})"
        )


def is_retryable(code: int | None, http_status: int | None) -> bool:
    """Whether a Graph error with this ``code`` (and HTTP status) may succeed if sent again."""
    if code is not None and code in RETRYABLE_CODES:
        return True
    return http_status is not None and (http_status >= 500 or http_status == 429)


class WhatsAppCloudClient:
    """Sends messages from one WhatsApp business phone number.

    Pass ``http`` to share a connection pool (the caller then closes it); otherwise the client
    owns one, closed by :meth:`aclose` or ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        phone_number_id: str,
        access_token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.phone_number_id = phone_number_id
        self.api_version = api_version
        self._access_token = access_token
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self.messages_url = (
            f"{self.base_url}/{quote(api_version, safe='')}/{quote(phone_number_id, safe='')}/messages"
        )

    def __repr__(self) -> str:
        return f"WhatsAppCloudClient({self.base_url!r}, phone_number_id={self.phone_number_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def send_text(self, to: str, body: str, preview_url: bool = False) -> SentMessage:
        """Send ``body`` as a free-form text to ``to`` (E.164 digits; a leading ``+`` is dropped).

        Free-form text reaches a customer only inside the 24-hour window after their last
        message; outside it Meta answers 131047. Raises :class:`WhatsAppError`.
        """
        return await self._send(to, "text", {"preview_url": preview_url, "body": body})

    async def send_image(self, to: str, link: str, caption: str | None = None) -> SentMessage:
        """Send the image at ``link`` (an http(s) URL Meta downloads it from), with an optional
        caption (Meta allows up to 1024 characters). Same window and errors as :meth:`send_text`."""
        image = {"link": link}
        if caption:
            image["caption"] = caption
        return await self._send(to, "image", image)

    async def send_document(
        self, to: str, link: str, caption: str | None = None, filename: str | None = None
    ) -> SentMessage:
        """Send the document at ``link``, with an optional caption and the file name the recipient
        sees (its extension picks WhatsApp's file icon). Same window and errors as :meth:`send_text`."""
        document = {"link": link}
        if caption:
            document["caption"] = caption
        if filename:
            document["filename"] = filename
        return await self._send(to, "document", document)

    async def _send(self, to: str, kind: str, content: dict[str, Any]) -> SentMessage:
        recipient = to.removeprefix("+")
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient,
            "type": kind,
            kind: content,
        }
        reply = await self._post(payload)
        try:
            sent = _sent_message(reply, recipient)
        except WhatsAppError as error:
            raise self._failed(error) from None
        log.info("whatsapp.sent", phone_number_id=self.phone_number_id, message_id=sent.message_id, type=kind)
        return sent

    async def _post(self, payload: dict[str, Any]) -> Any:
        if not _TOKEN.fullmatch(self._access_token):
            # Checked here, not left to h11, whose error would quote the header, token and all.
            raise self._failed(
                WhatsAppError("the access token is empty or not a bearer token", retryable=False)
            )
        headers = {"Authorization": f"Bearer {self._access_token}", "Accept": "application/json"}
        try:
            response = await self._http.post(
                self.messages_url, json=payload, headers=headers, timeout=self._timeout
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._failed(_transport_error(exc)) from None
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise self._failed(_malformed_reply(response)) from None
        raise self._failed(_graph_error(response))

    def _failed(self, error: WhatsAppError) -> WhatsAppError:
        log.warning(
            "whatsapp.send_failed",
            phone_number_id=self.phone_number_id,
            http_status=error.http_status,
            code=error.code,
            error_subcode=error.error_subcode,
            retryable=error.retryable,
            maybe_sent=error.maybe_sent,
            fbtrace_id=error.fbtrace_id,
            error=error.message,
        )
        return error


# -- replies -------------------------------------------------------------------------------------


def _sent_message(reply: Any, to: str) -> SentMessage:
    try:
        message_id = reply["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        message_id = None
    if not isinstance(message_id, str) or not message_id:
        # Accepted (HTTP 2xx) yet no id: the text may well be on its way, so never resend blindly.
        raise WhatsAppError(
            "the Cloud API accepted the message but sent no message id", retryable=False, maybe_sent=True
        )
    wa_id = to
    contacts = reply.get("contacts")
    if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict):
        wa_id = str(contacts[0].get("wa_id") or to)
    return SentMessage(message_id=message_id, wa_id=wa_id)


def _transport_error(exc: httpx.HTTPError | httpx.InvalidURL) -> WhatsAppError:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return WhatsAppError(f"bad Cloud API URL: {exc}", retryable=False)
    if isinstance(exc, httpx.LocalProtocolError):
        # We built a request HTTP cannot carry; its message may quote our headers, so it is left out.
        return WhatsAppError("the request could not be sent as HTTP", retryable=False)
    # Nothing reached the API before these; after any other failure the request may have been read.
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return WhatsAppError(
        f"request to the Cloud API {kind}: {type(exc).__name__}: {exc}",
        retryable=True,
        maybe_sent=not not_sent,
    )


def _malformed_reply(response: httpx.Response) -> WhatsAppError:
    return WhatsAppError(
        "the Cloud API accepted the message but its reply is not JSON",
        retryable=False,
        maybe_sent=True,
        http_status=response.status_code,
    )


def _graph_error(response: httpx.Response) -> WhatsAppError:
    status = response.status_code
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return WhatsAppError(
            f"the Cloud API answered HTTP {status} without a Graph error",
            retryable=is_retryable(None, status),
            maybe_sent=status >= 500,
            http_status=status,
        )
    code = _int_or_none(error.get("code"))
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    return WhatsAppError(
        str(error.get("message") or f"HTTP {status}"),
        retryable=is_retryable(code, status),
        maybe_sent=status >= 500,
        http_status=status,
        code=code,
        error_subcode=_int_or_none(error.get("error_subcode")),
        error_type=_str_or_none(error.get("type")),
        details=_str_or_none(details),
        fbtrace_id=_str_or_none(error.get("fbtrace_id")),
    )


# -- webhooks ------------------------------------------------------------------------------------


def parse_status_webhook(payload: dict[str, Any]) -> list[StatusUpdate]:
    """The delivery statuses in a ``messages`` webhook (``entry[].changes[].value.statuses[]``).

    Inbound messages and anything malformed are skipped rather than raised: Meta retries a webhook
    that is not answered 200, so a receiver should acknowledge what it cannot use.
    """
    updates: list[StatusUpdate] = []
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            phone_number_id = (
                _str_or_none(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
            )
            for status in _dicts(value.get("statuses")):
                update = _status_update(status, phone_number_id)
                if update is not None:
                    updates.append(update)
    return updates


def _status_update(status: dict[str, Any], phone_number_id: str | None) -> StatusUpdate | None:
    message_id, state = status.get("id"), status.get("status")
    if not isinstance(message_id, str) or not isinstance(state, str):
        return None
    errors = list(_dicts(status.get("errors")))
    first_error = errors[0] if errors else {}
    return StatusUpdate(
        message_id=message_id,
        status=state,
        recipient_id=_str_or_none(status.get("recipient_id")),
        error_code=_int_or_none(first_error.get("code")),
        error_title=_str_or_none(first_error.get("title") or first_error.get("message")),
        timestamp=_int_or_none(status.get("timestamp")),
        phone_number_id=phone_number_id,
    )


def verify_webhook_signature(body: bytes, signature_header: str | None, app_secret: str) -> bool:
    """Whether ``X-Hub-Signature-256`` (``sha256=<hex HMAC of the raw body with the app secret>``)
    matches ``body``; Meta signs every webhook this way."""
    if not signature_header or not signature_header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature_header.removeprefix("sha256=").lower())


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _str_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)
