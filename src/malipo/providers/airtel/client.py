"""An async HTTP client for Airtel Africa's Open API (Airtel Money): OAuth2 client credentials,
USSD push collection and its enquiry, disbursement and its enquiry, and the account balance.

One :class:`AirtelClient` per Airtel app (client id and secret) and country. It fetches the
OAuth token once (``POST /auth/oauth2/token``, a JSON body), shares it between concurrent
callers, keeps it until shortly before it expires (Airtel's tokens live 180 s) and, when a call
is still refused for its token (HTTP 401, or ``invalid_token``), drops it, fetches a new one and
makes the call once more.

Every business call carries ``X-Country`` and ``X-Currency``. A failure is an :class:`AirtelError`
with what Airtel said (``status.code``, ``result_code``, ``response_code``, ``message``) and
whether it may succeed later (``retryable``); :func:`surely_not_taken` says whether Airtel
certainly did not take the request. Airtel answers some refusals with HTTP 200 and a failing
``status`` envelope: those are errors too, except for enquiries, whose samples show
``success: false`` beside a finished transaction (the transaction's own status decides there).

The client secret, the access token and the PIN never appear in a log or an error's text.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import get_logger
from malipo.providers.airtel import codes
from malipo.providers.airtel.schemas import (
    BALANCE_PATH,
    COLLECTION_PATH,
    DISBURSEMENT_PATH,
    TOKEN_PATH,
    BalanceReply,
    CollectionRequest,
    CollectionTransaction,
    DisbursementRequest,
    DisbursementTransaction,
    Envelope,
    Payee,
    ReplyStatus,
    Subscriber,
    TokenReply,
    TokenRequest,
    TransactionReply,
    collection_enquiry_path,
    disbursement_enquiry_path,
)
from malipo.providers.oauth import ProviderCallError, TokenCache

__all__ = ["AirtelClient", "AirtelError", "AirtelLoginFailed", "surely_not_taken"]

log = get_logger(__name__)

_Reply = TypeVar("_Reply", bound=BaseModel)
_RETRYABLE_STATUSES = frozenset({408, 429})
_INVALID_TOKEN = "invalid_token"  # noqa: S105 - the OAuth error code, not a secret


class AirtelError(ProviderCallError):
    """A call to Airtel that failed. ``status`` is the HTTP status (None: no reply came back);
    ``code``, ``result_code``, ``response_code`` and ``error_message`` are Airtel's ``status``
    envelope when its reply had one."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, code: str | None = None,
        result_code: str | None = None, response_code: str | None = None, error_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            message, retryable=retryable, status=status, error_message=error_message, retry_after=retry_after
        )
        self.code = code
        self.result_code = result_code
        self.response_code = response_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, retryable={self.retryable}, status={self.status}, "
            f"result_code={self.result_code!r}, response_code={self.response_code!r})"
        )


class AirtelLoginFailed(AirtelError):
    """No access token, so the call itself was not made: nothing reached Airtel to act on."""


def surely_not_taken(exc: AirtelError) -> bool:
    """Whether Airtel certainly did not take the request: it never reached Airtel, or Airtel
    refused it in so many words. A read timeout, a 5xx, a reply we cannot read, or one of the
    codes Airtel uses for "cannot tell" (``ESB000001``, a duplicate id …) leave it open."""
    if isinstance(exc, AirtelLoginFailed):
        return True
    if isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    if exc.status is None or exc.status >= 500 or exc.status in _RETRYABLE_STATUSES:
        return False
    if exc.result_code in codes.AMBIGUOUS_RESULTS:
        return False
    if exc.response_code in codes.DISBURSEMENT_PENDING or exc.response_code in codes.COLLECTION_PENDING:
        return False
    return exc.code is not None or exc.result_code is not None or 400 <= exc.status < 500


def _failing(status: ReplyStatus | None) -> bool:
    """Whether a 2xx reply's envelope says the request failed (``status.code`` "400" …)."""
    if status is None:
        return False
    if status.code is not None and status.code.isdigit() and not status.code.startswith("2"):
        return True
    return status.success is False


class AirtelClient:
    """Calls Airtel Money for one app in one country (``country`` ISO 3166 alpha-2, ``currency``
    ISO 4217). Pass ``http`` to share a connection pool and ``clock`` to move token expiry in
    tests. ``token_refresh_margin``: seconds before expiry a token is replaced (never keeping a
    short-lived one for less than half its life)."""

    def __init__(
        self, *, base_url: str, client_id: str, client_secret: str, country: str, currency: str,
        http: httpx.AsyncClient, clock: Clock | None = None, token_refresh_margin: float = 30.0,
    ) -> None:  # fmt: skip
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.country = country
        self.currency = currency
        self._http = http
        self._clock: Clock = clock or SystemClock()
        self._tokens = TokenCache(
            self._fetch_token, name="airtel", clock=self._clock, refresh_margin=token_refresh_margin
        )

    def __repr__(self) -> str:
        return f"AirtelClient(base_url={self._base_url!r}, country={self.country!r})"

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    # ------------------------------------------------------------------ OAuth

    async def access_token(self) -> str:
        """A valid access token: the cached one, or a new one fetched once for all concurrent callers."""
        return await self._tokens.token()

    def forget_token(self) -> None:
        self._tokens.forget()

    @property
    def token_fetches(self) -> int:
        return self._tokens.fetches

    async def _fetch_token(self) -> tuple[str, float]:
        body = TokenRequest(client_id=self._client_id, client_secret=self._client_secret)
        try:
            response = await self._send("POST", TOKEN_PATH, json=body.model_dump())
            reply = self._read(TOKEN_PATH, response, TokenReply, envelope_decides=False)
        except AirtelError as exc:
            raise AirtelLoginFailed(
                f"no Airtel access token: {exc}", retryable=exc.retryable, status=exc.status,
                code=exc.code, result_code=exc.result_code, error_message=exc.error_message,
            ) from exc  # fmt: skip
        return reply.access_token, float(reply.lifetime())

    # ------------------------------------------------------------------ collections

    async def collect(
        self, *, transaction_id: str, msisdn: str, amount: int | Decimal, reference: str
    ) -> TransactionReply:
        """Prompt ``msisdn`` (national, without country code) to pay ``amount`` (major units) for
        ``transaction_id``: the reply only says the push was accepted (``DP00800001006``)."""
        request = CollectionRequest(
            reference=reference,
            subscriber=Subscriber(country=self.country, currency=self.currency, msisdn=msisdn),
            transaction=CollectionTransaction(
                amount=amount, country=self.country, currency=self.currency, id=transaction_id
            ),
        )
        return await self._call("POST", COLLECTION_PATH, TransactionReply, request)

    async def collection_status(self, transaction_id: str) -> TransactionReply:
        """Where the collection ``transaction_id`` stands (``data.transaction.status``)."""
        path = collection_enquiry_path(transaction_id)
        return await self._call("GET", path, TransactionReply, envelope_decides=False)

    # ------------------------------------------------------------------ disbursements

    async def disburse(
        self, *, transaction_id: str, msisdn: str, amount: int | Decimal, reference: str, encrypted_pin: str
    ) -> TransactionReply:
        """Pay ``amount`` (major units) to ``msisdn`` (B2C, v2). ``transaction_id`` is ours and
        unique per payout: Airtel refuses a second request with it (``ESB000041``) rather than
        pay twice. The reply may already carry the outcome (``TS``)."""
        request = DisbursementRequest(
            payee=Payee(msisdn=msisdn, currency=self.currency),
            reference=reference,
            pin=encrypted_pin,
            transaction=DisbursementTransaction(amount=amount, id=transaction_id),
        )
        return await self._call("POST", DISBURSEMENT_PATH, TransactionReply, request, envelope_decides=False)

    async def disbursement_status(self, transaction_id: str) -> TransactionReply:
        path = disbursement_enquiry_path(transaction_id)
        return await self._call("GET", path, TransactionReply, envelope_decides=False)

    async def balance(self) -> BalanceReply:
        return await self._call("GET", BALANCE_PATH, BalanceReply)

    # ------------------------------------------------------------------ plumbing

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}", "X-Country": self.country, "X-Currency": self.currency,
            "Accept": "*/*",
        }  # fmt: skip

    async def _call(
        self, method: str, path: str, reply_type: type[_Reply], request: BaseModel | None = None, *,
        envelope_decides: bool = True,
    ) -> _Reply:  # fmt: skip
        """Call ``path`` with the bearer token; on a refused token, fetch a new one and try once more."""
        payload = None if request is None else request.model_dump(mode="json", exclude_none=True)

        async def send(token: str) -> httpx.Response:
            return await self._send(method, path, json=payload, headers=self._headers(token))

        response = await self._tokens.send(send, _token_rejected, what=_safe(path))
        return self._read(path, response, reply_type, envelope_decides=envelope_decides)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, self._base_url + path, **kwargs)
        except httpx.TimeoutException as exc:
            log.warning("airtel.request.timeout", path=_safe(path), error=type(exc).__name__)
            raise AirtelError(f"Airtel did not answer {_safe(path)} in time", retryable=True) from exc
        except httpx.RequestError as exc:
            log.warning("airtel.request.unreachable", path=_safe(path), error=type(exc).__name__)
            raise AirtelError(
                f"Airtel unreachable for {_safe(path)}: {type(exc).__name__}", retryable=True
            ) from exc
        log.debug(
            "airtel.request", path=_safe(path), status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )  # fmt: skip
        return response

    def _read(
        self, path: str, response: httpx.Response, reply_type: type[_Reply], *, envelope_decides: bool
    ) -> _Reply:
        body = _json_or_none(response)
        envelope = _envelope(body)
        status = envelope.status if envelope else None
        if response.is_success and isinstance(body, dict) and not (envelope_decides and _failing(status)):
            try:
                return reply_type.model_validate(body)
            except ValidationError as exc:
                raise AirtelError(
                    f"Airtel's reply to {_safe(path)} has an unexpected shape", retryable=False,
                    status=response.status_code,
                ) from exc  # fmt: skip
        error = _error_from(path, response, body, status)
        log.warning(
            "airtel.request.failed", path=_safe(path), status=error.status, code=error.code,
            result_code=error.result_code, response_code=error.response_code, retryable=error.retryable,
        )  # fmt: skip
        raise error


def _safe(path: str) -> str:
    """The path for logs: enquiry paths end with our id, which is no secret but is noise."""
    return (
        path.rsplit("/", 1)[0] + "/{id}" if path.startswith("/standard/v1/") and "users" not in path else path
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _envelope(body: Any) -> Envelope | None:
    if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
        return None
    try:
        return Envelope.model_validate({"status": body["status"]})
    except ValidationError:
        return None


def _token_rejected(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    body = _json_or_none(response)
    return isinstance(body, dict) and body.get("error") == _INVALID_TOKEN


def _error_from(path: str, response: httpx.Response, body: Any, status: ReplyStatus | None) -> AirtelError:
    http_status = response.status_code
    code = result_code = response_code = message = None
    if status is not None:
        code, result_code, response_code, message = (
            status.code,
            status.result_code,
            status.response_code,
            status.message,
        )
    elif isinstance(body, dict):  # OAuth's and the router's shapes
        result_code = body.get("status_code") or body.get("error")
        message = body.get("error_description") or body.get("status_message")
        result_code = None if result_code is None else str(result_code)
        message = None if message is None else str(message)
    # "Cannot tell" may be told later; a duplicate id never succeeds by sending it again.
    ambiguous = result_code in codes.AMBIGUOUS_RESULTS and result_code != codes.DUPLICATE_ID
    retryable = http_status >= 500 or http_status in _RETRYABLE_STATUSES or ambiguous
    if response.is_success and body is not None and status is not None:
        text = f"Airtel refused {_safe(path)}: {code} {result_code} {response_code} {message}"
    elif response.is_success:
        text = f"Airtel's reply to {_safe(path)} is not a JSON object"
        retryable = False
    else:
        text = f"Airtel answered {_safe(path)} with HTTP {http_status}"
        if result_code or message:
            text += f": {result_code or ''} {response_code or ''} {message or ''}".rstrip()
    return AirtelError(
        text, retryable=retryable, status=http_status, code=code, result_code=result_code,
        response_code=response_code, error_message=message,
    )  # fmt: skip
