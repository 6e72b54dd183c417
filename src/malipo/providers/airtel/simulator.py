"""A local Airtel Money Open API: the same paths, checks, replies and callback, in memory.

Serves ``POST /auth/oauth2/token``, ``POST /merchant/v1/payments/`` (USSD push),
``GET /standard/v1/payments/{id}`` (enquiry), ``POST /standard/v2/disbursements/`` (and v1),
``GET /standard/v1/disbursements/{id}`` and ``GET /standard/v1/users/balance``.

- OAuth: a JSON body with ``client_id``, ``client_secret`` and ``grant_type``
  ``client_credentials``; a token lives ``token_ttl`` seconds (180, as Airtel's) on ``clock``.
  Unknown credentials answer 401 ``invalid_client``; a business call without a valid token
  answers 401 ``invalid_token`` ("The access token is invalid or has expired").
- Every business call needs ``X-Country`` and ``X-Currency`` (400 ``ROUTER110`` without).
- An MSISDN must be the national number: 9 digits, no country code (``ESB000033`` otherwise).
- A ``transaction.id`` seen before is refused with ``ESB000041`` (and ``DP00900001017`` for a
  disbursement), as Airtel does: a repeat never charges or pays twice.
- A push is accepted with ``DP00800001006`` (in process). After ``callback_delay`` seconds the
  simulated payer acts and the callback ``{"transaction": {"id", "message", "status_code",
  "airtel_money_id"}}`` is POSTed to ``callback_url`` (the app's, as set in Airtel's portal:
  one for every request), retried a few times if the receiver fails.
- A disbursement's ``pin`` must be the sandbox PIN (:data:`~malipo.providers.airtel.sandbox.SANDBOX_PIN`)
  encrypted under the sandbox public key with PKCS#1 v1.5; anything else answers 400
  ``ROUTER116`` "Incorrect Encrypted Pin". Disbursements are paid from ``disbursement_funds``
  (major units); one larger than what is left fails with ``DP00900001007``.

Test numbers (national form; malipo takes them as ``2547…`` or ``07…``), any other pays:

USSD push collection:

=========  ======  ============================================================================
number     status  what happens
=========  ======  ============================================================================
(other)    TS      paid; callback TS with ``airtel_money_id``
733000001  TF      declined: "Not enough balance" (``DP00800001007``); callback TF
733000002  TF      "Incorrect Pin" (``DP00800001002``); callback TF
733000003  --      times out: never answered, no callback; enquiry says TIP until
                   ``push_expiry`` seconds (on ``clock``) pass, then TF "Transaction Timed Out"
                   (``DP00800001024``)
733000004  TS      paid, but the callback is lost: only the enquiry tells
733000005  TF      "Refused" (``DP00800001008``); callback TF
=========  ======  ============================================================================

Disbursement:

=========  ======  ============================================================================
number     status  what happens
=========  ======  ============================================================================
(other)    TS      paid at once: the reply says TS (``DP00900001001``) with ``airtel_money_id``
733000011  TF      refused at once: "Insufficient funds" (``DP00900001007``)
733000012  TF      refused at once: "Invalid mobile number" (``DP00900001012``)
733000013  TS      in progress (TIP, ``DP00900001006``), paid after the delay; callback TS
733000014  TS      in progress, paid after the delay; no callback: only the enquiry tells
733000015  TF      in progress, then failed (``DP00900001005``); callback TF
=========  ======  ============================================================================

Airtel documents no disbursement callback; the simulator posts one for those finished later
(the same shape as a collection's), and malipo enquires either way.

``app.state.simulator`` is the :class:`AirtelSimulator` behind the app (its pushes,
disbursements, deliveries and token count).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import configure_logging, get_logger
from malipo.providers.airtel.sandbox import SANDBOX_PIN, SANDBOX_PIN_PRIVATE_KEY
from malipo.providers.airtel.signing import callback_hash
from malipo.providers.airtel.testnumbers import (
    COLLECTION_OUTCOMES,
    COLLECTION_PAID,
    DISBURSEMENT_OUTCOMES,
    DISBURSEMENT_PAID,
    Scripted,
)
from malipo.providers.simulation import CallbackSender

__all__ = ["DEFAULT_PORT", "AirtelSimulator", "Disbursement", "Push", "create_simulator_app", "run"]

log = get_logger("malipo.providers.airtel.simulator")

DEFAULT_PORT = 8704
_MSISDN_LENGTH = 9


@dataclass(slots=True)
class Push:
    id: str
    msisdn: str
    amount: Decimal
    currency: str
    reference: str
    outcome: Scripted
    created_at: datetime
    status: str = "TIP"
    receipt: str | None = None


@dataclass(slots=True)
class Disbursement:
    id: str
    msisdn: str
    amount: Decimal
    currency: str
    reference: str
    outcome: Scripted
    created_at: datetime
    status: str = "TIP"
    receipt: str | None = None
    reference_id: str = field(default_factory=lambda: str(secrets.randbelow(10**11)).zfill(11))


class _Refused(Exception):
    """An Airtel error reply: ``body`` as Airtel shapes it, with HTTP ``status``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def _envelope(
    code: str, message: str, result_code: str, response_code: str | None, success: bool
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "code": code,
        "message": message,
        "result_code": result_code,
        "success": success,
    }
    if response_code is not None:
        status["response_code"] = response_code
    return status


def _refused(http: int, message: str, result_code: str, response_code: str | None = None) -> _Refused:
    return _Refused(http, {"status": _envelope(str(http), message, result_code, response_code, False)})


class AirtelSimulator(CallbackSender):
    """The state and handlers behind the simulator app (see the module docstring).

    ``credentials`` maps client ids to secrets (None: any non-empty pair is accepted)."""

    def __init__(
        self, *, callback_url: str | None = None, callback_delay: float = 0.0,
        credentials: Mapping[str, str] | None = None, token_ttl: int = 180, push_expiry: float = 60.0,
        disbursement_funds: Decimal | int = 10_000_000, pin: str = SANDBOX_PIN, callback_attempts: int = 3,
        callback_backoff: float = 0.2, callback_timeout: float = 5.0, clock: Clock | None = None,
        callback_key: bytes | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            logger="malipo.providers.airtel.simulator", events="airtel_sim",
            callback_attempts=callback_attempts, callback_backoff=callback_backoff,
            callback_timeout=callback_timeout,
        )  # fmt: skip
        self.callback_url = callback_url
        # Callback authentication on (as in Airtel's portal): each callback carries ``hash``.
        self.callback_key = callback_key
        self.callback_delay = callback_delay
        self.credentials = dict(credentials) if credentials is not None else None
        self.token_ttl = token_ttl
        self.push_expiry = push_expiry
        self.disbursement_funds = Decimal(disbursement_funds)
        self.pin = pin
        self.clock: Clock = clock or SystemClock()
        self.token_hits = 0
        self.requests: Counter[str] = Counter()
        self.pushes: dict[str, Push] = {}
        self.disbursements: dict[str, Disbursement] = {}
        self._tokens: dict[str, datetime] = {}
        key = serialization.load_pem_private_key(SANDBOX_PIN_PRIVATE_KEY.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._pin_key = key
        routes = [
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/auth/oauth2/token", self._token, methods=["POST"]),
            Route("/merchant/v1/payments/", self._collect, methods=["POST"]),
            Route("/standard/v1/payments/{id}", self._collection_status, methods=["GET"]),
            Route("/standard/v1/disbursements/", self._disburse, methods=["POST"]),
            Route("/standard/v2/disbursements/", self._disburse, methods=["POST"]),
            Route("/standard/v1/disbursements/{id}", self._disbursement_status, methods=["GET"]),
            Route("/standard/v1/users/balance", self._balance, methods=["GET"]),
        ]
        self.app = Starlette(
            routes=routes, exception_handlers={_Refused: self._refused}, lifespan=self._lifespan
        )
        self.app.state.simulator = self

    def expire_tokens(self) -> None:
        """Make every issued token invalid: the next business call answers 401 ``invalid_token``."""
        self._tokens.clear()

    async def _refused(self, _request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _Refused)
        return JSONResponse(exc.body, status_code=exc.status)

    async def _healthz(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    # ------------------------------------------------------------------ OAuth and checks

    async def _token(self, request: Request) -> JSONResponse:
        self.requests["token"] += 1
        self.token_hits += 1
        body = await _json(request)
        if body.get("grant_type") != "client_credentials":
            raise _Refused(
                400, {"error_description": "Unsupported grant type", "error": "unsupported_grant_type"}
            )
        client_id, secret = str(body.get("client_id") or ""), str(body.get("client_secret") or "")
        if not client_id or not secret or not self._known(client_id, secret):
            raise _Refused(
                401, {"error_description": "Invalid client authentication", "error": "invalid_client"}
            )
        now = self.clock.now()
        self._tokens = {token: expiry for token, expiry in self._tokens.items() if expiry > now}
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now + timedelta(seconds=self.token_ttl)
        return JSONResponse(
            {"access_token": token, "expires_in": str(self.token_ttl), "token_type": "bearer"}
        )

    def _known(self, client_id: str, secret: str) -> bool:
        if self.credentials is None:
            return True
        expected = self.credentials.get(client_id)
        return expected is not None and secrets.compare_digest(expected.encode(), secret.encode())

    def _authorise(self, request: Request, kind: str) -> tuple[str, str]:
        """The call's (country, currency), once its token and headers are checked; counted as ``kind``."""
        self.requests[kind] += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or self.clock.now() >= expiry:
            raise _Refused(401, {"error_description": "The access token is invalid or has expired",
                                 "error": "invalid_token"})  # fmt: skip
        country, currency = request.headers.get("x-country", ""), request.headers.get("x-currency", "")
        if not country:
            raise _Refused(400, {"status_message": "Partner not found", "status_code": "ROUTER110"})
        if not currency:
            raise _refused(400, "Invalid currency", "ROUTER112")
        return country.upper(), currency.upper()

    @staticmethod
    def _msisdn(value: object) -> str:
        msisdn = str(value or "")
        if not msisdn.isdigit() or len(msisdn) != _MSISDN_LENGTH:
            raise _refused(
                400, f"Invalid Msisdn Length. Msisdn Length should be {_MSISDN_LENGTH}", "ESB000033"
            )
        return msisdn

    @staticmethod
    def _amount(value: object, response_code: str) -> Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            amount = Decimal(-1)
        finite = not isinstance(value, bool) and amount.is_finite() and amount > 0
        if not finite or amount != amount.quantize(Decimal("0.001")):  # at most 3 decimal places
            raise _refused(400, "Invalid Amount", "ESB000008", response_code)
        return amount

    def _receipt(self, prefix: str) -> str:
        now = self.clock.now()
        letter = secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
        return f"{prefix}{now:%y%m%d}.{now:%H%M}.{letter}{secrets.randbelow(10**5):05d}"

    # ------------------------------------------------------------------ collections

    async def _collect(self, request: Request) -> JSONResponse:
        country, currency = self._authorise(request, "collect")
        body = await _json(request)
        subscriber, transaction = body.get("subscriber") or {}, body.get("transaction") or {}
        if not isinstance(subscriber, dict) or not isinstance(transaction, dict) or not body.get("reference"):
            raise _refused(400, "Missing header/body params", "ROUTER003")
        msisdn = self._msisdn(subscriber.get("msisdn"))
        amount = self._amount(transaction.get("amount"), "DP00800001004")
        transaction_id = str(transaction.get("id") or "")
        if not transaction_id:
            raise _refused(400, "Missing header/body params", "ROUTER003")
        if transaction_id in self.pushes:
            raise _refused(400, "External Transaction ID already exists", "ESB000041")
        outcome = COLLECTION_OUTCOMES.get(msisdn, COLLECTION_PAID)
        push = Push(
            transaction_id, msisdn, amount, currency, str(body["reference"]), outcome, self.clock.now()
        )
        self.pushes[transaction_id] = push
        if outcome.answers:
            self._in_background(self._payer_acts(push))
        log.info("airtel_sim.push", country=country, outcome=outcome.status)
        return JSONResponse({
            "data": {"transaction": {"id": transaction_id, "status": "SUCCESS"}},
            "status": _envelope("200", "SUCCESS", "ESB000010", "DP00800001006", True),
        })  # fmt: skip

    async def _payer_acts(self, push: Push) -> None:
        await asyncio.sleep(self.callback_delay)
        push.status = push.outcome.status
        if push.status == "TS":
            push.receipt = self._receipt("MP")
        if push.outcome.callback:
            await self._callback(push.id, push.status, _collection_message(push), push.receipt)

    async def _callback(self, transaction_id: str, status: str, message: str, receipt: str | None) -> None:
        if self.callback_url is None:
            return
        transaction = {"id": transaction_id, "message": message, "status_code": status,
                       "airtel_money_id": receipt or ""}  # fmt: skip
        body: dict[str, Any] = {"transaction": transaction}
        if self.callback_key is not None:
            body["hash"] = callback_hash(transaction, self.callback_key)
        await self._deliver(self.callback_url, body)

    def _settled_push(self, push: Push) -> Push:
        """An unanswered prompt expires (TF, timed out) once ``push_expiry`` has passed."""
        expired = self.clock.now() >= push.created_at + timedelta(seconds=self.push_expiry)
        if push.status == "TIP" and not push.outcome.answers and expired:
            push.status = push.outcome.status
        return push

    async def _collection_status(self, request: Request) -> JSONResponse:
        self._authorise(request, "collection_status")
        push = self.pushes.get(request.path_params["id"])
        if push is None:
            raise _refused(404, "Transaction Not Found", "ESB000045", "DP00800001025")
        push = self._settled_push(push)
        code = push.outcome.response_code if push.status != "TIP" else "DP00800001006"
        transaction = {
            "airtel_money_id": push.receipt,
            "id": push.id,
            "message": _status_message(push.status, push.outcome),
            "status": push.status,
        }
        return JSONResponse(
            {
                "data": {"transaction": transaction},
                "status": _envelope("200", "SUCCESS", "ESB000010", code, True),
            }
        )

    # ------------------------------------------------------------------ disbursements

    def _pin_ok(self, encrypted: object) -> bool:
        try:
            pin = self._pin_key.decrypt(
                base64.b64decode(str(encrypted or ""), validate=True), padding.PKCS1v15()
            )
        except (ValueError, binascii.Error):
            return False
        return secrets.compare_digest(pin, self.pin.encode())

    async def _disburse(self, request: Request) -> JSONResponse:
        _country, currency = self._authorise(request, "disburse")
        body = await _json(request)
        payee, transaction = body.get("payee") or {}, body.get("transaction") or {}
        if not isinstance(payee, dict) or not isinstance(transaction, dict) or not body.get("pin"):
            raise _refused(400, "Missing header/body params", "ROUTER003", "DP00900001013")
        if not self._pin_ok(body.get("pin")):
            raise _refused(400, "Incorrect Encrypted Pin", "ROUTER116", "DP00900001013")
        msisdn = self._msisdn(payee.get("msisdn"))
        amount = self._amount(transaction.get("amount"), "DP00900001004")
        transaction_id = str(transaction.get("id") or "")
        if not transaction_id:
            raise _refused(400, "Missing header/body params", "ROUTER003", "DP00900001013")
        if transaction_id in self.disbursements:
            raise _refused(400, "External Transaction ID already exists", "ESB000041", "DP00900001017")
        outcome = DISBURSEMENT_OUTCOMES.get(msisdn, DISBURSEMENT_PAID)
        if outcome.status == "TS" and amount > self.disbursement_funds:
            outcome = Scripted("TF", "DP00900001007", "Insufficient funds")
        payment = Disbursement(transaction_id, msisdn, amount, currency, str(body.get("reference") or ""),
                               outcome, self.clock.now())  # fmt: skip
        self.disbursements[transaction_id] = payment
        if outcome.at_once:
            self._finish_disbursement(payment)
        else:
            self._in_background(self._disbursement_later(payment))
        return JSONResponse(self._disbursement_reply(payment))

    def _finish_disbursement(self, payment: Disbursement) -> None:
        payment.status = payment.outcome.status
        if payment.status == "TS":
            self.disbursement_funds -= payment.amount
            payment.receipt = self._receipt("CI")

    async def _disbursement_later(self, payment: Disbursement) -> None:
        await asyncio.sleep(self.callback_delay)
        self._finish_disbursement(payment)
        if payment.outcome.callback:
            await self._callback(payment.id, payment.status, _disbursement_message(payment), payment.receipt)

    def _disbursement_reply(self, payment: Disbursement) -> dict[str, Any]:
        transaction = {
            "reference_id": payment.reference_id, "airtel_money_id": payment.receipt, "id": payment.id,
            "status": payment.status, "message": _disbursement_message(payment),
        }  # fmt: skip
        if payment.status == "TIP":
            status = _envelope("200", "In process", "ESB000010", "DP00900001006", True)
        elif payment.status == "TS":
            status = _envelope("200", "Success", "ESB000010", payment.outcome.response_code, True)
        else:  # Airtel answers a failed disbursement with HTTP 200 and a failing envelope
            status = _envelope(
                "400", payment.outcome.message, "ESB000011", payment.outcome.response_code, False
            )
        return {"data": {"transaction": transaction}, "status": status}

    async def _disbursement_status(self, request: Request) -> JSONResponse:
        self._authorise(request, "disbursement_status")
        payment = self.disbursements.get(request.path_params["id"])
        if payment is None:
            raise _refused(404, "Transaction Not Found", "ESB000045", "DP00900001015")
        reply = self._disbursement_reply(payment)
        reply["status"] = _envelope("200", "SUCCESS", "ESB000010", reply["status"]["response_code"], True)
        return JSONResponse(reply)

    async def _balance(self, request: Request) -> JSONResponse:
        _country, currency = self._authorise(request, "balance")
        data = {"balance": f"{self.disbursement_funds:.2f}", "currency": currency, "account_status": "Active"}
        return JSONResponse(
            {"data": data, "status": _envelope("200", "SUCCESS", "ESB000010", "DP02200000001", True)}
        )


def _status_message(status: str, outcome: Scripted) -> str:
    return {"TIP": "Transaction in progress", "TS": "success"}.get(status, outcome.message)


def _collection_message(push: Push) -> str:
    if push.status == "TS":
        return (f"Paid {push.currency} {push.amount:,} to MALIPO SANDBOX Charge {push.currency} 0, "
                f"Trans ID {push.receipt}.")  # fmt: skip
    return push.outcome.message


def _disbursement_message(payment: Disbursement) -> str:
    if payment.status == "TS":
        return (f"You have sent {payment.currency} {payment.amount:,} to {payment.msisdn}. "
                f"TID: {payment.receipt}.")  # fmt: skip
    if payment.status == "TIP":
        return "Transaction in progress"
    return payment.outcome.message


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _refused(400, "Missing header/body params", "ROUTER003") from None
    if not isinstance(body, dict):
        raise _refused(400, "Missing header/body params", "ROUTER003")
    return body


def create_simulator_app(**options: Any) -> Starlette:
    """An Airtel simulator as an ASGI app; ``app.state.simulator`` is its :class:`AirtelSimulator`."""
    return AirtelSimulator(**options).app


def run(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_json: bool = False, log_level: str = "INFO",
    **options: Any,
) -> None:  # fmt: skip
    """Serve the simulator until interrupted; ``options`` go to :class:`AirtelSimulator`."""
    configure_logging(json=log_json, level=log_level)
    log.info("airtel_sim.starting", host=host, port=port)
    uvicorn.run(create_simulator_app(**options), host=host, port=port, log_config=None, access_log=False)
