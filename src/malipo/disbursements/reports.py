"""/api/v1 routes of the disbursement reports: every batch, one batch, retry attempts, failed
items, and a batch's reconciliation against the ledger (JSON or CSV, streamed).

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. A client's
portal user sees its own client's batches (both modes unless ``mode`` says which), operator staff
every client's or one client's with ``clientId``, and an API key its own mode's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from malipo.disbursements import repository, service
from malipo.disbursements.endpoints import (
    BatchPath,
    PageSize,
    batch_out,
    batch_view,
    counts_out,
    item_out,
    money,
)
from malipo.disbursements.models import DisbursementAttempt, DisbursementItem, ItemStatus
from malipo.disbursements.repository import Owner
from malipo.disbursements.schemas import (
    AttemptOut,
    AttemptPage,
    BatchOut,
    BatchPage,
    ItemPage,
    ReconciliationLine,
    ReconciliationOut,
    ReconciliationTotals,
)
from malipo.http.csvfiles import csv_chunks, csv_stream
from malipo.http.deps import DatabaseDep, Session
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.schemas import PageQuery
from malipo.http.tags import REPORTS
from malipo.identity.principals import Principal

reports_router = APIRouter(prefix="/reports/disbursements", tags=[REPORTS])

ClientFilter = Annotated[
    uuid.UUID | None,
    Query(alias="clientId", description="Operators: only this client's batches (default: every client's)"),
]
Mode = Annotated[
    Literal["live", "test"] | None,
    Query(description="Portal users and operators: only live or only sandbox (test)"),
]
Format = Annotated[Literal["json", "csv"], Query(alias="format", description="json (default) or csv")]
_CSV_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV (`format=csv`)",
    }
}


def _report_owner(who: Principal, client_id: uuid.UUID | None, mode: str | None) -> Owner:
    if not who.is_operator and client_id is not None and client_id != who.client_id:
        raise service.BatchNotFound(f"no client {client_id}")
    if who.audience == KEY:
        return service.owner_of(who)  # an API key reads its own mode's batches
    return Owner(who.report_scope(client_id), mode)


@reports_router.get(
    "/batches", response_model=BatchPage, name="Reports.DisbursementBatches",
    summary="All disbursement batches, newest first", openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def report_batches(
    who: CurrentPrincipal, session: Session, client_id: ClientFilter = None, mode: Mode = None,
    page: PageQuery = 1, page_size: PageSize = 50,
) -> BatchPage:  # fmt: skip
    """Each batch with its counts by state, total, amount paid and fees."""
    owner = _report_owner(who, client_id, mode)
    rows, total = await repository.batches(session, owner, offset=(page - 1) * page_size, limit=page_size)
    found = await service.progress(session, [b.id for b in rows])
    return BatchPage(
        page=page, page_size=page_size, total=total, batches=[batch_out(b, found[b.id]) for b in rows]
    )


@reports_router.get(
    "/batches/{batchId:uuid}", response_model=BatchOut, name="Reports.DisbursementBatch",
    summary="One disbursement batch", openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def report_batch(batch_id: BatchPath, who: CurrentPrincipal, session: Session) -> BatchOut:
    """The batch's status, its counts by state, total, amount paid and fees."""
    batch = await service.get_batch(session, _report_owner(who, None, None), batch_id)
    return await batch_view(session, batch)


def _attempt_out(attempt: DisbursementAttempt, item: DisbursementItem) -> AttemptOut:
    return AttemptOut(
        attempt_id=attempt.id, batch_id=attempt.batch_id, item_id=attempt.item_id, number=attempt.number,
        destination=item.destination, amount=money(item.amount, item.currency), status=attempt.status,
        payout_id=attempt.payout_id, result_code=attempt.result_code, result_desc=attempt.result_desc,
        created_at=attempt.created_at, completed_at=attempt.completed_at,
    )  # fmt: skip


@reports_router.get(
    "/retries", response_model=AttemptPage, name="Reports.DisbursementRetries",
    summary="Every retry attempt, newest first", openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def report_retries(
    who: CurrentPrincipal, session: Session, client_id: ClientFilter = None, mode: Mode = None,
    page: PageQuery = 1, page_size: PageSize = 50,
) -> AttemptPage:  # fmt: skip
    """The attempts after an item's first (`number` 2 and up), with their outcome."""
    owner = _report_owner(who, client_id, mode)
    rows, total = await repository.attempts(
        session, owner, retries_only=True, offset=(page - 1) * page_size, limit=page_size
    )
    return AttemptPage(
        page=page, page_size=page_size, total=total, attempts=[_attempt_out(a, i) for a, i in rows]
    )


@reports_router.get(
    "/failed-items", response_model=ItemPage, name="Reports.DisbursementFailedItems",
    summary="Failed items of every batch", openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def report_failed_items(
    who: CurrentPrincipal, session: Session, client_id: ClientFilter = None, mode: Mode = None,
    page: PageQuery = 1, page_size: PageSize = 50,
) -> ItemPage:  # fmt: skip
    """Items now Failed, most recent first, with why (they may be retried)."""
    owner = _report_owner(who, client_id, mode)
    rows, total = await repository.failed_items(
        session, owner, offset=(page - 1) * page_size, limit=page_size
    )
    return ItemPage(
        batch_id=None, page=page, page_size=page_size, total=total, items=[item_out(r) for r in rows]
    )


_RECONCILIATION_COLUMNS = [
    "itemId", "row", "destination", "requested", "paid", "fee", "providerReference", "state", "attempts"
]  # fmt: skip


def _line(item: DisbursementItem) -> ReconciliationLine:
    return ReconciliationLine(
        item_id=item.id,
        row=item.row,
        destination=item.destination,
        requested=money(item.amount, item.currency),
        paid=money(item.paid_amount, item.currency),
        fee=money(item.fee if item.paid_amount else 0, item.currency),
        provider_reference=item.provider_reference,
        state=item.status,
        attempts=item.attempts,
    )


_FLUSH_BYTES = 65536


async def _json_body(
    head: ReconciliationOut, lines: AsyncIterator[ReconciliationLine]
) -> AsyncIterator[bytes]:
    opening = head.model_dump_json(by_alias=True)
    assert opening.endswith('"items":[]}')
    buffer, separator = opening[:-2], ""
    async for line in lines:
        buffer += separator + line.model_dump_json(by_alias=True)
        separator = ","
        if len(buffer) >= _FLUSH_BYTES:
            yield buffer.encode()
            buffer = ""
    yield (buffer + "]}").encode()


@reports_router.get(
    "/batches/{batchId:uuid}/reconciliation",
    response_model=ReconciliationOut,
    name="Reports.DisbursementReconciliation",
    summary="A batch's reconciliation",
    openapi_extra=callers(OP, CA, KEY),
    responses=_CSV_REPLY,
)
async def report_reconciliation(
    batch_id: BatchPath,
    who: CurrentPrincipal,
    session: Session,
    db: DatabaseDep,
    output: Format = "json",
    which: Annotated[
        Literal["all", "failed", "none"],
        Query(alias="items", description="Which items to list: all (default), only the failed, or none"),
    ] = "all",
) -> Response:
    """Per item: requested, paid, fee, the rail's reference and its state; the totals, and what
    the ledger booked for the batch's payouts (`ledgerPaid`, `ledgerFees`): `ties` says they are
    equal. `format=csv`: the items as CSV, then the totals as rows whose `itemId` is `total`.
    Streamed as it is read: a batch of 100,000 items never loads into memory."""
    found = await service.reconcile(session, _report_owner(who, None, None), batch_id)
    batch, currency = found.batch, found.batch.currency
    totals = ReconciliationTotals(
        items=batch.item_count, requested=money(batch.total_amount, currency),
        paid=money(found.progress.paid, currency), fees=money(found.progress.fees, currency),
        ledger_paid=money(found.ledger_paid, currency), ledger_fees=money(found.ledger_fees, currency),
        ties=found.ties,
    )  # fmt: skip

    async def lines() -> AsyncIterator[ReconciliationLine]:
        if which == "none":
            return
        async for item in service.batch_items(db, batch.id):
            if which == "all" or item.status == ItemStatus.FAILED:
                yield _line(item)

    if output == "csv":

        async def rows() -> AsyncIterator[Mapping[str, object]]:
            async for line in lines():
                yield line.model_dump(mode="json", by_alias=True)
            blank = dict.fromkeys(_RECONCILIATION_COLUMNS, "")
            for name, value in totals.model_dump(mode="json", by_alias=True).items():
                yield blank | {"itemId": "total", "row": name, "destination": value}

        chunks = csv_chunks(_RECONCILIATION_COLUMNS, rows(), flush_bytes=_FLUSH_BYTES)
        return csv_stream(chunks, f"disbursement-{batch.id}-reconciliation.csv")
    head = ReconciliationOut(
        batch_id=batch.id, batch_name=batch.name, status=service.shown_status(batch, found.progress),
        currency=currency, totals=totals, counts=counts_out(found.progress), items=[],
    )  # fmt: skip
    return StreamingResponse(_json_body(head, lines()), media_type="application/json")
