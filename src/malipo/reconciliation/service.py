"""A day's reconciliation: settle what was left open, ask the rails, match, book what arrived with
no record into suspense, and store the report with totals that tie to the ledger.

What callers can rely on:
- One run per day and mode; running a day again updates its report in place. A receipt booked
  into suspense is never booked twice; an item an operator resolved keeps its resolution.
- A receipt malipo has no credited collection for is booked at once (one journal: the rail's
  clearing account → SUSPENSE) and listed as an exception, never credited silently.
- The report says, per currency, whether its totals tie to the clearing account's movements.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections import tasks as collection_tasks
from malipo.collections.models import Collection, CollectionStatus
from malipo.config import Settings
from malipo.core.errors import NotFound
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.ledger import service as ledger
from malipo.ledger import statements
from malipo.ledger.models import AccountKind
from malipo.payouts import service as payouts
from malipo.payouts import tasks as payout_tasks
from malipo.providers.base import NotSupported, StatementUnavailable, Status
from malipo.providers.registry import AIRTEL, MPESA, mobile_money_for
from malipo.reconciliation import matching, repository
from malipo.reconciliation.models import ItemKind, ItemStatus, ReconciliationItem, ReconciliationRun
from malipo.worker.registry import BatchContext

log = get_logger("malipo.reconciliation")

# The journals that move a collection's money out of the clearing account (collections' own).
COLLECTION_JOURNAL_KINDS = ("collection", "service_wallet_top_up", "collection_to_own_channel")
SUSPENSE_JOURNAL = "reconciliation_suspense"
# The rails by network, and which of them has a statement.
RAILS = {MPESA: "daraja", AIRTEL: "airtel"}


class RunNotFound(NotFound):
    code = "reconciliation_not_found"
    title = "No reconciliation for this day"


@dataclass(frozen=True, slots=True)
class RunResult:
    run: ReconciliationRun
    items: list[ReconciliationItem]


def day_window(settings: Settings, day: date) -> tuple[datetime, datetime]:
    """The day in the operator's time zone (``MALIPO_RECONCILIATION_TIMEZONE``), as UTC bounds."""
    zone = ZoneInfo(settings.reconciliation_timezone)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    return start, start + timedelta(days=1)


def previous_day(settings: Settings, now: datetime) -> date:
    return (now.astimezone(ZoneInfo(settings.reconciliation_timezone)) - timedelta(days=1)).date()


async def reconcile_day(ctx: BatchContext, day: date, mode: str) -> RunResult:
    """Reconcile ``day`` in ``mode``: see the module docstring. Network calls happen outside any
    transaction; the report and its suspense journals are written in one."""
    start, end = day_window(ctx.settings, day)
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        period = await collections.collections_in_period(session, mode, start, end)
    delay = ctx.settings.stk_query_after_seconds
    left = [c.id for c in period if collections.left_unanswered(c, now=now, delay_seconds=delay)]
    for collection_id in left:  # settled by query before the report, as their own job would
        await collection_tasks.settle_by_query(ctx, collection_id)
    async with ctx.db.transaction() as session:
        open_payouts = await payouts.left_unanswered(session, ctx.settings, mode, start, now=now)
    for payout_id in open_payouts:  # likewise: their status asked for (Airtel answers at once)
        await payout_tasks.settle_by_query(ctx, payout_id)
    if left:
        async with ctx.db.transaction() as session:
            period = await collections.collections_in_period(session, mode, start, end)
    found: list[matching.Found] = []
    notes: dict[str, Any] = {}
    with_statement: set[str] = set()
    for network, rail_name in RAILS.items():
        statement_found, note = await _statement(ctx, mode, network, rail_name, period, start, end)
        if statement_found is None:  # no statement on this rail: its open items, one by one
            statement_found = await _failed_but_paid(ctx, mode, network, rail_name, period)
        elif not note:
            with_statement.add(rail_name)
        found.extend(statement_found)
        if note:
            notes[rail_name] = note
    async with ctx.db.transaction() as session:
        result = await store_run(
            session,
            day,
            mode,
            found,
            notes,
            period,
            start,
            end,
            now=ctx.clock.now(),
            with_statement=with_statement,
        )
    log.info(
        "reconciliation.run", day=day.isoformat(), mode=mode, items=len(result.items),
        exceptions=sum(i.kind != ItemKind.MATCHED for i in result.items), notes=list(notes),
    )  # fmt: skip
    return result


async def _failed_but_paid(
    ctx: BatchContext, mode: str, network: str, rail_name: str, period: list[Collection]
) -> list[matching.Found]:
    """Collections malipo failed because nobody answered (the rail's no-answer code: its enquiries
    ran out, or the prompt timed out): asked about again now. One the rail says was paid is money
    that arrived with no record."""
    rail = mobile_money_for(ctx.settings, network, mode, ctx.http)
    unanswered = rail.no_answer().result_code
    found = []
    for collection in period:
        if collection.network_code != network or collection.status != CollectionStatus.FAILED:
            continue
        if collection.result_code != unanswered:
            continue
        query_id = collection.provider_checkout_request_id or rail.push_query_id(collection.reference)
        if query_id is None:
            continue
        answer = await rail.query_push(query_id)
        if answer.status == Status.SUCCEEDED:
            found.append(matching.paid_after_failing(rail_name, collection, answer.receipt))
    return found


async def _statement(
    ctx: BatchContext, mode: str, network: str, rail_name: str, period: list[Collection],
    start: datetime, end: datetime,
) -> tuple[list[matching.Found] | None, str | None]:  # fmt: skip
    """The rail's statement matched to the period's collections (None: the rail has no statement),
    and why it could not be had (a note for the report)."""
    rail = mobile_money_for(ctx.settings, network, mode, ctx.http)
    try:
        statement = await rail.statement(start, end)
    except NotSupported:
        return None, None
    except StatementUnavailable as exc:
        log.warning("reconciliation.statement_unavailable", rail=rail_name, error=str(exc))
        return [], str(exc)
    on_rail = [c for c in period if c.network_code == network]
    credited = [c for c in on_rail if _credited_in(c, start, end)]
    return matching.match_statement(rail_name, statement, credited, on_rail), None


def _credited_in(collection: Collection, start: datetime, end: datetime) -> bool:
    done = collection.completed_at
    return collection.status == CollectionStatus.SUCCESS and done is not None and start <= done < end


async def store_run(
    session: AsyncSession, day: date, mode: str, found: list[matching.Found], notes: dict[str, Any],
    period: list[Collection], start: datetime, end: datetime, *, now: datetime,
    with_statement: set[str] | None = None,
) -> RunResult:  # fmt: skip
    """Write (or update) the day's report: items by their match key, suspense journals for new
    missing-in-malipo receipts, and the totals."""
    run = await repository.run_for(session, day, mode, lock=True)
    if run is None:
        run = ReconciliationRun(
            id=new_id(), day=day, mode=mode, status="complete", notes={}, totals={}, runs=0,
            created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(run)
        await session.flush()
    run.runs += 1
    existing = {item.match_key: item for item in await repository.items_of(session, run.id)}
    kept: list[ReconciliationItem] = []
    for entry in found:
        item = existing.pop(entry.match_key, None)
        if item is None:
            item = _new_item(run.id, entry, now)
            session.add(item)
        elif item.status in (ItemStatus.OPEN, ItemStatus.MATCHED):
            await _refresh(session, item, entry, now)
        kept.append(item)
        if item.kind == ItemKind.MISSING_IN_MALIPO and item.suspense_journal_id is None and item.rail_amount:
            item.suspense_journal_id = await _book_suspense(session, item, mode, run.runs, now)
    for gone in existing.values():
        if (
            gone.status == ItemStatus.OPEN and gone.suspense_journal_id is None
        ) or gone.status == ItemStatus.MATCHED:
            await session.delete(gone)
        else:  # booked or resolved: kept, with what the rerun said
            gone.detail = (gone.detail + "; not seen on the last run")[:300]
            kept.append(gone)
    await session.flush()
    run.notes = notes
    run.status = "incomplete" if notes else "complete"
    run.totals = await _totals(session, kept, period, mode, start, end, now, with_statement or set())
    run.updated_at = now
    await session.flush()
    return RunResult(run, kept)


def _new_item(run_id: uuid.UUID, entry: matching.Found, now: datetime) -> ReconciliationItem:
    return ReconciliationItem(
        id=new_id(), run_id=run_id, match_key=entry.match_key, kind=entry.kind,
        status=ItemStatus.MATCHED if entry.kind == ItemKind.MATCHED else ItemStatus.OPEN,
        rail=entry.rail, currency=entry.currency, receipt=entry.receipt, rail_amount=entry.rail_amount,
        malipo_amount=entry.malipo_amount, party=(entry.party or None) and entry.party[:40],
        bill_reference=entry.bill_reference, rail_time=entry.rail_time, collection_id=entry.collection_id,
        payout_id=None, client_id=entry.client_id, detail=entry.detail[:300], created_at=now, updated_at=now,
    )  # fmt: skip


async def _refresh(
    session: AsyncSession, item: ReconciliationItem, entry: matching.Found, now: datetime
) -> None:
    """An unresolved item as this run finds it. A receipt booked into suspense that malipo has
    since credited (a late callback) has its suspense journal reversed: never counted twice."""
    if item.suspense_journal_id is not None and entry.kind != ItemKind.MISSING_IN_MALIPO:
        await ledger.reverse_journal(
            session, item.suspense_journal_id, description=f"Reconciliation: {item.receipt} credited since",
            now=now,
        )  # fmt: skip
        item.suspense_journal_id = None
    item.kind = entry.kind
    item.status = ItemStatus.MATCHED if entry.kind == ItemKind.MATCHED else ItemStatus.OPEN
    item.rail_amount, item.malipo_amount = entry.rail_amount, entry.malipo_amount
    item.collection_id, item.client_id = entry.collection_id, entry.client_id
    item.detail = entry.detail[:300]
    item.updated_at = now


async def _book_suspense(
    session: AsyncSession, item: ReconciliationItem, mode: str, attempt: int, now: datetime
) -> uuid.UUID:
    """Money at the rail with no record: the clearing account → SUSPENSE, one journal."""
    assert item.rail_amount is not None
    clearing = await ledger.system_account_id(
        session, AccountKind.MOBILE_MONEY_CLEARING, item.currency, mode, now
    )
    suspense = await ledger.system_account_id(session, AccountKind.SUSPENSE, item.currency, mode, now)
    posted = await ledger.post_journal(
        session,
        [
            ledger.Leg(clearing, -item.rail_amount, item.currency),
            ledger.Leg(suspense, item.rail_amount, item.currency),
        ],
        kind=SUSPENSE_JOURNAL, description=f"Reconciliation: {item.receipt or item.match_key} with no record",
        mode=mode, now=now, idempotency_key=f"reconciliation:suspense:{mode}:{item.match_key}:{attempt}",
        details={"item_id": str(item.id), "receipt": item.receipt},
    )  # fmt: skip
    return posted.journal.id


async def _totals(
    session: AsyncSession, items: list[ReconciliationItem], period: list[Collection], mode: str,
    start: datetime, end: datetime, now: datetime, with_statement: set[str],
) -> dict[str, Any]:  # fmt: skip
    """Per currency: the items' figures, malipo's credited total, and the tie to the ledger."""
    credited = [c for c in period if _credited_in(c, start, end)]
    currencies = sorted({c.currency for c in credited} | {i.currency for i in items} | {"KES"})
    out: dict[str, Any] = {}
    for currency in currencies:
        figures = matching.totals(items, currency)
        malipo_total = sum(c.amount for c in credited if c.currency == currency)
        booked = [i for i in items if i.currency == currency and i.suspense_journal_id is not None]
        clearing = await ledger.system_account_id(
            session, AccountKind.MOBILE_MONEY_CLEARING, currency, mode, now
        )
        movement = await statements.account_movement(
            session, clearing, kinds=COLLECTION_JOURNAL_KINDS, start=start, end=end,
            journal_ids=tuple(i.suspense_journal_id for i in booked if i.suspense_journal_id),
        )  # fmt: skip
        expected = malipo_total + sum(i.rail_amount or 0 for i in booked)
        figures["malipoTotal"] = malipo_total
        figures["notOnAStatement"] = sum(
            c.amount
            for c in credited
            if c.currency == currency and RAILS.get(c.network_code) not in with_statement
        )
        figures["ledger"] = {"clearingIn": -movement, "expected": expected, "ties": -movement == expected}
        out[currency] = figures
    return out


async def report(session: AsyncSession, day: date, mode: str) -> RunResult:
    """The stored report of ``day`` in ``mode``; RunNotFound if it never ran."""
    run = await repository.run_for(session, day, mode)
    if run is None:
        raise RunNotFound(f"no reconciliation of {day.isoformat()} in {mode} mode yet")
    return RunResult(run, await repository.items_of(session, run.id))
