"""Merchants' SMS: send one, send in bulk, read status; charged to the service wallet per segment.

What callers can rely on:
- A send normalises numbers to E.164 (local numbers in the merchant's country), counts
  segments exactly, debits the merchant's service wallet (price per segment from
  ``MALIPO_SMS_PRICE_PER_SEGMENT``, in the merchant's currency) and queues the
  messages with their outbox jobs, all in the caller's transaction. Too little in the
  service wallet is a 402 and nothing is queued or charged.
- A bulk send rejects invalid or repeated numbers one by one and queues the rest: rows
  go in with one multi-row INSERT, and one job per ``MALIPO_SMS_BULK_CHUNK``
  recipients (one provider request each), paced at ``MALIPO_SMS_BULK_RATE``.
- A message the provider never accepted (refused, or given up on after retries) is
  ``failed`` and its charge is given back by a refund journal; a message accepted and
  later reported undelivered stays charged, as the provider charges it.
- Reads are scoped to the caller's client and mode: anything else is a 404.
- Delivery reports are applied many at a time (``apply_delivery_reports``, one SELECT and
  normally one UPDATE per batch): only a ``sent`` message moves, to ``delivered`` or
  ``failed``, and a final message never moves again, whatever the order of the reports.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.errors import FieldError, MalipoError, NotFound, ValidationFailed
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.core.phones import InvalidNumber, to_e164
from malipo.core.segments import SegmentInfo, count_segments
from malipo.identity import clients
from malipo.identity.models import Client
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, Journal, LedgerAccount
from malipo.providers.africastalking.client import DeliveryReport
from malipo.sms import repository
from malipo.sms.models import SmsBatch, SmsMessage, SmsStatus
from malipo.worker.registry import enqueue, enqueue_many

__all__ = [
    "SEND_JOB",
    "BulkAccepted",
    "InsufficientServiceBalance",
    "Rejected",
    "ReportOutcome",
    "apply_delivery_reports",
    "get_batch",
    "get_message",
    "merchant_client",
    "normalise",
    "normalise_many",
    "nothing_valid",
    "refund_messages",
    "send_bulk",
    "send_one",
]

log = get_logger("malipo.sms")

# The outbox job that sends queued messages (``malipo.sms.tasks``); rows already queued carry it.
SEND_JOB = "sms.send"
JOURNAL_CHARGE = "sms_charge"
JOURNAL_REFUND = "sms_refund"
_MAX_LISTED_ERRORS = 20


class InsufficientServiceBalance(MalipoError):
    status = 402
    code = "insufficient_service_balance"
    title = "The service wallet cannot pay for this"


class SmsNotFound(NotFound):
    code = "sms_not_found"
    title = "No such SMS"


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    phone_number: str
    reason: str


@dataclass(frozen=True, slots=True)
class BulkAccepted:
    batch: SmsBatch
    rejected: list[Rejected]
    messages: list[tuple[uuid.UUID, str]]
    segments: SegmentInfo
    cost: Money


@dataclass(frozen=True, slots=True)
class BatchView:
    batch: SmsBatch
    counts: dict[str, int]
    messages: list[SmsMessage]


# -- recipients: shared with WhatsApp ---------------------------------------------------------


async def merchant_client(session: AsyncSession, who: Principal) -> Client:
    """The caller's client (every messaging route is for a merchant's API user)."""
    client = await clients.client_by_id(session, who.client_id)
    if client is None:
        raise NotFound("this route is for a merchant's API user")
    return client


def country_of(client: Client, settings: Settings) -> str:
    return client.country or settings.messaging_default_country


def normalise(raw: str, client: Client, settings: Settings, *, field: str) -> str:
    try:
        return to_e164(raw, country_of(client, settings))
    except InvalidNumber as exc:
        raise ValidationFailed(f"{field}: {exc}", errors=[FieldError(field, str(exc))]) from None


def normalise_many(
    raw_numbers: list[str], client: Client, settings: Settings
) -> tuple[list[tuple[int, str]], list[Rejected]]:
    """(index, E.164) of each valid, first-seen number, and why each other one was rejected."""
    country = country_of(client, settings)
    accepted: list[tuple[int, str]] = []
    rejected: list[Rejected] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_numbers):
        try:
            number = to_e164(raw, country)
        except InvalidNumber as exc:
            rejected.append(Rejected(index, str(raw)[:64], str(exc)))
            continue
        if number in seen:
            rejected.append(Rejected(index, str(raw)[:64], f"repeats entry {seen[number]} ({number})"))
            continue
        seen[number] = index
        accepted.append((index, number))
    return accepted, rejected


def nothing_valid(field: str, rejected: list[Rejected]) -> ValidationFailed:
    errors = [FieldError(f"{field}.{r.index}", r.reason) for r in rejected[:_MAX_LISTED_ERRORS]]
    more = f" (and {len(rejected) - _MAX_LISTED_ERRORS} more)" if len(rejected) > _MAX_LISTED_ERRORS else ""
    return ValidationFailed(f"{field}: no valid phone number{more}", errors=errors)


# -- charging ---------------------------------------------------------------------------------


def price_per_segment(settings: Settings, currency: str) -> Money:
    return Money.parse(settings.sms_price_per_segment, currency, field="MALIPO_SMS_PRICE_PER_SEGMENT")


async def _service_wallet(
    session: AsyncSession, client_id: uuid.UUID, currency: str, mode: str, now: datetime
) -> LedgerAccount:
    return await ledger.open_account(
        session,
        owner=ledger.owner_key(client_id=client_id),
        kind=AccountKind.SERVICE_WALLET,
        currency=currency,
        mode=mode,
        client_id=client_id,
        now=now,
    )


async def charge(
    session: AsyncSession,
    client: Client,
    mode: str,
    amount: Money,
    *,
    now: datetime,
    description: str,
    details: dict[str, Any],
) -> Journal:
    """Debit the client's service wallet ``amount`` to fee revenue; 402 when it holds too little."""
    wallet = await _service_wallet(session, client.id, amount.currency, mode, now)
    revenue = await ledger.system_account(session, AccountKind.FEE_REVENUE, amount.currency, mode, now)
    try:
        posted = await ledger.post_journal(
            session,
            [
                ledger.Leg(wallet.id, -amount.amount, amount.currency),
                ledger.Leg(revenue.id, amount.amount, amount.currency),
            ],
            kind=JOURNAL_CHARGE,
            description=description,
            mode=mode,
            now=now,
            client_id=client.id,
            details=details,
        )
    except ledger.InsufficientFunds:
        _balance, available = await ledger.balance_of(session, wallet.id)
        raise InsufficientServiceBalance(
            f"the {mode} service wallet holds {Money(available, amount.currency)}; this send costs {amount}. "
            "Top up the service wallet and send again",
            available=Money(available, amount.currency).format(),
            required=amount.format(),
        ) from None
    return posted.journal


async def refund_messages(session: AsyncSession, rows: list[Any], *, now: datetime, reason: str) -> None:
    """Give back the charge of messages that never reached the network (rows: client_id, mode,
    cost, currency, id), one journal per client, mode and currency."""
    totals: dict[tuple[uuid.UUID, str, str], list[Any]] = defaultdict(list)
    for row in rows:
        if row.cost > 0:
            totals[(row.client_id, row.mode, row.currency)].append(row)
    for (client_id, mode, currency), group in totals.items():
        amount = sum(row.cost for row in group)
        wallet = await _service_wallet(session, client_id, currency, mode, now)
        revenue = await ledger.system_account(session, AccountKind.FEE_REVENUE, currency, mode, now)
        await ledger.post_journal(
            session,
            [ledger.Leg(revenue.id, -amount, currency), ledger.Leg(wallet.id, amount, currency)],
            kind=JOURNAL_REFUND,
            description=f"refund of {len(group)} undelivered SMS: {reason}"[:300],
            mode=mode,
            now=now,
            client_id=client_id,
            details={"sms_ids": [str(row.id) for row in group[:100]], "count": len(group)},
        )


# -- sending ----------------------------------------------------------------------------------


async def send_one(
    session: AsyncSession,
    who: Principal,
    settings: Settings,
    *,
    phone_number: str,
    message: str,
    sender_id: str | None,
    now: datetime,
) -> SmsMessage:
    """Queue one SMS (charged now); the worker sends it."""
    client = await merchant_client(session, who)
    number = normalise(phone_number, client, settings, field="phoneNumber")
    info = count_segments(message)
    cost = price_per_segment(settings, client.currency) * info.segments
    sms_id = new_id()
    journal = await charge(
        session,
        client,
        who.mode.value,
        cost,
        now=now,
        description=f"SMS to {number} ({info.segments} segment{'s' if info.segments > 1 else ''})",
        details={"sms_id": str(sms_id), "segments": info.segments},
    )
    sms = SmsMessage(
        id=sms_id,
        client_id=client.id,
        mode=who.mode.value,
        phone_number=number,
        sender_id=sender_id,
        message=message,
        segments=info.segments,
        encoding=info.encoding,
        cost=cost.amount,
        currency=cost.currency,
        journal_id=journal.id,
        status=SmsStatus.QUEUED,
        attempts=0,
        refunded=False,
        created_at=now,
        updated_at=now,
    )
    session.add(sms)
    await session.flush()
    enqueue(session, SEND_JOB, {"ids": [str(sms.id)]}, now=now)
    log.info(
        "sms.queued", sms_id=str(sms.id), client_id=str(client.id), mode=sms.mode, segments=info.segments
    )
    return sms


async def send_bulk(
    session: AsyncSession,
    who: Principal,
    settings: Settings,
    *,
    phone_numbers: list[str],
    message: str,
    sender_id: str | None,
    now: datetime,
) -> BulkAccepted:
    """Queue one text to many numbers: invalid or repeated numbers are rejected one by one."""
    if len(phone_numbers) > settings.sms_bulk_max_recipients:
        raise ValidationFailed.for_field(
            "phoneNumbers", f"at most {settings.sms_bulk_max_recipients} numbers per request"
        )
    client = await merchant_client(session, who)
    accepted, rejected = normalise_many(phone_numbers, client, settings)
    if not accepted:
        raise nothing_valid("phoneNumbers", rejected)
    info = count_segments(message)
    each = price_per_segment(settings, client.currency) * info.segments
    total = each * len(accepted)
    batch_id = new_id()
    journal = await charge(
        session,
        client,
        who.mode.value,
        total,
        now=now,
        description=f"bulk SMS to {len(accepted)} numbers ({info.segments} segments each)",
        details={"sms_batch_id": str(batch_id), "messages": len(accepted), "segments": info.segments},
    )
    batch = SmsBatch(
        id=batch_id,
        client_id=client.id,
        mode=who.mode.value,
        sender_id=sender_id,
        message=message,
        accepted=len(accepted),
        rejected=len(rejected),
        segments=info.segments,
        cost=total.amount,
        currency=total.currency,
        journal_id=journal.id,
        created_at=now,
    )
    session.add(batch)
    await session.flush()
    rows = [
        {
            "id": new_id(),
            "client_id": client.id,
            "mode": who.mode.value,
            "batch_id": batch_id,
            "phone_number": number,
            "sender_id": sender_id,
            "message": message,
            "segments": info.segments,
            "encoding": info.encoding,
            "cost": each.amount,
            "currency": each.currency,
            "journal_id": None,
            "status": SmsStatus.QUEUED.value,
            "attempts": 0,
            "refunded": False,
            "created_at": now,
            "updated_at": now,
        }
        for _index, number in accepted
    ]
    await repository.insert_messages(session, rows)
    chunk = max(1, settings.sms_bulk_chunk)
    payloads = [
        {"ids": [str(row["id"]) for row in rows[start : start + chunk]]}
        for start in range(0, len(rows), chunk)
    ]
    delays = None
    if settings.sms_bulk_rate > 0:
        delays = [timedelta(seconds=i * chunk / settings.sms_bulk_rate) for i in range(len(payloads))]
    await enqueue_many(session, SEND_JOB, payloads, now=now, delays=delays)
    log.info(
        "sms.bulk_queued",
        batch_id=str(batch_id),
        client_id=str(client.id),
        accepted=len(accepted),
        rejected=len(rejected),
        jobs=len(payloads),
    )
    return BulkAccepted(
        batch=batch,
        rejected=rejected,
        messages=[(row["id"], row["phone_number"]) for row in rows],
        segments=info,
        cost=total,
    )


# -- reading ----------------------------------------------------------------------------------


async def get_message(session: AsyncSession, who: Principal, sms_id: uuid.UUID) -> SmsMessage:
    sms = await repository.message_of(session, who.client_id, who.mode.value, sms_id)
    if sms is None:
        raise SmsNotFound(f"no SMS {sms_id}")
    return sms


async def get_batch(
    session: AsyncSession, who: Principal, batch_id: uuid.UUID, *, page: int, page_size: int
) -> BatchView:
    batch = await repository.batch_of(session, who.client_id, who.mode.value, batch_id)
    if batch is None:
        raise SmsNotFound(f"no SMS batch {batch_id}")
    counts, messages = await repository.batch_messages(session, batch, page=page, page_size=page_size)
    return BatchView(batch, counts, messages)


# -- delivery reports -------------------------------------------------------------------------

ReportOutcome = Literal["updated", "unchanged", "unknown"]


@dataclass(slots=True)
class _Reported:
    """A reported message as a batch of reports leaves it: its state and what to write."""

    id: uuid.UUID
    status: str
    values: dict[str, Any]


async def record_system_sms(
    session: AsyncSession, gateway_ids: Sequence[str | None], *, purpose: str, now: datetime
) -> None:
    """Remember the gateway ids of an SMS malipo sent for itself (``purpose``: ``transfer_otp``),
    so their delivery reports are recorded rather than refused as unknown."""
    known = sorted({gid for gid in gateway_ids if gid})
    if known:
        await repository.add_system_messages(session, known, purpose, now)


def _system_report(found: Any, report: DeliveryReport, now: datetime) -> ReportOutcome:
    """A report about one of malipo's own messages: its state moves once, like a merchant's."""
    if found is None:
        return "unknown"
    if found.status != SmsStatus.SENT:
        return "unchanged"
    found.gateway_status = report.raw_status[:40]
    found.updated_at = now
    if report.status in ("delivered", "failed"):
        found.status = SmsStatus.DELIVERED if report.status == "delivered" else SmsStatus.FAILED
    return "updated"


async def apply_delivery_reports(
    session: AsyncSession, reports: Sequence[DeliveryReport], *, now: datetime
) -> list[ReportOutcome]:
    """Apply delivery reports, in their order, in the caller's transaction; one outcome each:
    ``"updated"`` (the message moved on, or a non-final report refreshed its gateway status),
    ``"unchanged"`` (the message is already final: a repeat, or a late report) or ``"unknown"``
    (no message has this gateway id, yet).

    Only a ``sent`` message changes: a final report makes it ``delivered`` or ``failed``, and
    nothing moves a final message again (a delivered one never goes back to sent). The reported
    messages are locked (PostgreSQL, in id order) for the transaction, so batches applied
    concurrently by several processes serialise per message. Whatever the number of reports:
    one SELECT, and one UPDATE per distinct outcome (normally one for the whole batch).
    """
    if not reports:
        return []
    gateway_ids = sorted({report.message_id for report in reports})
    found = await repository.lock_by_gateway_ids(session, gateway_ids)
    messages = {row.gateway_message_id: _Reported(row.id, row.status, {}) for row in found}
    unknown = [gid for gid in gateway_ids if gid not in messages]
    system = await repository.system_messages(session, unknown) if unknown else {}
    outcomes: list[ReportOutcome] = []
    for report in reports:
        message = messages.get(report.message_id)
        if message is None:
            outcomes.append(_system_report(system.get(report.message_id), report, now))
            continue
        if message.status != SmsStatus.SENT:
            outcomes.append("unchanged")
            continue
        message.values["gateway_status"] = report.raw_status[:40]
        if report.status == "delivered":
            message.status = SmsStatus.DELIVERED
            message.values.update(status=SmsStatus.DELIVERED.value, delivered_at=now)
        elif report.status == "failed":
            message.status = SmsStatus.FAILED
            reason = (report.failure_reason or report.raw_status)[:500]
            message.values.update(status=SmsStatus.FAILED.value, failure_reason=reason)
        outcomes.append("updated")
    # Messages that end with the same values are written together: one statement for a bulk's
    # "Success" reports, whatever their number.
    same: dict[tuple[tuple[str, Any], ...], list[uuid.UUID]] = defaultdict(list)
    for message in messages.values():
        if message.values:
            same[tuple(sorted(message.values.items()))].append(message.id)
    for values, ids in same.items():
        await repository.update_sent(session, ids, dict(values), now=now)
    if same:
        log.info(
            "sms.delivery_reports_applied",
            reports=len(reports),
            updated=outcomes.count("updated"),
            unchanged=outcomes.count("unchanged"),
            unknown=outcomes.count("unknown"),
        )
    return outcomes
