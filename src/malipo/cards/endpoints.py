"""/api/v1 routes of card payments: the vault, authorisations with 3-D Secure, capture, void, refund.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.

The acquirer is called inside the request, which is short (one HTTP call, at most
``ACQUIRER_TIMEOUT``): the merchant needs its answer (approved, declined, or the 3-D Secure URL)
in the reply. The request's transaction cannot be committed half-way (the session's
``begin()`` scope refuses any statement after an inner commit), so the service's ``checkpoint``
is a flush here; the row, the hold and the reconcile job are written before the call and commit
with the answer. A process that dies mid-call rolls all of it back; the acquirer, called with our
reference as its idempotency key, then holds an authorisation malipo never recorded, which lapses
at the acquirer after 7 days. Moving the call after a commit (two sessions) is the next step.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, status

from malipo.cards import service
from malipo.cards.models import AuthorizationStatus, CardAuthorization, CardToken
from malipo.cards.schemas import (
    AuthorizationOut,
    AuthorizeIn,
    CaptureIn,
    CardOut,
    RefundIn,
    ThreeDsOut,
    TokenizeIn,
    TokenOut,
    VerifyIn,
    VoidIn,
)
from malipo.core.http_client import http_client
from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import KEY, CurrentPrincipal, callers
from malipo.http.tags import CARDS
from malipo.providers.base import CardAcquirer
from malipo.providers.registry import card_acquirer_for

router = APIRouter(tags=[CARDS])

ACQUIRER_TIMEOUT = 20.0


async def _acquirer(who: CurrentPrincipal, settings: SettingsDep) -> AsyncIterator[CardAcquirer]:
    async with http_client(ACQUIRER_TIMEOUT, connections=4) as http:
        yield card_acquirer_for(settings, who.mode.value, http)


Acquirer = Annotated[CardAcquirer, Depends(_acquirer)]

S = AuthorizationStatus
_MESSAGES = {
    S.AUTHORIZING: "Sent to the acquirer; no answer yet: read it again shortly",
    S.PENDING_3DS: "3-D Secure: send the payer to threeDs.redirectUrl, then verify with the paRes",
    S.AUTHORIZED: "Approved: the amount is held until you capture or void it, or it expires",
    S.CAPTURED: "Captured: the amount (less the fee) is in your payments wallet",
    S.PARTIALLY_REFUNDED: "Captured, and partly refunded",
    S.REFUNDED: "Refunded in full",
    S.FAILED_3DS: "The payer did not pass 3-D Secure: nothing is held",
    S.VOIDED: "Voided: the hold is released",
    S.EXPIRED: "Not captured within 7 days: the hold is released",
}


def _message(auth: CardAuthorization) -> str:
    if auth.status == S.DECLINED:
        reason = auth.response_desc or "no reason given"
        return f"Declined by the card issuer: {reason} (code {auth.response_code})"
    if auth.status == S.FAILED:
        return f"The acquirer could not take the authorization: {auth.response_desc}. Nothing is held"
    return _MESSAGES.get(S(auth.status), auth.status)


def authorization_out(auth: CardAuthorization) -> AuthorizationOut:
    def money(amount: int) -> str:
        return Money(amount, auth.currency).format()

    return AuthorizationOut(
        authorization_id=auth.id, reference=auth.reference, order_id=auth.order_id, status=auth.status,
        message=_message(auth), amount=money(auth.amount), currency=auth.currency,
        captured_amount=money(auth.captured_amount), refunded_amount=money(auth.refunded_amount),
        fee=money(auth.fee), card=CardOut(brand=auth.brand, bin=auth.bin, last4=auth.last4),
        response_code=auth.response_code, response_message=auth.response_desc, auth_code=auth.auth_code,
        three_ds=ThreeDsOut(
            redirect_url=auth.acs_url if auth.status == S.PENDING_3DS else None,
            trans_id=auth.three_ds_trans_id, trans_status=auth.trans_status, eci=auth.eci,
        ),
        created_at=auth.created_at, expires_at=auth.expires_at, authorized_at=auth.authorized_at,
        captured_at=auth.captured_at,
    )  # fmt: skip


def token_out(row: CardToken, *, cvv_on_file: bool, same_as: CardToken | None) -> TokenOut:
    return TokenOut(
        token=row.token, card=CardOut(brand=row.brand, bin=row.bin, last4=row.last4),
        expiry_month=row.expiry_month, expiry_year=row.expiry_year, cvv_on_file=cvv_on_file,
        fingerprint=row.fingerprint, same_card_as=same_as.token if same_as else None,
        created_at=row.created_at,
    )  # fmt: skip


@router.post(
    "/cards/tokenize", response_model=TokenOut, status_code=status.HTTP_201_CREATED, name="Cards.Tokenize",
    summary="Store a card in the vault and get its token", openapi_extra=callers(KEY),
)  # fmt: skip
async def tokenize(
    body: TokenizeIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> TokenOut:
    """The number must pass the Luhn check and be of a known brand and length, the expiry must not be
    past, the CVV 3 digits (4 for American Express). The number is kept encrypted; replies show
    only brand, BIN and last 4. The CVV is never written down: it is held in memory for 10
    minutes, for the first authorization with this token."""
    card = service.CardDetails(body.card_number, body.expiry_month, body.expiry_year, body.cvv)
    now = clock.now()
    row = await service.tokenize(session, who, card, settings=settings, now=now)
    return token_out(
        row, cvv_on_file=service.cvv_on_file(row.token, now), same_as=await service.same_card(session, row)
    )


@router.post(
    "/cards/authorize", response_model=AuthorizationOut, status_code=status.HTTP_201_CREATED,
    name="Cards.Authorize", summary="Authorise (hold) an amount on a tokenised card",
    openapi_extra=callers(KEY),
)  # fmt: skip
async def authorize(
    body: AuthorizeIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep, acquirer: Acquirer,
) -> AuthorizationOut:  # fmt: skip
    """Always `201` with the authorization; its `status` says the outcome: `authorized` (held for
    7 days: capture or void it), `pending_3ds` (send the payer to `threeDs.redirectUrl`, then call
    `/cards/3ds/verify`), `declined` (`responseCode` is the ISO 8583 code, `message` says why),
    `failed` (the acquirer could not take it) or `authorizing` (no answer yet: read it again).
    Send an `Idempotency-Key`: a retry replays the first reply instead of holding twice."""
    request = service.AuthorizeRequest(
        body.token, body.amount, body.currency.upper(), body.order_id, body.return_url
    )
    auth = await service.authorize(
        session, who, request, acquirer, settings=settings, now=clock.now(), checkpoint=session.flush
    )
    reply = authorization_out(auth)
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/cards/3ds/verify", response_model=AuthorizationOut, name="Cards.Verify3ds",
    summary="Complete a 3-D Secure challenge with its paRes", openapi_extra=callers(KEY),
)  # fmt: skip
async def verify_3ds(
    body: VerifyIn, who: CurrentPrincipal, session: Session, clock: ClockDep, acquirer: Acquirer
) -> AuthorizationOut:
    """After the payer's browser comes back to your return URL with `paRes`: the authorization
    becomes `authorized`, `declined` (the issuer said no after authentication) or `failed_3ds`. A
    forged, foreign or stale paRes is a 422 and changes nothing. Sending the same paRes again
    answers the same."""
    auth = await service.verify_3ds(
        session, who, body.authorization_id, body.pa_res, acquirer, now=clock.now(), checkpoint=session.flush
    )
    return authorization_out(auth)


@router.post(
    "/cards/capture", response_model=AuthorizationOut, name="Cards.Capture",
    summary="Capture an authorised amount, in full or in part", openapi_extra=callers(KEY),
)  # fmt: skip
async def capture(
    body: CaptureIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep, acquirer: Acquirer,
) -> AuthorizationOut:  # fmt: skip
    """Once per authorization, at most the authorized amount, before it expires: the amount less
    the fee goes to your payments wallet and the rest of the hold is released."""
    auth = await service.capture(
        session, who, body.authorization_id, body.amount, acquirer, settings=settings, now=clock.now(),
        checkpoint=session.flush,
    )  # fmt: skip
    reply = authorization_out(auth)
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


@router.post(
    "/cards/void", response_model=AuthorizationOut, name="Cards.Void",
    summary="Release an authorisation that was not captured", openapi_extra=callers(KEY),
)  # fmt: skip
async def void(
    body: VoidIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    acquirer: Acquirer,
) -> AuthorizationOut:  # fmt: skip
    """Only an `authorized` authorization (not captured, not expired): the whole hold is released."""
    auth = await service.void(
        session, who, body.authorization_id, acquirer, now=clock.now(), checkpoint=session.flush
    )
    reply = authorization_out(auth)
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


@router.post(
    "/cards/refund", response_model=AuthorizationOut, name="Cards.Refund",
    summary="Refund a captured card payment, in full or in part", openapi_extra=callers(KEY),
)  # fmt: skip
async def refund(
    body: RefundIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    acquirer: Acquirer,
) -> AuthorizationOut:  # fmt: skip
    """Partial refunds may repeat until the captured amount is used up (never more). The amount
    leaves your payments wallet; the capture's fee is not refunded."""
    auth = await service.refund(
        session, who, body.authorization_id, body.amount, acquirer, now=clock.now(), checkpoint=session.flush
    )
    reply = authorization_out(auth)
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


@router.get(
    "/cards/authorizations/{authorizationId:uuid}", response_model=AuthorizationOut, name="Cards.Read",
    summary="One card authorisation", openapi_extra=callers(KEY),
)  # fmt: skip
async def read_authorization(
    authorizationId: uuid.UUID, who: CurrentPrincipal, session: Session
) -> AuthorizationOut:
    """Its status, amounts captured and refunded, the issuer's response and the 3-D Secure result.
    Another account's authorization is a 404."""
    return authorization_out(await service.get_authorization(session, who, authorizationId))
