"""C2B: a channel's rules and URL registration, M-Pesa's validation and confirmation.

What callers can rely on:
- ``configure_c2b`` stores a channel's rules and queues the URL registration (job
  ``c2b.register``) in the caller's transaction; a bank channel, or min above max, is refused
  naming the field and changes nothing. A ``paybill``/``till`` channel registers the merchant's
  own shortcode, with its own unguessable token in the URLs (only its SHA-256 is stored); a
  ``wallet`` channel uses the operator's shortcode (``MALIPO_DARAJA_SHORTCODE``), whose URLs are
  one for the app and mode: registering it again is harmless.
- ``validate`` reads only (no outbound call, one short transaction) and answers a verdict.
- ``confirm`` takes a TransID once: a repeat changes nothing. A payment for a known channel is
  a SUCCESS ``Collection`` (purpose ``c2b``, receipt = TransID) booked like an STK success in the
  same transaction as its fee, its journals and the merchant's callback; one on the operator's
  shortcode naming no channel is kept unmatched (booked to suspense) for the operator.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.c2b import repository, requests
from malipo.collections.c2b.models import (
    C2bChannel,
    C2bPayment,
    C2bRule,
    PaymentRequestStatus,
    RegistrationStatus,
)
from malipo.collections.models import (
    ChannelType,
    Collection,
    CollectionPurpose,
    CollectionStatus,
    PaymentChannel,
)
from malipo.collections.service.common import merchant_wallet_id
from malipo.config import Settings
from malipo.core.crypto import derived_token, sha256_hex
from malipo.core.errors import Conflict, FieldError, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.providers.daraja.c2b import C2bNotice, C2bVerdict, c2b_urls, forbidden_word
from malipo.worker.registry import enqueue

log = get_logger("malipo.c2b")

REGISTER_JOB = "c2b.register"
SEPARATOR = "#"  # a wallet channel's account number: "<channelId>#<reference>"
MPESA = "63902"


class PublicUrlRefused(Conflict):
    code = "public_url_refused"
    title = "Daraja refuses the callback URLs"


class C2bMismatch(Conflict):
    """A confirmation at an address that is not its shortcode's."""

    code = "callback_mismatch"
    title = "The callback does not match the registration"


@dataclass(frozen=True, slots=True)
class C2bRules:
    rule: C2bRule
    min_amount: int | None  # minor units
    max_amount: int | None
    response_type: str
    callback_url: str | None


def channel_token(settings: Settings, channel_id: int) -> str:
    """The token in the C2B URLs of a merchant's own shortcode (hex: no word Daraja refuses)."""
    assert settings.secret_key is not None
    return derived_token(settings.secret_key.get_secret_value(), f"daraja-c2b:channel:{channel_id}")


def app_token(settings: Settings, mode: str) -> str:
    """The token in the C2B URLs of the operator's shortcode in ``mode`` (one for the app)."""
    assert settings.secret_key is not None
    return derived_token(settings.secret_key.get_secret_value(), f"daraja-c2b:app:{mode}")


def registration_urls(settings: Settings, c2b: C2bChannel) -> tuple[str, str]:
    """The ValidationURL and ConfirmationURL registered for ``c2b``'s shortcode."""
    token = (
        app_token(settings, c2b.mode) if c2b.token_hash is None else channel_token(settings, c2b.channel_id)
    )
    return c2b_urls(settings.public_url, token)


async def configure_c2b(
    session: AsyncSession, settings: Settings, channel: PaymentChannel, rules: C2bRules, *, now: datetime
) -> C2bChannel:
    """Store ``channel``'s C2B rules and queue its URL registration (see the module docstring)."""
    if channel.channel_type not in (ChannelType.WALLET, ChannelType.PAYBILL, ChannelType.TILL):
        raise ValidationFailed.for_field("id", "only wallet, paybill and till channels take C2B payments")
    if rules.min_amount is not None and rules.max_amount is not None and rules.min_amount > rules.max_amount:
        raise ValidationFailed.for_field("maxAmount", "must be at least minAmount")
    own = channel.channel_type != ChannelType.WALLET
    c2b = await repository.c2b_channel(session, channel.id)
    if c2b is None:
        c2b = C2bChannel(
            channel_id=channel.id, client_id=channel.client_id, mode=channel.mode, created_at=now
        )
        session.add(c2b)
    c2b.rule = rules.rule.value
    c2b.min_amount, c2b.max_amount = rules.min_amount, rules.max_amount
    c2b.response_type = rules.response_type
    c2b.callback_url = rules.callback_url
    c2b.short_code = channel.short_code if own else settings.daraja_shortcode
    c2b.token_hash = sha256_hex(channel_token(settings, channel.id)) if own else None
    c2b.registration_status = RegistrationStatus.PENDING
    c2b.updated_at = now
    for url in registration_urls(settings, c2b):
        word = forbidden_word(url)
        if word is not None:
            raise PublicUrlRefused(
                f"Daraja refuses callback URLs containing {word!r}: change MALIPO_PUBLIC_URL",
                errors=[FieldError("id", f"the callback URLs would contain {word!r}")],
            )
    await session.flush()
    enqueue(session, REGISTER_JOB, {"channel_id": channel.id}, now=now)
    log.info("c2b.configured", channel_id=channel.id, rule=c2b.rule, short_code=c2b.short_code)
    return c2b


async def c2b_of(session: AsyncSession, channel: PaymentChannel) -> C2bChannel | None:
    return await repository.c2b_channel(session, channel.id)


async def record_registration(
    session: AsyncSession, channel_id: int, *, registered: bool, reply: dict[str, object], now: datetime
) -> None:
    c2b = await repository.c2b_channel(session, channel_id)
    if c2b is None:
        return
    c2b.registration_status = RegistrationStatus.REGISTERED if registered else RegistrationStatus.FAILED
    c2b.registration_reply = dict(reply)
    c2b.registered_at = now if registered else c2b.registered_at
    c2b.updated_at = now
    log.info("c2b.registration", channel_id=channel_id, registered=registered)


# -- the addresses M-Pesa posts to -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """Whose validation/confirmation URL was called: a merchant's own shortcode (``c2b``) or the
    operator's shortcode in ``mode`` (``c2b`` None: the account number names the channel)."""

    mode: str
    c2b: C2bChannel | None


async def address_of(session: AsyncSession, settings: Settings, token: str) -> Address | None:
    for mode in ("test", "live"):
        if hmac.compare_digest(token.encode(), app_token(settings, mode).encode()):
            return Address(mode, None)
    found = await repository.c2b_channel_by_token_hash(session, sha256_hex(token))
    return None if found is None else Address(found.mode, found)


@dataclass(frozen=True, slots=True)
class Target:
    channel: PaymentChannel
    c2b: C2bChannel
    reference: str  # the payer's account reference, without a wallet channel's "<id>#"


async def _target(
    session: AsyncSession, settings: Settings, address: Address, notice: C2bNotice
) -> Target | str | None:
    """The channel a notice pays and its reference; a reason (str) when none can take it."""
    if address.c2b is None:
        if notice.short_code != settings.daraja_shortcode:
            return f"shortcode {notice.short_code} is not the operator's"
        channel_part, separator, reference = notice.bill_ref_number.partition(SEPARATOR)
        if not separator or not channel_part.strip().isdigit() or len(channel_part.strip()) > 12:
            return "the account number names no channel (<channelId>#<reference>)"
        channel = await collections.find_channel_or_none(session, int(channel_part.strip()))
        if channel is None or channel.mode != address.mode or channel.channel_type != ChannelType.WALLET:
            return "the account number names no wallet channel"
        c2b = await repository.c2b_channel(session, channel.id)
        if c2b is None:
            return "the channel takes no C2B payments"
        return Target(channel, c2b, reference.strip())
    channel = await collections.find_channel_or_none(session, address.c2b.channel_id)
    assert channel is not None
    if notice.short_code != address.c2b.short_code:
        return None
    return Target(channel, address.c2b, notice.bill_ref_number.strip())


async def validate(
    session: AsyncSession, settings: Settings, address: Address, notice: C2bNotice, *, now: datetime
) -> C2bVerdict:
    """Accept or reject a payment before M-Pesa completes it (reads only)."""
    target = await _target(session, settings, address, notice)
    if not isinstance(target, Target):
        return C2bVerdict.UNKNOWN_SHORTCODE
    c2b = target.c2b
    if not target.channel.is_active:
        return C2bVerdict.UNKNOWN_SHORTCODE
    if (c2b.min_amount is not None and notice.amount < c2b.min_amount) or (
        c2b.max_amount is not None and notice.amount > c2b.max_amount
    ):
        return C2bVerdict.INVALID_AMOUNT
    if c2b.rule == C2bRule.REQUIRE_KNOWN_REFERENCE:
        if not target.reference:
            return C2bVerdict.UNKNOWN_ACCOUNT
        request = await repository.newest_request_with_reference(
            session, target.channel.client_id, target.channel.mode, target.reference
        )
        usable = (
            request is not None
            and request.status == PaymentRequestStatus.OPEN
            and request.expires_at > now
            and request.channel_id in (None, target.channel.id)
        )
        if not usable:
            return C2bVerdict.UNKNOWN_ACCOUNT
    return C2bVerdict.ACCEPT


async def confirm(
    session: AsyncSession, settings: Settings, address: Address, notice: C2bNotice, *, now: datetime
) -> bool:
    """Take a completed payment once; False when its TransID was taken already (nothing changes).

    C2bMismatch (nothing changes) when a merchant's own address gets another shortcode's payment.
    """
    if await repository.c2b_payment_by_trans_id(session, notice.trans_id) is not None:
        log.info("c2b.repeat", trans_id=notice.trans_id)
        return False
    target = await _target(session, settings, address, notice)
    if target is None:
        log.warning("c2b.shortcode_mismatch", short_code=notice.short_code, trans_id=notice.trans_id)
        raise C2bMismatch("the confirmation's BusinessShortCode is not the one registered at this address")
    payment = C2bPayment(
        id=new_id(), trans_id=notice.trans_id, mode=address.mode, short_code=notice.short_code,
        bill_ref_number=notice.bill_ref_number, amount=notice.amount, currency=notice.currency,
        msisdn=notice.msisdn, payer_name=notice.payer_name[:200], trans_time=notice.trans_time, overpaid=0,
        body=notice.raw, created_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
    except IntegrityError:  # the same TransID, confirmed concurrently: that one counts
        log.info("c2b.repeat", trans_id=notice.trans_id)
        return False
    if isinstance(target, str):
        await _unmatched(session, payment, target, now)
        return True
    await _collected(session, settings, payment, target, now)
    return True


async def _unmatched(session: AsyncSession, payment: C2bPayment, reason: str, now: datetime) -> None:
    """Money on the operator's shortcode that names no merchant: into suspense, for the operator."""
    payment.unmatched_reason = reason[:200]
    clearing = await ledger.system_account_id(
        session, AccountKind.MOBILE_MONEY_CLEARING, payment.currency, payment.mode, now
    )
    suspense = await ledger.system_account_id(
        session, AccountKind.SUSPENSE, payment.currency, payment.mode, now
    )
    await ledger.post_journal(
        session, [ledger.Leg(clearing, -payment.amount, payment.currency),
                  ledger.Leg(suspense, payment.amount, payment.currency)],
        kind="c2b_unmatched", description=f"M-Pesa {payment.trans_id} unmatched: {reason}"[:200],
        mode=payment.mode, now=now, idempotency_key=f"c2b-unmatched:{payment.trans_id}",
        details={"trans_id": payment.trans_id, "bill_ref_number": payment.bill_ref_number},
    )  # fmt: skip
    log.warning("c2b.unmatched", trans_id=payment.trans_id, reason=reason)


async def _collected(
    session: AsyncSession, settings: Settings, payment: C2bPayment, target: Target, now: datetime
) -> None:
    channel = target.channel
    client_id = channel.client_id
    payment.client_id, payment.channel_id = client_id, channel.id
    amount = Money(payment.amount, payment.currency)
    fee = await collections.collection_fee(session, settings, client_id, amount)
    collection_id = new_id()
    reference = new_reference()
    hold_id: uuid.UUID | None = None
    netted = 0
    if fee.amount > 0:
        service_wallet = await merchant_wallet_id(
            session, client_id, channel.mode, AccountKind.SERVICE_WALLET, now
        )
        try:
            async with session.begin_nested():
                hold = await ledger.place_hold(
                    session, service_wallet, fee.amount, reference=reference, now=now
                )
            hold_id = hold.id
        except ledger.InsufficientFunds:
            # Money is never refused at confirmation: a wallet channel pays the fee out of the
            # payment; the merchant's own shortcode, whose money malipo does not hold, owes it.
            netted = min(fee.amount, payment.amount) if channel.channel_type == ChannelType.WALLET else 0
            log.warning("c2b.fee_not_held", trans_id=payment.trans_id, fee=fee.amount, netted=netted)
    request_callback = await _request_callback(session, channel, target.reference)
    collection = Collection(
        id=collection_id, client_id=client_id, mode=channel.mode, api_user_id=None,
        purpose=CollectionPurpose.C2B.value, reference=reference,
        checkout_request_id=f"c2b_{payment.trans_id}", external_reference=None, channel_id=channel.id,
        provider="m-pesa", network_code=MPESA, phone=payment.msisdn[:20], amount=payment.amount,
        currency=payment.currency, fee=fee.amount if hold_id is not None else netted, fee_hold_id=hold_id,
        customer_name=payment.payer_name or None,
        callback_url=request_callback or target.c2b.callback_url,
        status=CollectionStatus.SUCCESS.value,
        callback_token_hash=sha256_hex(collections.callback_token(settings, collection_id, purpose="c2b")),
        merchant_request_id=None, provider_checkout_request_id=None, mpesa_receipt=payment.trans_id,
        result_code=0, result_desc="The service request is processed successfully.", journal_id=None,
        created_at=now, updated_at=now, sent_at=now, completed_at=now,
    )  # fmt: skip
    session.add(collection)
    await session.flush()
    payment.collection_id = collection.id
    await session.flush()
    await collections.book_collected(session, [collection], now=now)
    await requests.count_payment(session, collection, target.reference, payment, now=now)
    if netted:
        payments = await merchant_wallet_id(
            session, client_id, channel.mode, AccountKind.PAYMENTS_WALLET, now
        )
        revenue = await ledger.system_account_id(
            session, AccountKind.FEE_REVENUE, payment.currency, channel.mode, now
        )
        await ledger.post_journal(
            session,
            [ledger.Leg(payments, -netted, payment.currency), ledger.Leg(revenue, netted, payment.currency)],
            kind="collection_fee", description=f"Transaction fee {reference} (from the payment)",
            mode=channel.mode, now=now, client_id=client_id,
            idempotency_key=f"collection-fee:{collection.id}",
        )  # fmt: skip
    log.info("c2b.collected", trans_id=payment.trans_id, reference=reference, channel_id=channel.id)


async def _request_callback(session: AsyncSession, channel: PaymentChannel, reference: str) -> str | None:
    if not reference:
        return None
    request = await repository.newest_request_with_reference(
        session, channel.client_id, channel.mode, reference
    )
    return request.callback_url if request is not None else None
