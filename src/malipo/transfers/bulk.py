"""Many payments in one request, each entry checked on its own: bulk mobile payouts, and
client-to-client transfers (an employer paying contributions per employee to a pension fund that
is also a malipo client).

Each entry is tried in its own savepoint: a refused entry (a bad number or amount, the fraud
rules, the funds) is reported with its index, field and reason and changes nothing, while the
others go on. A request in which no entry is accepted is a 422 naming them.

- A **mobile** entry is a payout (``payouts.request_payout``: its amount and fee held, an M-Pesa
  B2C payment through the outbox, settled or released on its own result); the transfer row follows
  it (``_payout_finished``).
- A **client-to-client** entry moves money inside malipo, at once: from the caller's payments
  wallet to the destination client's, one journal per entry carrying the entry's narration, so
  the destination can reconcile per beneficiary. The destination client sees the entries
  (``GET /api/v1/payments/transactions/incoming``); no third client does.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.banks import service as banks
from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.errors import FieldError, MalipoError, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.core.phones import InvalidNumber, to_e164
from malipo.identity import clients
from malipo.identity.models import ClientStatus
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import service as payouts
from malipo.payouts import settlement as payout_settlement
from malipo.payouts.models import Payout, PayoutStatus
from malipo.providers.registry import MPESA
from malipo.transfers import fraud, repository, service
from malipo.transfers.models import Transfer, TransferStatus

log = get_logger("malipo.transfers")

MAX_ENTRIES = 1000
MOBILE_CURRENCY = payouts.CURRENCY  # M-Pesa pays shillings


@dataclass(frozen=True, slots=True)
class MobileEntry:
    phone_number: str
    amount: object
    narration: str | None = None


@dataclass(frozen=True, slots=True)
class ClientEntry:
    amount: object
    narration: str | None = None
    reference: str | None = None
    beneficiary_name: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    destination: str
    amount: str
    field: str
    reason: str
    flags: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BulkResult:
    batch_id: uuid.UUID
    accepted: list[Transfer]
    rejected: list[Rejected]


def _nothing_accepted(what: str, rejected: list[Rejected]) -> ValidationFailed:
    shown = rejected[:20]
    more = f" (and {len(rejected) - len(shown)} more)" if len(rejected) > len(shown) else ""
    return ValidationFailed(
        f"{what}: no entry was accepted{more}", errors=[FieldError(r.field, r.reason) for r in shown]
    )


async def _each(
    session: AsyncSession,
    entries: Sequence[Any],
    what: str,
    destination: Callable[[Any], str],
    make: Callable[[int, Any], Awaitable[Transfer]],
) -> tuple[list[Transfer], list[Rejected]]:
    """``make`` every entry in its own savepoint; a refused one is reported and changes nothing."""
    if not entries:
        raise ValidationFailed.for_field(what, "must hold at least one entry")
    if len(entries) > MAX_ENTRIES:
        raise ValidationFailed.for_field(what, f"at most {MAX_ENTRIES:,} entries per request")
    accepted: list[Transfer] = []
    rejected: list[Rejected] = []
    for index, entry in enumerate(entries):
        try:
            async with session.begin_nested():
                accepted.append(await make(index, entry))
        except MalipoError as exc:
            problem = exc.errors[0] if exc.errors else FieldError(f"{what}.{index}", exc.detail)
            flags = exc.extensions.get("flags", [])
            rejected.append(
                Rejected(index, destination(entry), str(entry.amount), problem.field, problem.message, flags)
            )
    return accepted, rejected


def _at(prefix: str, exc: MalipoError) -> MalipoError:
    """``exc`` with its fields under ``prefix`` (``payments.3.``)."""
    exc.errors = [FieldError(prefix + e.field, e.message) for e in exc.errors]
    return exc


async def _assess(
    session: AsyncSession, who: Principal, destination: str, amount: Money, prefix: str, now: datetime
) -> fraud.Assessment:
    assert who.client_id is not None
    assessment = await fraud.assess(
        session, client_id=who.client_id, mode=who.mode.value, api_user_id=who.api_user_id,
        destination=destination, amount=amount, now=now,
    )  # fmt: skip
    if assessment.decision == fraud.Decision.BLOCK:
        raise service.blocked(assessment, who.client_id, prefix)
    return assessment


# --------------------------------------------------------------------------- bulk mobile payouts


async def bulk_mobile(
    session: AsyncSession,
    who: Principal,
    entries: Sequence[MobileEntry],
    *,
    settings: Settings,
    now: datetime,
) -> BulkResult:
    batch_id = new_id()

    async def make(index: int, entry: MobileEntry) -> Transfer:
        prefix = f"payments.{index}."
        try:
            phone = collections.payer_phone(entry.phone_number, field=prefix + "phoneNumber")
            amount = Money.parse(entry.amount, MOBILE_CURRENCY, field=prefix + "amount")  # type: ignore[arg-type]
            whole, cents = divmod(amount.amount, 100)
            if cents:
                raise ValidationFailed.for_field(prefix + "amount", "M-Pesa pays whole shillings")
            assessment = await _assess(session, who, phone, amount, prefix, now)
            request = payouts.PayoutRequest(
                amount=whole, channel="mobile", network_code=MPESA, phone_number=phone
            )
            payout, _created = await payouts.request_payout(session, who, request, settings=settings, now=now)
        except MalipoError as exc:
            raise _at("" if exc.errors and exc.errors[0].field.startswith(prefix) else prefix, exc) from None
        narration = (entry.narration or "").strip() or f"Payment to {phone}"
        transfer = service.new_transfer(
            settings, who, assessment, now=now, kind="mobile", account_number=phone, amount=payout.amount,
            currency=payout.currency, fee=payout.fee, narration=narration[:140],
            status=TransferStatus.PROCESSING,
            hold_id=payout.hold_id, fee_hold_id=payout.fee_hold_id, payout_id=payout.id, batch_id=batch_id,
            authorized_at=now, sent_at=now,
        )  # fmt: skip
        session.add(transfer)
        await session.flush()
        return transfer

    accepted, rejected = await _each(session, entries, "payments", lambda e: str(e.phone_number), make)
    if not accepted:
        raise _nothing_accepted("payments", rejected)
    log.info("transfers.bulk_mobile", batch=str(batch_id), accepted=len(accepted), rejected=len(rejected))
    return BulkResult(batch_id, accepted, rejected)


_PAYOUT_STATES = {PayoutStatus.SUCCESS: TransferStatus.COMPLETED, PayoutStatus.FAILED: TransferStatus.FAILED}


async def _payout_finished(session: AsyncSession, finished: list[Payout], now: datetime) -> None:
    """Bulk mobile entries' payouts have settled or failed: the entries say so too."""
    paid = {payout.id: payout for payout in finished if payout.status in _PAYOUT_STATES}
    for transfer in await repository.by_payouts(session, list(paid)):
        payout = paid[transfer.payout_id]
        status = _PAYOUT_STATES[PayoutStatus(payout.status)]
        values = {
            "status": status, "completed_at": now, "updated_at": now, "journal_id": payout.journal_id,
            "amount": payout.amount, "provider_reference": payout.transaction_id,
            "reason_code": None if status == TransferStatus.COMPLETED else str(payout.result_code),
            "result_desc": (payout.result_desc or "")[:300] or None,
        }  # fmt: skip
        await repository.move(session, transfer.id, [TransferStatus.PROCESSING], values)


payout_settlement.on_finished(_payout_finished)


# --------------------------------------------------------------------------- client to client


@dataclass(frozen=True, slots=True)
class ClientTransfer:
    destination_client_id: uuid.UUID
    kind: str  # client_bank | client_mobile
    destination: str  # the destination client's account number, or phone number
    entries: Sequence[ClientEntry]


async def _destination(session: AsyncSession, who: Principal, client_id: uuid.UUID) -> Any:
    found = await clients.client_by_id(session, client_id)
    if found is None:
        raise ValidationFailed.for_field("destinationClientId", f"no client {client_id}")
    if found.id == who.client_id:
        raise ValidationFailed.for_field(
            "destinationClientId", "is your own client: a transfer needs another"
        )
    if found.status != ClientStatus.ACTIVE:
        raise ValidationFailed.for_field("destinationClientId", f"client {client_id} is not active")
    return found


async def client_to_client(
    session: AsyncSession, who: Principal, body: ClientTransfer, *, settings: Settings, now: datetime
) -> BulkResult:
    assert who.client_id is not None
    source = await clients.client_by_id(session, who.client_id)
    assert source is not None
    target = await _destination(session, who, body.destination_client_id)
    if target.currency != source.currency:
        raise ValidationFailed.for_field(
            "destinationClientId", f"keeps {target.currency}; your wallet holds {source.currency}"
        )
    mode = who.mode.value
    bank_code: str | None = None
    bank_name: str | None = None
    if body.kind == "client_bank":
        destination = body.destination.strip()
        bank = await _bank_of(session, destination)
        bank_code, bank_name = bank.code, bank.name[:120]
    else:
        try:
            destination = to_e164(body.destination, target.country)
        except InvalidNumber as exc:
            raise ValidationFailed.for_field("phoneNumber", str(exc)) from None
    source_wallet = await ledger.merchant_wallet(
        session, source.id, AccountKind.PAYMENTS_WALLET, source.currency, mode, now
    )
    target_wallet = await ledger.merchant_wallet(
        session, target.id, AccountKind.PAYMENTS_WALLET, target.currency, mode, now
    )
    batch_id = new_id()

    async def make(index: int, entry: ClientEntry) -> Transfer:
        prefix = f"entries.{index}."
        amount = Money.parse(entry.amount, source.currency, field=prefix + "amount")  # type: ignore[arg-type]
        assessment = await _assess(session, who, destination, amount, prefix, now)
        reference = new_reference()
        narration = (entry.narration or "").strip() or f"Transfer to {target.name}"
        try:
            hold = await ledger.place_hold(
                session, source_wallet.id, amount.amount, reference=f"transfer:{reference}", now=now
            )
        except ledger.InsufficientFunds:
            raise service.InsufficientBalance.for_field(
                prefix + "amount", f"{amount} is more than the payments wallet has available"
            ) from None
        transfer = service.new_transfer(
            settings, who, assessment, now=now, reference=reference, kind=body.kind,
            account_number=destination,
            bank_code=bank_code, bank_name=bank_name, destination_client_id=target.id, amount=amount.amount,
            currency=amount.currency, fee=0, narration=narration[:140], status=TransferStatus.COMPLETED,
            hold_id=hold.id, beneficiary_name=entry.beneficiary_name, entry_reference=entry.reference,
            batch_id=batch_id, authorized_at=now, completed_at=now,
        )  # fmt: skip
        posted = await ledger.settle_hold(
            session, hold.id, [ledger.Leg(target_wallet.id, amount.amount, amount.currency)],
            kind="client_transfer", description=narration[:200], mode=mode, now=now, client_id=source.id,
            idempotency_key=f"transfer:{transfer.id}",
        )  # fmt: skip
        transfer.journal_id = posted.journal.id
        session.add(transfer)
        await session.flush()
        return transfer

    accepted, rejected = await _each(session, body.entries, "entries", lambda _e: destination, make)
    if not accepted:
        raise _nothing_accepted("entries", rejected)
    log.info("transfers.client_to_client", batch=str(batch_id), to=str(target.id), accepted=len(accepted))
    return BulkResult(batch_id, accepted, rejected)


async def _bank_of(session: AsyncSession, account: str) -> Any:
    """The bank named by the account's first 3 digits (an account of 3 digits is the code alone)."""
    if not account.isascii() or not account.isdigit() or not 3 <= len(account) <= 34:
        raise ValidationFailed.for_field(
            "accountNumber", "must be 3 to 34 digits, the first 3 its bank's code"
        )
    try:
        bank = await banks.get_bank(session, account[:3])
    except MalipoError:
        raise ValidationFailed.for_field("accountNumber", f"no bank has code {account[:3]}") from None
    if not bank.active or bank.kind != "bank":
        raise ValidationFailed.for_field(
            "accountNumber", f"{account[:3]} ({bank.name}) is not an active bank"
        )
    return bank
