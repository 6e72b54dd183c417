"""/api/v1 routes of hosted checkout sessions and payment links (the pages are ``malipo.web``'s).

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from malipo.checkout import links, service
from malipo.checkout.models import CheckoutSession, PaymentLink
from malipo.checkout.schemas import LinkActiveIn, LinkIn, LinkOut, SessionIdPath, SessionIn, SessionOut
from malipo.config import Settings
from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import CA, KEY, CurrentPrincipal, callers
from malipo.http.tags import CHECKOUT, PAYMENT_LINKS

router = APIRouter()


async def session_out(session: Session, settings: Settings, cs: CheckoutSession) -> SessionOut:
    reference, receipt = await service.payment_reference(session, cs)
    methods = ["mpesa", "card"] if service.mpesa_offered(cs) else ["card"]
    return SessionOut(
        session_id=cs.public_id, url=f"{settings.public_url}/checkout/{cs.public_id}", status=cs.status,
        amount=Money(cs.amount, cs.currency).format(), currency=cs.currency, order_id=cs.order_id,
        description=cs.description, return_url=cs.return_url, methods=methods, method=cs.method,
        attempts=cs.attempts, payment_reference=reference, receipt=receipt, last_error=cs.last_error,
        link_id=cs.link_id, created_at=cs.created_at, expires_at=cs.expires_at, completed_at=cs.completed_at,
    )  # fmt: skip


@router.post(
    "/checkout/sessions", response_model=SessionOut, status_code=status.HTTP_201_CREATED,
    name="Checkout.CreateSession", summary="Create a hosted checkout session",
    openapi_extra=callers(KEY), tags=[CHECKOUT],
)  # fmt: skip
async def create_session(
    body: SessionIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> SessionOut:  # fmt: skip
    """Send the payer to the reply's `url`. They pay once, by M-Pesa (KES in whole shillings) or by
    card, within `expiresInMinutes` (default 30); then their browser goes to `returnUrl` with
    `checkoutSessionId` and `status` in the query, and `callbackUrl` gets the outcome. Check the
    outcome with `GET /checkout/sessions/{sessionId}` (a return URL can be typed by anyone).
    Send an `Idempotency-Key`: a retry answers the first session instead of making another."""
    new = service.NewSession(
        amount=body.amount, currency=body.currency, return_url=body.return_url,
        callback_url=body.callback_url, description=body.description, order_id=body.order_id,
        channel_id=body.channel_id,
        expires_in_minutes=body.expires_in_minutes,
    )  # fmt: skip
    cs = await service.create_session(session, who, new, now=clock.now())
    reply = await session_out(session, settings, cs)
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.get(
    "/checkout/sessions/{sessionId}", response_model=SessionOut, name="Checkout.ReadSession",
    summary="One checkout session", openapi_extra=callers(KEY), tags=[CHECKOUT],
)  # fmt: skip
async def read_session(
    sessionId: SessionIdPath, who: CurrentPrincipal, session: Session, settings: SettingsDep
) -> SessionOut:
    """Its status (`open`, `pending`, `completed`, `expired`), how it was paid and the payment's
    reference and receipt. Another account's session is a 404."""
    return await session_out(session, settings, await service.get_session(session, who, sessionId))


# --------------------------------------------------------------------------- payment links


def link_out(settings: Settings, link: PaymentLink, paid: tuple[int, int]) -> LinkOut:
    def money(amount: int | None) -> str | None:
        return None if amount is None else Money(amount, link.currency).format()

    url = f"{settings.public_url}/pay/{link.slug}"
    snippet = f'<script src="{settings.public_url}/button.js" data-link="{link.slug}" async></script>'
    return LinkOut(
        link_id=link.id, slug=link.slug, url=url, button_snippet=snippet, title=link.title,
        description=link.description, amount=money(link.amount), min_amount=money(link.min_amount) or "",
        max_amount=money(link.max_amount) or "", currency=link.currency, channel_id=link.channel_id,
        success_url=link.success_url, is_active=link.is_active, payments=paid[0],
        total_paid=money(paid[1]) or "0.00", created_at=link.created_at,
    )  # fmt: skip


@router.post(
    "/payment-links", response_model=LinkOut, status_code=status.HTTP_201_CREATED,
    name="PaymentLinks.Create", summary="Create a payment link", openapi_extra=callers(KEY, CA),
    tags=[PAYMENT_LINKS],
)  # fmt: skip
async def create_link(
    body: LinkIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> LinkOut:
    """A page at `/pay/{slug}` where anyone pays you by M-Pesa: a fixed `amount`, or the payer's
    own between `minAmount` and `maxAmount` (whole shillings). Without a `slug`, one is made up;
    a slug taken is a 409."""
    new = links.NewLink(
        title=body.title, amount=body.amount, min_amount=body.min_amount, max_amount=body.max_amount,
        description=body.description, slug=body.slug, channel_id=body.channel_id,
        callback_url=body.callback_url, success_url=body.success_url,
    )  # fmt: skip
    link = await links.create_link(session, who, new, now=clock.now())
    return link_out(settings, link, (0, 0))


@router.get(
    "/payment-links", response_model=list[LinkOut], name="PaymentLinks.List",
    summary="Your payment links", openapi_extra=callers(KEY, CA), tags=[PAYMENT_LINKS],
)  # fmt: skip
async def list_links(who: CurrentPrincipal, session: Session, settings: SettingsDep) -> list[LinkOut]:
    """Newest first, with how many payments each has taken and their total."""
    rows = await links.list_links(session, who)
    paid = await links.paid_counts(session, rows)
    return [link_out(settings, link, paid.get(link.id, (0, 0))) for link in rows]


@router.get(
    "/payment-links/{linkId:uuid}", response_model=LinkOut, name="PaymentLinks.Read",
    summary="One payment link", openapi_extra=callers(KEY, CA), tags=[PAYMENT_LINKS],
)  # fmt: skip
async def read_link(
    linkId: uuid.UUID, who: CurrentPrincipal, session: Session, settings: SettingsDep
) -> LinkOut:
    """Another account's link is a 404."""
    link = await links.get_link(session, who, linkId)
    paid = await links.paid_counts(session, [link])
    return link_out(settings, link, paid.get(link.id, (0, 0)))


@router.patch(
    "/payment-links/{linkId:uuid}", response_model=LinkOut, name="PaymentLinks.Update",
    summary="Turn a payment link off or on", openapi_extra=callers(KEY, CA), tags=[PAYMENT_LINKS],
)  # fmt: skip
async def update_link(
    linkId: uuid.UUID, body: LinkActiveIn, who: CurrentPrincipal, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> LinkOut:  # fmt: skip
    """A link turned off answers 404 to payers; its payments so far are kept."""
    link = await links.set_active(session, who, linkId, body.is_active, now=clock.now())
    paid = await links.paid_counts(session, [link])
    return link_out(settings, link, paid.get(link.id, (0, 0)))
