"""An async HTTP client for Safaricom's Daraja API (M-Pesa Express, B2C v3, B2B, transaction status).

One :class:`DarajaClient` per Daraja app (consumer key and secret). It fetches the OAuth token
once, shares it between concurrent callers, refreshes it shortly before it expires and, when
Daraja still rejects it (``404.001.03`` or HTTP 401), drops it and retries the call once.

Every failure is a :class:`DarajaError` whose ``retryable`` says whether sending the same
request again may succeed: network errors, timeouts, HTTP 408/429 and 5xx are retryable,
validation and credential errors are not. Daraja reports some business refusals as HTTP 500
``500.001.1001`` ("Wrong credentials", a duplicate ``OriginatorConversationID``); those are not
retryable, except "The transaction is being processed", which :meth:`DarajaClient.stk_query`
raises as :class:`DarajaPending`.

A retryable error after a timeout does not mean Daraja did nothing: an STK push sent again
prompts the customer again, while a B2C request sent again with the same
``OriginatorConversationID`` is refused as a duplicate rather than paid twice. B2B has no such
field in Daraja's docs: sending a B2B request again may pay twice.

Secrets (consumer secret, passkey, security credential, access token) are never logged and
never appear in an error's text.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import get_logger
from malipo.providers.daraja import codes, pull
from malipo.providers.daraja.commands import (
    ACCOUNT_BALANCE_PATH,
    REVERSAL_PATH,
    AccountBalanceRequest,
    CommandReply,
    ReversalRequestWire,
)
from malipo.providers.daraja.schemas import (
    B2B_ACCOUNT_REFERENCE_MAX,
    BUSINESS_PAY_BILL,
    BUY_GOODS,
    INVALID_ACCESS_TOKEN,
    PAYBILL,
    PROCESSING_ERROR,
    AccessTokenReply,
    B2BReply,
    B2BRequest,
    B2CReply,
    B2CRequest,
    C2bRegisterReply,
    C2bRegisterRequest,
    DarajaErrorBody,
    StkPushReply,
    StkPushRequest,
    StkQueryReply,
    StkQueryRequest,
    TransactionStatusReply,
    TransactionStatusRequest,
    daraja_timestamp,
    stk_password,
)
from malipo.providers.oauth import ProviderCallError, TokenCache

__all__ = ["DarajaClient", "DarajaError", "DarajaPending"]

log = get_logger(__name__)

_Reply = TypeVar("_Reply", bound=BaseModel)

OAUTH_PATH = "/oauth/v1/generate"
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
B2B_PATH = "/mpesa/b2b/v1/paymentrequest"
TRANSACTION_STATUS_PATH = "/mpesa/transactionstatus/v1/query"
C2B_REGISTER_PATH = "/mpesa/c2b/v2/registerurl"

_RETRYABLE_STATUSES = frozenset({408, 429})
# STK query answers these while the customer has not yet answered the prompt.
_PENDING_MESSAGES = ("being processed", "under processing")
_PENDING_RESULT_CODE = "4999"
_DEFAULT_TOKEN_LIFETIME = 3599


class DarajaError(ProviderCallError):
    """A Daraja call that failed.

    ``status`` is the HTTP status (``None`` when no reply came back); ``error_code``,
    ``error_message`` and ``request_id`` are Daraja's ``errorCode``, ``errorMessage`` and
    ``requestId`` when its reply carried them; ``retry_after`` the seconds a rate limit asks.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, retryable=retryable, status=status, error_message=error_message, retry_after=retry_after
        )
        self.error_code = error_code
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, retryable={self.retryable}, status={self.status}, "
            f"error_code={self.error_code!r})"
        )


class DarajaLoginFailed(DarajaError):
    """No access token for a call, so the call was not made (or its first try was refused for
    its token): nothing reached Daraja that it could act on."""


def surely_not_taken(exc: DarajaError) -> bool:
    """Whether Daraja certainly did not take the request: it never reached Daraja, or Daraja said no.

    A read timeout, or a reply with no Daraja error in it (a gateway's 5xx, a 2xx we cannot
    read), leaves it open: the payer may already see the prompt, the payee may be paid.
    """
    if isinstance(exc, DarajaLoginFailed):
        return True
    if isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    if exc.status is None:
        return False
    return exc.error_code is not None or 400 <= exc.status < 500


class DarajaPending(DarajaError):
    """The STK push has no result yet: the customer has not answered. Ask again later."""


class DarajaClient:
    """Calls Daraja on behalf of one app and one Lipa Na M-Pesa shortcode.

    ``shortcode`` and ``passkey`` sign STK requests. With ``till_number`` set, STK pushes are
    Buy Goods (``CustomerBuyGoodsOnline``) to that till, with ``shortcode`` as the store
    number; otherwise Pay Bill to ``shortcode``. ``b2c_shortcode`` (default ``shortcode``)
    pays out (B2C to phones, B2B to paybills); ``b2c_initiator`` and ``b2c_security_credential``
    (the initiator password encrypted with Safaricom's certificate) authorise B2C, B2B and
    transaction status.

    Pass ``http`` to share a connection pool (it is then not closed by :meth:`aclose`) and
    ``clock`` to control token expiry in tests.
    """

    def __init__(
        self,
        *,
        base_url: str,
        consumer_key: str,
        consumer_secret: str,
        shortcode: str,
        passkey: str,
        till_number: str | None = None,
        b2c_shortcode: str | None = None,
        b2c_initiator: str = "",
        b2c_security_credential: str = "",
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        token_refresh_margin: float = 60.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self._shortcode = shortcode
        self._passkey = passkey
        self._till_number = till_number
        self._b2c_shortcode = b2c_shortcode or shortcode
        self._b2c_initiator = b2c_initiator
        self._b2c_security_credential = b2c_security_credential
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        self._clock: Clock = clock or SystemClock()
        self._tokens = TokenCache(
            self._fetch_token, name="daraja", clock=self._clock, refresh_margin=token_refresh_margin
        )

    def __repr__(self) -> str:
        return f"DarajaClient(base_url={self._base_url!r}, shortcode={self._shortcode!r})"

    async def aclose(self) -> None:
        """Close the connection pool, unless it was passed in."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> DarajaClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ OAuth

    async def access_token(self) -> str:
        """A valid access token: the cached one, or a new one fetched once for all concurrent callers.
        Raises :class:`DarajaLoginFailed` when none can be had."""
        return await self._tokens.token()

    def forget_token(self) -> None:
        """Drop the cached token; the next call fetches a new one."""
        self._tokens.forget()

    async def _fetch_token(self) -> tuple[str, float]:
        try:
            response = await self._send(
                "GET",
                OAUTH_PATH,
                params={"grant_type": "client_credentials"},
                auth=httpx.BasicAuth(self._consumer_key, self._consumer_secret),
            )
            reply = self._read(OAUTH_PATH, response, AccessTokenReply)
        except DarajaError as exc:  # no token: the request itself is not made
            raise DarajaLoginFailed(
                str(exc), retryable=exc.retryable, status=exc.status, error_code=exc.error_code,
                error_message=exc.error_message, request_id=exc.request_id, retry_after=exc.retry_after,
            ) from exc  # fmt: skip
        try:
            lifetime = int(reply.expires_in)
        except ValueError:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        return reply.access_token, float(lifetime)

    # ------------------------------------------------------------------ M-Pesa Express (STK)

    async def stk_push(
        self,
        *,
        amount: int,
        phone: str,
        account_reference: str,
        description: str,
        callback_url: str,
    ) -> StkPushReply:
        """Prompt ``phone`` (``2547XXXXXXXX``) to pay ``amount`` whole shillings.

        The acknowledgement only says the prompt was accepted; the outcome arrives later at
        ``callback_url`` (or through :meth:`stk_query` with its ``CheckoutRequestID``).
        """
        timestamp = self._timestamp()
        request = StkPushRequest(
            BusinessShortCode=self._shortcode,
            Password=stk_password(self._shortcode, self._passkey, timestamp),
            Timestamp=timestamp,
            TransactionType=BUY_GOODS if self._till_number else PAYBILL,
            Amount=amount,
            PartyA=phone,
            PartyB=self._till_number or self._shortcode,
            PhoneNumber=phone,
            CallBackURL=callback_url,
            AccountReference=account_reference,
            TransactionDesc=description,
        )
        return await self._call(STK_PUSH_PATH, request, StkPushReply)

    async def stk_query(self, checkout_request_id: str) -> StkQueryReply:
        """The outcome of an STK push; raises :class:`DarajaPending` while the customer has not answered.

        The reply's ``ResultCode`` is a string: ``"0"`` paid, anything else failed.
        """
        timestamp = self._timestamp()
        request = StkQueryRequest(
            BusinessShortCode=self._shortcode,
            Password=stk_password(self._shortcode, self._passkey, timestamp),
            Timestamp=timestamp,
            CheckoutRequestID=checkout_request_id,
        )
        reply = await self._call(STK_QUERY_PATH, request, StkQueryReply)
        if reply.ResultCode == _PENDING_RESULT_CODE:
            raise DarajaPending(
                f"STK query: {reply.ResultDesc}",
                retryable=True,
                status=200,
                error_code=reply.ResultCode,
                error_message=reply.ResultDesc,
            )
        return reply

    # ------------------------------------------------------------------ B2C and status

    async def b2c(
        self,
        *,
        amount: int,
        phone: str,
        remarks: str,
        result_url: str,
        queue_timeout_url: str,
        originator_conversation_id: str,
        occasion: str = "",
        command_id: str = "BusinessPayment",
    ) -> B2CReply:
        """Pay ``amount`` whole shillings to ``phone`` from the B2C shortcode.

        ``originator_conversation_id`` is ours and unique per payout: Daraja refuses a
        duplicate, so sending the same one again never pays twice. The result arrives at
        ``result_url`` (or ``queue_timeout_url`` if the request times out in Daraja's queue).
        """
        request = B2CRequest(
            OriginatorConversationID=originator_conversation_id,
            InitiatorName=self._b2c_initiator,
            SecurityCredential=self._b2c_security_credential,
            CommandID=command_id,
            Amount=amount,
            PartyA=self._b2c_shortcode,
            PartyB=phone,
            Remarks=remarks,
            QueueTimeOutURL=queue_timeout_url,
            ResultURL=result_url,
            Occasion=occasion,
        )
        return await self._call(B2C_PATH, request, B2CReply)

    async def b2b(
        self,
        *,
        amount: int,
        paybill: str,
        account_reference: str,
        remarks: str,
        result_url: str,
        queue_timeout_url: str,
        originator_conversation_id: str | None = None,
        occasion: str = "",
        requester: str | None = None,
        command_id: str = BUSINESS_PAY_BILL,
    ) -> B2BReply:
        """Pay ``amount`` whole shillings from the B2C shortcode to ``paybill`` (Business Pay Bill),
        for the account ``account_reference`` (at most 13 characters: a bank's account number).

        The result arrives at ``result_url`` (or ``queue_timeout_url`` if the request times out
        in Daraja's queue) in the same ``{"Result": ...}`` shape as B2C's. Keep the reply's
        ``ConversationID``: Daraja may not honour ``originator_conversation_id`` for B2B.
        """
        if not 1 <= len(account_reference) <= B2B_ACCOUNT_REFERENCE_MAX:
            raise ValueError(f"account_reference must be 1 to {B2B_ACCOUNT_REFERENCE_MAX} characters")
        request = B2BRequest(
            Initiator=self._b2c_initiator,
            SecurityCredential=self._b2c_security_credential,
            CommandID=command_id,
            Amount=amount,
            PartyA=self._b2c_shortcode,
            PartyB=paybill,
            AccountReference=account_reference,
            Requester=requester,
            Remarks=remarks,
            QueueTimeOutURL=queue_timeout_url,
            ResultURL=result_url,
            Occasion=occasion or None,
            OriginatorConversationID=originator_conversation_id,
        )
        return await self._call(B2B_PATH, request, B2BReply)

    async def transaction_status(
        self,
        *,
        result_url: str,
        queue_timeout_url: str,
        transaction_id: str | None = None,
        original_conversation_id: str | None = None,
        party_a: str | None = None,
        identifier_type: int = 4,
        remarks: str = "Transaction status",
        occasion: str = "",
    ) -> TransactionStatusReply:
        """Ask for the status of a transaction by M-Pesa receipt or by conversation id.

        The answer arrives at ``result_url``. ``party_a`` defaults to the STK shortcode, with
        ``identifier_type`` 4 (organisation shortcode); 1 is an MSISDN, 2 a till.
        """
        if not transaction_id and not original_conversation_id:
            raise ValueError("give transaction_id or original_conversation_id")
        request = TransactionStatusRequest(
            Initiator=self._b2c_initiator,
            SecurityCredential=self._b2c_security_credential,
            TransactionID=transaction_id,
            OriginalConversationID=original_conversation_id,
            PartyA=party_a or self._shortcode,
            IdentifierType=str(identifier_type),
            ResultURL=result_url,
            QueueTimeOutURL=queue_timeout_url,
            Remarks=remarks,
            Occasion=occasion,
        )
        return await self._call(TRANSACTION_STATUS_PATH, request, TransactionStatusReply)

    async def register_c2b_urls(
        self, *, short_code: str, response_type: str, validation_url: str, confirmation_url: str
    ) -> C2bRegisterReply:
        """Register a paybill's or till's C2B ValidationURL and ConfirmationURL (C2B v2).

        ``response_type`` (``Completed`` or ``Cancelled``) is what M-Pesa does when the
        validation URL does not answer in time. In production a shortcode registers once: a
        second registration answers ``500.003.1001`` "Urls are already registered".
        """
        request = C2bRegisterRequest(
            ShortCode=short_code, ResponseType=response_type, ConfirmationURL=confirmation_url,
            ValidationURL=validation_url,
        )  # fmt: skip
        return await self._call(C2B_REGISTER_PATH, request, C2bRegisterReply)

    # ------------------------------------------------------------------ reversal and balance

    async def reversal(
        self,
        *,
        transaction_id: str,
        amount: int,
        result_url: str,
        queue_timeout_url: str,
        remarks: str,
        occasion: str = "",
        receiver_party: str | None = None,
    ) -> CommandReply:
        """Reverse ``amount`` whole shillings of the M-Pesa receipt ``transaction_id`` received on
        ``receiver_party`` (default the STK shortcode); the result comes to ``result_url``."""
        request = ReversalRequestWire(
            Initiator=self._b2c_initiator, SecurityCredential=self._b2c_security_credential,
            TransactionID=transaction_id, Amount=amount, ReceiverParty=receiver_party or self._shortcode,
            ResultURL=result_url, QueueTimeOutURL=queue_timeout_url, Remarks=remarks,
            Occasion=occasion or None,
        )  # fmt: skip
        return await self._call(REVERSAL_PATH, request, CommandReply)

    async def account_balance(
        self, *, party_a: str, result_url: str, queue_timeout_url: str, remarks: str = "Balance"
    ) -> CommandReply:
        """Ask the balance of the shortcode ``party_a``; the answer comes to ``result_url``."""
        request = AccountBalanceRequest(
            Initiator=self._b2c_initiator, SecurityCredential=self._b2c_security_credential, PartyA=party_a,
            Remarks=remarks, QueueTimeOutURL=queue_timeout_url, ResultURL=result_url,
        )  # fmt: skip
        return await self._call(ACCOUNT_BALANCE_PATH, request, CommandReply)

    @property
    def shortcodes(self) -> list[str]:
        """The shortcodes this client collects on and pays out from (one when they are the same)."""
        return list(dict.fromkeys([self._shortcode, self._b2c_shortcode]))

    # ------------------------------------------------------------------ Pull Transactions (§F)

    async def pull_register(self, *, nominated_number: str, callback_url: str) -> pull.PullRegisterReply:
        """Register the shortcode for Pull Transactions (one-time; ``1001``: already registered)."""
        request = pull.PullRegisterRequest(
            ShortCode=self._shortcode, NominatedNumber=nominated_number, CallBackURL=callback_url
        )
        return await self._call(pull.REGISTER_PATH, request, pull.PullRegisterReply)

    async def pull_transactions(self, start: datetime, end: datetime) -> list[pull.PulledTransaction]:
        """Every transaction the shortcode received from ``start`` to ``end``, page by page
        (``OffSetValue`` 0, 100, …). Raises :class:`pull.PullWindowExpired` before asking when
        ``start`` is older than Daraja's 48-hour window: the rail would refuse it."""
        if start < self._clock.now() - pull.WINDOW:
            raise pull.PullWindowExpired(
                f"Pull Transactions keeps 48 hours only: {pull.kenya_time(start)} (EAT) is older"
            )
        found: list[pull.PulledTransaction] = []
        while True:
            request = pull.PullQueryRequest(
                ShortCode=self._shortcode, StartDate=pull.kenya_time(start), EndDate=pull.kenya_time(end),
                OffSetValue=str(len(found)),
            )  # fmt: skip
            page = (await self._call(pull.QUERY_PATH, request, pull.PullQueryReply)).transactions()
            found.extend(page)
            if len(page) < pull.PAGE_SIZE:
                return found

    # ------------------------------------------------------------------ plumbing

    def _timestamp(self) -> str:
        return daraja_timestamp(self._clock.now())

    async def _call(self, path: str, request: BaseModel, reply_type: type[_Reply]) -> _Reply:
        """POST ``request`` with the bearer token; on a rejected token, fetch a new one and try once more."""
        payload = request.model_dump(mode="json", exclude_none=True)

        async def send(token: str) -> httpx.Response:
            return await self._send("POST", path, json=payload, headers={"Authorization": f"Bearer {token}"})

        response = await self._tokens.send(send, _token_rejected, what=path)
        reply = self._read(path, response, reply_type)
        code = getattr(reply, "ResponseCode", None)
        if code is not None and code != "0":
            description = getattr(reply, "ResponseDescription", None)
            log.warning("daraja.request.refused", path=path, response_code=code)
            raise DarajaError(
                f"Daraja refused {path}: {code} {description}",
                retryable=False,
                status=response.status_code,
                error_code=code,
                error_message=description,
            )
        return reply

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, self._base_url + path, **kwargs)
        except httpx.TimeoutException as exc:
            log.warning("daraja.request.timeout", path=path, error=type(exc).__name__)
            raise DarajaError(f"Daraja did not answer {path} in time", retryable=True) from exc
        except httpx.RequestError as exc:
            log.warning("daraja.request.unreachable", path=path, error=type(exc).__name__)
            raise DarajaError(f"Daraja unreachable for {path}: {type(exc).__name__}", retryable=True) from exc
        log.debug(
            "daraja.request",
            path=path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    def _read(self, path: str, response: httpx.Response, reply_type: type[_Reply]) -> _Reply:
        body = _json_or_none(response)
        if response.is_success and isinstance(body, dict):
            try:
                return reply_type.model_validate(body)
            except ValidationError as exc:
                raise DarajaError(
                    f"Daraja's reply to {path} has an unexpected shape",
                    retryable=False,
                    status=response.status_code,
                ) from exc
        error = _error_from(path, response, body)
        log.warning(
            "daraja.request.failed",
            path=path,
            status=error.status,
            error_code=error.error_code,
            error_message=error.error_message,
            retryable=error.retryable,
        )
        raise error


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _token_rejected(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    body = _json_or_none(response)
    return isinstance(body, dict) and body.get("errorCode") == INVALID_ACCESS_TOKEN


def _error_from(path: str, response: httpx.Response, body: Any) -> DarajaError:
    status = response.status_code
    details = DarajaErrorBody()
    if isinstance(body, dict):
        with contextlib.suppress(ValidationError):  # not Daraja's shape: status alone decides
            details = DarajaErrorBody.model_validate(body)
    code, message = details.errorCode, details.errorMessage
    pending = code == PROCESSING_ERROR and any(word in (message or "").lower() for word in _PENDING_MESSAGES)
    if pending:
        retryable = True
    elif code == PROCESSING_ERROR:
        retryable = False  # a business refusal dressed as HTTP 500: the same request fails again
    else:
        retryable = status >= 500 or status in _RETRYABLE_STATUSES
    if response.is_success:
        text = f"Daraja's reply to {path} is not a JSON object"
    else:
        text = f"Daraja answered {path} with HTTP {status}"
        if code or message:
            text += f": {code} {message}"
    error_type = DarajaPending if pending else DarajaError
    return error_type(
        text,
        retryable=retryable,
        status=status,
        error_code=code,
        error_message=message,
        request_id=details.requestId,
        retry_after=codes.RATE_LIMIT_BACKOFF.get(code or ""),
    )
