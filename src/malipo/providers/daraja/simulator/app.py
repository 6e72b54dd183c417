"""A local Daraja: the same paths, request checks, replies and callbacks, with scripted outcomes.

Serves ``GET /oauth/v1/generate``, ``POST /mpesa/stkpush/v1/processrequest``,
``POST /mpesa/stkpushquery/v1/query``, ``POST /mpesa/b2c/v3/paymentrequest``,
``POST /mpesa/b2b/v1/paymentrequest`` and ``POST /mpesa/transactionstatus/v1/query``. Every API
call needs a Bearer token from the OAuth endpoint (a missing, unknown or expired one answers
HTTP 404 ``404.001.03`` "Invalid Access Token", as Daraja does); invalid fields answer HTTP 400
``400.002.02`` "Bad Request - Invalid <Field>"; a wrong STK ``Password`` answers HTTP 500
``500.001.1001`` "Wrong credentials". After ``callback_delay`` seconds the simulated customer (or
M-Pesa) acts and the result is POSTed to ``CallBackURL`` / ``ResultURL`` / ``QueueTimeOutURL``,
retried a few times if the receiver fails, without ever holding up the request that caused it.

Outcomes are chosen by the phone number (tables :data:`STK_OUTCOMES` and :data:`B2C_OUTCOMES`)
or, for B2B, by the account number (:data:`B2B_OUTCOMES`); any number not listed succeeds.

STK push, by ``PhoneNumber``:

============  ======  =========================================================================
phone         code    what happens
============  ======  =========================================================================
(any other)   0       paid; callback with ``CallbackMetadata`` (Amount, MpesaReceiptNumber, ...)
254700000001  1032    "Request cancelled by user"; callback without metadata
254700000002  1037    "DS timeout user cannot be reached"; callback
254700000003  1       "The balance is insufficient for the transaction."; callback
254700000004  2001    "The initiator information is invalid." (wrong PIN); callback
254700000005  1037    never answered: no callback ever; STK query says "The transaction is being
                      processed" (HTTP 500 ``500.001.1001``) until ``stk_expiry`` seconds (on the
                      simulator's clock) have passed, then answers ResultCode "1037"
254700000006  0       paid, but the callback is lost: only STK query tells
254700000007  1019    "Transaction has expired"; callback
254700000008  1001    "Unable to lock subscriber, ..."; callback
============  ======  =========================================================================

Any other phone paying :data:`STK_INSUFFICIENT_FROM` shillings or more gets ResultCode 1.
STK query answers a failure's ``ResultDesc`` with Daraja's ``[STK_CB - ]`` prefix.

B2C (v3), by ``PartyB``:

============  ======  =========================================================================
phone         code    what happens
============  ======  =========================================================================
(any other)   0       paid; Result with TransactionID and ResultParameters
254700000011  2001    "The initiator information is invalid."; Result without ResultParameters
254700000012  1       "The balance is insufficient for the transaction."
254700000013  2040    "Credit Party customer type (Unregistered or Registered Customer) can't be
                      supported by the service."
254700000014  --      times out in the queue: ``QueueTimeOutURL`` gets a Result (ResultType 1,
                      ResultCode 1, "The service request has timed out."); nothing at ResultURL
254700000015  0       paid, but the Result is lost: only transaction status tells
============  ======  =========================================================================

A B2C payment larger than the utility account's funds (``b2c_funds``, debited by each payout)
gets ResultCode 1; with ``initiators`` configured, an unknown initiator or wrong credential gets
2001.

B2B (Business Pay Bill to a paybill, e.g. a bank's, with the bank account as
``AccountReference``), by ``AccountReference``:

============  ======  =========================================================================
account       code    what happens
============  ======  =========================================================================
(any other)   0       paid; Result with TransactionID, ResultParameters (Amount,
                      TransCompletedTime, ReceiverPartyPublicName, ...) and ReferenceData
                      (BillReferenceNumber = the account)
1000000021    2001    "The initiator information is invalid."; Result without ResultParameters
1000000022    1       "The balance is insufficient for the transaction."
1000000023    12      "The receiver account does not exist." (the simulator's code and text
                      for a bank refusing the account; Daraja's real answer is unconfirmed)
1000000024    --      times out in the queue: ``QueueTimeOutURL`` gets a Result (ResultType 1,
                      ResultCode 1, "The service request has timed out."); nothing at ResultURL
1000000025    0       paid, but the Result is lost: only transaction status tells
1000000026    17      "Internal failure"; the Result is lost too: transaction status says the
                      transaction does not exist
============  ======  =========================================================================

B2B checks ``CommandID`` (:data:`B2B_COMMAND_IDS`), ``SenderIdentifierType`` and
``RecieverIdentifierType`` (``4``), ``AccountReference`` (at most 13 characters) and both
shortcodes. Daraja's B2B takes no caller ``OriginatorConversationID``: the simulator makes one up
unless the request brings one, which it then refuses to see twice, as B2C does. A payment
larger than the working account's funds (``b2b_funds``) gets ResultCode 1; the initiator is
checked as for B2C.

Transaction status finds completed payments (STK, B2C and B2B) by receipt or by either
conversation id; anything else gets ResultCode 2032 "The transaction receipt number does not
exist.".

The callback delay runs on real time; token expiry and the STK prompt expiry run on ``clock``
so tests can move them. ``app.state.simulator`` is the :class:`DarajaSimulator` behind the app
(its recorded pushes, payments, deliveries and OAuth hits).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import secrets
import string
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.core.clock import Clock, SystemClock
from malipo.core.http_client import http_client
from malipo.core.ids import new_reference
from malipo.core.logging import configure_logging, get_logger
from malipo.providers.daraja.schemas import (
    B2B_ACCOUNT_REFERENCE_MAX,
    B2B_COMMAND_IDS,
    B2C_COMMAND_IDS,
    BUSINESS_PAY_BILL,
    BUY_GOODS,
    EAT,
    INVALID_ACCESS_TOKEN,
    INVALID_AUTHENTICATION,
    INVALID_GRANT_TYPE,
    INVALID_REQUEST,
    PAYBILL,
    PROCESSING_ERROR,
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
    SHORTCODE_IDENTIFIER,
    daraja_timestamp,
    stk_password,
)

__all__ = [
    "B2B_OUTCOMES",
    "B2B_SUCCESS",
    "B2C_OUTCOMES",
    "B2C_SUCCESS",
    "DEFAULT_PORT",
    "STK_INSUFFICIENT_FROM",
    "STK_OUTCOMES",
    "STK_SUCCESS",
    "B2BPayment",
    "B2CPayment",
    "CallbackDelivery",
    "DarajaSimulator",
    "Delivery",
    "Outcome",
    "StatusQuery",
    "StkPush",
    "create_simulator_app",
    "main",
    "run",
]

log = get_logger(__name__)

DEFAULT_PORT = 8701


class Delivery(StrEnum):
    """How an outcome reaches the merchant."""

    RESULT = "result"  # POSTed to CallBackURL / ResultURL
    LOST = "lost"  # the transaction completes but its notification never arrives
    UNANSWERED = "unanswered"  # STK: the customer never answers; the prompt expires, no callback
    QUEUE_TIMEOUT = "queue_timeout"  # B2C, B2B: timed out in Daraja's queue; QueueTimeOutURL is told


@dataclass(frozen=True, slots=True)
class Outcome:
    result_code: int
    result_desc: str
    delivery: Delivery = Delivery.RESULT

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0


_PROCESSED = "The service request is processed successfully."
_INSUFFICIENT = "The balance is insufficient for the transaction."
_INITIATOR_INVALID = "The initiator information is invalid."

STK_SUCCESS = Outcome(0, _PROCESSED)
#: STK push outcomes by the ``PhoneNumber`` prompted; any other number pays.
STK_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "254700000001": Outcome(1032, "Request cancelled by user"),
        "254700000002": Outcome(1037, "DS timeout user cannot be reached"),
        "254700000003": Outcome(1, _INSUFFICIENT),
        "254700000004": Outcome(2001, _INITIATOR_INVALID),
        "254700000005": Outcome(1037, "DS timeout user cannot be reached", Delivery.UNANSWERED),
        "254700000006": Outcome(0, _PROCESSED, Delivery.LOST),
        "254700000007": Outcome(1019, "Transaction has expired"),
        "254700000008": Outcome(
            1001, "Unable to lock subscriber, a transaction is already in process for the current subscriber"
        ),
    }
)
#: From this many shillings an STK push by an unlisted number fails with ResultCode 1.
STK_INSUFFICIENT_FROM = 1_000_000

B2C_SUCCESS = Outcome(0, _PROCESSED)
#: B2C outcomes by the receiving ``PartyB``; any other number is paid.
B2C_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "254700000011": Outcome(2001, _INITIATOR_INVALID),
        "254700000012": Outcome(1, _INSUFFICIENT),
        "254700000013": Outcome(
            2040,
            "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the"
            " service.",
        ),
        "254700000014": Outcome(1, "The service request has timed out.", Delivery.QUEUE_TIMEOUT),
        "254700000015": Outcome(0, _PROCESSED, Delivery.LOST),
    }
)
B2B_SUCCESS = Outcome(0, _PROCESSED)
#: B2B outcomes by ``AccountReference`` (the bank account paid); any other account is paid.
B2B_OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        "1000000021": Outcome(2001, _INITIATOR_INVALID),
        "1000000022": Outcome(1, _INSUFFICIENT),
        "1000000023": Outcome(12, "The receiver account does not exist."),
        "1000000024": Outcome(1, "The service request has timed out.", Delivery.QUEUE_TIMEOUT),
        "1000000025": Outcome(0, _PROCESSED, Delivery.LOST),
        "1000000026": Outcome(17, "Internal failure", Delivery.LOST),
    }
)
_B2C_INSUFFICIENT = Outcome(1, _INSUFFICIENT)
_INITIATOR_REJECTED = Outcome(2001, _INITIATOR_INVALID)
_STATUS_FOUND = Outcome(0, _PROCESSED)
_STATUS_NOT_FOUND = Outcome(2032, "The transaction receipt number does not exist.")

_STK_QUERY_ACCEPTED = "The service request has been accepted successsfully"  # sic: Daraja's spelling
_B2C_ACCEPTED = "Accept the service request successfully."
_PAYBILL_NAME = "Simulated Paybill"
_STK_ACCEPTED = "Success. Request accepted for processing"
_CUSTOMER_NAME = "John Doe"
_BUSINESS_NAME = "Simulated Business"
_REASON_TYPES = {
    "BusinessPayment": "Business Payment to Customer via API",
    "SalaryPayment": "Salary Payment via API",
    "PromotionPayment": "Promotion Payment via API",
}

_B2B_REASON_TYPES = {
    "BusinessPayBill": "Business Pay Bill",
    "BusinessBuyGoods": "Business Buy Goods",
}

_MSISDN = re.compile(r"254(?:7\d{8}|1[01]\d{7})")
_SHORTCODE = re.compile(r"\d{5,7}")
_PARTY = re.compile(r"\d{5,12}")  # a shortcode, till or MSISDN
_IDENTIFIER_TYPE = re.compile(r"[124]")
_SHORTCODE_IDENTIFIER = re.compile(SHORTCODE_IDENTIFIER)
_TIMESTAMP = re.compile(r"\d{14}")
_WHOLE_NUMBER = re.compile(r"\d+")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class StkPush:
    merchant_request_id: str
    checkout_request_id: str
    shortcode: str
    transaction_type: str
    party_b: str
    phone: str
    amount: int
    account_reference: str
    callback_url: str
    outcome: Outcome
    created_at: datetime
    result: Outcome | None = None  # set once the customer has acted (or the prompt expired)
    receipt: str | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class B2CPayment:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    command_id: str
    amount: int
    party_a: str
    phone: str
    remarks: str
    occasion: str
    result_url: str
    queue_timeout_url: str
    created_at: datetime
    result: Outcome | None = None
    transaction_id: str | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class B2BPayment:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    command_id: str
    amount: int
    party_a: str
    party_b: str
    account_reference: str
    requester: str
    remarks: str
    occasion: str
    result_url: str
    queue_timeout_url: str
    created_at: datetime
    result: Outcome | None = None
    transaction_id: str | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class StatusQuery:
    originator_conversation_id: str
    conversation_id: str
    initiator: str
    security_credential: str = field(repr=False)
    transaction_id: str
    original_conversation_id: str
    result_url: str
    occasion: str


@dataclass(slots=True)
class CallbackDelivery:
    """One notification the simulator sent (or tried to)."""

    url: str
    body: dict[str, Any]
    attempts: int = 0
    delivered: bool = False


class _Rejected(Exception):
    """Answer the request with Daraja's error body."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def _invalid(field_name: str) -> NoReturn:
    raise _Rejected(400, INVALID_REQUEST, f"Bad Request - Invalid {field_name}")


# --------------------------------------------------------------------------- field checks


def _text(
    body: Mapping[str, Any],
    name: str,
    *,
    max_length: int | None = None,
    min_length: int = 1,
    required: bool = True,
) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            _invalid(name)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        _invalid(name)
    text = str(value)
    if len(text.strip()) < min_length or (max_length is not None and len(text) > max_length):
        _invalid(name)
    return text


def _matching(body: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    """A number-like field (Daraja takes ``174379`` or ``"174379"``) whose text matches ``pattern``."""
    text = _text(body, name)
    if not pattern.fullmatch(text):
        _invalid(name)
    return text


def _amount(body: Mapping[str, Any], name: str = "Amount") -> int:
    """Whole shillings, at least 1: ``1``, ``1.0`` or ``"1"``."""
    value = body.get(name)
    whole_int = isinstance(value, int) and not isinstance(value, bool)
    whole_float = isinstance(value, float) and value.is_integer()
    whole_text = isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()) is not None
    if value is None or not (whole_int or whole_float or whole_text):
        _invalid(name)
    amount = int(value)
    if amount < 1:
        _invalid(name)
    return amount


def _url(body: Mapping[str, Any], name: str) -> str:
    """An http(s) URL; Daraja wants https, the simulator also takes http for loopback receivers."""
    url = _text(body, name)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _invalid(name)
    return url


def _timestamp(body: Mapping[str, Any]) -> str:
    timestamp = _matching(body, "Timestamp", _TIMESTAMP)
    try:
        datetime.strptime(timestamp, "%Y%m%d%H%M%S")
    except ValueError:
        _invalid("Timestamp")
    return timestamp


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        _invalid("JSON")
    if not isinstance(body, dict):
        _invalid("JSON")
    return body


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, secret = decoded.partition(":")
    return (key, secret) if colon else None


# --------------------------------------------------------------------------- identifiers


def _request_id() -> str:
    return "-".join((secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(8)))


def _merchant_request_id() -> str:
    return f"{10_000 + secrets.randbelow(90_000)}-{100_000_000 + secrets.randbelow(900_000_000)}-1"


def _conversation_id(now: datetime) -> str:
    return f"AG_{now.astimezone(EAT):%Y%m%d}_{secrets.token_hex(10)}"


def _receipt() -> str:
    """Ten upper-case letters and digits starting with a letter, like ``LGR7OWQX0R``."""
    return secrets.choice(string.ascii_uppercase) + new_reference(9)


def _eat(now: datetime) -> datetime:
    return now.astimezone(EAT)


# --------------------------------------------------------------------------- the simulator


class DarajaSimulator:
    """The state and handlers behind the simulator app; see the module docstring for behaviour.

    ``credentials`` maps consumer keys to secrets (``None``: any non-empty pair is accepted).
    ``passkeys`` maps STK shortcodes to passkeys, on top of the public sandbox pair; an unlisted
    shortcode takes any passkey unless ``strict_passkeys`` ("Merchant does not exist").
    ``initiators`` maps B2C initiator names to security credentials (``None``: any non-empty).
    """

    def __init__(
        self,
        *,
        callback_delay: float = 0.0,
        credentials: Mapping[str, str] | None = None,
        passkeys: Mapping[str, str] | None = None,
        strict_passkeys: bool = False,
        initiators: Mapping[str, str] | None = None,
        token_ttl: int = 3599,
        stk_expiry: float = 60.0,
        b2c_funds: int = 10_000_000,
        b2b_funds: int = 10_000_000,
        callback_attempts: int = 3,
        callback_backoff: float = 0.2,
        callback_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.callback_delay = callback_delay
        self.credentials = dict(credentials) if credentials is not None else None
        self.passkeys = {SANDBOX_SHORTCODE: SANDBOX_PASSKEY, **(passkeys or {})}
        self.strict_passkeys = strict_passkeys
        self.initiators = dict(initiators) if initiators is not None else None
        self.token_ttl = token_ttl
        self.stk_expiry = stk_expiry
        self.b2c_funds = b2c_funds
        self.b2b_funds = b2b_funds
        self.callback_attempts = max(1, callback_attempts)
        self.callback_backoff = callback_backoff
        self.callback_timeout = callback_timeout
        self.clock: Clock = clock or SystemClock()

        self.oauth_hits = 0
        self.requests: Counter[str] = Counter()
        self.stk_pushes: dict[str, StkPush] = {}
        self.b2c_payments: dict[str, B2CPayment] = {}
        self.b2b_payments: dict[str, B2BPayment] = {}
        self.status_queries: list[StatusQuery] = []
        self.deliveries: list[CallbackDelivery] = []
        self._tokens: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

        self.app = Starlette(
            routes=[
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/oauth/v1/generate", self._oauth, methods=["GET"]),
                Route("/mpesa/stkpush/v1/processrequest", self._stk_push, methods=["POST"]),
                Route("/mpesa/stkpushquery/v1/query", self._stk_query, methods=["POST"]),
                Route("/mpesa/b2c/v3/paymentrequest", self._b2c, methods=["POST"]),
                Route("/mpesa/b2b/v1/paymentrequest", self._b2b, methods=["POST"]),
                Route("/mpesa/transactionstatus/v1/query", self._transaction_status, methods=["POST"]),
            ],
            exception_handlers={_Rejected: self._rejected, HTTPException: self._http_error},
            lifespan=self._lifespan,
        )
        self.app.state.simulator = self

    # ------------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel pending outcomes and deliveries, close the callback client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def pending(self) -> int:
        """How many outcomes and deliveries are still scheduled."""
        return len(self._tasks)

    def expire_tokens(self) -> None:
        """Make every issued access token invalid (Daraja's answer becomes ``404.001.03``)."""
        self._tokens.clear()

    def _now(self) -> datetime:
        return self.clock.now()

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("daraja_sim.task.failed", task=what)

    # ------------------------------------------------------------------ errors

    async def _rejected(self, _request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _Rejected)
        body = {
            "requestId": exc.request_id or _request_id(),
            "errorCode": exc.code,
            "errorMessage": exc.message,
        }
        return JSONResponse(body, status_code=exc.status)

    async def _http_error(self, _request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = "Resource not found" if exc.status_code == 404 else str(exc.detail)
        body = {"requestId": _request_id(), "errorCode": f"{exc.status_code}.001.01", "errorMessage": message}
        return JSONResponse(body, status_code=exc.status_code)

    # ------------------------------------------------------------------ OAuth

    async def _healthz(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def _oauth(self, request: Request) -> JSONResponse:
        self.oauth_hits += 1
        self.requests[request.url.path] += 1
        if request.query_params.get("grant_type") != "client_credentials":
            raise _Rejected(400, INVALID_GRANT_TYPE, "Invalid grant type passed")
        pair = _basic_credentials(request.headers.get("authorization", ""))
        if pair is None or not pair[0] or not pair[1] or not self._known_app(*pair):
            raise _Rejected(400, INVALID_AUTHENTICATION, "Invalid Authentication passed")
        now = self._now()
        self._tokens = {token: expiry for token, expiry in self._tokens.items() if expiry > now}
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(28))
        self._tokens[token] = now + timedelta(seconds=self.token_ttl)
        return JSONResponse({"access_token": token, "expires_in": str(self.token_ttl)})

    def _known_app(self, key: str, secret: str) -> bool:
        if self.credentials is None:
            return True
        expected = self.credentials.get(key)
        return expected is not None and secrets.compare_digest(expected.encode(), secret.encode())

    def _authorise(self, request: Request) -> None:
        self.requests[request.url.path] += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or self._now() >= expiry:
            raise _Rejected(404, INVALID_ACCESS_TOKEN, "Invalid Access Token")

    # ------------------------------------------------------------------ STK push and query

    def _check_password(self, shortcode: str, password: str, timestamp: str) -> None:
        passkey = self.passkeys.get(shortcode)
        if passkey is not None:
            if not secrets.compare_digest(
                password.encode(), stk_password(shortcode, passkey, timestamp).encode()
            ):
                raise _Rejected(500, PROCESSING_ERROR, "Wrong credentials")
            return
        if self.strict_passkeys:
            raise _Rejected(500, PROCESSING_ERROR, "Merchant does not exist")
        # Any passkey, but the password must still be shortcode + passkey + timestamp.
        try:
            decoded = base64.b64decode(password, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if not (
            decoded.startswith(shortcode)
            and decoded.endswith(timestamp)
            and len(decoded) > len(shortcode) + len(timestamp)
        ):
            raise _Rejected(500, PROCESSING_ERROR, "Wrong credentials")

    async def _stk_push(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        shortcode = _matching(body, "BusinessShortCode", _SHORTCODE)
        password = _text(body, "Password")
        timestamp = _timestamp(body)
        transaction_type = _text(body, "TransactionType")
        if transaction_type not in (PAYBILL, BUY_GOODS):
            _invalid("TransactionType")
        amount = _amount(body)
        phone = _matching(body, "PhoneNumber", _MSISDN)
        _matching(body, "PartyA", _MSISDN)
        party_b = _matching(body, "PartyB", _SHORTCODE)
        callback_url = _url(body, "CallBackURL")
        account_reference = _text(body, "AccountReference", max_length=12)
        _text(body, "TransactionDesc", max_length=182)
        self._check_password(shortcode, password, timestamp)

        outcome = STK_OUTCOMES.get(phone)
        if outcome is None:
            outcome = STK_OUTCOMES["254700000003"] if amount >= STK_INSUFFICIENT_FROM else STK_SUCCESS
        now = self._now()
        push = StkPush(
            merchant_request_id=_merchant_request_id(),
            checkout_request_id=self._checkout_request_id(now, phone),
            shortcode=shortcode,
            transaction_type=transaction_type,
            party_b=party_b,
            phone=phone,
            amount=amount,
            account_reference=account_reference,
            callback_url=callback_url,
            outcome=outcome,
            created_at=now,
        )
        self.stk_pushes[push.checkout_request_id] = push
        self._spawn(self._settle_stk(push), "stk")
        log.info(
            "daraja_sim.stk.accepted",
            checkout_request_id=push.checkout_request_id,
            amount=amount,
            result_code=outcome.result_code,
            delivery=outcome.delivery.value,
        )
        return JSONResponse(
            {
                "MerchantRequestID": push.merchant_request_id,
                "CheckoutRequestID": push.checkout_request_id,
                "ResponseCode": "0",
                "ResponseDescription": _STK_ACCEPTED,
                "CustomerMessage": _STK_ACCEPTED,
            }
        )

    def _checkout_request_id(self, now: datetime, phone: str) -> str:
        """``ws_CO_`` + DDMMYYYYHHmmss + milliseconds + the phone's last nine digits, as Daraja's look."""
        stamp = f"{_eat(now):%d%m%Y%H%M%S}"
        millis = now.microsecond // 1000
        for step in range(1000):
            candidate = f"ws_CO_{stamp}{(millis + step) % 1000:03d}{phone[3:]}"
            if candidate not in self.stk_pushes:
                return candidate
        return f"ws_CO_{stamp}{secrets.randbelow(1000):03d}{phone[3:]}{secrets.token_hex(2)}"

    async def _settle_stk(self, push: StkPush) -> None:
        await asyncio.sleep(self.callback_delay)
        outcome = push.outcome
        if outcome.delivery is Delivery.UNANSWERED:
            return  # the prompt just expires; STK query tells (see _stk_query)
        push.result = outcome
        push.completed_at = self._now()
        if outcome.succeeded:
            push.receipt = _receipt()
        if outcome.delivery is Delivery.RESULT:
            await self._deliver(push.callback_url, self._stk_callback(push))

    def _stk_callback(self, push: StkPush) -> dict[str, Any]:
        assert push.result is not None
        callback: dict[str, Any] = {
            "MerchantRequestID": push.merchant_request_id,
            "CheckoutRequestID": push.checkout_request_id,
            "ResultCode": push.result.result_code,
            "ResultDesc": push.result.result_desc,
        }
        if push.result.succeeded:
            assert push.completed_at is not None
            callback["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": push.amount},
                    {"Name": "MpesaReceiptNumber", "Value": push.receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": int(daraja_timestamp(push.completed_at))},
                    {"Name": "PhoneNumber", "Value": int(push.phone)},
                ]
            }
        return {"Body": {"stkCallback": callback}}

    async def _stk_query(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        shortcode = _matching(body, "BusinessShortCode", _SHORTCODE)
        password = _text(body, "Password")
        timestamp = _timestamp(body)
        checkout_request_id = _text(body, "CheckoutRequestID")
        self._check_password(shortcode, password, timestamp)
        push = self.stk_pushes.get(checkout_request_id)
        if push is None or push.shortcode != shortcode:
            _invalid("CheckoutRequestID")
        result = push.result
        if result is None:
            expired = push.created_at + timedelta(seconds=self.stk_expiry) <= self._now()
            if not (push.outcome.delivery is Delivery.UNANSWERED and expired):
                raise _Rejected(
                    500, PROCESSING_ERROR, "The transaction is being processed", push.checkout_request_id
                )
            push.result = result = push.outcome
            push.completed_at = self._now()
        return JSONResponse(
            {
                "ResponseCode": "0",
                "ResponseDescription": _STK_QUERY_ACCEPTED,
                "MerchantRequestID": push.merchant_request_id,
                "CheckoutRequestID": push.checkout_request_id,
                "ResultCode": str(result.result_code),
                "ResultDesc": result.result_desc if result.succeeded else f"[STK_CB - ]{result.result_desc}",
            }
        )

    # ------------------------------------------------------------------ B2C

    async def _b2c(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        originator_conversation_id = _text(body, "OriginatorConversationID", max_length=100)
        initiator = _text(body, "InitiatorName")
        security_credential = _text(body, "SecurityCredential")
        command_id = _text(body, "CommandID")
        if command_id not in B2C_COMMAND_IDS:
            _invalid("CommandID")
        amount = _amount(body)
        party_a = _matching(body, "PartyA", _SHORTCODE)
        phone = _matching(body, "PartyB", _MSISDN)
        remarks = _text(body, "Remarks", min_length=2, max_length=100)
        queue_timeout_url = _url(body, "QueueTimeOutURL")
        result_url = _url(body, "ResultURL")
        occasion = _text(body, "Occasion", max_length=100, required=False)
        if originator_conversation_id in self.b2c_payments:
            raise _Rejected(500, PROCESSING_ERROR, "Duplicate OriginatorConversationID")

        now = self._now()
        payment = B2CPayment(
            originator_conversation_id=originator_conversation_id,
            conversation_id=_conversation_id(now),
            initiator=initiator,
            security_credential=security_credential,
            command_id=command_id,
            amount=amount,
            party_a=party_a,
            phone=phone,
            remarks=remarks,
            occasion=occasion,
            result_url=result_url,
            queue_timeout_url=queue_timeout_url,
            created_at=now,
        )
        self.b2c_payments[originator_conversation_id] = payment
        self._spawn(self._settle_b2c(payment), "b2c")
        log.info(
            "daraja_sim.b2c.accepted",
            originator_conversation_id=originator_conversation_id,
            conversation_id=payment.conversation_id,
            amount=amount,
        )
        return JSONResponse(
            {
                "ConversationID": payment.conversation_id,
                "OriginatorConversationID": originator_conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    def _initiator_ok(self, name: str, credential: str) -> bool:
        if self.initiators is None:
            return True
        expected = self.initiators.get(name)
        return expected is not None and secrets.compare_digest(expected.encode(), credential.encode())

    async def _settle_b2c(self, payment: B2CPayment) -> None:
        await asyncio.sleep(self.callback_delay)
        scripted = B2C_OUTCOMES.get(payment.phone, B2C_SUCCESS)
        if await self._settle(payment, scripted, self.b2c_funds):
            self.b2c_funds -= payment.amount
        if payment.result is not None and payment.result.delivery is Delivery.RESULT:
            await self._deliver(payment.result_url, self._b2c_result(payment))

    async def _settle(self, payment: B2CPayment | B2BPayment, scripted: Outcome, funds: int) -> bool:
        """Decide and record the outcome (a queue timeout is posted here); True if the money moved."""
        outcome = scripted
        if not self._initiator_ok(payment.initiator, payment.security_credential):
            outcome = _INITIATOR_REJECTED
        elif outcome.succeeded and payment.amount > funds:
            outcome = _B2C_INSUFFICIENT
        payment.result = outcome
        payment.completed_at = self._now()
        if outcome.delivery is Delivery.QUEUE_TIMEOUT:
            await self._deliver(payment.queue_timeout_url, self._queue_timeout_result(payment))
            return False
        payment.transaction_id = _receipt()
        return outcome.succeeded

    @staticmethod
    def _result_head(payment: B2CPayment | B2BPayment) -> dict[str, Any]:
        assert payment.result is not None
        assert payment.completed_at is not None
        return {
            "ResultType": 0,
            "ResultCode": payment.result.result_code,
            "ResultDesc": payment.result.result_desc,
            "OriginatorConversationID": payment.originator_conversation_id,
            "ConversationID": payment.conversation_id,
            "TransactionID": payment.transaction_id,
        }

    def _b2c_result(self, payment: B2CPayment) -> dict[str, Any]:
        result = self._result_head(payment)
        assert payment.result is not None
        assert payment.completed_at is not None
        if payment.result.succeeded:
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "TransactionAmount", "Value": payment.amount},
                    {"Key": "TransactionReceipt", "Value": payment.transaction_id},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                    {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": 0},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{payment.phone} - {_CUSTOMER_NAME}"},
                    {
                        "Key": "TransactionCompletedDateTime",
                        "Value": f"{_eat(payment.completed_at):%d.%m.%Y %H:%M:%S}",
                    },
                    {"Key": "B2CUtilityAccountAvailableFunds", "Value": self.b2c_funds},
                    {"Key": "B2CWorkingAccountAvailableFunds", "Value": 0},
                ]
            }
        result["ReferenceData"] = {
            "ReferenceItem": {"Key": "QueueTimeoutURL", "Value": payment.queue_timeout_url}
        }
        return {"Result": result}

    def _queue_timeout_result(self, payment: B2CPayment | B2BPayment) -> dict[str, Any]:
        assert payment.result is not None
        return {
            "Result": {
                "ResultType": 1,
                "ResultCode": payment.result.result_code,
                "ResultDesc": payment.result.result_desc,
                "OriginatorConversationID": payment.originator_conversation_id,
                "ConversationID": payment.conversation_id,
            }
        }

    # ------------------------------------------------------------------ B2B

    async def _b2b(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        initiator = _text(body, "Initiator")
        security_credential = _text(body, "SecurityCredential")
        command_id = _text(body, "CommandID")
        if command_id not in B2B_COMMAND_IDS:
            _invalid("CommandID")
        _matching(body, "SenderIdentifierType", _SHORTCODE_IDENTIFIER)
        _matching(body, "RecieverIdentifierType", _SHORTCODE_IDENTIFIER)  # sic: Daraja's spelling
        amount = _amount(body)
        party_a = _matching(body, "PartyA", _SHORTCODE)
        party_b = _matching(body, "PartyB", _SHORTCODE)
        account_reference = _text(
            body,
            "AccountReference",
            max_length=B2B_ACCOUNT_REFERENCE_MAX,
            required=command_id == BUSINESS_PAY_BILL,
        )
        requester = _text(body, "Requester", required=False)
        if requester and not _MSISDN.fullmatch(requester):
            _invalid("Requester")
        remarks = _text(body, "Remarks", max_length=100)
        queue_timeout_url = _url(body, "QueueTimeOutURL")
        result_url = _url(body, "ResultURL")
        occasion = _text(body, "Occasion", max_length=100, required=False)
        originator_conversation_id = _text(body, "OriginatorConversationID", max_length=100, required=False)
        if originator_conversation_id in self.b2b_payments:
            raise _Rejected(500, PROCESSING_ERROR, "Duplicate OriginatorConversationID")
        while not originator_conversation_id or originator_conversation_id in self.b2b_payments:
            originator_conversation_id = _merchant_request_id()  # Daraja's own, as its B2B does

        now = self._now()
        payment = B2BPayment(
            originator_conversation_id=originator_conversation_id,
            conversation_id=_conversation_id(now),
            initiator=initiator,
            security_credential=security_credential,
            command_id=command_id,
            amount=amount,
            party_a=party_a,
            party_b=party_b,
            account_reference=account_reference,
            requester=requester,
            remarks=remarks,
            occasion=occasion,
            result_url=result_url,
            queue_timeout_url=queue_timeout_url,
            created_at=now,
        )
        self.b2b_payments[originator_conversation_id] = payment
        self._spawn(self._settle_b2b(payment), "b2b")
        log.info(
            "daraja_sim.b2b.accepted",
            originator_conversation_id=originator_conversation_id,
            conversation_id=payment.conversation_id,
            amount=amount,
        )
        return JSONResponse(
            {
                "OriginatorConversationID": originator_conversation_id,
                "ConversationID": payment.conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    async def _settle_b2b(self, payment: B2BPayment) -> None:
        await asyncio.sleep(self.callback_delay)
        scripted = B2B_OUTCOMES.get(payment.account_reference, B2B_SUCCESS)
        if await self._settle(payment, scripted, self.b2b_funds):
            self.b2b_funds -= payment.amount
        if payment.result is not None and payment.result.delivery is Delivery.RESULT:
            await self._deliver(payment.result_url, self._b2b_result(payment))

    def _b2b_result(self, payment: B2BPayment) -> dict[str, Any]:
        result = self._result_head(payment)
        assert payment.result is not None
        assert payment.completed_at is not None
        if payment.result.succeeded:
            balance = f"Working Account|KES|{self.b2b_funds:.2f}|{self.b2b_funds:.2f}|0.00|0.00"
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "DebitAccountBalance", "Value": balance},
                    {"Key": "Amount", "Value": payment.amount},
                    {"Key": "DebitPartyAffectedAccountBalance", "Value": balance},
                    {"Key": "TransCompletedTime", "Value": int(daraja_timestamp(payment.completed_at))},
                    {"Key": "DebitPartyCharges", "Value": ""},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{payment.party_b} - {_PAYBILL_NAME}"},
                    {"Key": "Currency", "Value": "KES"},
                    {"Key": "InitiatorAccountCurrentBalance", "Value": balance},
                ]
            }
        references = [
            {"Key": "BillReferenceNumber", "Value": payment.account_reference},
            {"Key": "QueueTimeoutURL", "Value": payment.queue_timeout_url},
        ]
        if payment.occasion:
            references.append({"Key": "Occasion", "Value": payment.occasion})
        result["ReferenceData"] = {"ReferenceItem": references}
        return {"Result": result}

    # ------------------------------------------------------------------ transaction status

    async def _transaction_status(self, request: Request) -> JSONResponse:
        self._authorise(request)
        body = await _json_object(request)
        initiator = _text(body, "Initiator")
        security_credential = _text(body, "SecurityCredential")
        if _text(body, "CommandID") != "TransactionStatusQuery":
            _invalid("CommandID")
        transaction_id = _text(body, "TransactionID", max_length=100, required=False)
        original_conversation_id = _text(body, "OriginalConversationID", max_length=100, required=False)
        if not transaction_id and not original_conversation_id:
            _invalid("TransactionID")
        _matching(body, "PartyA", _PARTY)
        _matching(body, "IdentifierType", _IDENTIFIER_TYPE)
        result_url = _url(body, "ResultURL")
        _url(body, "QueueTimeOutURL")
        _text(body, "Remarks", max_length=100)
        occasion = _text(body, "Occasion", max_length=100, required=False)

        now = self._now()
        query = StatusQuery(
            originator_conversation_id=_merchant_request_id(),
            conversation_id=_conversation_id(now),
            initiator=initiator,
            security_credential=security_credential,
            transaction_id=transaction_id,
            original_conversation_id=original_conversation_id,
            result_url=result_url,
            occasion=occasion,
        )
        self.status_queries.append(query)
        self._spawn(self._settle_status(query), "transaction_status")
        return JSONResponse(
            {
                "OriginatorConversationID": query.originator_conversation_id,
                "ConversationID": query.conversation_id,
                "ResponseCode": "0",
                "ResponseDescription": _B2C_ACCEPTED,
            }
        )

    async def _settle_status(self, query: StatusQuery) -> None:
        await asyncio.sleep(self.callback_delay)
        await self._deliver(query.result_url, self._status_result(query))

    def _find_completed(self, query: StatusQuery) -> StkPush | B2CPayment | B2BPayment | None:
        wanted = {query.transaction_id, query.original_conversation_id} - {""}
        for push in self.stk_pushes.values():
            if push.result is not None and push.result.succeeded:
                ids = {push.receipt, push.checkout_request_id, push.merchant_request_id}
                if wanted & ids:
                    return push
        payments: list[B2CPayment | B2BPayment] = [*self.b2c_payments.values(), *self.b2b_payments.values()]
        for payment in payments:
            if payment.result is not None and payment.result.succeeded:
                ids = {payment.transaction_id, payment.conversation_id, payment.originator_conversation_id}
                if wanted & ids:
                    return payment
        return None

    def _status_result(self, query: StatusQuery) -> dict[str, Any]:
        found: StkPush | B2CPayment | B2BPayment | None = None
        if not self._initiator_ok(query.initiator, query.security_credential):
            outcome = _INITIATOR_REJECTED
        else:
            found = self._find_completed(query)
            outcome = _STATUS_NOT_FOUND if found is None else _STATUS_FOUND
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": outcome.result_code,
            "ResultDesc": outcome.result_desc,
            "OriginatorConversationID": query.originator_conversation_id,
            "ConversationID": query.conversation_id,
            "TransactionID": query.transaction_id,
        }
        if found is not None:
            parameters = _status_parameters(found)
            result["TransactionID"] = parameters["ReceiptNo"]
            result["ResultParameters"] = {
                "ResultParameter": [{"Key": key, "Value": value} for key, value in parameters.items()]
            }
        result["ReferenceData"] = {"ReferenceItem": {"Key": "Occasion", "Value": query.occasion}}
        return {"Result": result}

    # ------------------------------------------------------------------ delivery

    def _callback_client(self) -> httpx.AsyncClient:
        if self._http is None:
            # The receivers are near (loopback in tests and `make run`): a few connections do.
            self._http = http_client(self.callback_timeout, connections=8)
        return self._http

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        """POST ``body`` to ``url``, retrying with a doubling backoff while the receiver fails."""
        delivery = CallbackDelivery(url=url, body=body)
        self.deliveries.append(delivery)
        target = _origin(url)  # callback paths may hold secrets; log only where they go
        failure = ""
        for attempt in range(1, self.callback_attempts + 1):
            delivery.attempts = attempt
            try:
                response = await self._callback_client().post(url, json=body)
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            else:
                if response.is_success:
                    delivery.delivered = True
                    log.info("daraja_sim.callback.delivered", target=target, attempts=attempt)
                    return
                failure = f"HTTP {response.status_code}"
            if attempt < self.callback_attempts:
                await asyncio.sleep(self.callback_backoff * 2 ** (attempt - 1))
        log.warning(
            "daraja_sim.callback.undelivered", target=target, attempts=self.callback_attempts, error=failure
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _status_parameters(found: StkPush | B2CPayment | B2BPayment) -> dict[str, Any]:
    """Transaction status ``ResultParameters`` (key names with spaces are Daraja's)."""
    assert found.completed_at is not None
    if isinstance(found, StkPush):
        assert found.receipt is not None
        initiated = found.created_at
        receipt, amount = found.receipt, found.amount
        conversation_id, originator_id = found.checkout_request_id, found.merchant_request_id
        reason = "Pay Bill Online" if found.transaction_type == PAYBILL else "Buy Goods Online"
        debit_party = f"{found.phone} - {_CUSTOMER_NAME}"
        credit_party = f"{found.party_b} - {_BUSINESS_NAME}"
        debit_account = "Customer"
    elif isinstance(found, B2BPayment):
        assert found.transaction_id is not None
        initiated = found.created_at
        receipt, amount = found.transaction_id, found.amount
        conversation_id, originator_id = found.conversation_id, found.originator_conversation_id
        reason = _B2B_REASON_TYPES.get(found.command_id, "Business Pay Bill")
        debit_party = f"{found.party_a} - {_BUSINESS_NAME}"
        credit_party = f"{found.party_b} - {_PAYBILL_NAME}"
        debit_account = "Working Account"
    else:
        assert found.transaction_id is not None
        initiated = found.created_at
        receipt, amount = found.transaction_id, found.amount
        conversation_id, originator_id = found.conversation_id, found.originator_conversation_id
        reason = _REASON_TYPES.get(found.command_id, "Business Payment to Customer via API")
        debit_party = f"{found.party_a} - {_BUSINESS_NAME}"
        credit_party = f"{found.phone} - {_CUSTOMER_NAME}"
        debit_account = "Utility Account"
    return {
        "DebitPartyName": debit_party,
        "CreditPartyName": credit_party,
        "InitiatedTime": int(daraja_timestamp(initiated)),
        "Originator Conversation ID": originator_id,
        "DebitAccountType": debit_account,
        "DebitPartyCharges": "",
        "TransactionReason": "",
        "ReasonType": reason,
        "TransactionStatus": "Completed",
        "FinalisedTime": int(daraja_timestamp(found.completed_at)),
        "Amount": amount,
        "Conversation ID": conversation_id,
        "ReceiptNo": receipt,
    }


# --------------------------------------------------------------------------- entry points


def create_simulator_app(
    *,
    callback_delay: float = 0.0,
    credentials: Mapping[str, str] | None = None,
    passkeys: Mapping[str, str] | None = None,
    strict_passkeys: bool = False,
    initiators: Mapping[str, str] | None = None,
    token_ttl: int = 3599,
    stk_expiry: float = 60.0,
    b2c_funds: int = 10_000_000,
    b2b_funds: int = 10_000_000,
    callback_attempts: int = 3,
    callback_backoff: float = 0.2,
    callback_timeout: float = 5.0,
    clock: Clock | None = None,
) -> Starlette:
    """A Daraja simulator as an ASGI app; ``app.state.simulator`` is its :class:`DarajaSimulator`."""
    return DarajaSimulator(
        callback_delay=callback_delay,
        credentials=credentials,
        passkeys=passkeys,
        strict_passkeys=strict_passkeys,
        initiators=initiators,
        token_ttl=token_ttl,
        stk_expiry=stk_expiry,
        b2c_funds=b2c_funds,
        b2b_funds=b2b_funds,
        callback_attempts=callback_attempts,
        callback_backoff=callback_backoff,
        callback_timeout=callback_timeout,
        clock=clock,
    ).app


def run(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_json: bool = False, log_level: str = "INFO",
    **options: Any,
) -> None:  # fmt: skip
    """Serve the simulator until interrupted; ``options`` go to :func:`create_simulator_app`."""
    configure_logging(json=log_json, level=log_level)
    log.info("daraja_sim.starting", host=host, port=port)
    uvicorn.run(create_simulator_app(**options), host=host, port=port, log_config=None, access_log=False)


def main(port: int = DEFAULT_PORT) -> None:
    """``malipo sim daraja --port``: the simulator on loopback with a 1 s callback delay."""
    run(port=port, callback_delay=1.0)
