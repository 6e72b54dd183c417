"""Card payments: tokenise a card, authorise it (with 3-D Secure), capture, void, refund, expire.

What callers can rely on:
- ``tokenize`` checks the number (Luhn, a known brand and its length), the expiry (not past) and the
  CVV (4 digits for Amex, else 3), seals the PAN (``malipo.cards.vault``) and keeps only brand, BIN,
  last 4 and expiry in the clear; the CVV stays in memory until the first authorisation.
- ``authorize`` writes the authorisation (AUTHORIZING) with a hold of its amount on the card
  clearing account, its expiry job and a reconcile job, then calls ``checkpoint`` (the endpoint
  commits there) and only then the acquirer: a process that dies during the call leaves a row the
  reconcile job settles by asking the acquirer. The answer moves it once: AUTHORIZED (hold kept
  until capture, void or 7 days), PENDING_3DS (``acs_url``), DECLINED or FAILED_3DS (hold released).
- ``verify_3ds`` completes a challenge with the paRes; ``capture`` (once, ≤ authorised) posts the
  captured amount from card clearing to the payments wallet minus the fee, the rest released;
  ``void`` releases the hold; ``refund`` (≤ captured minus earlier refunds) moves money back from
  the payments wallet to card clearing. Each movement is one journal with its guarded state change.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.cards import repository, vault
from malipo.cards.models import HOLDING, REFUNDABLE, AuthorizationStatus, CardAuthorization, CardToken
from malipo.config import Settings
from malipo.core.cards import card_brand, luhn_valid
from malipo.core.errors import Conflict, FieldError, NotFound, ServiceUnavailable, ValidationFailed
from malipo.core.ids import new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.providers.base import (
    AuthorisationOutcome,
    CaptureRequest,
    CardAcquirer,
    CardAuthorisation,
    CardRequestRefused,
    CardStatus,
    RailError,
    RefundRequest,
    VoidRequest,
)
from malipo.worker.registry import enqueue

log = get_logger("malipo.cards")

EXPIRE_JOB = "card.expire"
RECONCILE_JOB = "card.reconcile"
# How long an uncaptured authorisation holds its amount (the common card-not-present window).
AUTHORIZATION_TTL = timedelta(days=7)
# When an authorisation still waiting for the acquirer's answer is asked about.
RECONCILE_AFTER = timedelta(minutes=2)
S = AuthorizationStatus

Checkpoint = Callable[[], Awaitable[None]]


class CardTokenNotFound(NotFound):
    code = "card_token_not_found"
    title = "No such card token"


class CardAuthorizationNotFound(NotFound):
    code = "card_authorization_not_found"
    title = "No such card authorization"


class InvalidCard(ValidationFailed):
    code = "invalid_card"
    title = "The card details are not valid"


class WrongState(Conflict):
    code = "card_authorization_state"
    title = "The authorization is not in a state that allows this"


class AmountNotAllowed(ValidationFailed):
    code = "card_amount_not_allowed"
    title = "The amount is more than this allows"


class InsufficientBalance(ValidationFailed):
    code = "insufficient_balance"
    title = "The wallet does not hold enough"


class PaResRefused(ValidationFailed):
    code = "invalid_pares"
    title = "The paRes is not valid for this authorization"


class AcquirerUnavailable(ServiceUnavailable):
    code = "card_acquirer_unavailable"
    title = "The card acquirer could not be reached"


# --------------------------------------------------------------------------- the vault


@dataclass(frozen=True, slots=True)
class CardDetails:
    number: str = ""
    expiry_month: int = 0
    expiry_year: int = 0
    cvv: str = ""

    def __repr__(self) -> str:  # never the number nor the CVV
        return f"CardDetails(expiry={self.expiry_month:02d}/{self.expiry_year})"


def _check_card(card: CardDetails, now: datetime) -> tuple[str, str]:
    """``(pan, brand)``, or InvalidCard naming the field (never its value)."""
    pan = card.number.replace(" ", "").replace("-", "")
    if not luhn_valid(pan):
        raise InvalidCard.for_field("cardNumber", "is not a valid card number (12 to 19 digits, Luhn check)")
    brand = card_brand(pan)
    if brand is None:
        raise InvalidCard.for_field("cardNumber", "is not a card of a known brand and length")
    if (card.expiry_year, card.expiry_month) < (now.year, now.month):
        raise InvalidCard.for_field("expiryYear", "the card has expired (month and year are in the past)")
    if len(card.cvv) != (4 if brand == "amex" else 3):
        raise InvalidCard.for_field("cvv", f"must be {4 if brand == 'amex' else 3} digits for a {brand} card")
    return pan, brand


async def tokenize(
    session: AsyncSession, who: Principal, card: CardDetails, *, settings: Settings, now: datetime
) -> CardToken:
    """A new token of the caller's client and mode for the card; its CVV held in memory only."""
    assert who.client_id is not None
    pan, brand = _check_card(card, now)
    token = f"tok_{new_reference(24).lower()}"
    sealed, key_id = vault.seal_pan(token, pan)
    row = CardToken(
        token=token, client_id=who.client_id, mode=who.mode.value, brand=brand, bin=pan[:6], last4=pan[-4:],
        expiry_month=card.expiry_month, expiry_year=card.expiry_year, pan_ciphertext=sealed, key_id=key_id,
        fingerprint=vault.fingerprint(settings, who.client_id, pan), created_at=now,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    vault.cvvs.put(token, card.cvv, now)
    log.info("card.tokenized", token=token, brand=brand, bin=row.bin, last4=row.last4)
    return row


async def same_card(session: AsyncSession, row: CardToken) -> CardToken | None:
    """The client's first token of the same card, when ``row`` is not it (a card tokenised again)."""
    first = await repository.first_with_fingerprint(session, row.client_id, row.mode, row.fingerprint)
    return first if first is not None and first.id != row.id else None


def cvv_on_file(token: str, now: datetime) -> bool:
    return vault.cvvs.holds(token, now)


async def get_token(session: AsyncSession, who: Principal, token: str) -> CardToken:
    assert who.client_id is not None
    row = await repository.token_of_client(session, who.client_id, who.mode.value, token)
    if row is None:
        raise CardTokenNotFound("no such card token", errors=[FieldError("token", "no such card token")])
    return row


# --------------------------------------------------------------------------- authorising


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    token: str
    amount: object  # as the client sent it: read by Money.parse in ``currency``
    currency: str
    order_id: str | None = None
    return_url: str | None = None


async def authorize(
    session: AsyncSession,
    who: Principal,
    body: AuthorizeRequest,
    acquirer: CardAcquirer,
    *,
    settings: Settings,
    now: datetime,
    checkpoint: Checkpoint,
) -> CardAuthorization:
    """Hold, commit (``checkpoint``), ask the acquirer, record its answer (see the module's doc)."""
    assert who.client_id is not None
    card = await get_token(session, who, body.token)
    amount = Money.parse(body.amount, body.currency, field="amount")  # type: ignore[arg-type]
    mode = who.mode.value
    reference = f"CARD-{new_reference(20)}"
    clearing = await ledger.system_account(session, AccountKind.CARD_CLEARING, amount.currency, mode, now)
    hold = await ledger.place_hold(
        session, clearing.id, amount.amount, reference=f"card:{reference}", now=now
    )
    auth = CardAuthorization(
        client_id=who.client_id, mode=mode, token_id=card.id, reference=reference, order_id=body.order_id,
        amount=amount.amount, currency=amount.currency, status=S.AUTHORIZING, brand=card.brand, bin=card.bin,
        last4=card.last4, hold_id=hold.id, captured_amount=0, refunded_amount=0, refunds=0, fee=0,
        created_at=now, updated_at=now, expires_at=now + AUTHORIZATION_TTL,
    )  # fmt: skip
    session.add(auth)
    await session.flush()
    enqueue(session, EXPIRE_JOB, {"authorization_id": str(auth.id)}, now=now, delay=AUTHORIZATION_TTL)
    enqueue(session, RECONCILE_JOB, {"authorization_id": str(auth.id)}, now=now, delay=RECONCILE_AFTER)
    request = CardAuthorisation(
        reference=reference, amount=amount.amount, currency=amount.currency,
        pan=vault.open_pan(card.token, card.pan_ciphertext), expiry_month=card.expiry_month,
        expiry_year=card.expiry_year, return_url=body.return_url or settings.public_url + "/",
        order_id=body.order_id, cvv=vault.cvvs.take(card.token, now),
    )  # fmt: skip
    auth_id = auth.id
    await checkpoint()
    try:
        outcome = await acquirer.authorise(request)
    except RailError as exc:
        log.warning("card.authorize_failed", reference=reference, error=str(exc), not_taken=exc.not_taken)
        if exc.not_taken:
            await _fail(session, auth_id, exc.result_desc or "the acquirer refused the request", now=now)
        found = await repository.authorization_by_id(session, auth_id)
        assert found is not None
        return found
    return await apply_outcome(session, auth_id, outcome, now=now)


async def apply_outcome(
    session: AsyncSession, authorization_id: uuid.UUID, outcome: AuthorisationOutcome, *, now: datetime
) -> CardAuthorization:
    """Move an authorisation waiting for the acquirer (AUTHORIZING or PENDING_3DS) to what it
    says, once; an UNKNOWN answer changes nothing. Returns the authorisation as it now stands."""
    values: dict[str, Any] = {
        "updated_at": now, "response_code": outcome.response_code,
        "response_desc": (outcome.response_desc or "")[:200] or None, "auth_code": outcome.auth_code,
        "trans_status": outcome.trans_status, "eci": outcome.eci,
    }  # fmt: skip
    if outcome.acquirer_reference:
        values["acquirer_reference"] = outcome.acquirer_reference
    release = False
    if outcome.status == CardStatus.APPROVED:
        values |= {"status": S.AUTHORIZED, "authorized_at": now}
    elif outcome.status == CardStatus.CHALLENGE_REQUIRED:
        values |= {"status": S.PENDING_3DS, "acs_url": outcome.acs_url,
                   "three_ds_trans_id": outcome.three_ds_trans_id}  # fmt: skip
    elif outcome.status in (CardStatus.DECLINED, CardStatus.FAILED_3DS):
        status = S.DECLINED if outcome.status == CardStatus.DECLINED else S.FAILED_3DS
        values |= {"status": status, "closed_at": now, "acs_url": None}
        release = True
    else:
        values = {}
    if values and await repository.move(session, authorization_id, [S.AUTHORIZING, S.PENDING_3DS], values):
        auth = await repository.authorization_by_id(session, authorization_id)
        assert auth is not None
        if release and auth.hold_id is not None:
            await ledger.release_hold(session, auth.hold_id, now=now)
        log.info("card.authorization", reference=auth.reference, status=auth.status,
                 response_code=auth.response_code)  # fmt: skip
        return auth
    auth = await repository.authorization_by_id(session, authorization_id)
    assert auth is not None
    return auth


async def _fail(session: AsyncSession, authorization_id: uuid.UUID, why: str, *, now: datetime) -> bool:
    values = {"status": S.FAILED, "response_desc": why[:200], "closed_at": now, "updated_at": now}
    if not await repository.move(session, authorization_id, [S.AUTHORIZING], values):
        return False
    auth = await repository.authorization_by_id(session, authorization_id)
    assert auth is not None
    assert auth.hold_id is not None
    await ledger.release_hold(session, auth.hold_id, now=now)
    return True


async def verify_3ds(
    session: AsyncSession,
    who: Principal,
    authorization_id: uuid.UUID,
    pares: str,
    acquirer: CardAcquirer,
    *,
    now: datetime,
    checkpoint: Checkpoint,
) -> CardAuthorization:
    """Complete a PENDING_3DS authorisation with the paRes the ACS page handed back."""
    auth = await get_authorization(session, who, authorization_id)
    if auth.status != S.PENDING_3DS:
        raise WrongState(f"the authorization is {auth.status}: only a pending_3ds one can be verified",
                         errors=[FieldError("authorizationId", f"is {auth.status}")])  # fmt: skip
    await checkpoint()
    try:
        outcome = await acquirer.complete_challenge(auth.reference, pares)
    except CardRequestRefused as exc:
        raise PaResRefused(
            "the paRes is not valid for this authorization (forged, foreign or expired)",
            errors=[FieldError("paRes", exc.reason)],
        ) from None
    except RailError as exc:
        raise AcquirerUnavailable(
            "the card acquirer could not be reached: send the same paRes again"
        ) from exc
    return await apply_outcome(session, auth.id, outcome, now=now)


# --------------------------------------------------------------------------- after the authorisation


def _refused(exc: CardRequestRefused, field: str) -> Exception:
    if exc.reason.startswith("amount_"):
        return AmountNotAllowed(
            f"the acquirer refused the amount: {exc.reason}", errors=[FieldError(field, exc.reason)]
        )
    return WrongState(
        f"the acquirer refused: {exc.reason}", errors=[FieldError("authorizationId", exc.reason)]
    )


async def capture(
    session: AsyncSession,
    who: Principal,
    authorization_id: uuid.UUID,
    amount_in: object,
    acquirer: CardAcquirer,
    *,
    settings: Settings,
    now: datetime,
    checkpoint: Checkpoint,
) -> CardAuthorization:
    """Capture once, at most the authorised amount: card clearing → payments wallet (minus the fee,
    the card tariff's, to fee revenue); the rest of the hold released, in one journal."""
    auth = await get_authorization(session, who, authorization_id)
    amount = Money.parse(amount_in, auth.currency, field="amount")  # type: ignore[arg-type]
    _must_be_authorized(auth, now, "captured")
    if amount.amount > auth.amount:
        raise AmountNotAllowed(
            f"at most {Money(auth.amount, auth.currency)} can be captured",
            errors=[FieldError("amount", f"more than the {Money(auth.amount, auth.currency)} authorized")],
        )
    fee = min(await pricing.fee(session, settings, auth.client_id, PricingKind.CARD, amount), amount)
    await checkpoint()
    try:
        done = await acquirer.capture(
            CaptureRequest(auth.reference, f"CAP-{auth.reference}", amount.amount, auth.currency)
        )
    except CardRequestRefused as exc:
        raise _refused(exc, "amount") from None
    except RailError as exc:
        raise AcquirerUnavailable(
            "the card acquirer could not be reached: capture again (it is safe)"
        ) from exc
    values = {"status": S.CAPTURED, "captured_amount": done.amount, "fee": fee.amount, "captured_at": now,
              "updated_at": now}  # fmt: skip
    if not await repository.move(session, auth.id, [S.AUTHORIZED], values):
        raise WrongState("the authorization moved while it was being captured")
    currency, mode = auth.currency, auth.mode
    wallet = await ledger.merchant_wallet(
        session, auth.client_id, AccountKind.PAYMENTS_WALLET, currency, mode, now
    )
    clearing = await ledger.system_account(session, AccountKind.CARD_CLEARING, currency, mode, now)
    legs = [ledger.Leg(wallet.id, done.amount - fee.amount, currency)]
    if fee.is_positive:
        revenue = await ledger.system_account(session, AccountKind.FEE_REVENUE, currency, mode, now)
        legs.append(ledger.Leg(revenue.id, fee.amount, currency))
    if auth.amount > done.amount:  # the rest of the hold goes back where it was
        legs.append(ledger.Leg(clearing.id, auth.amount - done.amount, currency))
    assert auth.hold_id is not None
    posted = await ledger.settle_hold(
        session, auth.hold_id, legs, kind="card_capture", mode=mode, client_id=auth.client_id,
        description=f"Card capture {auth.reference} ({auth.brand} {auth.bin}…{auth.last4})",
        idempotency_key=f"card-capture:{auth.id}", now=now,
    )  # fmt: skip
    auth.capture_journal_id = posted.journal.id
    await session.flush()
    log.info("card.captured", reference=auth.reference, amount=done.amount, fee=fee.amount)
    return await _fresh(session, auth.id)


async def void(
    session: AsyncSession,
    who: Principal,
    authorization_id: uuid.UUID,
    acquirer: CardAcquirer,
    *,
    now: datetime,
    checkpoint: Checkpoint,
) -> CardAuthorization:
    """Release an authorised, uncaptured hold."""
    auth = await get_authorization(session, who, authorization_id)
    _must_be_authorized(auth, now, "voided")
    await checkpoint()
    try:
        await acquirer.void(VoidRequest(auth.reference, f"VOID-{auth.reference}"))
    except CardRequestRefused as exc:
        raise _refused(exc, "authorizationId") from None
    except RailError as exc:
        raise AcquirerUnavailable("the card acquirer could not be reached: void again (it is safe)") from exc
    values = {"status": S.VOIDED, "closed_at": now, "updated_at": now}
    if not await repository.move(session, auth.id, [S.AUTHORIZED], values):
        raise WrongState("the authorization moved while it was being voided")
    assert auth.hold_id is not None
    await ledger.release_hold(session, auth.hold_id, now=now)
    log.info("card.voided", reference=auth.reference)
    return await _fresh(session, auth.id)


async def refund(
    session: AsyncSession,
    who: Principal,
    authorization_id: uuid.UUID,
    amount_in: object,
    acquirer: CardAcquirer,
    *,
    now: datetime,
    checkpoint: Checkpoint,
) -> CardAuthorization:
    """Refund part or all of what is left of the capture: payments wallet → card clearing. The fee
    charged on the capture is not given back."""
    auth = await get_authorization(session, who, authorization_id)
    amount = Money.parse(amount_in, auth.currency, field="amount")  # type: ignore[arg-type]
    if auth.status not in REFUNDABLE:
        raise WrongState(f"the authorization is {auth.status}: only a captured one can be refunded",
                         errors=[FieldError("authorizationId", f"is {auth.status}")])  # fmt: skip
    left = Money(auth.captured_amount - auth.refunded_amount, auth.currency)
    if amount > left:
        raise AmountNotAllowed(
            f"at most {left} can still be refunded",
            errors=[FieldError("amount", f"more than the {left} left to refund")],
        )
    wallet = await ledger.merchant_wallet(
        session, auth.client_id, AccountKind.PAYMENTS_WALLET, auth.currency, auth.mode, now
    )
    if wallet.balance - wallet.held < amount.amount:
        available = Money(wallet.balance - wallet.held, auth.currency)
        raise InsufficientBalance(
            f"the payments wallet has {available} available, {amount} needed",
            errors=[FieldError("amount", f"the payments wallet has {available}")],
        )
    before, number = auth.refunded_amount, auth.refunds + 1
    await checkpoint()
    try:
        done = await acquirer.refund(
            RefundRequest(auth.reference, f"REF-{auth.reference}-{number}", amount.amount, auth.currency)
        )
    except CardRequestRefused as exc:
        raise _refused(exc, "amount") from None
    except RailError as exc:
        raise AcquirerUnavailable(
            "the card acquirer could not be reached: refund again (it is safe)"
        ) from exc
    total = before + done.amount
    values = {"status": S.REFUNDED if total >= auth.captured_amount else S.PARTIALLY_REFUNDED,
              "refunded_amount": total, "refunds": number, "updated_at": now}  # fmt: skip
    if total >= auth.captured_amount:
        values["closed_at"] = now
    if not await repository.move(session, auth.id, REFUNDABLE, values, refunded_amount=before):
        raise WrongState("another refund of this authorization came first: look at it and refund again")
    clearing = await ledger.system_account(session, AccountKind.CARD_CLEARING, auth.currency, auth.mode, now)
    try:
        await ledger.post_journal(
            session, [ledger.Leg(wallet.id, -done.amount, auth.currency),
                      ledger.Leg(clearing.id, done.amount, auth.currency)],
            kind="card_refund", description=f"Card refund {number} of {auth.reference}", mode=auth.mode,
            client_id=auth.client_id, idempotency_key=f"card-refund:{auth.id}:{number}", now=now,
        )  # fmt: skip
    except ledger.InsufficientFunds:
        raise InsufficientBalance("the payments wallet no longer holds enough for this refund") from None
    log.info("card.refunded", reference=auth.reference, amount=done.amount, refunded=total)
    return await _fresh(session, auth.id)


def _must_be_authorized(auth: CardAuthorization, now: datetime, what: str) -> None:
    if auth.status == S.AUTHORIZED and now >= auth.expires_at:
        raise WrongState(f"the authorization expired at {auth.expires_at.isoformat()}: it cannot be {what}",
                         errors=[FieldError("authorizationId", "has expired")])  # fmt: skip
    if auth.status != S.AUTHORIZED:
        raise WrongState(f"the authorization is {auth.status}: only an authorized one can be {what}",
                         errors=[FieldError("authorizationId", f"is {auth.status}")])  # fmt: skip


async def _fresh(session: AsyncSession, authorization_id: uuid.UUID) -> CardAuthorization:
    auth = await repository.authorization_by_id(session, authorization_id)
    assert auth is not None
    return auth


# --------------------------------------------------------------------------- the worker's


async def expire(session: AsyncSession, authorization_id: uuid.UUID, *, now: datetime) -> bool:
    """Expire an authorisation still holding its amount once its 7 days are over: the hold released."""
    auth = await repository.authorization_by_id(session, authorization_id)
    if auth is None or auth.status not in HOLDING or now < auth.expires_at:
        return False
    values = {"status": S.EXPIRED, "closed_at": now, "updated_at": now}
    if not await repository.move(session, auth.id, list(HOLDING), values):
        return False
    assert auth.hold_id is not None
    await ledger.release_hold(session, auth.hold_id, now=now)
    log.info("card.expired", reference=auth.reference)
    return True


async def reconcile(
    session: AsyncSession, authorization_id: uuid.UUID, outcome: AuthorisationOutcome, *, now: datetime
) -> None:
    """What the acquirer says of an authorisation still AUTHORIZING: applied; not known there: failed."""
    if outcome.status == CardStatus.UNKNOWN and outcome.not_found:
        await _fail(session, authorization_id, "the acquirer never received the authorization", now=now)
        return
    await apply_outcome(session, authorization_id, outcome, now=now)


# --------------------------------------------------------------------------- reads


async def get_authorization(
    session: AsyncSession, who: Principal, authorization_id: uuid.UUID
) -> CardAuthorization:
    """The caller's authorisation in its mode; another client's (or mode's) is a 404."""
    assert who.client_id is not None
    found = await repository.authorization_of_client(session, who.client_id, who.mode.value, authorization_id)
    if found is None:
        raise CardAuthorizationNotFound(
            f"no card authorization {authorization_id}",
            errors=[FieldError("authorizationId", "no such authorization")],
        )
    return found


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class AuthorizationTotals:
    """One currency and status of a report's authorisations (minor units): ``approved`` is the
    amount of those the issuer authorised, whatever happened to them after."""

    currency: str
    status: str
    count: int
    amount: int
    approved: int
    captured: int
    refunded: int
    fee: int


async def report_authorizations(
    session: AsyncSession, who: Principal, *, client_id: uuid.UUID | None = None, mode: str | None = None,
    status: str | None = None, since: datetime | None = None, until: datetime | None = None,
    page: int = 1, page_size: int = 50,
) -> tuple[list[CardAuthorization], int]:  # fmt: skip
    """A page of the authorisations created in [``since``, ``until``), newest first, of both modes
    unless ``mode``, and how many match."""
    return await repository.authorizations_page(
        session, who.report_scope(client_id), mode, status=status, since=since, until=until,
        offset=(page - 1) * page_size, limit=page_size,
    )  # fmt: skip


async def report_totals(
    session: AsyncSession, who: Principal, *, client_id: uuid.UUID | None = None, mode: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> list[AuthorizationTotals]:  # fmt: skip
    """The authorisations created in [``since``, ``until``) counted and summed per currency and status."""
    rows = await repository.authorization_totals(
        session, who.report_scope(client_id), mode, since=since, until=until
    )
    return [AuthorizationTotals(currency, status, *map(int, sums)) for currency, status, *sums in rows]
