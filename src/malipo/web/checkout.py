"""The payer's pages: hosted checkout (``/checkout/{sessionId}``), payment links (``/pay/{slug}``)
and the Pay button script (``/button.js``).

No login: a checkout session's unguessable id, or a link's public slug, is the credential, and
each route shows or changes only what that id names. The pages load their script and styles from
``/assets`` under a Content-Security-Policy that allows nothing else, and refuse to be framed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from limits.aio.storage import Storage
from pydantic import ConfigDict, Field, StringConstraints

from malipo.cards import service as cards
from malipo.cards.schemas import CardNumber, Cvv, Month, PaRes, Year
from malipo.checkout import links, service
from malipo.checkout.models import CheckoutSession, PaymentLink
from malipo.config import Settings
from malipo.core.errors import RateLimited
from malipo.core.http_client import http_client
from malipo.core.money import Money
from malipo.core.ratelimit import Limit, limit_storage
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.schemas import Amount, CamelModel
from malipo.providers.base import CardAcquirer
from malipo.providers.registry import card_acquirer_for

HERE = FilePath(__file__).parent
ASSETS = HERE / "assets"
# Read once: they are small, and part of the release, not of the data.
ASSET_FILES = {path.name: path.read_bytes() for path in ASSETS.iterdir() if path.suffix in {".js", ".css"}}
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

ACQUIRER_TIMEOUT = 20.0
SessionId = Annotated[str, Path(pattern=r"^cs_[a-z0-9]{8,37}$")]
SlugPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")]
Phone = Annotated[str, StringConstraints(min_length=9, max_length=16, pattern=r"^\+?[0-9 ]+$")]

# The pages' own script and styles only; no framing (clickjacking a payment page); forms post here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class PayerLimits:
    """What one address, and one phone, may ask of the public pages: a payment link is open to
    anyone, and each M-Pesa attempt puts a prompt on someone's phone."""

    def __init__(self, storage: Storage) -> None:
        self.by_address = Limit(storage, "30/minute", "pay-address")
        self.by_phone = Limit(storage, "5 per 10 minutes", "pay-phone")

    @classmethod
    def from_settings(cls, settings: Settings) -> PayerLimits:
        return cls(limit_storage(settings.redis_url))


async def _within_limits(request: Request, phone: str | None = None) -> None:
    """Count this attempt for its address; refuse it if the address, or the phone to prompt,
    has had its share (the phone's prompts are counted by ``_prompted``, once sent)."""
    limits: PayerLimits = request.app.state.payer_limits
    address = request.client.host if request.client else "unknown"
    if not await limits.by_address.hit(address):
        raise RateLimited(
            "too many payment attempts from this address: wait a minute", headers={"Retry-After": "60"}
        )
    if phone is not None and not await limits.by_phone.test(_phone_key(phone)):
        raise RateLimited(
            "too many payment prompts to this phone: wait a few minutes and try again",
            headers={"Retry-After": str(limits.by_phone.per)},
        )


def _phone_key(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())[-9:]  # 07…, 2547…, +2547… alike


async def _prompted(request: Request, phone: str) -> None:
    limits: PayerLimits = request.app.state.payer_limits
    await limits.by_phone.hit(_phone_key(phone))


class MpesaIn(CamelModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "0712345678"}]})

    phone: Phone


class CardIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"cardNumber": "4242424242424242", "expiryMonth": 12, "expiryYear": 2030, "cvv": "123"}
            ]
        }
    )

    card_number: CardNumber
    expiry_month: Month
    expiry_year: Year
    cvv: Cvv

    def __repr__(self) -> str:
        return "CardIn(…)"


class LinkPayIn(CamelModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": "250", "phone": "0712345678"}]})

    amount: Amount | None = None
    phone: Phone


class StatusOut(CamelModel):
    session_id: str
    status: str
    method: str | None
    amount: str
    currency: str
    message: str | None = Field(description="Why the last attempt did not pay, for the payer")
    receipt: str | None
    reference: str | None
    redirect_url: str | None = Field(description="Where to send the browser now (3-D Secure, or back)")
    can_pay: bool


@asynccontextmanager
async def _acquirer_for(settings: Settings, mode: str) -> AsyncIterator[CardAcquirer]:
    async with http_client(ACQUIRER_TIMEOUT, connections=4) as http:
        yield card_acquirer_for(settings, mode, http)


async def _status(session: Session, cs: CheckoutSession, redirect: str | None = None) -> StatusOut:
    reference, receipt = await service.payment_reference(session, cs)
    if redirect is None and cs.status == service.S.COMPLETED:
        redirect = service.return_location(cs, "completed")
    return StatusOut(
        session_id=cs.public_id, status=cs.status, method=cs.method,
        amount=Money(cs.amount, cs.currency).format(), currency=cs.currency, message=cs.last_error,
        receipt=receipt if cs.status == service.S.COMPLETED else None,
        reference=reference if cs.status == service.S.COMPLETED else None, redirect_url=redirect,
        can_pay=cs.status == service.S.OPEN and cs.attempts < service.MAX_ATTEMPTS,
    )  # fmt: skip


def _page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=PAGE_HEADERS
    )


def _gone(request: Request, title: str, message: str, status_code: int = 404) -> HTMLResponse:
    return _page(request, "pay/notice.html", {"title": title, "message": message}, status_code)


# --------------------------------------------------------------------------- hosted checkout


@router.get("/checkout/{sessionId}", response_class=HTMLResponse, name="Checkout.Page")
async def checkout_page(
    request: Request, sessionId: SessionId, session: Session, clock: ClockDep
) -> HTMLResponse:
    """The hosted page of one session: pay by M-Pesa or card, or see where it stands."""
    try:
        cs = await service.public_session(session, sessionId, now=clock.now())
    except service.CheckoutSessionNotFound:
        return _gone(
            request, "Payment not found", "This payment page does not exist. Check the link you followed."
        )
    context = {
        "cs": cs, "amount": Money(cs.amount, cs.currency).format(), "mpesa": service.mpesa_offered(cs),
        "cancel_url": service.return_location(cs, "cancelled"), "status": await _status(session, cs),
    }  # fmt: skip
    return _page(request, "pay/checkout.html", context)


@router.get("/checkout/{sessionId}/status", response_model=StatusOut, name="Checkout.PageStatus")
async def checkout_status(sessionId: SessionId, session: Session, clock: ClockDep) -> StatusOut:
    """Where the session stands, for the page's live status."""
    return await _status(session, await service.public_session(session, sessionId, now=clock.now()))


@router.post("/checkout/{sessionId}/mpesa", response_model=StatusOut, name="Checkout.PayMpesa")
async def checkout_mpesa(
    request: Request, sessionId: SessionId, body: MpesaIn, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> StatusOut:  # fmt: skip
    """Send the M-Pesa prompt to the payer's phone; the page then follows the status."""
    await _within_limits(request, body.phone)
    cs = await service.pay_mpesa(session, sessionId, body.phone, settings=settings, now=clock.now())
    await _prompted(request, body.phone)
    return await _status(session, cs)


@router.post("/checkout/{sessionId}/card", response_model=StatusOut, name="Checkout.PayCard")
async def checkout_card(
    request: Request, sessionId: SessionId, body: CardIn, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> StatusOut:  # fmt: skip
    """Pay by card: completed, a 3-D Secure page to go to (``redirectUrl``), or the reason it failed."""
    await _within_limits(request)
    now = clock.now()
    cs = await service.public_session(session, sessionId, now=now)
    card = cards.CardDetails(body.card_number, body.expiry_month, body.expiry_year, body.cvv)
    async with _acquirer_for(settings, cs.mode) as acquirer:
        attempt = await service.pay_card(
            session, cs, card, acquirer, settings=settings, now=now, checkpoint=session.flush
        )
    return await _status(session, attempt.session, attempt.redirect_url)


@router.get("/checkout/{sessionId}/3ds", name="Checkout.ThreeDsReturn")
async def checkout_3ds_return(
    request: Request, sessionId: SessionId, session: Session, clock: ClockDep, settings: SettingsDep,
    paRes: PaRes | None = None,
) -> Response:  # fmt: skip
    """Where the 3-D Secure page sends the payer back: paid, on to the merchant; else the page again."""
    now = clock.now()
    try:
        cs = await service.public_session(session, sessionId, now=now)
    except service.CheckoutSessionNotFound:
        return _gone(request, "Payment not found", "This payment page does not exist.")
    if paRes:
        async with _acquirer_for(settings, cs.mode) as acquirer:
            cs = await service.card_returned(
                session, cs, paRes, acquirer, settings=settings, now=now, checkpoint=session.flush
            )
    back = service.return_location(cs, "completed") if cs.status == service.S.COMPLETED else None
    return RedirectResponse(back or f"/checkout/{cs.public_id}", status_code=303)


# --------------------------------------------------------------------------- payment links


def _link_context(link: PaymentLink) -> dict[str, Any]:
    def money(amount: int | None) -> str | None:  # whole shillings, as the payer types them
        return None if amount is None else f"{amount // 100:,}"

    return {
        "link": link, "amount": money(link.amount), "min_amount": money(link.min_amount),
        "max_amount": money(link.max_amount),
    }  # fmt: skip


@router.get("/pay/{slug}", response_class=HTMLResponse, name="PaymentLinks.Page")
async def link_page(request: Request, slug: SlugPath, session: Session) -> HTMLResponse:
    """A merchant's payment link: the payer enters the amount (unless fixed) and a phone."""
    try:
        link = await links.public_link(session, slug)
    except service.PaymentLinkNotFound:
        return _gone(
            request, "Payment link not found", "This payment link does not exist or has been turned off."
        )
    return _page(request, "pay/link.html", _link_context(link))


@router.post("/pay/{slug}", response_model=StatusOut, name="PaymentLinks.Pay")
async def link_pay(
    request: Request, slug: SlugPath, body: LinkPayIn, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> StatusOut:  # fmt: skip
    """Open a checkout session of the link and send its M-Pesa prompt; the page follows
    ``/checkout/{sessionId}/status``."""
    await _within_limits(request, body.phone)
    cs = await links.pay_link(session, slug, body.amount, body.phone, settings=settings, now=clock.now())
    await _prompted(request, body.phone)
    return await _status(session, cs)


@router.get("/button.js", name="PaymentLinks.Button")
async def button_js() -> Response:
    """The Pay button: ``<script src=".../button.js" data-link="{slug}" async></script>``."""
    return Response(
        ASSET_FILES["button.js"], media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )  # fmt: skip


@router.get("/assets/{name}", name="Pages.Asset")
async def asset(name: Annotated[str, Path(pattern=r"^[a-z-]+\.(js|css)$")]) -> Response:
    """The pages' script and styles."""
    found = ASSET_FILES.get(name)
    if found is None:
        return JSONResponse({"title": "Not found", "status": 404}, status_code=404)
    media = "text/javascript" if name.endswith(".js") else "text/css"
    return Response(found, media_type=media, headers={"Cache-Control": "public, max-age=300"})
