"""The card acquirer as a :class:`~malipo.providers.base.CardAcquirer`: authorise, complete a 3-D
Secure challenge, capture, void, refund and query, over the JSON protocol of ``schemas``
(docs/card-acquirer.md).

Every POST carries our id as its ``Idempotency-Key`` (the authorisation reference, the capture,
void or refund id), so sending a request again is always safe: the acquirer replays its first
answer. What a failed call means for the domain (:class:`RailError`):

- the connection was never made (refused, connect timeout, no free connection), or the acquirer
  answered 408/429: not taken, retryable;
- the acquirer refused the request itself (400 invalid, 401/403 a wrong key): not taken, not
  retryable; a 404/409/422 with one of its refusal codes (more than authorised, already captured,
  expired, a forged paRes, …) is a :class:`CardRequestRefused` naming the code (``reason``);
- the request was sent and no answer came (read timeout, dropped connection), or a 5xx, or an
  unreadable answer: it may have been taken; retryable (the same key makes a resend safe).

Declines are not errors: they come back as DECLINED outcomes with their ISO 8583 code.

The API key is never logged nor put in an error's text; the card number appears in neither but
masked (BIN and last 4), and the CVC never.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from malipo.core.cards import mask_pan
from malipo.core.logging import get_logger
from malipo.providers.base import (
    AuthorisationOutcome,
    CaptureOutcome,
    CaptureRequest,
    CardAuthorisation,
    CardRequestRefused,
    CardState,
    CardStatus,
    RailError,
    RefundOutcome,
    RefundRequest,
    VoidOutcome,
    VoidRequest,
)
from malipo.providers.cardacq import codes
from malipo.providers.cardacq.schemas import (
    AUTHORISATIONS_PATH,
    IDEMPOTENCY_HEADER,
    AuthorisationRequest,
    AuthorisationResponse,
    CaptureResponse,
    ErrorBody,
    RefundResponse,
    VoidResponse,
)

__all__ = ["CardAcquirerClient", "build_authorisation", "outcome_of"]

log = get_logger(__name__)

_RETRYABLE_REFUSALS = frozenset({408, 429})
# A 4xx with one of these statuses and a refusal code is about the request, not the call.
_REFUSAL_STATUSES = frozenset({404, 409, 422})
_Answer = TypeVar("_Answer", bound=BaseModel)


def build_authorisation(request: CardAuthorisation) -> dict[str, Any]:
    """The body of ``POST /v1/authorisations`` for ``request``, checked against the protocol's
    bounds. Raises :class:`RailError` (not taken) naming only the wire fields at fault: never a
    value, as the card number is one."""
    card: dict[str, Any] = {
        "number": request.pan,
        "expiry_month": request.expiry_month,
        "expiry_year": request.expiry_year,
    }
    if request.cvv is not None:
        card["cvc"] = request.cvv
    if request.cardholder_name:
        card["holder_name"] = request.cardholder_name
    body: dict[str, Any] = {
        "reference": request.reference,
        "amount": request.amount,
        "currency": request.currency,
        "card": card,
        "three_ds": {
            "return_url": request.return_url,
            "challenge_indicator": "04" if request.challenge_mandated else "01",
        },
    }
    if request.order_id is not None:
        body["order_id"] = request.order_id
    try:
        AuthorisationRequest.model_validate(body)
    except ValidationError as exc:
        fields = [".".join(str(part) for part in error["loc"]) for error in exc.errors(include_url=False)[:5]]
        # ``from None``: pydantic's own message quotes the values, the card number among them.
        raise _failure(f"the authorisation cannot be sent: invalid {', '.join(fields)}", retryable=False,
                       not_taken=True) from None  # fmt: skip
    return body


def outcome_of(answer: AuthorisationResponse) -> AuthorisationOutcome:
    """An acquirer's authorisation as the neutral outcome."""
    three_ds = answer.three_ds
    status = codes.status_of(answer.status)
    return AuthorisationOutcome(
        status=status,
        reference=answer.reference,
        acquirer_reference=answer.id,
        state=codes.card_state(answer.status),
        auth_code=answer.auth_code,
        response_code=answer.response_code,
        response_desc=codes.describe(answer.response_code, answer.response_summary),
        acs_url=three_ds.acs_url if three_ds and status is CardStatus.CHALLENGE_REQUIRED else None,
        three_ds_trans_id=three_ds.trans_id if three_ds else None,
        trans_status=three_ds.trans_status if three_ds else None,
        eci=answer.eci or (three_ds.eci if three_ds else None),
        authentication_value=three_ds.authentication_value if three_ds else None,
        amount=answer.amount,
        currency=answer.currency,
        captured_amount=answer.captured_amount,
        refunded_amount=answer.refunded_amount,
        brand=answer.card.brand if answer.card else None,
        card_bin=answer.card.bin if answer.card else None,
        card_last4=answer.card.last4 if answer.card else None,
        expires_at=answer.expires_at,
    )


def _failure(message: str, *, retryable: bool, not_taken: bool) -> RailError:
    return RailError(
        message, retryable=retryable, not_taken=not_taken, result_code=int(codes.SYSTEM_MALFUNCTION),
        result_desc=f"The card acquirer call failed: {message}"[:300],
    )  # fmt: skip


def _refusal_of(response: httpx.Response) -> tuple[str | None, str]:
    """The acquirer's refusal code and its words (code, message, fields), or its HTTP status."""
    try:
        error = ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return None, f"HTTP {response.status_code}"
    fields = f" ({', '.join(error.fields[:5])})" if error.fields else ""
    return error.code, f"HTTP {response.status_code} {error.code}: {error.message}{fields}".strip()


class CardAcquirerClient:
    """One acquirer endpoint (``base_url``) with its API key. ``http`` is shared and not closed
    here (the worker passes its pool)."""

    name = "cardacq"

    def __init__(self, *, base_url: str, api_key: str, http: httpx.AsyncClient | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = http

    def __repr__(self) -> str:
        return f"CardAcquirerClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("this card acquirer was made without an HTTP client")
        return self._http

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:  # no key: the acquirer answers 401, a refusal like any other
            headers["Authorization"] = f"Bearer {self._api_key}"
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        return headers

    def _url(self, reference: str, action: str = "") -> str:
        return f"{self._base_url}{AUTHORISATIONS_PATH}/{quote(reference, safe='')}{action}"

    # ------------------------------------------------------------------ calls

    async def _post(self, url: str, body: dict[str, Any], key: str, answer: type[_Answer], *,
                    event: str, reference: str, **context: Any) -> _Answer:  # fmt: skip
        """POST ``body`` with ``key`` and read the answer as ``answer``; raises RailError (see the
        module docstring). ``context`` goes to the log lines (never a card number in the clear)."""
        try:
            response = await self._client().post(url, json=body, headers=self._headers(key))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            log.warning(f"{event}.unreachable", reference=reference, error=type(exc).__name__, **context)
            raise _failure(f"card acquirer unreachable: {type(exc).__name__}", retryable=True,
                           not_taken=True) from exc  # fmt: skip
        except httpx.LocalProtocolError as exc:  # refused by our own HTTP stack: never sent
            log.warning(f"{event}.unsendable", reference=reference, error=type(exc).__name__, **context)
            raise _failure(f"the request cannot be sent: {type(exc).__name__}", retryable=False,
                           not_taken=True) from exc  # fmt: skip
        except httpx.RequestError as exc:  # sent, and no answer: it may have been taken
            log.warning(f"{event}.no_answer", reference=reference, error=type(exc).__name__, **context)
            raise _failure(f"no answer from the card acquirer: {type(exc).__name__}", retryable=True,
                           not_taken=False) from exc  # fmt: skip
        status = response.status_code
        if response.is_success:
            try:
                return answer.model_validate_json(response.content)
            except ValidationError:
                log.warning(f"{event}.unreadable", reference=reference, status=status, **context)
                raise _failure(
                    f"unreadable answer (HTTP {status})", retryable=True, not_taken=False
                ) from None
        code, words = _refusal_of(response)
        log.warning(f"{event}.refused", reference=reference, status=status, refusal=words, **context)
        if status in _REFUSAL_STATUSES and code is not None:
            iso = codes.REFUSALS.get(code, codes.INVALID_TRANSACTION)
            raise CardRequestRefused(
                f"refused: {words}", reason=code, result_code=int(iso),
                result_desc=f"The card acquirer refused the request: {words}"[:300],
            )  # fmt: skip
        if 400 <= status < 500:
            raise _failure(f"refused: {words}", retryable=status in _RETRYABLE_REFUSALS, not_taken=True)
        raise _failure(f"failed: {words}", retryable=status >= 500, not_taken=False)

    async def authorise(self, request: CardAuthorisation) -> AuthorisationOutcome:
        """Authorise ``request``: APPROVED, DECLINED (with its ISO 8583 code), CHALLENGE_REQUIRED
        (send the payer to ``acs_url``) or FAILED_3DS. A repeat of the same reference answers the
        same authorisation. Raises :class:`RailError` when the call failed."""
        card = mask_pan(request.pan)
        body = build_authorisation(request)
        answer = await self._post(
            self._base_url + AUTHORISATIONS_PATH, body, request.reference, AuthorisationResponse,
            event="cardacq.authorisation", reference=request.reference, card=card,
        )  # fmt: skip
        if answer.reference != request.reference:
            log.warning("cardacq.authorisation.other_answer", reference=request.reference, card=card)
            raise _failure("the answer is about another authorisation", retryable=True, not_taken=False)
        outcome = outcome_of(answer)
        log.info("cardacq.authorisation.answered", reference=request.reference, card=card,
                 status=outcome.status, response_code=outcome.response_code)  # fmt: skip
        return outcome

    async def complete_challenge(self, authorisation_reference: str, pares: str) -> AuthorisationOutcome:
        """Complete the 3-D Secure challenge with the ACS's ``paRes``. A forged, foreign or expired
        paRes raises :class:`CardRequestRefused` (``invalid_pares``, ``pares_expired``)."""
        digest = hashlib.sha256(pares.encode()).hexdigest()[:16]
        answer = await self._post(
            self._url(authorisation_reference, "/3ds-completions"), {"pares": pares},
            f"{authorisation_reference}:3ds:{digest}", AuthorisationResponse,
            event="cardacq.challenge", reference=authorisation_reference,
        )  # fmt: skip
        if answer.reference != authorisation_reference:
            raise _failure("the answer is about another authorisation", retryable=True, not_taken=False)
        outcome = outcome_of(answer)
        log.info("cardacq.challenge.completed", reference=authorisation_reference, status=outcome.status,
                 trans_status=outcome.trans_status, eci=outcome.eci)  # fmt: skip
        return outcome

    async def capture(self, request: CaptureRequest) -> CaptureOutcome:
        """Capture ``request.amount`` (once; at most what was authorised, the rest released)."""
        body = {"capture_id": request.capture_id, "amount": request.amount, "currency": request.currency}
        answer = await self._post(
            self._url(request.authorisation_reference, "/captures"), body, request.capture_id,
            CaptureResponse, event="cardacq.capture", reference=request.authorisation_reference,
        )  # fmt: skip
        log.info("cardacq.capture.done", reference=request.authorisation_reference, amount=answer.amount)
        return CaptureOutcome(
            authorisation_reference=answer.reference, capture_id=answer.capture_id,
            acquirer_reference=answer.id, amount=answer.amount, currency=answer.currency,
            released_amount=answer.released_amount,
            state=CardState(answer.status),
        )  # fmt: skip

    async def void(self, request: VoidRequest) -> VoidOutcome:
        """Release an uncaptured authorisation."""
        answer = await self._post(
            self._url(request.authorisation_reference, "/voids"), {"void_id": request.void_id},
            request.void_id, VoidResponse, event="cardacq.void", reference=request.authorisation_reference,
        )  # fmt: skip
        log.info("cardacq.void.done", reference=request.authorisation_reference)
        return VoidOutcome(
            authorisation_reference=answer.reference, void_id=answer.void_id, acquirer_reference=answer.id,
            released_amount=answer.released_amount, currency=answer.currency, state=CardState(answer.status),
        )  # fmt: skip

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        """Refund ``request.amount`` of the captured amount (again and again, never more in all)."""
        body = {"refund_id": request.refund_id, "amount": request.amount, "currency": request.currency}
        answer = await self._post(
            self._url(request.authorisation_reference, "/refunds"), body, request.refund_id,
            RefundResponse, event="cardacq.refund", reference=request.authorisation_reference,
        )  # fmt: skip
        log.info("cardacq.refund.done", reference=request.authorisation_reference, amount=answer.amount)
        return RefundOutcome(
            authorisation_reference=answer.reference, refund_id=answer.refund_id,
            acquirer_reference=answer.id, amount=answer.amount, currency=answer.currency,
            refunded_amount=answer.refunded_amount,
            state=CardState(answer.status),
        )  # fmt: skip

    async def query(self, reference: str) -> AuthorisationOutcome:
        """The authorisation now; UNKNOWN (with ``error``) when the acquirer does not know it (404,
        ``not_found``), cannot be reached, or answers something else."""
        try:
            response = await self._client().get(self._url(reference), headers=self._headers())
        except httpx.RequestError as exc:
            log.warning("cardacq.query.unreachable", reference=reference, error=type(exc).__name__)
            return _unknown(reference, f"card acquirer unreachable: {type(exc).__name__}")
        if response.status_code == 404:
            return AuthorisationOutcome(
                CardStatus.UNKNOWN, reference=reference, not_found=True,
                error="the card acquirer does not know this authorisation (HTTP 404)",
            )  # fmt: skip
        if not response.is_success:
            log.warning("cardacq.query.failed", reference=reference, status=response.status_code)
            return _unknown(reference, f"the card acquirer answered {_refusal_of(response)[1]}")
        try:
            answer = AuthorisationResponse.model_validate_json(response.content)
        except ValidationError:
            return _unknown(reference, "unreadable answer")
        if answer.reference != reference:
            return _unknown(reference, "the card acquirer answered about another authorisation")
        return outcome_of(answer)


def _unknown(reference: str, error: str) -> AuthorisationOutcome:
    return AuthorisationOutcome(CardStatus.UNKNOWN, reference=reference, error=error)
