"""A wallet customer's money: balance, top-ups, transfers, payments and statements.

What callers can rely on:
- Every movement is one balanced journal through ``ledger.post_journal``; this module
  never writes a balance itself. A movement that fails (insufficient funds, unknown
  recipient, duplicate reference, ...) raises and leaves the books exactly as they were,
  even inside a caller's longer transaction (each journal is posted in a savepoint).
- A wallet's currency is its client's currency when the customer registered; amounts
  are read in the wallet's currency and never converted.
- A payment's ``external_reference`` is unique per client and mode, enforced by the
  ledger's unique journal key: a repeat, also a concurrent one, is a 409 naming the
  earlier payment.
- Statements are read in bounded chunks, each in its own short transaction, so a year
  of entries never sits in memory nor holds a database lock while a client downloads.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, CurrencyMismatch, FieldError, MalipoError, NotFound, ValidationFailed
from malipo.core.money import Money
from malipo.customers import service as customers
from malipo.customers.models import Customer
from malipo.db import Database
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger import statements as ledger_reads
from malipo.ledger.models import AccountKind, Journal, LedgerAccount
from malipo.wallets.schemas import EntryType, PaymentIn, TopUpIn, TransferIn

JOURNAL_TOP_UP = "wallet_top_up"
JOURNAL_TRANSFER = "wallet_transfer"
JOURNAL_PAYMENT = "wallet_payment"
_ENTRY_KINDS = {JOURNAL_TOP_UP: "top_up", JOURNAL_TRANSFER: "transfer", JOURNAL_PAYMENT: "payment"}
STATEMENT_CHUNK = 500


class UnknownRecipient(NotFound):
    code = "unknown_recipient"
    title = "Unknown recipient"


class SelfTransfer(ValidationFailed):
    code = "self_transfer"
    title = "A wallet cannot transfer to itself"


class DuplicatePayment(Conflict):
    code = "duplicate_external_reference"
    title = "This external reference was already paid"


class LiveTopUpUnavailable(MalipoError):
    status = 501
    code = "live_top_up_unavailable"
    title = "Live top-ups are not available"


class InvalidStatementRange(ValidationFailed):
    code = "invalid_date_range"
    title = "The date range is not valid"


@dataclass(frozen=True, slots=True)
class WalletBalance:
    customer_id: uuid.UUID
    balance: Money
    available: Money


@dataclass(frozen=True, slots=True)
class Movement:
    """A completed movement: its journal, the amount moved, the caller's wallet after it."""

    journal: Journal
    amount: Money
    wallet: WalletBalance


@dataclass(frozen=True, slots=True)
class StatementWindow:
    """A statement's account and bounds: ``start`` inclusive, ``end`` exclusive (UTC), None = open."""

    customer_id: uuid.UUID
    account_id: uuid.UUID
    currency: str
    start: datetime | None
    end: datetime | None
    opening_balance: Money
    closing_balance: Money


@dataclass(frozen=True, slots=True)
class StatementLine:
    created_at: datetime
    reference: str
    kind: str
    type: EntryType
    description: str
    amount: Money
    balance: Money


# -- reading ----------------------------------------------------------------------------


async def _wallet(session: AsyncSession, customer: Customer) -> LedgerAccount:
    wallet = await ledger_reads.get_account(session, customer.wallet_account_id)
    if wallet is None:  # the foreign key makes this impossible; say so if it ever happens
        raise NotFound(f"customer {customer.id} has no wallet")
    return wallet


async def _balance(session: AsyncSession, customer: Customer, currency: str) -> WalletBalance:
    balance, available = await ledger.balance_of(session, customer.wallet_account_id)
    return WalletBalance(customer.id, Money(balance, currency), Money(available, currency))


async def wallet_balance(session: AsyncSession, who: Principal) -> WalletBalance:
    """The calling customer's balance and available funds (balance less holds)."""
    customer = await customers.current_customer(session, who)
    wallet = await _wallet(session, customer)
    return await _balance(session, customer, wallet.currency)


# -- moving -----------------------------------------------------------------------------


async def top_up(session: AsyncSession, who: Principal, body: TopUpIn, *, now: datetime) -> Movement:
    """Credit the calling customer's wallet.

    Sandbox (test) wallets are funded at once from their merchant's own SANDBOX_FUNDING
    account (one per merchant, so that no merchant's sandbox can exhaust another's); live
    wallets are funded by a collection, see ``top_up_live``. A top-up that would take the
    wallet past ``ledger.MAX_BALANCE`` is refused (``ledger.BalanceLimit``, naming amount).
    """
    customer = await customers.current_customer(session, who)
    wallet = await _wallet(session, customer)
    amount = Money.parse(body.amount, wallet.currency, field="amount")
    if customer.mode != KeyMode.TEST.value:
        return await top_up_live(session, customer, amount, body.description, now=now)
    funding_id = await sandbox_funding_id(session, customer.client_id, wallet.currency, now)
    posted = await ledger.post_journal(
        session,
        [
            ledger.Leg(funding_id, -amount.amount, amount.currency),
            ledger.Leg(wallet.id, amount.amount, amount.currency),
        ],
        kind=JOURNAL_TOP_UP,
        description=body.description,
        mode=customer.mode,
        now=now,
        client_id=customer.client_id,
        details={"customer_id": str(customer.id)},
    )
    return _movement(posted, customer.id, wallet.id, amount)


async def sandbox_funding_id(
    session: AsyncSession, client_id: uuid.UUID, currency: str, now: datetime
) -> uuid.UUID:
    """The merchant's own sandbox funding account (it may go negative: it mirrors play money)."""
    return await ledger.account_id(
        session, owner=ledger.owner_key(client_id=client_id), kind=AccountKind.SANDBOX_FUNDING,
        currency=currency, mode=KeyMode.TEST.value, now=now, client_id=client_id, allow_negative=True,
    )  # fmt: skip


async def top_up_live(
    session: AsyncSession, customer: Customer, amount: Money, description: str, *, now: datetime
) -> Movement:
    """Top up a live wallet. Live money arrives through a collection (M-Pesa STK push,
    card, ...), which the collections work replaces this function with; until then a
    live top-up is refused and changes nothing."""
    raise LiveTopUpUnavailable(
        "live wallets are topped up through collections, which this gateway does not offer yet; "
        "sandbox (mk_test_) wallets can be topped up directly"
    )


async def transfer(session: AsyncSession, who: Principal, body: TransferIn, *, now: datetime) -> Movement:
    """Move money from the calling customer's wallet to another customer of the same
    client and mode: debit the sender, credit the recipient, one journal.

    Refused, changing nothing: an unknown recipient (also another client's or mode's) 404,
    the sender itself 422, a recipient wallet in another currency 422, too little
    available 422.
    """
    if who.kind != PrincipalKind.CUSTOMER:
        raise customers.CustomerNotFound("this route is for a customer's own token")
    if body.recipient_customer_id == who.id:
        raise SelfTransfer(
            "recipientCustomerId: you cannot transfer to your own wallet",
            errors=[FieldError("recipientCustomerId", "is your own customer id")],
        )
    parties = await customers.wallet_owners(session, [who.id, body.recipient_customer_id])
    sender = parties.get(who.id)
    if sender is None:
        raise customers.CustomerNotFound(f"no customer {who.id}")
    recipient = parties.get(body.recipient_customer_id)
    if recipient is None or recipient.client_id != sender.client_id or recipient.mode != sender.mode:
        raise UnknownRecipient(
            f"recipientCustomerId: no customer {body.recipient_customer_id} among this client's customers",
            errors=[FieldError("recipientCustomerId", "no such customer")],
        )
    amount = Money.parse(body.amount, sender.currency, field="amount")
    if recipient.currency != sender.currency:
        raise CurrencyMismatch(
            f"your wallet holds {sender.currency} but the recipient's holds {recipient.currency}: "
            "wallets in different currencies cannot transfer",
            errors=[FieldError("recipientCustomerId", f"the recipient's wallet is in {recipient.currency}")],
        )
    posted = await ledger.post_journal(
        session,
        [
            ledger.Leg(sender.wallet_id, -amount.amount, amount.currency),
            ledger.Leg(recipient.wallet_id, amount.amount, amount.currency),
        ],
        kind=JOURNAL_TRANSFER,
        description=body.description,
        mode=sender.mode,
        now=now,
        client_id=sender.client_id,
        details={"customer_id": str(sender.id), "recipient_customer_id": str(recipient.id)},
    )
    return _movement(posted, sender.id, sender.wallet_id, amount)


def _movement(posted: ledger.Posted, customer_id: uuid.UUID, wallet_id: uuid.UUID, amount: Money) -> Movement:
    after = posted.balances[wallet_id]
    return Movement(
        posted.journal,
        amount,
        WalletBalance(
            customer_id, Money(after.balance, amount.currency), Money(after.available, amount.currency)
        ),
    )


def payment_idempotency_key(client_id: uuid.UUID, mode: str, external_reference: str) -> str:
    """The ledger key that makes ``external_reference`` unique per client and mode."""
    return f"wallet-pay:{client_id}:{mode}:{external_reference}"


async def _duplicate_payment(session: AsyncSession, key: str, external_reference: str) -> DuplicatePayment:
    earlier = await ledger_reads.journal_by_key(session, key)
    named = f" by payment {earlier.reference}" if earlier is not None else ""
    return DuplicatePayment(
        f"externalReference {external_reference!r} was already paid{named}",
        errors=[FieldError("externalReference", f"already paid{named}")],
        earlierReference=earlier.reference if earlier is not None else None,
    )


async def pay(session: AsyncSession, who: Principal, body: PaymentIn, *, now: datetime) -> Movement:
    """Pay the merchant from the calling customer's wallet: debit the wallet, credit the
    client's PAYMENTS_WALLET, one journal keyed by the external reference.

    Refused, changing nothing: a reference already paid 409 (naming that payment's
    journal reference), too little available 422.
    """
    customer = await customers.current_customer(session, who)
    wallet = await _wallet(session, customer)
    amount = Money.parse(body.amount, wallet.currency, field="amount")
    key = payment_idempotency_key(customer.client_id, customer.mode, body.external_reference)
    if await ledger_reads.journal_by_key(session, key) is not None:
        raise await _duplicate_payment(session, key, body.external_reference)
    merchant = await ledger.open_account(
        session,
        owner=ledger.owner_key(client_id=customer.client_id),
        kind=AccountKind.PAYMENTS_WALLET,
        currency=wallet.currency,
        mode=customer.mode,
        now=now,
        client_id=customer.client_id,
    )
    try:
        posted = await ledger.post_journal(
            session,
            [
                ledger.Leg(wallet.id, -amount.amount, amount.currency),
                ledger.Leg(merchant.id, amount.amount, amount.currency),
            ],
            kind=JOURNAL_PAYMENT,
            description=body.description,
            mode=customer.mode,
            now=now,
            client_id=customer.client_id,
            idempotency_key=key,
            details={"customer_id": str(customer.id), "external_reference": body.external_reference},
        )
    except ledger.DuplicateJournal:  # a concurrent payment with the same reference won
        raise await _duplicate_payment(session, key, body.external_reference) from None
    return _movement(posted, customer.id, wallet.id, amount)


# -- statements -------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def statement_window(
    session: AsyncSession, who: Principal, *, start_date: date | None, end_date: date | None
) -> StatementWindow:
    """The calling customer's statement bounds: whole UTC days, both ends inclusive; an
    open end means since the first entry / up to now. ``start_date`` after ``end_date`` is a 422."""
    if start_date is not None and end_date is not None and start_date > end_date:
        raise InvalidStatementRange(
            "startDate: must not be after endDate", errors=[FieldError("startDate", "is after endDate")]
        )
    customer = await customers.current_customer(session, who)
    wallet = await _wallet(session, customer)
    start = _day_start(start_date) if start_date is not None else None
    end = _day_start(end_date + timedelta(days=1)) if end_date is not None else None
    opening = await ledger_reads.balance_before(session, wallet.id, start) if start is not None else 0
    closing = await ledger_reads.balance_before(session, wallet.id, end)
    return StatementWindow(
        customer.id,
        wallet.id,
        wallet.currency,
        start,
        end,
        Money(opening, wallet.currency),
        Money(closing, wallet.currency),
    )


async def statement_lines(
    db: Database, window: StatementWindow, *, entry_type: EntryType | None, chunk: int = STATEMENT_CHUNK
) -> AsyncIterator[StatementLine]:
    """The window's entries in the order they were written, each with the wallet's balance right after it.

    Opens its own session (a request's is closed once the endpoint returns) and reads
    ``chunk`` rows at a time by keyset, each chunk in a short transaction: memory stays
    bounded and no transaction stays open while the consumer is slow.
    """
    query = ledger_reads.statement_query(
        window.account_id, start=window.start, end=window.end, entry_type=entry_type, chunk=chunk
    )
    currency = window.currency
    after: int | None = None  # the last row's seq
    async with db.sessionmaker() as session:
        while True:
            async with session.begin():
                rows = await ledger_reads.statement_page(session, query, after)
            for row in rows:
                yield StatementLine(
                    created_at=row.created_at,
                    reference=row.reference,
                    kind=_ENTRY_KINDS.get(row.kind, "other"),
                    type="credit" if row.amount > 0 else "debit",
                    description=row.description,
                    amount=Money(abs(row.amount), currency),
                    balance=Money(row.balance_after, currency),
                )
            if len(rows) < chunk:
                return
            after = rows[-1].seq
