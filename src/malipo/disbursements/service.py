"""Disbursement batches: submit many payouts as one batch, approve, process, follow, retry, reconcile.

What callers can rely on:
- ``submit`` checks every item on its own (``intake.check_item``: the payouts' own rules) and
  stores the batch with the accepted items, in bulk inserts; rejected items come back with their
  row, field and reason. Nothing is held and nothing moves. A batch whose total is over the
  client's approval threshold waits for approval.
- ``approve``: a second principal of the same client holding ``Disbursements.Approve`` (the route's
  permission) lets a waiting batch be processed; the submitter never can.
- ``process`` pays every Pending item once: each item's hold and payout job are made in the same
  transaction as the item's move to Processing and its attempt row (``payouts.request_payouts``,
  a chunk at a time), so an item is never paid twice, whoever asks again and whatever dies
  midway. Small batches are processed in the request; larger ones by the worker
  (``PROCESS_JOB``, one chunk per transaction, each chunk queuing the next). An item the wallets
  no longer cover fails at once with the reason, and may be retried.
- When an item's payout settles the item becomes Processed with CompletedAt, or Failed with the
  rail's result (``payouts.settlement.on_finished``, in the payout's own transaction).
- ``retry`` makes a new attempt (a new payout) for each named Failed item.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.disbursements import intake, repository
from malipo.disbursements.models import (
    BatchStatus,
    DisbursementBatch,
    DisbursementItem,
    ItemStatus,
)
from malipo.disbursements.repository import Owner
from malipo.identity import clients
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import bulk as payouts_bulk
from malipo.payouts import service as payouts
from malipo.payouts import settlement as payout_settlement
from malipo.payouts.models import Payout, PayoutStatus
from malipo.providers.registry import MPESA
from malipo.worker.registry import enqueue

log = get_logger("malipo.disbursements")

PROCESS_JOB = "disbursement.process"
CURRENCY = intake.CURRENCY
INSERT_CHUNK = 1000
SHOWN_SKIPPED = 1000  # a reply lists at most this many skipped items (and counts them all)
MAX_RETRY_ITEMS = 1000
# The worker holds and queues a batch's next chunk only while fewer than this many chunks' items
# are in flight (held, waiting to be sent or for M-Pesa's result); else it looks again after a pause.
IN_FLIGHT_CHUNKS = 4
PACE_DELAY = timedelta(seconds=1)


class BatchNotFound(NotFound):
    code = "batch_not_found"
    title = "No such batch"


class ApprovalRequired(Conflict):
    code = "approval_required"
    title = "The batch needs approval first"


class NotAwaitingApproval(Conflict):
    code = "not_awaiting_approval"
    title = "The batch is not waiting for approval"


class SubmitterCannotApprove(Conflict):
    code = "submitter_cannot_approve"
    title = "The submitter cannot approve their own batch"

    status = 403


@dataclass(frozen=True, slots=True)
class Submitted:
    batch: DisbursementBatch
    item_ids: list[uuid.UUID]
    rejected: list[intake.Rejected]


@dataclass(slots=True)
class Processed:
    batch: DisbursementBatch
    processed: list[uuid.UUID] = field(default_factory=list)
    failed: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    skipped: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)  # id, status, why
    skipped_count: int = 0
    queued: int = 0


def owner_of(who: Principal) -> Owner:
    assert who.client_id is not None
    return Owner(who.client_id, who.mode.value)


def _submitter(who: Principal) -> tuple[uuid.UUID, str]:
    return who.id, "api_user" if who.api_user_id is not None else "portal_user"


async def get_batch(
    session: AsyncSession, owner: Owner, batch_id: uuid.UUID, *, lock: bool = False
) -> DisbursementBatch:
    found = await repository.batch(session, owner, batch_id, lock=lock)
    if found is None:
        raise BatchNotFound(f"no disbursement batch {batch_id}")
    return found


# --------------------------------------------------------------------------- submit


async def submit(
    session: AsyncSession,
    who: Principal,
    *,
    name: str,
    records: Iterable[tuple[int, Mapping[str, Any]]],
    source: str,
    settings: Settings,
    now: datetime,
) -> Submitted:
    """Store a batch of the accepted items (bulk inserts of ``INSERT_CHUNK``); nothing is held."""
    owner = owner_of(who)
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationFailed.for_field("batchName", "must be 1 to 100 characters, no control characters")
    submitted_by, kind = _submitter(who)
    batch = DisbursementBatch(
        id=new_id(), client_id=owner.client_id, mode=owner.mode, name=name, status=BatchStatus.READY,
        currency=CURRENCY, item_count=0, total_amount=0, rejected_count=0, source=source,
        submitted_by=submitted_by, submitted_by_kind=kind, approval_required=False,
        created_at=now, updated_at=now,
    )  # fmt: skip
    await repository.add_batch(session, batch)
    limit = settings.disbursement_max_items
    item_ids: list[uuid.UUID] = []
    rejected: list[intake.Rejected] = []
    pending: list[dict[str, Any]] = []
    total = 0
    seen = 0
    for row, raw in records:
        seen += 1
        if seen > limit:
            raise intake.too_many(limit)
        checked = intake.check_item(raw, row, settings=settings, mode=owner.mode)
        if isinstance(checked, intake.Rejected):
            rejected.append(checked)
            continue
        item_id = new_id()
        item_ids.append(item_id)
        total += checked.amount
        pending.append(
            {
                "id": item_id, "batch_id": batch.id, "client_id": owner.client_id, "mode": owner.mode,
                "row": checked.row, "destination_type": checked.destination_type,
                "destination": checked.destination, "bank_code": checked.bank_code, "amount": checked.amount,
                "currency": CURRENCY, "narration": checked.narration, "reference": checked.reference,
                "status": ItemStatus.PENDING.value, "attempts": 0, "payout_id": None, "fee": None,
                "paid_amount": None, "provider_reference": None, "result_code": None, "result_desc": None,
                "created_at": now, "updated_at": now, "completed_at": None,
            }
        )  # fmt: skip
        if len(pending) >= INSERT_CHUNK:
            await repository.insert_items(session, pending)
            pending = []
    if seen == 0:
        raise ValidationFailed.for_field("items", "must hold at least one item")
    if not item_ids:
        shown = rejected[:20]
        raise ValidationFailed(
            f"no item of the batch was accepted ({len(rejected)} rejected)",
            errors=[FieldError(f"items.{r.row}.{r.field}", r.reason) for r in shown],
        )
    await repository.insert_items(session, pending)
    threshold, _source = await approval_threshold(session, settings, owner.client_id)
    needs_approval = threshold is not None and total > threshold * 100
    values = {
        "item_count": len(item_ids), "total_amount": total, "rejected_count": len(rejected),
        "approval_required": needs_approval,
        "status": BatchStatus.AWAITING_APPROVAL if needs_approval else BatchStatus.READY,
    }  # fmt: skip
    await repository.update_batch(session, batch.id, values)
    await session.refresh(batch)
    log.info(
        "disbursements.submitted", batch=str(batch.id), items=len(item_ids), rejected=len(rejected),
        approval=needs_approval,
    )  # fmt: skip
    return Submitted(batch, item_ids, rejected)


async def approval_threshold(
    session: AsyncSession, settings: Settings, client_id: uuid.UUID | None
) -> tuple[int | None, str]:
    """(Whole shillings, where from): a batch whose total is above it needs approval (None:
    never). The client's own threshold when one was set, else ``disbursement_approval_threshold``."""
    own = await repository.settings_of(session, client_id) if client_id is not None else None
    if own is not None:
        return own.approval_threshold, "client"
    return settings.disbursement_approval_threshold, "default"


async def set_approval_threshold(
    session: AsyncSession, who: Principal, client_id: uuid.UUID, threshold: int | None, *, now: datetime
) -> None:
    """The client's own threshold (None: no batch of it needs approval)."""
    await visible_client(session, who, client_id)
    await repository.save_settings(session, client_id, threshold, who.id, now)


async def visible_client(session: AsyncSession, who: Principal, client_id: uuid.UUID) -> None:
    """NotFound unless ``client_id`` is a client ``who`` may see (operators: any that exists)."""
    if not who.sees_client(client_id) or await clients.client_by_id(session, client_id) is None:
        raise NotFound(f"no client {client_id}")


# --------------------------------------------------------------------------- approve


async def approve(
    session: AsyncSession, who: Principal, batch_id: uuid.UUID, *, now: datetime
) -> DisbursementBatch:
    batch = await get_batch(session, owner_of(who), batch_id, lock=True)
    if batch.status != BatchStatus.AWAITING_APPROVAL:
        raise NotAwaitingApproval(
            f"batch {batch_id} is {batch.status}: only a batch awaiting approval is approved"
        )
    if (who.id, _submitter(who)[1]) == (batch.submitted_by, batch.submitted_by_kind):
        raise SubmitterCannotApprove("a batch is approved by someone other than its submitter")
    await repository.update_batch(
        session, batch.id,
        {"status": BatchStatus.READY, "approved_by": who.id, "approved_at": now, "updated_at": now},
    )  # fmt: skip
    await session.refresh(batch)
    log.info("disbursements.approved", batch=str(batch.id))
    return batch


# --------------------------------------------------------------------------- process


def _payout_request(item: DisbursementItem) -> payouts.PayoutRequest:
    whole = item.amount // 100
    if item.destination_type == "bank":
        return payouts.PayoutRequest(whole, "bank", item.bank_code or "", account_number=item.destination)
    return payouts.PayoutRequest(whole, "mobile", MPESA, phone_number=item.destination)


async def pay_items(
    session: AsyncSession,
    batch: DisbursementBatch,
    items: list[DisbursementItem],
    *,
    expect: ItemStatus,
    settings: Settings,
    now: datetime,
) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, str]]]:
    """A new attempt for each item (locked by the caller, in ``expect``): its payout held and
    queued, the item Processing; or, when the payout is refused, the item Failed with why. All
    in the caller's transaction. (processed ids, failed (id, reason))."""
    if not items:
        return [], []
    api_user = batch.submitted_by if batch.submitted_by_kind == "api_user" else None
    answers = await payouts_bulk.request_payouts(
        session, [_payout_request(item) for item in items], client_id=batch.client_id, mode=batch.mode,
        api_user_id=api_user, settings=settings, now=now,
    )  # fmt: skip
    changes: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    processed: list[uuid.UUID] = []
    failed: list[tuple[uuid.UUID, str]] = []
    for item, answer in zip(items, answers, strict=True):
        number = item.attempts + 1
        attempt = {
            "id": new_id(), "item_id": item.id, "batch_id": batch.id, "client_id": batch.client_id,
            "mode": batch.mode, "number": number, "created_at": now,
        }  # fmt: skip
        if isinstance(answer, Payout):
            changes.append(
                {"id": item.id, "status": ItemStatus.PROCESSING.value, "attempts": number,
                 "payout_id": answer.id, "fee": answer.fee, "result_code": None, "result_desc": None,
                 "updated_at": now}
            )  # fmt: skip
            attempts.append(
                attempt | {"payout_id": answer.id, "status": ItemStatus.PROCESSING.value, "result_code": None,
                           "result_desc": None, "completed_at": None}
            )  # fmt: skip
            processed.append(item.id)
        else:
            reason = answer.error.detail[:300]
            changes.append(
                {"id": item.id, "status": ItemStatus.FAILED.value, "attempts": number, "payout_id": None,
                 "fee": 0, "result_code": answer.error.code[:20], "result_desc": reason, "updated_at": now}
            )  # fmt: skip
            attempts.append(
                attempt | {"payout_id": None, "status": ItemStatus.FAILED.value,
                           "result_code": answer.error.code[:20], "result_desc": reason, "completed_at": now}
            )  # fmt: skip
            failed.append((item.id, reason))
    await repository.move_items(session, changes, expect=expect.value)
    await repository.insert_attempts(session, attempts)
    return processed, failed


async def process(
    session: AsyncSession, who: Principal, batch_id: uuid.UUID, *, settings: Settings, now: datetime
) -> Processed:
    """Pay every Pending item: in this transaction for a small batch, else by the worker."""
    batch = await get_batch(session, owner_of(who), batch_id, lock=True)
    if batch.status == BatchStatus.AWAITING_APPROVAL:
        raise ApprovalRequired(
            f"batch {batch_id} totals {CURRENCY} {batch.total_amount / 100:,.2f}, over the approval "
            "threshold: someone other than its submitter, holding Disbursements.Approve, must approve it"
        )
    pending = await repository.pending_count(session, batch.id)
    result = Processed(batch)
    skipped, result.skipped_count = await repository.not_pending(session, batch.id, SHOWN_SKIPPED)
    result.skipped = [(item_id, status, f"the item is {status}, not Pending") for item_id, status in skipped]
    values: dict[str, Any] = {"status": BatchStatus.PROCESSING, "updated_at": now}
    if batch.processing_started_at is None:
        values["processing_started_at"] = now
    await repository.update_batch(session, batch.id, values)
    if 0 < pending <= settings.disbursement_inline_items:
        items = await repository.claim_pending(session, batch.id, pending)
        result.processed, result.failed = await pay_items(
            session, batch, items, expect=ItemStatus.PENDING, settings=settings, now=now
        )
    elif pending:
        enqueue(session, PROCESS_JOB, {"batch_id": str(batch.id)}, now=now)
        result.queued = pending
    await session.refresh(batch)
    log.info(
        "disbursements.process", batch=str(batch.id), processed=len(result.processed),
        failed=len(result.failed), queued=result.queued, skipped=result.skipped_count,
    )  # fmt: skip
    return result


async def process_chunk(
    session: AsyncSession, batch_id: uuid.UUID, *, settings: Settings, now: datetime
) -> tuple[int, bool]:
    """The worker's step: pay the next chunk of a batch's Pending items; (how many were taken,
    whether more are left: then the next step is queued in this same transaction)."""
    batch = await repository.batch_by_id(session, batch_id)
    if batch is None or batch.status != BatchStatus.PROCESSING:
        return 0, False
    in_flight = await repository.pending_count(session, batch.id, ItemStatus.PROCESSING)
    if in_flight >= IN_FLIGHT_CHUNKS * settings.disbursement_chunk:
        # Paced to what the senders carry: holding more only lengthens the send queue.
        enqueue(session, PROCESS_JOB, {"batch_id": str(batch.id)}, now=now, delay=PACE_DELAY)
        return 0, True
    items = await repository.claim_pending(session, batch.id, settings.disbursement_chunk)
    await pay_items(session, batch, items, expect=ItemStatus.PENDING, settings=settings, now=now)
    more = len(items) == settings.disbursement_chunk and await repository.pending_count(session, batch.id) > 0
    if more:
        enqueue(session, PROCESS_JOB, {"batch_id": str(batch.id)}, now=now)
    return len(items), more


# --------------------------------------------------------------------------- retry


async def retry(
    session: AsyncSession,
    who: Principal,
    batch_id: uuid.UUID,
    item_ids: list[uuid.UUID],
    *,
    named: uuid.UUID,
    settings: Settings,
    now: datetime,
) -> Processed:
    """A new attempt for each named Failed item; the others are listed as skipped. ``named``: the
    batch the request body names, which must be ``batch_id`` (checked once the batch is found)."""
    if not item_ids:
        raise ValidationFailed.for_field("itemIds", "name at least one item")
    if len(item_ids) > MAX_RETRY_ITEMS:
        raise ValidationFailed.for_field("itemIds", f"at most {MAX_RETRY_ITEMS:,} items per retry")
    owner = owner_of(who)
    batch = await get_batch(session, owner, batch_id, lock=True)
    if named != batch_id:
        raise ValidationFailed.for_field("batchId", "must be the batch named in the path")
    if batch.status == BatchStatus.AWAITING_APPROVAL:
        raise ApprovalRequired(f"batch {batch_id} needs approval first")
    wanted = list(dict.fromkeys(item_ids))
    found = {item.id: item for item in await repository.items_by_ids(session, owner, batch.id, wanted)}
    result = Processed(batch)
    failed_items: list[DisbursementItem] = []
    for item_id in wanted:
        item = found.get(item_id)
        if item is None:
            result.skipped.append((item_id, "", "no such item in this batch"))
        elif item.status != ItemStatus.FAILED:
            result.skipped.append(
                (item_id, item.status, f"the item is {item.status}: only a Failed item is retried")
            )
        else:
            failed_items.append(item)
    result.skipped_count = len(result.skipped)
    result.processed, result.failed = await pay_items(
        session, batch, failed_items, expect=ItemStatus.FAILED, settings=settings, now=now
    )
    log.info(
        "disbursements.retry", batch=str(batch.id), retried=len(failed_items), skipped=len(result.skipped)
    )
    return result


# --------------------------------------------------------------------------- following payouts


async def _payouts_finished(session: AsyncSession, finished: list[Payout], now: datetime) -> None:
    """Batch items' payouts settled or failed: the items and their attempts say so too."""
    items = await repository.items_paid_by(session, [payout.id for payout in finished])
    results = []
    for payout in finished:
        item_id = items.get(payout.id)
        if item_id is None:
            continue
        success = payout.status == PayoutStatus.SUCCESS
        results.append(
            repository.ItemResult(
                item_id=item_id, payout_id=payout.id,
                status=(ItemStatus.PROCESSED if success else ItemStatus.FAILED).value,
                paid_amount=payout.amount if success else None, fee=payout.fee if success else 0,
                provider_reference=payout.transaction_id,
                result_code=None if payout.result_code is None else str(payout.result_code)[:20],
                result_desc=(payout.result_desc or "")[:300] or None, completed_at=now if success else None,
            )
        )  # fmt: skip
    await repository.finish_items(session, results, now)


payout_settlement.on_finished(_payouts_finished)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Progress:
    """A batch's items by state: how many, and their amounts (minor units)."""

    count: dict[str, int]
    amount: dict[str, int]
    paid: int
    fees: int

    @property
    def open(self) -> int:
        return self.count[ItemStatus.PENDING] + self.count[ItemStatus.PROCESSING]


async def progress(session: AsyncSession, batch_ids: list[uuid.UUID]) -> dict[uuid.UUID, Progress]:
    found = await repository.counts(session, batch_ids)
    answer = {}
    for batch_id in batch_ids:
        by_status = found.get(batch_id, {})
        count = {s.value: by_status.get(s.value, (0, 0, 0, 0))[0] for s in ItemStatus}
        amount = {s.value: by_status.get(s.value, (0, 0, 0, 0))[1] for s in ItemStatus}
        paid = sum(v[2] for v in by_status.values())
        # Charged: the fees of paid items (an item in flight only holds its fee; a failed one none).
        fees = by_status.get(ItemStatus.PROCESSED.value, (0, 0, 0, 0))[3]
        answer[batch_id] = Progress(count, amount, paid, fees)
    return answer


def shown_status(batch: DisbursementBatch, progress: Progress) -> str:
    """The batch's status as shown: Completed once processing left nothing pending or in flight."""
    if batch.status == BatchStatus.PROCESSING and progress.open == 0:
        return BatchStatus.COMPLETED.value
    return batch.status


@dataclass(frozen=True, slots=True)
class Reconciliation:
    batch: DisbursementBatch
    progress: Progress
    ledger_paid: int
    ledger_fees: int

    @property
    def ties(self) -> bool:
        return self.ledger_paid == self.progress.paid and self.ledger_fees == self.progress.fees


async def reconcile(session: AsyncSession, owner: Owner, batch_id: uuid.UUID) -> Reconciliation:
    """What the batch's items say was paid and charged, beside what the ledger booked for their
    payouts (every attempt's): the two must be equal."""
    batch = await get_batch(session, owner, batch_id)
    found = (await progress(session, [batch.id]))[batch.id]
    payout_ids = await repository.payout_ids(session, batch.id)
    paid = await ledger.keyed_totals(session, [f"payout:{p}" for p in payout_ids])
    fees = await ledger.keyed_totals(session, [f"payout-fee:{p}" for p in payout_ids])
    return Reconciliation(
        batch, found, -paid.get(AccountKind.PAYMENTS_WALLET, 0), fees.get(AccountKind.FEE_REVENUE, 0)
    )


async def batch_items(
    db: Database, batch_id: uuid.UUID, *, page: int = 5000
) -> AsyncIterator[DisbursementItem]:
    """Every item of a batch (the caller owns it), in row order, read a page at a time, each page
    in its own short transaction (a report streamed as it is read)."""
    after = 0
    while True:
        async with db.transaction() as session:
            rows = await repository.all_items(session, batch_id, after=after, limit=page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].row
