"""Payouts: hold the funds, send, then settle on success or release on failure — exactly once.

A mobile payout is an M-Pesa B2C payment to the phone; a bank payout is an M-Pesa B2B payment
(Business Pay Bill) to the bank's paybill with the bank account number as the account reference.

What callers can rely on:
- ``request_payout`` holds the amount on the merchant's payments wallet and the fee on its
  service wallet before anything is sent: a payout never spends what is not there, and a
  refused request holds nothing. The same ``external_reference`` answers the first payout.
- ``finish`` (settlement.py) moves a payout to SUCCESS or FAILED once (its row locked): success settles
  both holds (money leaves through the clearing account, the fee goes to fee revenue),
  failure releases them. A repeated or late result changes nothing.
- A result is checked against the request first (``result_mismatch``): one naming another
  request's ConversationID / OriginatorConversationID is refused and changes nothing; a success
  for another amount or receiver than was asked puts the payout in REVIEW (both holds kept,
  nothing settled, the merchant not told) until an operator resolves it:
  ``accept_review`` settles the amount M-Pesa reports (when it is within the hold: the rest is
  released; above the hold it is refused with a 409 — more left than was held, settle that by
  hand), ``reject_review`` fails it and releases the holds (for when the money did not go).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.models import ChannelType, Collection
from malipo.config import Settings
from malipo.core.crypto import sha256_hex
from malipo.core.errors import FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import banks, repository
from malipo.payouts.models import Payout, PayoutStatus
from malipo.payouts.settlement import Outcome, finish
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.providers.base import MobileMoney, PayoutOutcome, PayoutStatusAnswer, Status
from malipo.providers.registry import MPESA, mobile_money_for
from malipo.reviews import records as reviews
from malipo.worker.registry import enqueue, enqueue_many

log = get_logger("malipo.payouts")

SEND_JOB = "payout.send"
RECONCILE_JOB = "payout.reconcile"
# Transaction-status queries answered "no such transaction" before a sent payout counts as failed.
MAX_STATUS_QUERIES = 5
CURRENCY = collections.CURRENCY
# The result code of a payout that failed before anything was sent (no paybill configured): the
# generic failure merchants already read, not one a rail decides.
NOT_SENT_FAILURE = 1
MIN_AMOUNT = 10  # shillings: M-Pesa's smallest B2C payment
MAX_AMOUNT = 250_000
BANK_CODES = banks.BANK_CODES


class InsufficientBalance(ValidationFailed):
    code = "insufficient_balance"
    title = "The payments wallet does not hold enough"


class UnknownPayoutToken(NotFound):
    code = "unknown_callback"
    title = "Unknown callback"


async def payout_fee(session: AsyncSession, settings: Settings, client_id: uuid.UUID, amount: Money) -> Money:
    """The merchant's own payout tariff if the operator set one, else the settings' defaults."""
    return await pricing.fee(session, settings, client_id, PricingKind.PAYOUT, amount)


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    amount: int  # whole shillings
    channel: str  # mobile | phone | bank
    network_code: str
    phone_number: str | None = None
    account_number: str | None = None
    external_reference: str | None = None
    callback_url: str | None = None
    channel_id: int | None = None  # the payments wallet's channel (the only source), when named


async def _check_source_channel(
    session: AsyncSession, who: Principal, channel_id: int, now: datetime
) -> None:
    """A named source channel must be the caller's payments wallet channel: another merchant's
    or an unknown one is a 404 (as on payments), one of the caller's own tills or paybills a 400."""
    try:
        channel = await collections.get_channel(session, who, channel_id)
    except NotFound:
        raise NotFound.for_field("channel_id", f"no payment channel {channel_id}") from None
    if channel.channel_type != ChannelType.WALLET:
        assert who.client_id is not None
        wallet = await collections.wallet_channel(session, who.client_id, who.mode.value, now)
        raise ValidationFailed.for_field(
            "channel_id",
            f"payment channel {channel_id} is a {channel.channel_type}: withdrawals are paid from the "
            f"payments wallet, channel {wallet.id}",
        )


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a checked payout request goes: the channel, and the phone or the bank's account and
    paybill."""

    channel: str  # mobile | bank
    phone: str | None = None
    account: str | None = None
    paybill: str | None = None


def check_request(settings: Settings, body: PayoutRequest, *, mode: str) -> Destination:
    """The request's amount and destination by payouts' rules, before anything is read or held:
    ValidationFailed naming the field that is wrong otherwise."""
    if not MIN_AMOUNT <= body.amount <= MAX_AMOUNT:
        raise ValidationFailed.for_field(
            "amount", f"must be a whole number of shillings from {MIN_AMOUNT} to {MAX_AMOUNT:,}"
        )
    channel = "mobile" if body.channel in ("mobile", "phone") else body.channel
    if channel == "mobile":
        if body.network_code not in collections.MOBILE_NETWORKS:
            raise ValidationFailed.for_field(
                "network_code", "must be 63902 (M-Pesa), 63903 (Airtel Money) or 63907 (T-Kash)"
            )
        collections.require_served_network(body.network_code)
        return Destination(channel, phone=collections.payer_phone(body.phone_number or ""))
    if channel == "bank":
        rail = payout_rail(settings, channel=channel, network_code=body.network_code, mode=mode)
        account, paybill = _bank_destination(settings, body, rail)
        return Destination(channel, account=account, paybill=paybill)
    raise ValidationFailed.for_field("channel", "must be mobile, phone or bank")


async def request_payout(
    session: AsyncSession, who: Principal, body: PayoutRequest, *, settings: Settings, now: datetime
) -> tuple[Payout, bool]:
    """Hold the funds and queue the payout; (payout, False) for a repeated external_reference."""
    assert who.client_id is not None
    mode = who.mode.value
    destination = check_request(settings, body, mode=mode)
    channel, phone, account, paybill = (
        destination.channel,
        destination.phone,
        destination.account,
        destination.paybill,
    )
    if body.channel_id is not None:
        await _check_source_channel(session, who, body.channel_id, now)
    if body.external_reference:
        earlier = await repository.by_external_reference(
            session, who.client_id, mode, body.external_reference
        )
        if earlier is not None:
            return earlier, False
    amount = Money.parse(body.amount, CURRENCY)
    fee = await payout_fee(session, settings, who.client_id, amount)
    conversation = str(uuid.uuid4())
    payout_id = new_id()
    reference = new_reference()
    try:
        async with session.begin_nested():
            hold_id = await _hold_amount(session, who.client_id, mode, amount, reference, now)
            fee_hold_id = (
                await collections.hold_fee(session, who.client_id, mode, fee, reference, now)
                if fee.is_positive
                else None
            )
            payout = Payout(
                id=payout_id, client_id=who.client_id, mode=mode, api_user_id=who.api_user_id,
                reference=reference, external_reference=body.external_reference or None, channel=channel,
                network_code=body.network_code, phone=phone, account_number=account, amount=amount.amount,
                currency=CURRENCY, fee=fee.amount, hold_id=hold_id, fee_hold_id=fee_hold_id,
                callback_url=body.callback_url, status=PayoutStatus.QUEUED,
                callback_token_hash=sha256_hex(callback_token(settings, payout_id)),
                originator_conversation_id=conversation,
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(payout)
            await session.flush()
    except IntegrityError:  # a concurrent payout with the same external_reference won
        earlier = await repository.by_external_reference(
            session, who.client_id, mode, body.external_reference or ""
        )
        if earlier is None:
            raise
        return earlier, False
    job: dict[str, Any] = {"payout_id": str(payout.id)}
    if paybill is not None:  # pinned now: a later change of MALIPO_BANK_PAYBILLS pays no other paybill
        job["paybill"] = paybill
    enqueue(session, SEND_JOB, job, now=now)
    log.info("payout.queued", reference=payout.reference, mode=mode, amount=amount.format(), channel=channel)
    return payout, True


def payout_rail(
    settings: Settings, *, channel: str, network_code: str, mode: str, http: httpx.AsyncClient | None = None
) -> MobileMoney:
    """The rail that pays: the phone's network for a mobile payout, M-Pesa's business payment to
    the bank's paybill for a bank payout. Without ``http`` it only parses and answers questions."""
    return mobile_money_for(settings, network_code if channel == "mobile" else MPESA, mode, http)


def _bank_destination(settings: Settings, body: PayoutRequest, rail: MobileMoney) -> tuple[str, str]:
    """(account number, the bank's paybill) of a bank payout, or the field that is wrong."""
    bank = banks.bank_name(body.network_code)
    if bank is None:
        raise ValidationFailed.for_field(
            "network_code", "is not a known bank code (see the bank network codes)"
        )
    paybill = banks.bank_paybill(settings, body.network_code)
    if paybill is None:
        raise ValidationFailed.for_field(
            "network_code", f"no M-Pesa paybill is configured for {bank}; set MALIPO_BANK_PAYBILLS"
        )
    account = (body.account_number or "").strip()
    if not account.isdigit() or not 5 <= len(account) <= 20:
        raise ValidationFailed.for_field("account_number", "must be the bank account number, 5 to 20 digits")
    if len(account) > rail.account_reference_max:
        raise ValidationFailed.for_field(
            "account_number",
            f"has {len(account)} digits: M-Pesa carries at most {rail.account_reference_max} to a bank's"
            " paybill, so this account cannot be paid this way",
        )
    return account, paybill


async def _hold_amount(
    session: AsyncSession, client_id: uuid.UUID, mode: str, amount: Money, reference: str, now: datetime
) -> uuid.UUID:
    kind = AccountKind.PAYMENTS_WALLET
    wallet = await ledger.merchant_wallet(session, client_id, kind, CURRENCY, mode, now)
    try:
        hold = await ledger.place_hold(
            session, wallet.id, amount.amount, reference=f"payout:{reference}", now=now
        )
    except ledger.InsufficientFunds:
        available = Money(wallet.balance - wallet.held, wallet.currency)
        raise InsufficientBalance(
            f"insufficient balance: the payments wallet has {available} available, {amount} requested",
            errors=[FieldError("amount", f"more than the {available} available")],
        ) from None
    return hold.id


async def find_by_reference(session: AsyncSession, who: Principal, reference: str) -> Payout | None:
    """The caller's payout by malipo's reference or its OriginatorConversationID; None if none."""
    return await repository.by_reference(session, who.client_id, who.mode.value, reference)


async def payout_for_our_id(session: AsyncSession, our_id: str) -> Payout | None:
    """The payout a rail's callback names by the id malipo sent with it (its OriginatorConversationID
    field), whoever's it is: the callback's address is the caller's credential."""
    return await repository.by_our_id(session, our_id)


async def payout_for_token(session: AsyncSession, token: str) -> Payout:
    found = await repository.by_token_hash(session, sha256_hex(token))
    if found is None:
        raise UnknownPayoutToken("no payout has this callback address")
    return found


async def get_payout(session: AsyncSession, payout_id: uuid.UUID) -> Payout | None:
    """A payout by id (for jobs and renderers, which carry ids malipo made)."""
    return await repository.by_id(session, payout_id)


async def get_payouts(session: AsyncSession, ids: list[uuid.UUID]) -> list[Payout]:
    """Payouts by id, as ``get_payout``."""
    return await repository.by_ids(session, ids)


def checkout_request_id(payout: Payout, settings: Settings) -> str:
    return f"{settings.daraja_shortcode}-{payout.originator_conversation_id}"


def result_mismatch(
    payout: Payout, originator_conversation_id: str | None, conversation_id: str | None
) -> str | None:
    """Which ids of a result are not this payout's; None if they are.

    Our OriginatorConversationID must come back, except that Daraja's B2B may answer with its own:
    then the ConversationID of its acknowledgement must (when malipo has stored it). A stored
    ConversationID must always match.
    """
    ours = originator_conversation_id == payout.originator_conversation_id
    stored = payout.conversation_id
    if stored is not None and conversation_id != stored:
        return "ConversationID"
    if not ours and not (payout.channel == "bank" and stored is not None):
        return "OriginatorConversationID"
    return None


def check_result_ids(payout: Payout, result: PayoutOutcome) -> None:
    """CallbackMismatch (nothing changes) when the rail's result names another request."""
    wrong = result_mismatch(payout, result.our_id, result.provider_reference)
    if wrong is not None:
        log.warning(
            "callback.mismatch", network_code=payout.network_code, kind="payout", reference=payout.reference,
            fields=wrong, result_code=result.result_code,
        )  # fmt: skip
        raise collections.CallbackMismatch(f"the result's {wrong} is not this payout's")


def received_of(settings: Settings, payout: Payout, result: PayoutOutcome) -> reviews.Received:
    """What the rail says it paid: to the phone, or to the bank's paybill and account."""
    if payout.channel != "bank":
        return reviews.Received(result.amount, result.party)
    paybill = banks.bank_paybill(settings, payout.network_code)
    extra = (("paybill", paybill, result.party), ("account", payout.account_number, result.account))
    return reviews.Received(result.amount, None, extra)


async def apply_result(
    session: AsyncSession, payout: Payout, result: PayoutOutcome, *, settings: Settings, now: datetime
) -> bool:
    """A rail's final result for ``payout`` (a callback, or its reply to the send): its ids checked
    first, a success compared with what was asked; then ``finish``."""
    return await finish(session, payout, result_outcome(payout, result, settings=settings), now=now)


def result_outcome(payout: Payout, result: PayoutOutcome, *, settings: Settings) -> Outcome:
    """The outcome a rail's final result gives ``payout``: CallbackMismatch (nothing changes) when
    it names another request; a success states what was paid, to be compared with what was asked."""
    check_result_ids(payout, result)
    stated = result.status == Status.SUCCEEDED and result.states_payment
    received = received_of(settings, payout, result) if stated else None
    return Outcome(
        result.result_code, result.result_desc, result.receipt, result.provider_reference, received=received
    )


async def apply_status_answer(
    session: AsyncSession, payout: Payout, answer: PayoutStatusAnswer, *, settings: Settings, now: datetime
) -> None:
    """The answer to a status query about a payout whose result never came (at the rail's status
    callback, or in its reply). A completed payout must be this payout's and is compared with what
    was asked; one the rail says failed for good fails; one it says is still in progress is asked
    about again, however long it takes (never failed: the rail may still pay it); otherwise the
    next query is scheduled, or after the last one the payout fails."""
    found = answer.outcome
    if answer.completed:
        check_result_ids(payout, found)
        received = received_of(settings, payout, found) if found.states_payment else None
        outcome = Outcome(found.result_code, found.result_desc, found.receipt, received=received)
        await finish(session, payout, outcome, now=now)
        return
    if answer.failed:
        await finish(session, payout, Outcome(found.result_code, found.result_desc), now=now)
        return
    query = MAX_STATUS_QUERIES if answer.attempt is None else min(answer.attempt, MAX_STATUS_QUERIES)
    if answer.in_progress:  # the rail may still pay it: the holds stay and it is asked again
        log.warning("payout.still_in_progress", reference=payout.reference, query=query)
        schedule_reconcile(session, payout.id, query, settings=settings, now=now)
        return
    if query < MAX_STATUS_QUERIES:
        schedule_reconcile(session, payout.id, query + 1, settings=settings, now=now)
    else:
        await finish(session, payout, Outcome(found.result_code, found.result_desc), now=now)


async def list_transactions(
    session: AsyncSession, who: Principal, *, page: int, per: int
) -> tuple[list[Collection | Payout], int]:
    """The merchant's collections and payouts in ``who``'s mode, newest first, one page of both.

    A page of the two lists merged lies within the first ``page * per`` of each: collections
    gives its part (``newest_collections``), this domain its own, merged by time then id.
    """
    wanted = page * per
    mine_c, count_c = await collections.newest_collections(session, who, wanted)
    mine_p, count_p = await repository.newest(session, who.client_id, who.mode.value, wanted)
    both: list[Collection | Payout] = [*mine_c, *mine_p]
    both.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    return both[(page - 1) * per : wanted], count_c + count_p


def payout_provider(payout: Payout) -> str:
    """The ``provider`` merchants see: "m-pesa" for M-Pesa phones, the bank's name for a bank,
    the network code for another network's phones."""
    if payout.channel == "bank":
        return banks.bank_name(payout.network_code) or "bank"
    return "m-pesa" if payout.network_code == "63902" else payout.network_code


def status_query_id(payout: Payout, rail: MobileMoney) -> str:
    """The id a status query about ``payout`` asks ``rail`` about."""
    return rail.payout_query_id(
        to_business=payout.channel == "bank", our_id=payout.originator_conversation_id,
        provider_reference=payout.conversation_id,
    )  # fmt: skip


def callback_token(settings: Settings, payout_id: uuid.UUID) -> str:
    """The secret in the payout's ResultURL, QueueTimeOutURL and status URL (stored nowhere)."""
    return collections.callback_token(settings, payout_id, purpose="daraja-payout")


def schedule_reconcile(
    session: AsyncSession, payout_id: uuid.UUID, query: int, *, settings: Settings, now: datetime
) -> None:
    """Ask the rail about the payout later, unless its result arrives first."""
    enqueue(
        session, RECONCILE_JOB, {"payout_id": str(payout_id), "query": query},
        now=now, delay=timedelta(seconds=settings.payout_query_after_seconds),
    )  # fmt: skip


async def schedule_reconciles(
    session: AsyncSession, payout_ids: list[uuid.UUID], *, settings: Settings, now: datetime
) -> None:
    """Each payout's first status query, queued with its claim (one statement for all)."""
    if payout_ids:
        await enqueue_many(
            session, RECONCILE_JOB, [{"payout_id": str(payout_id), "query": 1} for payout_id in payout_ids],
            now=now, delays=[timedelta(seconds=settings.payout_query_after_seconds)] * len(payout_ids),
        )  # fmt: skip


async def left_unanswered(
    session: AsyncSession, settings: Settings, mode: str, since: datetime, *, now: datetime
) -> list[uuid.UUID]:
    """Payouts of ``mode`` asked for since ``since``, still SENT past their query delay
    (``payout_query_after_seconds``): their result never came."""
    sent_by = now - timedelta(seconds=settings.payout_query_after_seconds)
    return await repository.sent_before(session, mode, since, sent_by)
