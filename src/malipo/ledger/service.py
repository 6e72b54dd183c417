"""Moving money: balanced journals, holds, and the proof that the books add up.

What callers can rely on:
- ``post_journal`` writes a journal whose postings sum to zero per currency, or
  raises and writes nothing. It runs in the caller's transaction (services
  flush, never commit), with the state change and outbox jobs that cause it.
- Balances change by guarded updates in a fixed account order: concurrent
  debits of one account serialise on its row (PostgreSQL) or on SQLite's single
  writer, and an account that may not go negative never has balance - held < 0.
- A hold reserves funds; it is settled or released exactly once.
- Every balance has a ceiling, checked before any update: a merchant's or customer's account
  stays within ±``MAX_BALANCE``, an account that may go negative (the gateway's own, shared
  by every merchant, and each merchant's sandbox funding) within ±``MAX_OPEN_BALANCE``. A
  movement past it is refused (``BalanceLimit``, naming ``amount``) and writes nothing, so no
  balance, held amount or sum of postings ever passes a 64-bit integer.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, FieldError, MalipoError, NotFound, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.money import Money
from malipo.db import cache_after_commit, cached
from malipo.ledger import repository
from malipo.ledger.models import SYSTEM_KINDS, AccountKind, Hold, HoldStatus, Journal, LedgerAccount


class UnbalancedJournal(MalipoError):
    status = 500
    code = "unbalanced_journal"
    title = "A journal must balance"


class InsufficientFunds(MalipoError):
    status = 422
    code = "insufficient_funds"
    title = "Insufficient funds"


#: The largest balance, either way, of an account that may not go negative (a merchant's or a
#: customer's wallet), in minor units: KES 10,000,000,000,000.00.
MAX_BALANCE = 10**15
#: The same for an account that may go negative (the gateway's clearing, revenue, suspense …
#: accounts, which every merchant's movements pass through): far past any real total, and far
#: below 2**63, so sums over many such accounts still fit a 64-bit integer.
MAX_OPEN_BALANCE = 2**62


class BalanceLimit(ValidationFailed):
    code = "balance_limit"
    title = "The amount would take a balance past its limit"

    def __init__(self, detail: str) -> None:
        super().__init__(f"amount: {detail}", errors=[FieldError("amount", detail)])


def _limit(allow_negative: bool) -> int:
    return MAX_OPEN_BALANCE if allow_negative else MAX_BALANCE


class HoldNotActive(Conflict):
    code = "hold_not_active"
    title = "The hold is already settled or released"


class DuplicateJournal(Conflict):
    code = "duplicate_journal"
    title = "This movement was already recorded"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a movement: ``amount`` (signed minor units) added to ``account_id``."""

    account_id: uuid.UUID
    amount: int
    currency: str


def owner_key(*, client_id: uuid.UUID | None = None, customer_id: uuid.UUID | None = None) -> str:
    if customer_id is not None:
        return f"customer:{customer_id}"
    if client_id is not None:
        return f"client:{client_id}"
    return "system"


async def open_account(
    session: AsyncSession,
    *,
    owner: str,
    kind: AccountKind,
    currency: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    allow_negative: bool = False,
) -> LedgerAccount:
    """The account of ``owner`` for ``kind``/``currency``/``mode``, created if missing (safe to race)."""
    found = await repository.find_account(session, owner=owner, kind=kind, currency=currency, mode=mode)
    if found is not None:
        return found
    account = LedgerAccount(
        id=new_id(), owner_key=owner, client_id=client_id, mode=mode, kind=kind, currency=currency,
        allow_negative=allow_negative, balance=0, held=0, created_at=now,
    )  # fmt: skip
    return await repository.add_account(session, account)


# Account ids by (owner, kind, currency, mode), per database: an account is never deleted and
# its key never changes, so a committed id stays right.
ACCOUNT_IDS = "ledger.account_ids"  # the cache of account ids (``cached``)
_ACCOUNT_IDS = ACCOUNT_IDS


async def account_id(
    session: AsyncSession,
    *,
    owner: str,
    kind: AccountKind,
    currency: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    allow_negative: bool = False,
) -> uuid.UUID:
    """The id of ``open_account``'s account, without a query once this process has seen it."""
    key = (owner, kind.value, currency, mode)
    found: uuid.UUID | None = cached(session, _ACCOUNT_IDS, key)
    if found is not None:
        return found
    account = await open_account(
        session, owner=owner, kind=kind, currency=currency, mode=mode, now=now,
        client_id=client_id, allow_negative=allow_negative,
    )  # fmt: skip
    cache_after_commit(session, _ACCOUNT_IDS, key, account.id)
    return account.id


async def system_account_id(
    session: AsyncSession, kind: AccountKind, currency: str, mode: str, now: datetime
) -> uuid.UUID:
    """``system_account(...).id``, cached."""
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"{kind} is not a system account kind")
    return await account_id(
        session, owner="system", kind=kind, currency=currency, mode=mode, now=now, allow_negative=True
    )


async def system_account(
    session: AsyncSession, kind: AccountKind, currency: str, mode: str, now: datetime
) -> LedgerAccount:
    """One of the gateway's own accounts. They may go negative: they mirror money held outside."""
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"{kind} is not a system account kind")
    return await open_account(
        session, owner="system", kind=kind, currency=currency, mode=mode, now=now, allow_negative=True
    )


async def ensure_chart(
    session: AsyncSession, currency: str, mode: str, now: datetime
) -> dict[AccountKind, LedgerAccount]:
    return {kind: await system_account(session, kind, currency, mode, now) for kind in SYSTEM_KINDS}


async def merchant_wallet(
    session: AsyncSession, client_id: uuid.UUID, kind: AccountKind, currency: str, mode: str, now: datetime
) -> LedgerAccount:
    """The merchant's wallet of ``kind`` (payments or service) in ``mode``, opened on first use."""
    return await open_account(
        session, owner=owner_key(client_id=client_id), kind=kind, currency=currency, mode=mode,
        client_id=client_id, now=now,
    )  # fmt: skip


async def open_merchant_wallets(
    session: AsyncSession, client_id: uuid.UUID, currency: str, now: datetime
) -> dict[tuple[str, AccountKind], LedgerAccount]:
    """A merchant's payments and service wallets, live and sandbox, and the chart they trade with."""
    opened = {}
    for mode in ("live", "test"):
        await ensure_chart(session, currency, mode, now)
        for kind in (AccountKind.PAYMENTS_WALLET, AccountKind.SERVICE_WALLET):
            opened[(mode, kind)] = await open_account(
                session,
                owner=owner_key(client_id=client_id),
                kind=kind,
                currency=currency,
                mode=mode,
                client_id=client_id,
                now=now,
            )
    return opened


@dataclass(frozen=True, slots=True)
class AccountBalance:
    balance: int
    available: int


@dataclass(frozen=True, slots=True)
class Posted:
    """A written journal and each touched account's balance and available funds right after it."""

    journal: Journal
    balances: dict[uuid.UUID, AccountBalance]


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal to post with ``post_journals``; the fields are ``post_journal``'s."""

    legs: list[Leg]
    kind: str
    description: str
    mode: str
    client_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    details: dict[str, Any] | None = None
    reverses_id: uuid.UUID | None = None
    journal_id: uuid.UUID | None = None


async def post_journal(
    session: AsyncSession,
    legs: list[Leg],
    *,
    kind: str,
    description: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    details: dict[str, Any] | None = None,
    reverses_id: uuid.UUID | None = None,
    journal_id: uuid.UUID | None = None,
) -> Posted:
    """Write one balanced journal and apply its postings to the balances.

    ``journal_id`` lets a caller that records the journal elsewhere choose its id beforehand.

    A refusal (an unknown account, a currency that is not the account's, too little
    available, a duplicate key) raises and leaves the caller's transaction as it was: the
    accounts are locked (in id order) and checked before anything is written.
    """
    entry = Entry(legs, kind, description, mode, client_id, idempotency_key, details, reverses_id, journal_id)
    try:
        (posted,) = await post_journals(session, [entry], now=now)
    except (InsufficientFunds, NotFound, UnbalancedJournal):
        # A repeat is a duplicate, whatever the funds say now.
        if idempotency_key is not None and await repository.journal_key_taken(session, idempotency_key):
            raise DuplicateJournal(f"a journal with key {idempotency_key!r} already exists") from None
        raise
    return posted


async def post_journals(session: AsyncSession, entries: list[Entry], *, now: datetime) -> list[Posted]:
    """Write many balanced journals as if one after the other, with one statement of each kind.

    All or nothing: the first refusal (as ``post_journal``'s) raises before anything is written.
    Each journal's funds are checked against the balances the journals before it leave, and
    each account is locked and updated once for all of them: a batch of collections of one
    merchant queues on its wallet row once, not once each.
    """
    journals = []
    for entry in entries:
        _check_balanced(entry.legs)
        journals.append(
            {
                "id": entry.journal_id or new_id(),
                "client_id": entry.client_id,
                "mode": entry.mode,
                "reference": new_reference(),
                "kind": entry.kind,
                "description": entry.description[:300],
                "idempotency_key": entry.idempotency_key,
                "reverses_id": entry.reverses_id,
                "details": entry.details or {},
                "created_at": now,
            }
        )
    nets = [_net_by_account(entry.legs) for entry in entries]
    touched = sorted({account_id for net in nets for account_id in net})
    accounts = await repository.lock_accounts(session, touched)
    running = {account_id: row.balance for account_id, row in accounts.items()}
    after: list[dict[uuid.UUID, AccountBalance]] = []
    for entry, net in zip(entries, nets, strict=True):
        balances: dict[uuid.UUID, AccountBalance] = {}
        for account_id, amount in net.items():
            account = accounts.get(account_id)
            if account is None:
                raise NotFound(f"no ledger account {account_id}")
            balance = running[account_id] + amount
            if abs(balance) > _limit(account.allow_negative):
                ceiling = Money(_limit(account.allow_negative), account.currency)
                raise BalanceLimit(f"would take a balance past its limit of {ceiling} either way")
            if amount < 0 and not account.allow_negative and balance - account.held < 0:
                available = Money(running[account_id] - account.held, account.currency)
                raise InsufficientFunds(
                    f"insufficient funds: {available} available, {Money(-amount, account.currency)} needed",
                    errors=[FieldError("amount", f"more than the {available} available")],
                    available=available.format(),
                )
            running[account_id] = balance
            balances[account_id] = AccountBalance(balance, balance - account.held)
        for leg in entry.legs:
            if leg.currency != accounts[leg.account_id].currency:
                raise UnbalancedJournal(
                    f"a {leg.currency} posting to account {leg.account_id}, which holds "
                    f"{accounts[leg.account_id].currency}"
                )
        after.append(balances)
    # Written after the checks (so a refusal writes nothing, without a savepoint) and before
    # the balances (so a repeated key stops here, with nothing applied).
    keyed = [journal for journal in journals if journal["idempotency_key"] is not None]
    if keyed:
        inserted = await repository.insert_keyed_journals(session, keyed)
        repeated = next((journal for journal in keyed if journal["id"] not in inserted), None)
        if repeated is not None:
            raise DuplicateJournal(f"a journal with key {repeated['idempotency_key']!r} already exists")
    unkeyed = [journal for journal in journals if journal["idempotency_key"] is None]
    if unkeyed:
        await repository.insert_journals(session, unkeyed)
    await repository.apply_balances(
        session, {account_id: running[account_id] - accounts[account_id].balance for account_id in touched}
    )
    postings = []
    for journal, entry, balances in zip(journals, entries, after, strict=True):
        postings += _posting_rows(journal["id"], entry.legs, balances, now)
    await repository.insert_postings(session, postings)
    return [Posted(Journal(**journal), balances) for journal, balances in zip(journals, after, strict=True)]


def _posting_rows(
    journal_id: uuid.UUID, legs: list[Leg], balances: dict[uuid.UUID, AccountBalance], now: datetime
) -> list[dict[str, Any]]:
    """Posting rows with ``balance_after``: each account's balance after its own postings, in order."""
    running = {account_id: found.balance for account_id, found in balances.items()}
    rows = []
    for leg in reversed(legs):
        rows.append(
            {
                "id": new_id(),
                "journal_id": journal_id,
                "account_id": leg.account_id,
                "amount": leg.amount,
                "currency": leg.currency,
                "balance_after": running[leg.account_id],
                "created_at": now,
            }
        )
        running[leg.account_id] -= leg.amount
    rows.reverse()
    return rows


def _check_balanced(legs: list[Leg]) -> None:
    if len(legs) < 2:
        raise UnbalancedJournal("a journal needs at least two postings")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if leg.amount == 0:
            raise UnbalancedJournal("a posting of zero moves nothing")
        if abs(leg.amount) > MAX_OPEN_BALANCE:  # more than any account may hold
            raise BalanceLimit(f"is more than any balance may hold ({MAX_OPEN_BALANCE} minor units)")
        totals[leg.currency] += leg.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedJournal(f"postings do not sum to zero: {unbalanced}")


def _net_by_account(legs: list[Leg]) -> dict[uuid.UUID, int]:
    net: dict[uuid.UUID, int] = defaultdict(int)
    for leg in legs:
        net[leg.account_id] += leg.amount
    return dict(net)


async def reverse_journal(
    session: AsyncSession, journal_id: uuid.UUID, *, description: str, now: datetime
) -> Posted:
    """A journal undoing ``journal_id`` (journals are never edited or deleted)."""
    original = await repository.get_journal(session, journal_id)
    if original is None:
        raise NotFound(f"no journal {journal_id}")
    postings = await repository.journal_postings(session, journal_id)
    return await post_journal(
        session,
        [Leg(p.account_id, -p.amount, p.currency) for p in postings],
        kind="reversal",
        description=description,
        mode=original.mode,
        client_id=original.client_id,
        idempotency_key=f"reversal:{journal_id}",
        reverses_id=journal_id,
        now=now,
    )


# -- holds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldRequest:
    amount: int  # minor units, positive
    reference: str


async def place_holds(
    session: AsyncSession, account_id: uuid.UUID, wanted: list[HoldRequest], *, now: datetime
) -> list[Hold | InsufficientFunds]:
    """Reserve each amount of the account's available funds, in order, while they cover it.

    One Hold per request, or InsufficientFunds (naming what was left) for one the funds no longer
    cover, which holds nothing; the others are placed all the same. The account is locked once
    and updated once, however many holds: a batch of requests of one merchant queues on its
    wallet row once, not once each.
    """
    if any(request.amount <= 0 for request in wanted):
        raise ValueError("a hold reserves a positive amount")
    account = await repository.lock_account(session, account_id)
    if account is None:
        raise NotFound(f"no ledger account {account_id}")
    left = account.balance - account.held
    placed: list[Hold | InsufficientFunds] = []
    rows = []
    for request in wanted:
        if not account.allow_negative and request.amount > left:
            available = Money(left, account.currency)
            refusal = f"insufficient funds: {available} available"
            placed.append(InsufficientFunds(refusal, available=available.format()))
            continue
        if account.balance - (left - request.amount) > _limit(account.allow_negative):
            # Only an account that may go negative gets here: another holds at most its balance.
            raise BalanceLimit("would take the amount held on the account past its limit")
        left -= request.amount
        row = {
            "id": new_id(), "account_id": account_id, "amount": request.amount, "currency": account.currency,
            "status": HoldStatus.ACTIVE.value, "reference": request.reference, "created_at": now,
            "finished_at": None,
        }  # fmt: skip
        rows.append(row)
        placed.append(Hold(**row))
    if rows:
        await repository.add_holds(session, account_id, rows)
    return placed


async def place_hold(
    session: AsyncSession, account_id: uuid.UUID, amount: int, *, reference: str, now: datetime
) -> Hold:
    """Reserve ``amount`` of the account's available funds (InsufficientFunds if they do not cover it)."""
    (placed,) = await place_holds(session, account_id, [HoldRequest(amount, reference)], now=now)
    if isinstance(placed, InsufficientFunds):
        raise placed
    return placed


async def _finish_holds(
    session: AsyncSession, hold_ids: list[uuid.UUID], status: HoldStatus, now: datetime
) -> list[Hold]:
    """End active holds (in the order given) and give their amounts back to ``held``: one UPDATE
    of the holds and one of their accounts, however many. NotFound or HoldNotActive for the first
    that is missing or already ended: raised after the holds' UPDATE, so the caller's transaction
    must roll back (as it does when the error propagates); the accounts are left untouched."""
    if not hold_ids:
        return []
    ended = await repository.end_active_holds(session, hold_ids, status, now)
    for hold_id in hold_ids:
        if hold_id not in ended:
            if not await repository.hold_exists(session, hold_id):
                raise NotFound(f"no hold {hold_id}")
            raise HoldNotActive(f"hold {hold_id} is already settled or released")
    released: dict[uuid.UUID, int] = defaultdict(int)
    for hold in ended.values():
        released[hold.account_id] += hold.amount
    await repository.release_held(session, released)
    return [ended[hold_id] for hold_id in hold_ids]


async def release_hold(session: AsyncSession, hold_id: uuid.UUID, *, now: datetime) -> Hold:
    """Give the reserved funds back to the account's available balance."""
    return (await release_holds(session, [hold_id], now=now))[0]


async def release_holds(session: AsyncSession, hold_ids: list[uuid.UUID], *, now: datetime) -> list[Hold]:
    """``release_hold`` for many, all or none."""
    return await _finish_holds(session, hold_ids, HoldStatus.RELEASED, now)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A hold to spend with ``settle_holds``: the fields are ``settle_hold``'s."""

    hold_id: uuid.UUID
    counter_legs: list[Leg]
    kind: str
    description: str
    mode: str
    client_id: uuid.UUID | None = None
    idempotency_key: str | None = None


async def settle_hold(
    session: AsyncSession,
    hold_id: uuid.UUID,
    counter_legs: list[Leg],
    *,
    kind: str,
    description: str,
    mode: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> Posted:
    """Spend the hold: debit its account by the held amount, balanced by ``counter_legs``."""
    settlement = Settlement(hold_id, counter_legs, kind, description, mode, client_id, idempotency_key)
    return (await settle_holds(session, [settlement], now=now))[0]


async def settle_holds(
    session: AsyncSession, settlements: list[Settlement], *, now: datetime, before: list[Entry] | None = None
) -> list[Posted]:
    """``settle_hold`` for many, all or none; ``before``: journals to post first, in the same
    statements (their Posted come first in the answer)."""
    holds = await _finish_holds(session, [s.hold_id for s in settlements], HoldStatus.SETTLED, now)
    entries = [*(before or [])]
    for settlement, hold in zip(settlements, holds, strict=True):
        legs = [Leg(hold.account_id, -hold.amount, hold.currency), *settlement.counter_legs]
        entries.append(
            Entry(
                legs,
                settlement.kind,
                settlement.description,
                settlement.mode,
                client_id=settlement.client_id,
                idempotency_key=settlement.idempotency_key,
                details={"hold_id": str(hold.id)},
            )
        )
    return await post_journals(session, entries, now=now) if entries else []


# -- verification -------------------------------------------------------------------


async def verify_ledger(session: AsyncSession) -> list[str]:
    """Every discrepancy in the books, first found first; an empty list means they add up.

    Checks that every journal balances per currency, every account's balance equals
    the sum of its postings, its held amount equals its active holds, and no guarded
    account is below zero.
    """
    problems: list[str] = []
    unbalanced = await repository.unbalanced_journals(session)
    problems += [f"journal {j} does not balance in {c}: off by {s}" for j, c, s in unbalanced]
    rows = await repository.account_totals(session)
    for account_id, kind, balance, held, allow_negative, posted, active in rows:
        if balance != posted:
            problems.append(f"account {account_id} ({kind}) balance {balance} != sum of postings {posted}")
        if held != active:
            problems.append(f"account {account_id} ({kind}) held {held} != active holds {active}")
        if not allow_negative and balance - held < 0:
            problems.append(f"account {account_id} ({kind}) is below zero: available {balance - held}")
    return problems


async def balance_of(session: AsyncSession, account_id: uuid.UUID) -> tuple[int, int]:
    """(balance, available) of an account."""
    found = await repository.balance_row(session, account_id)
    if found is None:
        raise NotFound(f"no ledger account {account_id}")
    return found


async def keyed_totals(session: AsyncSession, keys: list[str]) -> dict[str, int]:
    """Per account kind, what the journals posted under these idempotency keys add up to
    (minor units; money out of an account is negative): how a domain ties its records to the books."""
    return await repository.keyed_totals(session, keys)
