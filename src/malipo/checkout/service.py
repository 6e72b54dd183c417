"""Hosted checkout: a session a payer pays once, by M-Pesa or by card, on malipo's page.

What callers can rely on:
- ``create_session`` stores an OPEN session of the merchant's client and mode with its expiry
  (and the job that expires it); its ``public_id`` (``cs_…``, unguessable) is the page's only
  credential, so the pages need no login and see nothing else.
- A session is paid once. ``pay_mpesa`` and ``pay_card`` accept only an OPEN session before its
  expiry; while an attempt is in flight it is PENDING and refuses another; a failed attempt
  (cancelled prompt, declined card, failed 3-D Secure) puts it back to OPEN with ``last_error``
  (EXPIRED if its time is over), so the payer can try again, at most ``MAX_ATTEMPTS`` times.
- M-Pesa: the attempt is a collection (purpose ``checkout``) through ``collections``; its outcome
  reaches the session in the collection's own transaction (``collections.on_finished``).
- Card: tokenise, authorise (3-D Secure when the issuer asks), then capture the whole amount at
  once (a sale); the money moves by the cards domain's journals.
- COMPLETED and EXPIRED are final; each queues the merchant's webhook (``checkout.session.*``)
  in the transaction that makes it so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.cards import service as cards
from malipo.cards.models import AuthorizationStatus, CardAuthorization
from malipo.checkout import repository
from malipo.checkout.models import CheckoutSession, PaymentLink, PayMethod, SessionStatus
from malipo.collections import service as collections
from malipo.collections.models import Collection, CollectionPurpose, CollectionStatus
from malipo.config import Settings
from malipo.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.providers.base import CardAcquirer
from malipo.webhooks import service as webhooks
from malipo.worker.registry import enqueue

log = get_logger("malipo.checkout")

EXPIRE_JOB = "checkout.expire"
DEFAULT_TTL = timedelta(minutes=30)
MIN_TTL_MINUTES, MAX_TTL_MINUTES = 5, 24 * 60
# Attempts a payer gets on one session (each may send an STK push to a phone).
MAX_ATTEMPTS = 5
# A card session left waiting for its 3-D Secure challenge this long after its expiry is expired.
CHALLENGE_GRACE = timedelta(minutes=15)
S = SessionStatus
CARD = AuthorizationStatus


class CheckoutSessionNotFound(NotFound):
    code = "checkout_session_not_found"
    title = "No such checkout session"


class PaymentLinkNotFound(NotFound):
    code = "payment_link_not_found"
    title = "No such payment link"


class NotPayable(Conflict):
    code = "checkout_session_not_payable"
    title = "This checkout session cannot be paid"


class SlugTaken(Conflict):
    code = "payment_link_slug_taken"
    title = "The slug is taken"


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class NewSession:
    amount: object  # as the client sent it: read by Money.parse in ``currency``
    currency: str
    return_url: str | None = None
    callback_url: str | None = None
    description: str | None = None
    order_id: str | None = None
    channel_id: int | None = None
    expires_in_minutes: int | None = None


def mpesa_offered(cs: CheckoutSession | PaymentLink) -> bool:
    """M-Pesa takes whole shillings, 1 to the collections' maximum."""
    if cs.currency != collections.CURRENCY:
        return False
    if cs.amount is None:  # a link with the payer's amount: within its own bounds
        return True
    whole, cents = divmod(cs.amount, 100)
    return cents == 0 and 1 <= whole <= collections.MAX_AMOUNT


async def check_channel(session: AsyncSession, who: Principal, channel_id: int | None, field: str) -> None:
    if channel_id is None:
        return
    try:
        channel = await collections.get_channel(session, who, channel_id)
    except NotFound:
        raise NotFound.for_field(field, f"no payment channel {channel_id}") from None
    if not channel.is_active:
        raise collections.InactiveChannel.for_field(field, f"payment channel {channel_id} is not active")


async def create_session(
    session: AsyncSession,
    who: Principal,
    body: NewSession,
    *,
    now: datetime,
    link: PaymentLink | None = None,
) -> CheckoutSession:
    """An OPEN session of the caller's client and mode, and the job that expires it."""
    assert who.client_id is not None
    amount = Money.parse(body.amount, body.currency.upper(), field="amount")  # type: ignore[arg-type]
    await check_channel(session, who, body.channel_id, "channelId")
    ttl = DEFAULT_TTL if body.expires_in_minutes is None else timedelta(minutes=body.expires_in_minutes)
    cs = CheckoutSession(
        id=new_id(), public_id=f"cs_{new_reference(24).lower()}", client_id=who.client_id,
        mode=who.mode.value, api_user_id=who.api_user_id, link_id=link.id if link else None,
        amount=amount.amount, currency=amount.currency, description=body.description,
        order_id=body.order_id, return_url=body.return_url, callback_url=body.callback_url,
        channel_id=body.channel_id, status=S.OPEN, method=None, attempts=0, collection_id=None,
        card_authorization_id=None, payer_phone=None, last_error=None, created_at=now, updated_at=now,
        expires_at=now + ttl, completed_at=None,
    )  # fmt: skip
    session.add(cs)
    await session.flush()
    enqueue(session, EXPIRE_JOB, {"session_id": str(cs.id)}, now=now, delay=ttl)
    log.info("checkout.created", session=cs.public_id, amount=cs.amount, currency=cs.currency)
    return cs


async def get_session(session: AsyncSession, who: Principal, public_id: str) -> CheckoutSession:
    """The caller's session in its mode; another client's (or mode's) is a 404."""
    assert who.client_id is not None
    found = await repository.session_of_client(session, who.client_id, who.mode.value, public_id)
    if found is None:
        raise CheckoutSessionNotFound(
            f"no checkout session {public_id}", errors=[FieldError("sessionId", "no such checkout session")]
        )
    return found


async def public_session(session: AsyncSession, public_id: str, *, now: datetime) -> CheckoutSession:
    """The session a page names (expired here if its time is over and nothing is in flight)."""
    found = await repository.session_by_public_id(session, public_id) if public_id.startswith("cs_") else None
    if found is None:
        raise CheckoutSessionNotFound(f"no checkout session {public_id}")
    if found.status == S.OPEN and now >= found.expires_at:
        await _expire(session, found, now)
        found = await _fresh(session, found.id)
    return found


def return_location(cs: CheckoutSession, outcome: str) -> str | None:
    """The merchant's ``return_url`` with the session and its outcome added to its query."""
    if not cs.return_url:
        return None
    parts = urlsplit(cs.return_url)
    extra = urlencode({"checkoutSessionId": cs.public_id, "status": outcome})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def merchant_of(row: CheckoutSession | PaymentLink) -> Principal:
    """The merchant a session (or link) collects for, as its payments need a caller: the API
    user that made it, or the client itself when a portal user did."""
    kind = PrincipalKind.API_KEY if row.api_user_id is not None else PrincipalKind.PORTAL
    return Principal(
        kind=kind, id=row.api_user_id or uuid.UUID(int=0), client_id=row.client_id, role_ids=(),
        role_names=frozenset(), mode=KeyMode(row.mode),
    )  # fmt: skip


def _payable(cs: CheckoutSession, now: datetime) -> None:
    if cs.status == S.COMPLETED:
        raise NotPayable("this checkout session is paid already")
    if cs.status == S.EXPIRED or (cs.status == S.OPEN and now >= cs.expires_at):
        raise NotPayable("this checkout session has expired: ask the merchant for a new one")
    if cs.status == S.PENDING:
        raise NotPayable("a payment of this checkout session is in progress: wait for its outcome")
    if cs.attempts >= MAX_ATTEMPTS:
        raise NotPayable(
            f"this checkout session has had its {MAX_ATTEMPTS} attempts: ask the merchant for a new one"
        )


async def _start_attempt(
    session: AsyncSession, cs: CheckoutSession, values: dict[str, Any], now: datetime
) -> None:
    values = {
        "status": S.PENDING,
        "attempts": cs.attempts + 1,
        "last_error": None,
        "updated_at": now,
        **values,
    }
    if not await repository.move(session, cs.id, [S.OPEN], values):
        raise NotPayable("this checkout session changed meanwhile: reload the page")


async def pay_mpesa(
    session: AsyncSession, public_id: str, phone: str, *, settings: Settings, now: datetime
) -> CheckoutSession:
    """Send the STK push of an OPEN session to ``phone``: the session becomes PENDING."""
    cs = await public_session(session, public_id, now=now)
    _payable(cs, now)
    if not mpesa_offered(cs):
        raise ValidationFailed.for_field(
            "method", "M-Pesa takes whole Kenyan shillings: pay this one by card"
        )
    number = collections.payer_phone(phone, field="phone")
    request = collections.CollectionRequest(
        amount=cs.amount // 100, phone_number=number, purpose=CollectionPurpose.CHECKOUT,
        channel_id=cs.channel_id, external_reference=f"{cs.public_id}-{cs.attempts + 1}",
    )  # fmt: skip
    try:
        collection, _new = await collections.request_collection(
            session, merchant_of(cs), request, settings=settings, now=now
        )
    except collections.ServiceWalletTooLow:
        log.warning("checkout.service_wallet_too_low", session=cs.public_id)
        raise NotPayable(
            "the merchant cannot take M-Pesa payments at the moment: pay by card, or try again later"
        ) from None
    except (collections.InactiveChannel, NotFound):
        raise NotPayable("the merchant's M-Pesa channel is not active: pay by card") from None
    await _start_attempt(
        session, cs, {"method": PayMethod.MPESA, "collection_id": collection.id, "payer_phone": number}, now
    )
    log.info("checkout.mpesa_sent", session=cs.public_id, collection=collection.reference)
    return await _fresh(session, cs.id)


async def collections_finished(session: AsyncSession, finished: list[Collection], now: datetime) -> None:
    """A checkout collection's outcome, in its transaction: success completes the session, a
    failure opens it again (or expires it) with the reason for the payer."""
    for collection in finished:
        if collection.purpose != CollectionPurpose.CHECKOUT:
            continue
        cs = await repository.session_by_collection(session, collection.id)
        if cs is None or cs.status != S.PENDING:
            continue
        if collection.status == CollectionStatus.SUCCESS:
            await _complete(
                session, cs, now, receipt=collection.mpesa_receipt, reference=collection.reference
            )
        else:
            await _attempt_failed(session, cs, _mobile_failure(collection), now)


def _mobile_failure(collection: Collection) -> str:
    return collections.payer_message(collection.network_code, collection.result_code, collection.result_desc)


async def _attempt_failed(session: AsyncSession, cs: CheckoutSession, why: str, now: datetime) -> None:
    if now >= cs.expires_at:
        values = {"status": S.EXPIRED, "last_error": why[:300], "updated_at": now}
        if await repository.move(session, cs.id, [S.PENDING], values):
            _notify(session, await _fresh(session, cs.id), "checkout.session.expired", now)
        return
    await repository.move(
        session, cs.id, [S.PENDING], {"status": S.OPEN, "last_error": why[:300], "updated_at": now}
    )
    log.info("checkout.attempt_failed", session=cs.public_id, method=cs.method)


async def _complete(
    session: AsyncSession, cs: CheckoutSession, now: datetime, *, receipt: str | None, reference: str
) -> None:
    values = {"status": S.COMPLETED, "completed_at": now, "updated_at": now, "last_error": None}
    if await repository.move(session, cs.id, [S.PENDING], values):
        done = await _fresh(session, cs.id)
        _notify(session, done, "checkout.session.completed", now, receipt=receipt, reference=reference)
        log.info("checkout.completed", session=cs.public_id, method=cs.method, reference=reference)


def _notify(session: AsyncSession, cs: CheckoutSession, event: str, now: datetime, **extra: Any) -> None:
    if not cs.callback_url:
        return
    payload = {"type": event, "timestamp": now.isoformat(), "data": {**event_data(cs), **extra}}
    webhooks.queue(
        session, client_id=cs.client_id, mode=cs.mode, event=event, subject_reference=cs.public_id,
        url=cs.callback_url, payload=payload, now=now,
    )  # fmt: skip


def event_data(cs: CheckoutSession) -> dict[str, Any]:
    return {
        "sessionId": cs.public_id, "status": cs.status, "amount": Money(cs.amount, cs.currency).format(),
        "currency": cs.currency, "orderId": cs.order_id, "method": cs.method, "payerPhone": cs.payer_phone,
        "completedAt": cs.completed_at.isoformat() if cs.completed_at else None,
    }  # fmt: skip


# --------------------------------------------------------------------------- cards


@dataclass(frozen=True, slots=True)
class CardAttempt:
    session: CheckoutSession
    redirect_url: str | None  # the 3-D Secure page, when the issuer asks for a challenge


async def pay_card(
    session: AsyncSession,
    cs: CheckoutSession,
    card: cards.CardDetails,
    acquirer: CardAcquirer,
    *,
    settings: Settings,
    now: datetime,
    checkpoint: cards.Checkpoint,
) -> CardAttempt:
    """Authorise the card for the whole amount: approved, captured and COMPLETED; a challenge,
    PENDING with the ACS page to go to; declined, OPEN again with the issuer's reason. ``cs`` as
    ``public_session`` read it in this transaction."""
    _payable(cs, now)
    who = merchant_of(cs)
    token = await cards.tokenize(session, who, card, settings=settings, now=now)
    request = cards.AuthorizeRequest(
        token=token.token, amount=Money(cs.amount, cs.currency).format(), currency=cs.currency,
        order_id=cs.order_id or cs.public_id, return_url=f"{settings.public_url}/checkout/{cs.public_id}/3ds",
    )  # fmt: skip
    auth = await cards.authorize(
        session, who, request, acquirer, settings=settings, now=now, checkpoint=checkpoint
    )
    await _start_attempt(session, cs, {"method": PayMethod.CARD, "card_authorization_id": auth.id}, now)
    redirect = await _card_answer(
        session, cs, auth, acquirer, settings=settings, now=now, checkpoint=checkpoint
    )
    return CardAttempt(await _fresh(session, cs.id), redirect)


async def card_returned(
    session: AsyncSession,
    cs: CheckoutSession,
    pares: str,
    acquirer: CardAcquirer,
    *,
    settings: Settings,
    now: datetime,
    checkpoint: cards.Checkpoint,
) -> CheckoutSession:
    """The payer is back from the 3-D Secure page: verify the paRes, then capture (or reopen).
    ``cs`` as ``public_session`` read it in this transaction."""
    if cs.status != S.PENDING or cs.method != PayMethod.CARD or cs.card_authorization_id is None:
        return cs  # a reload of the return page, or a stale tab: the page shows where it stands
    who = merchant_of(cs)
    try:
        auth = await cards.verify_3ds(
            session, who, cs.card_authorization_id, pares, acquirer, now=now, checkpoint=checkpoint
        )
    except cards.PaResRefused:
        auth = await cards.get_authorization(session, who, cs.card_authorization_id)
        if auth.status == CARD.PENDING_3DS:
            await _attempt_failed(session, cs, "The card check could not be completed. Try again.", now)
            return await _fresh(session, cs.id)
    await _card_answer(session, cs, auth, acquirer, settings=settings, now=now, checkpoint=checkpoint)
    return await _fresh(session, cs.id)


async def _card_answer(
    session: AsyncSession,
    cs: CheckoutSession,
    auth: CardAuthorization,
    acquirer: CardAcquirer,
    *,
    settings: Settings,
    now: datetime,
    checkpoint: cards.Checkpoint,
) -> str | None:
    """Follow the authorisation's state: the ACS URL to send the payer to, if any."""
    if auth.status == CARD.PENDING_3DS:
        return auth.acs_url
    if auth.status == CARD.AUTHORIZED:
        who = merchant_of(cs)
        captured = await cards.capture(
            session, who, auth.id, Money(auth.amount, auth.currency).format(), acquirer,
            settings=settings, now=now, checkpoint=checkpoint,
        )  # fmt: skip
        await _complete(session, cs, now, receipt=captured.auth_code, reference=captured.reference)
        return None
    if auth.status in (CARD.DECLINED, CARD.FAILED_3DS, CARD.FAILED):
        await _attempt_failed(session, cs, card_failure(auth), now)
    return None


def card_failure(auth: CardAuthorization) -> str:
    if auth.status == CARD.FAILED_3DS:
        return "Your bank could not confirm it was you (3-D Secure). Try again, or use another card."
    if auth.status == CARD.DECLINED:
        return f"Your card was declined: {auth.response_desc or 'no reason given'}. Try another card."
    return "The card payment could not be processed. Nothing was taken; try again."


# --------------------------------------------------------------------------- expiry


async def _expire(session: AsyncSession, cs: CheckoutSession, now: datetime) -> bool:
    if await repository.move(session, cs.id, [S.OPEN], {"status": S.EXPIRED, "updated_at": now}):
        _notify(session, await _fresh(session, cs.id), "checkout.session.expired", now)
        log.info("checkout.expired", session=cs.public_id)
        return True
    return False


async def expire(session: AsyncSession, session_id: uuid.UUID, *, now: datetime) -> timedelta | None:
    """The expiry job: an OPEN session past its time is EXPIRED. A session still PENDING is
    looked at again later (returned: when); a card one stuck at its 3-D Secure page past the
    grace is expired (its hold lapses with the authorisation)."""
    cs = await repository.session_by_id(session, session_id)
    if cs is None or now < cs.expires_at:
        return None if cs is None else cs.expires_at - now
    if cs.status == S.OPEN:
        await _expire(session, cs, now)
    elif cs.status == S.PENDING:
        if cs.method == PayMethod.CARD and now >= cs.expires_at + CHALLENGE_GRACE:
            await _attempt_failed(session, cs, "The card check was not completed in time.", now)
        else:
            return CHALLENGE_GRACE
    return None


async def _fresh(session: AsyncSession, session_id: uuid.UUID) -> CheckoutSession:
    found = await repository.session_by_id(session, session_id)
    assert found is not None
    return found


async def payment_reference(session: AsyncSession, cs: CheckoutSession) -> tuple[str | None, str | None]:
    """The payment that paid (or is paying) the session: its reference and receipt."""
    if cs.method == PayMethod.MPESA and cs.collection_id is not None:
        (collection,) = await collections.get_collections(session, [cs.collection_id])
        return collection.reference, collection.mpesa_receipt
    if cs.method == PayMethod.CARD and cs.card_authorization_id is not None:
        auth = await cards.get_authorization(session, merchant_of(cs), cs.card_authorization_id)
        return auth.reference, auth.auth_code
    return None, None


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class SessionTotals:
    """One currency and status of a report's sessions: how many, and their amount (minor units)."""

    currency: str
    status: str
    count: int
    amount: int


async def report_sessions(
    session: AsyncSession, who: Principal, *, client_id: uuid.UUID | None = None, mode: str | None = None,
    status: str | None = None, since: datetime | None = None, until: datetime | None = None,
    page: int = 1, page_size: int = 50,
) -> tuple[list[CheckoutSession], int]:  # fmt: skip
    """A page of the sessions created in [``since``, ``until``), newest first, of both modes unless
    ``mode``, and how many match."""
    return await repository.sessions_of_client(
        session, who.report_scope(client_id), mode, status=status, since=since, until=until,
        offset=(page - 1) * page_size, limit=page_size,
    )  # fmt: skip


async def report_totals(
    session: AsyncSession, who: Principal, *, client_id: uuid.UUID | None = None, mode: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> list[SessionTotals]:  # fmt: skip
    """The sessions created in [``since``, ``until``) counted and summed per currency and status."""
    rows = await repository.session_totals(
        session, who.report_scope(client_id), mode, since=since, until=until
    )
    return [
        SessionTotals(currency, status, int(count), int(amount)) for currency, status, count, amount in rows
    ]


collections.on_finished(collections_finished)
