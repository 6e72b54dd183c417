"""A local card acquirer speaking the protocol of ``schemas`` (docs/card-acquirer.md), its issuer
decisions following the public test card numbers (Stripe's, cards-3ds.md §6; ``testcards``), and
the issuer's 3-D Secure challenge page (``acs``).

Every ``/v1`` call needs ``Authorization: Bearer <key>``: any non-empty key, or one of ``api_keys``
when given (401 otherwise); every POST an ``Idempotency-Key`` (400 without). A repeated key with
the same body replays the first 2xx answer (header ``Idempotent-Replayed: true``); with another
body it is a 409 ``idempotency_conflict``. An authorisation reference already used under another
key is a 409 ``duplicate_reference``. Nothing refused is remembered under its key.

==================  ===========================================================================
card                outcome
==================  ===========================================================================
(any other)         approved ``00`` (no 3DS unless the request mandates a challenge: ``04``)
4242424242424242    approved ``00`` (Visa; 3DS supported, not required)
4000056655665556    approved ``00`` (Visa debit)
5555555555554444    approved ``00`` (Mastercard)
2223003122003222    approved ``00`` (Mastercard 2-series)
378282246310005     approved ``00`` (Amex; no 3DS, even when a challenge is mandated)
4000000000000002    declined ``05`` do not honour (generic decline)
4000000000009995    declined ``51`` insufficient funds
4000000000009987    declined ``41`` lost card
4000000000009979    declined ``43`` stolen card
4000000000000069    declined ``54`` expired card
4000000000000127    declined ``N7`` incorrect CVC
4000000000000119    declined ``96`` processing error
4100000000000019    declined ``59`` suspected fraud
4000000000003055    frictionless 3DS (``Y``, ECI 05): approved at once
4000000000003220    challenge (``1A``, transStatus ``C``), then approved after authentication
4000002760003184    challenge, then approved after authentication
4000008400001629    challenge, then declined ``05`` after authentication
4000008260003178    challenge, then declined ``51`` after authentication
4000008400001280    3DS lookup fails (``U``): failed_3ds
==================  ===========================================================================

A number failing the Luhn check is declined ``14``; a card past its expiry month (simulator
clock) ``54``. A wrong code on the ACS page is transStatus ``N``: failed_3ds. An authorisation not
captured (or a challenge not completed) within ``authorisation_ttl`` (7 days) expires.

``app.state.simulator`` is the :class:`CardAcquirerSimulator` behind the app; its ``clock`` is
injectable so tests can move time. The simulator keeps BIN, last 4 and brand, never the number or
the CVC, and logs neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI
from fastapi.requests import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from malipo.core.cards import card_brand, luhn_valid, mask_pan
from malipo.core.clock import Clock, SystemClock
from malipo.core.ids import new_reference
from malipo.core.logging import configure_logging, get_logger
from malipo.core.money import Money
from malipo.providers.cardacq import acs, codes
from malipo.providers.cardacq.schemas import (
    AUTHORISATIONS_PATH,
    IDEMPOTENCY_HEADER,
    AuthorisationRequest,
    CaptureBody,
    RefundBody,
    ThreeDsCompletion,
    VoidBody,
)
from malipo.providers.cardacq.testcards import APPROVES, TEST_CARDS, IssuerBehaviour

__all__ = [
    "DEFAULT_PORT",
    "TEST_CARDS",
    "CardAcquirerSimulator",
    "IssuerBehaviour",
    "SimulatedAuthorisation",
    "create_simulator_app",
    "main",
    "run",
]

log = get_logger("malipo.providers.cardacq.simulator")

DEFAULT_PORT = 8703
AUTHORISATION_TTL = timedelta(days=7)


@dataclass(slots=True)
class SimulatedAuthorisation:
    """One authorisation the simulated acquirer holds (never the card number or CVC)."""

    id: str
    reference: str
    order_id: str | None
    amount: int
    currency: str
    brand: str | None
    bin: str
    last4: str
    expiry_month: int
    expiry_year: int
    behaviour: IssuerBehaviour
    return_url: str
    created_at: datetime
    expires_at: datetime
    status: str = "authorised"
    response_code: str | None = None
    auth_code: str | None = None
    trans_id: str | None = None
    trans_status: str | None = None
    eci: str | None = None
    authentication_value: str | None = None
    acs_url: str | None = None
    challenge: acs.ChallengeResult | None = None
    pares_used: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    modifications: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]


def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or []}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _authentication_value() -> str:
    """A CAVV-like value: 20 random bytes, 28 base64 characters."""
    return base64.b64encode(secrets.token_bytes(20)).decode()


class CardAcquirerSimulator:
    """The state and handlers behind the simulator app; see the module docstring for behaviour."""

    def __init__(
        self,
        *,
        api_keys: Collection[str] | None = None,
        clock: Clock | None = None,
        pares_key: bytes | None = None,
        authorisation_ttl: timedelta = AUTHORISATION_TTL,
    ) -> None:
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.clock: Clock = clock or SystemClock()
        self.authorisation_ttl = authorisation_ttl
        self._pares_key = pares_key or secrets.token_bytes(32)
        # By our reference; the 3DS transaction id → our reference.
        self.authorisations: dict[str, SimulatedAuthorisation] = {}
        self._by_trans_id: dict[str, str] = {}
        self._idempotency: dict[str, _Stored] = {}
        self.replays: list[str] = []

        self.app = FastAPI(title="malipo card acquirer simulator", openapi_url=None, docs_url=None,
                           redoc_url=None)  # fmt: skip
        route = self.app.add_api_route
        route("/healthz", self._healthz, methods=["GET"])
        route(AUTHORISATIONS_PATH, self._authorise, methods=["POST"])
        route(AUTHORISATIONS_PATH + "/{reference}", self._query, methods=["GET"])
        route(AUTHORISATIONS_PATH + "/{reference}/3ds-completions", self._complete, methods=["POST"])
        route(AUTHORISATIONS_PATH + "/{reference}/captures", self._capture, methods=["POST"])
        route(AUTHORISATIONS_PATH + "/{reference}/voids", self._void, methods=["POST"])
        route(AUTHORISATIONS_PATH + "/{reference}/refunds", self._refund, methods=["POST"])
        route("/acs/{trans_id}", self._acs_page, methods=["GET"])
        route("/acs/{trans_id}", self._acs_answer, methods=["POST"])
        self.app.state.simulator = self

    async def aclose(self) -> None:
        """Nothing runs in the background; here so a mounted simulator is closed like the others."""

    # ------------------------------------------------------------------ plumbing

    def _authorised(self, request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return False
        return self.api_keys is None or key in self.api_keys

    def _fingerprint(self, request: Request, body: bytes) -> str:
        # Keyed: the bodies of authorisations hold card numbers (PCI DSS 3.5.1.1).
        return hmac.new(self._pares_key, request.url.path.encode() + b"\n" + body, hashlib.sha256).hexdigest()

    async def _idempotent(self, request: Request, model: type[BaseModel]) -> tuple[Any, str, Response | None]:
        """The parsed body and its idempotency slot, or the answer to give at once (a refusal,
        a replay)."""
        if not self._authorised(request):
            return (
                None,
                "",
                _error(401, "unauthorized", "a valid Authorization: Bearer <API key> is required"),
            )
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key or len(key) > 255:
            return (
                None,
                "",
                _error(400, "idempotency_key_missing", f"an {IDEMPOTENCY_HEADER} header is required"),
            )
        raw = await request.body()
        slot = f"{request.url.path}\n{key}"
        stored = self._idempotency.get(slot)
        if stored is not None:
            if stored.fingerprint != self._fingerprint(request, raw):
                return (
                    None,
                    "",
                    _error(409, "idempotency_conflict", "this Idempotency-Key was used with another body"),
                )
            self.replays.append(key)
            return None, "", JSONResponse(stored.body, stored.status, headers={"Idempotent-Replayed": "true"})
        try:
            parsed = model.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            fields = [".".join(str(part) for part in error["loc"]) or "body" for error in errors[:20]]
            return None, "", _error(400, "invalid_request", f"{exc.error_count()} invalid field(s)", fields)
        return parsed, slot, None

    def _remember(
        self, request: Request, slot: str, raw: bytes, status: int, body: dict[str, Any]
    ) -> JSONResponse:
        self._idempotency[slot] = _Stored(self._fingerprint(request, raw), status, body)
        return JSONResponse(body, status_code=status)

    def _find(self, request: Request) -> SimulatedAuthorisation | None:
        auth = self.authorisations.get(request.path_params["reference"])
        if auth is not None:
            self._age(auth)
        return auth

    def _age(self, auth: SimulatedAuthorisation) -> None:
        if auth.status in ("authorised", "pending_3ds") and self.clock.now() >= auth.expires_at:
            auth.status = "expired"
            log.info("cardacq_sim.authorisation.expired", reference=auth.reference)

    # ------------------------------------------------------------------ authorise

    async def _healthz(self) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def _authorise(self, request: Request) -> Response:
        message, slot, answer = await self._idempotent(request, AuthorisationRequest)
        if answer is not None:
            return answer
        assert isinstance(message, AuthorisationRequest)
        if message.reference in self.authorisations:
            return _error(409, "duplicate_reference", "an authorisation with this reference exists")
        pan = message.card.number.get_secret_value()
        now = self.clock.now()
        auth = SimulatedAuthorisation(
            id=f"auth_{new_reference(20).lower()}", reference=message.reference, order_id=message.order_id,
            amount=message.amount, currency=message.currency, brand=card_brand(pan), bin=pan[:6],
            last4=pan[-4:], expiry_month=message.card.expiry_month, expiry_year=message.card.expiry_year,
            behaviour=TEST_CARDS.get(pan, APPROVES), return_url=message.three_ds.return_url,
            created_at=now, expires_at=now + self.authorisation_ttl,
        )  # fmt: skip
        self._decide(auth, pan, message.three_ds.challenge_indicator, request)
        self.authorisations[auth.reference] = auth
        log.info("cardacq_sim.authorisation.created", reference=auth.reference, card=mask_pan(pan),
                 status=auth.status, response_code=auth.response_code)  # fmt: skip
        return self._remember(request, slot, await request.body(), 201, self._view(auth))

    def _decide(
        self, auth: SimulatedAuthorisation, pan: str, challenge_indicator: str, request: Request
    ) -> None:
        """The issuer's answer to a new authorisation: a decline, a challenge, or a decision."""
        now = self.clock.now()
        if not luhn_valid(pan):
            return self._finish(auth, codes.INVALID_CARD_NUMBER)
        if (auth.expiry_year, auth.expiry_month) < (now.year, now.month):
            return self._finish(auth, codes.EXPIRED_CARD)
        mode = auth.behaviour.three_ds
        if mode == "not_required" and challenge_indicator == "04":
            mode = "challenge"
        auth.trans_id = None if mode in ("not_required", "unsupported") else new_reference(32).lower()
        if mode == "challenge":
            assert auth.trans_id is not None
            auth.status, auth.response_code, auth.trans_status = (
                "pending_3ds",
                codes.AUTHENTICATION_REQUIRED,
                "C",
            )
            prefix = request.url.path.removesuffix(AUTHORISATIONS_PATH)
            auth.acs_url = str(request.url.replace(path=f"{prefix}/acs/{auth.trans_id}", query=""))
            self._by_trans_id[auth.trans_id] = auth.reference
            return None
        if mode == "lookup_fails":
            auth.status, auth.trans_status = "failed_3ds", "U"
            return None
        if mode == "frictionless":
            auth.trans_status, auth.authentication_value = "Y", _authentication_value()
        return self._finish(auth, auth.behaviour.response)

    def _finish(self, auth: SimulatedAuthorisation, response: str) -> None:
        """The issuer's decision: authorised with an auth code, or declined with ``response``."""
        auth.response_code = response
        auth.eci = codes.eci_for(auth.brand, auth.trans_status)
        if response == codes.APPROVED:
            auth.status, auth.auth_code = "authorised", f"{secrets.randbelow(10**6):06d}"
        else:
            auth.status = "declined"

    # ------------------------------------------------------------------ 3-D Secure

    def _by_trans(self, trans_id: str) -> SimulatedAuthorisation | None:
        reference = self._by_trans_id.get(trans_id)
        auth = self.authorisations.get(reference) if reference else None
        if auth is not None:
            self._age(auth)
        return auth

    async def _acs_page(self, trans_id: str) -> HTMLResponse:
        auth = self._by_trans(trans_id)
        if auth is None:
            return HTMLResponse(acs.finished_page("No such authentication."), status_code=404)
        if auth.status != "pending_3ds" or auth.challenge is not None:
            return HTMLResponse(acs.finished_page("This authentication has finished."), status_code=410)
        amount = f"{auth.currency} {Money.of_minor(auth.amount, auth.currency).format()}"
        card = f"{(auth.brand or 'card').title()} •••• {auth.last4}"
        page = acs.challenge_page(amount=amount, card=card, order_id=auth.order_id, trans_id=trans_id)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def _acs_answer(self, request: Request, trans_id: str) -> Response:
        auth = self._by_trans(trans_id)
        if auth is None:
            return HTMLResponse(acs.finished_page("No such authentication."), status_code=404)
        if auth.status != "pending_3ds" or auth.challenge is not None:
            return HTMLResponse(acs.finished_page("This authentication has finished."), status_code=410)
        form = dict(_form(await request.body()))
        passed = (
            form.get("action", "verify") != "cancel" and form.get("code", "").strip() == acs.CODE_THAT_PASSES
        )
        status = "Y" if passed else "N"
        auth.challenge = acs.ChallengeResult(
            authorisation_id=auth.id, trans_id=trans_id, trans_status=status,
            eci=codes.eci_for(auth.brand, status) if passed else None,
            authentication_value=_authentication_value() if passed else None,
            expires_at=self.clock.now() + acs.PARES_VALIDITY,
        )  # fmt: skip
        log.info("cardacq_sim.challenge.answered", reference=auth.reference, trans_status=status)
        pares = acs.sign_pares(self._pares_key, auth.challenge)
        return RedirectResponse(acs.return_location(auth.return_url, pares, auth.reference), status_code=303)

    async def _complete(self, request: Request) -> Response:
        message, slot, answer = await self._idempotent(request, ThreeDsCompletion)
        if answer is not None:
            return answer
        assert isinstance(message, ThreeDsCompletion)
        auth = self._find(request)
        if auth is None:
            return _error(404, "not_found", "no authorisation with this reference")
        if auth.pares_used is not None and hmac.compare_digest(auth.pares_used, message.pares):
            return JSONResponse(self._view(auth))  # the same completion again
        try:
            result = acs.read_pares(self._pares_key, message.pares, self.clock.now())
        except acs.InvalidPares as exc:
            log.warning("cardacq_sim.pares.refused", reference=auth.reference, reason=exc.reason)
            return _error(422, exc.reason, str(exc), ["pares"])
        if result.authorisation_id != auth.id or result.trans_id != auth.trans_id:
            return _error(422, "invalid_pares", "the paRes belongs to another authorisation", ["pares"])
        if auth.status == "expired":
            return _error(409, "authorisation_expired", "the authorisation has expired")
        if auth.status != "pending_3ds":
            return _error(409, "invalid_state", f"the authorisation is {auth.status}")
        auth.pares_used = message.pares
        auth.trans_status, auth.eci = result.trans_status, result.eci
        auth.authentication_value, auth.acs_url = result.authentication_value, None
        if result.trans_status in ("Y", "A"):
            self._finish(auth, auth.behaviour.response)
        else:
            auth.status, auth.response_code = "failed_3ds", None
        log.info("cardacq_sim.challenge.completed", reference=auth.reference, status=auth.status)
        return self._remember(request, slot, await request.body(), 200, self._view(auth))

    # ------------------------------------------------------------------ query and modifications

    async def _query(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, "unauthorized", "a valid Authorization: Bearer <API key> is required")
        auth = self._find(request)
        if auth is None:
            return _error(404, "not_found", "no authorisation with this reference")
        return JSONResponse(self._view(auth))

    def _modifiable(self, auth: SimulatedAuthorisation | None, *allowed: str) -> JSONResponse | None:
        if auth is None:
            return _error(404, "not_found", "no authorisation with this reference")
        if auth.status in allowed:
            return None
        if auth.status == "expired":
            return _error(409, "authorisation_expired", "the authorisation has expired: its hold is released")
        if auth.status in ("captured", "partially_refunded", "refunded") and "authorised" in allowed:
            return _error(409, "already_captured", "the authorisation is already captured")
        return _error(409, "invalid_state", f"the authorisation is {auth.status}")

    async def _capture(self, request: Request) -> Response:
        message, slot, answer = await self._idempotent(request, CaptureBody)
        if answer is not None:
            return answer
        assert isinstance(message, CaptureBody)
        auth = self._find(request)
        refused = self._modifiable(auth, "authorised")
        if refused is not None:
            return refused
        assert auth is not None
        if message.currency != auth.currency:
            return _error(422, "currency_mismatch", f"the authorisation is in {auth.currency}", ["currency"])
        if message.amount > auth.amount:
            return _error(
                422, "amount_exceeds_authorised", f"at most {auth.amount} may be captured", ["amount"]
            )
        auth.status, auth.captured_amount = "captured", message.amount
        body = {
            "id": f"cap_{new_reference(20).lower()}", "capture_id": message.capture_id,
            "reference": auth.reference, "amount": message.amount, "currency": auth.currency,
            "released_amount": auth.amount - message.amount, "status": auth.status,
        }  # fmt: skip
        auth.modifications.append(body)
        log.info("cardacq_sim.captured", reference=auth.reference, amount=message.amount)
        return self._remember(request, slot, await request.body(), 201, body)

    async def _void(self, request: Request) -> Response:
        message, slot, answer = await self._idempotent(request, VoidBody)
        if answer is not None:
            return answer
        assert isinstance(message, VoidBody)
        auth = self._find(request)
        refused = self._modifiable(auth, "authorised")
        if refused is not None:
            return refused
        assert auth is not None
        auth.status = "voided"
        body = {
            "id": f"void_{new_reference(20).lower()}", "void_id": message.void_id,
            "reference": auth.reference, "released_amount": auth.amount, "currency": auth.currency,
            "status": auth.status,
        }  # fmt: skip
        auth.modifications.append(body)
        log.info("cardacq_sim.voided", reference=auth.reference)
        return self._remember(request, slot, await request.body(), 201, body)

    async def _refund(self, request: Request) -> Response:
        message, slot, answer = await self._idempotent(request, RefundBody)
        if answer is not None:
            return answer
        assert isinstance(message, RefundBody)
        auth = self._find(request)
        refused = self._modifiable(auth, "captured", "partially_refunded")
        if refused is not None:
            return refused
        assert auth is not None
        if message.currency != auth.currency:
            return _error(422, "currency_mismatch", f"the authorisation is in {auth.currency}", ["currency"])
        left = auth.captured_amount - auth.refunded_amount
        if message.amount > left:
            return _error(422, "amount_exceeds_captured", f"at most {left} may be refunded", ["amount"])
        auth.refunded_amount += message.amount
        auth.status = "refunded" if auth.refunded_amount == auth.captured_amount else "partially_refunded"
        body = {
            "id": f"ref_{new_reference(20).lower()}", "refund_id": message.refund_id,
            "reference": auth.reference, "amount": message.amount, "currency": auth.currency,
            "refunded_amount": auth.refunded_amount, "status": auth.status,
        }  # fmt: skip
        auth.modifications.append(body)
        log.info("cardacq_sim.refunded", reference=auth.reference, amount=message.amount)
        return self._remember(request, slot, await request.body(), 201, body)

    # ------------------------------------------------------------------ views

    def _view(self, auth: SimulatedAuthorisation) -> dict[str, Any]:
        three_ds = None
        if auth.trans_id is not None:
            three_ds = {
                "version": "2.2.0", "trans_id": auth.trans_id, "trans_status": auth.trans_status,
                "eci": auth.eci if auth.trans_status in ("Y", "A") else None,
                "authentication_value": auth.authentication_value, "acs_url": auth.acs_url,
            }  # fmt: skip
        summary = (
            codes.describe(auth.response_code)
            if auth.response_code
            else f"Authentication failed (transStatus {auth.trans_status})"
        )
        return {
            "id": auth.id, "reference": auth.reference, "order_id": auth.order_id, "status": auth.status,
            "response_code": auth.response_code, "response_summary": summary, "auth_code": auth.auth_code,
            "amount": auth.amount, "currency": auth.currency, "captured_amount": auth.captured_amount,
            "refunded_amount": auth.refunded_amount,
            "card": {"bin": auth.bin, "last4": auth.last4, "brand": auth.brand,
                     "expiry_month": auth.expiry_month, "expiry_year": auth.expiry_year},
            "eci": auth.eci, "three_ds": three_ds,
            "created_at": auth.created_at.isoformat(), "expires_at": auth.expires_at.isoformat(),
        }  # fmt: skip


def _form(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)[:20]


# --------------------------------------------------------------------------- entry points


def create_simulator_app(
    *,
    api_keys: Collection[str] | None = None,
    clock: Clock | None = None,
    pares_key: bytes | None = None,
    authorisation_ttl: timedelta = AUTHORISATION_TTL,
) -> FastAPI:
    """A card acquirer simulator as an ASGI app; ``app.state.simulator`` is its
    :class:`CardAcquirerSimulator`."""
    return CardAcquirerSimulator(
        api_keys=api_keys, clock=clock, pares_key=pares_key, authorisation_ttl=authorisation_ttl
    ).app


def run(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_json: bool = False, log_level: str = "INFO",
    **options: Any,
) -> None:  # fmt: skip
    """Serve the simulator until interrupted; ``options`` go to :func:`create_simulator_app`."""
    configure_logging(json=log_json, level=log_level)
    log.info("cardacq_sim.starting", host=host, port=port)
    uvicorn.run(create_simulator_app(**options), host=host, port=port, log_config=None, access_log=False)


def main(port: int = DEFAULT_PORT) -> None:
    """The simulator on loopback."""
    run(port=port)
