"""/api/v1 routes of disbursement batches, their reports and their approval threshold.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. A batch
belongs to the client and mode of whoever submitted it; nobody else sees it.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from malipo.core.errors import ValidationFailed
from malipo.core.money import Money
from malipo.disbursements import intake, repository, service
from malipo.disbursements.models import DisbursementAttempt, DisbursementBatch, DisbursementItem, ItemStatus
from malipo.disbursements.repository import Owner
from malipo.disbursements.schemas import (
    AttemptOut,
    AttemptPage,
    BatchIn,
    BatchOut,
    BatchPage,
    Counts,
    ItemOut,
    ItemPage,
    ItemRef,
    ProcessResult,
    ReconciliationLine,
    ReconciliationOut,
    ReconciliationTotals,
    RejectedOut,
    RetryIn,
    SkippedOut,
    SubmitBatchResult,
    ThresholdIn,
    ThresholdOut,
)
from malipo.http.csvfiles import csv_chunks, csv_stream
from malipo.http.deps import ClockDep, DatabaseDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.schemas import PageQuery, page_size_query
from malipo.http.tags import DISBURSEMENTS, REPORTS
from malipo.identity.principals import Principal

router = APIRouter(prefix="/disbursements", tags=[DISBURSEMENTS])
reports_router = APIRouter(prefix="/reports/disbursements", tags=[REPORTS])

PageSize = page_size_query(1000, alias="pageSize")
BatchPath = Annotated[
    uuid.UUID, Path(alias="batchId", description="The batch's id (SubmitBatchResult.batchId)")
]
ItemStatusQuery = Annotated[ItemStatus | None, Query(description="Only items in this state")]
ClientFilter = Annotated[
    uuid.UUID | None,
    Query(alias="clientId", description="Operators: only this client's batches (default: every client's)"),
]
Mode = Annotated[
    Literal["live", "test"] | None, Query(description="Reports: only live or only sandbox (test) batches")
]
Format = Annotated[Literal["json", "csv"], Query(alias="format", description="json (default) or csv")]
_SPOOL = 8 * 1_048_576  # an upload or CSV body is kept in memory up to this size, then on disk
_CSV_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV (`format=csv`)",
    }
}


def _money(amount: int | None, currency: str) -> str:
    return Money(amount or 0, currency).format()


def _submitted(result: service.Submitted) -> SubmitBatchResult:
    batch = result.batch
    return SubmitBatchResult(
        batch_id=batch.id, batch_name=batch.name, status=batch.status, item_count=batch.item_count,
        accepted_count=len(result.item_ids), rejected_count=len(result.rejected),
        total_amount=_money(batch.total_amount, batch.currency), currency=batch.currency,
        approval_required=batch.approval_required, item_ids=result.item_ids,
        rejected=[RejectedOut(row=r.row, field=r.field, reason=r.reason, destination=r.destination)
                  for r in result.rejected],
    )  # fmt: skip


async def _submit_reply(result: service.Submitted, idem: Any, session: Any) -> SubmitBatchResult:
    reply = _submitted(result)
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


_SUBMIT_DOC = """Each item is checked on its own by the payouts' rules (a Kenyan mobile number, or a bank
code and account number; whole shillings from 10 to 250,000): the accepted items are stored, each
with its id (`itemIds`), and the rejected ones are listed with their row, field and reason.
Nothing is held and no money moves until you process the batch. A batch totalling more than your
approval threshold waits for approval (`status` AwaitingApproval). At most 100,000 items by
default. Send an `Idempotency-Key` so that a retried submission is not a second batch."""


@router.post(
    "/batches", response_model=SubmitBatchResult, status_code=status.HTTP_201_CREATED,
    name="Disbursements.Submit", summary="Submit a batch of payouts (JSON)", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def submit_batch(
    body: BatchIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> SubmitBatchResult:  # fmt: skip
    result = await service.submit(
        session, who, name=body.batch_name, records=intake.json_records(body.items), source="json",
        settings=settings, now=clock.now(),
    )  # fmt: skip
    return await _submit_reply(result, idem, session)


submit_batch.__doc__ = _SUBMIT_DOC


async def _spooled(request: Request) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - closed by the caller
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    return spool


_CSV_BODY = {
    "required": True,
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "destination,amount,destinationType,bankCode,narration,reference\r\n"
            "254712345678,1500,mobile,,Salary,EMP-0001\r\n1234567890,25000,bank,01,Salary,EMP-0002\r\n",
        }
    },
}


@router.post(
    "/batches/csv", response_model=SubmitBatchResult, status_code=status.HTTP_201_CREATED,
    name="Disbursements.SubmitCsv", summary="Submit a batch of payouts (a text/csv body)",
    openapi_extra={**callers(CA, KEY), "requestBody": _CSV_BODY},
)  # fmt: skip
async def submit_batch_csv(
    request: Request,
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
    batch_name: Annotated[str, Query(alias="batchName", min_length=1, max_length=100)],
) -> SubmitBatchResult:
    """The body is a CSV file (UTF-8) whose first row names the columns: `destination` and `amount`
    at least, and `destinationType`, `bankCode`, `narration`, `reference`. Rows are read one at a
    time; a rejected row is listed with its row number (the header is row 1). Otherwise as
    `POST /api/v1/disbursements/batches`."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "application/csv", "text/plain"):
        raise ValidationFailed.for_field("Content-Type", "must be text/csv")
    spool = await _spooled(request)
    try:
        result = await service.submit(
            session, who, name=batch_name, records=intake.csv_records(spool), source="csv", settings=settings,
            now=clock.now(),
        )  # fmt: skip
    finally:
        spool.close()
    return await _submit_reply(result, idem, session)


def _is_workbook(upload: UploadFile, head: bytes) -> bool:
    name = (upload.filename or "").lower()
    return head.startswith(b"PK\x03\x04") or name.endswith(".xlsx")


@router.post(
    "/batches/upload", response_model=SubmitBatchResult, status_code=status.HTTP_201_CREATED,
    name="Disbursements.Upload", summary="Submit a batch of payouts (a CSV or Excel file upload)",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def upload_batch(
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile, File(description="A .csv (UTF-8) or .xlsx file, columns as for /batches/csv")
    ],
    batch_name: Annotated[str, Form(alias="batchName", min_length=1, max_length=100)],
) -> SubmitBatchResult:
    """A multipart form with `file` (CSV or XLSX: the first sheet is read, row by row) and
    `batchName`. Otherwise as `POST /api/v1/disbursements/batches/csv`."""
    stream = file.file
    head = stream.read(4)
    stream.seek(0)
    workbook = _is_workbook(file, head)
    records = intake.xlsx_records(stream) if workbook else intake.csv_records(stream)
    result = await service.submit(
        session, who, name=batch_name, records=records, source="xlsx" if workbook else "csv",
        settings=settings, now=clock.now(),
    )  # fmt: skip
    return await _submit_reply(result, idem, session)


def _counts(progress: service.Progress) -> Counts:
    return Counts(
        pending=progress.count[ItemStatus.PENDING], processing=progress.count[ItemStatus.PROCESSING],
        processed=progress.count[ItemStatus.PROCESSED], failed=progress.count[ItemStatus.FAILED],
    )  # fmt: skip


def batch_out(batch: DisbursementBatch, progress: service.Progress) -> BatchOut:
    return BatchOut(
        batch_id=batch.id,
        batch_name=batch.name,
        status=service.shown_status(batch, progress),
        item_count=batch.item_count,
        rejected_count=batch.rejected_count,
        counts=_counts(progress),
        total_amount=_money(batch.total_amount, batch.currency),
        paid_amount=_money(progress.paid, batch.currency),
        fees=_money(progress.fees, batch.currency),
        currency=batch.currency,
        source=batch.source,
        approval_required=batch.approval_required,
        approved_by=batch.approved_by,
        approved_at=batch.approved_at,
        created_at=batch.created_at,
        processing_started_at=batch.processing_started_at,
    )


async def _batch_view(session: Any, batch: DisbursementBatch) -> BatchOut:
    progress = (await service.progress(session, [batch.id]))[batch.id]
    return batch_out(batch, progress)


def _processed(result: service.Processed) -> ProcessResult:
    return ProcessResult(
        batch_id=result.batch.id,
        status=result.batch.status,
        processed=result.processed,
        failed=[ItemRef(item_id=i, reason=r) for i, r in result.failed],
        skipped=[SkippedOut(item_id=i, status=s, reason=r) for i, s, r in result.skipped],
        skipped_count=result.skipped_count,
        queued=result.queued,
    )


@router.post(
    "/batches/{batchId}/process", response_model=ProcessResult, name="Disbursements.Process",
    summary="Process a batch's Pending items", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def process_batch(
    batch_id: BatchPath, who: CurrentPrincipal, idem: IdempotencyKey,
    session: Session, clock: ClockDep, settings: SettingsDep,
) -> ProcessResult:  # fmt: skip
    """For every Pending item, one transaction holds its amount and fee on your wallets and queues
    its payout; the item is Processing, then Processed (with `completedAt`) when the payout settles,
    or Failed. The reply lists the items processed now and those skipped (not Pending). A batch of
    more than 200 items is processed by the worker (`queued`): follow it with
    `GET /api/v1/disbursements/batches/{batchId}`. Processing again never pays an item twice. A
    batch awaiting approval is a 409. Send an `Idempotency-Key`."""
    result = await service.process(session, who, batch_id, settings=settings, now=clock.now())
    reply = _processed(result)
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


@router.post(
    "/batches/{batchId}/approve", response_model=BatchOut, name="Disbursements.Approve",
    summary="Approve a batch over the approval threshold", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def approve_batch(
    batch_id: BatchPath, who: CurrentPrincipal, session: Session,
    clock: ClockDep,
) -> BatchOut:  # fmt: skip
    """Maker-checker: a batch totalling more than the approval threshold is processed only after
    someone else of your company — another API user or a portal user holding
    `Disbursements.Approve` — approves it. Its submitter cannot (403)."""
    batch = await service.approve(session, who, batch_id, now=clock.now())
    return await _batch_view(session, batch)


@router.get(
    "/batches/{batchId}", response_model=BatchOut, name="Disbursements.Read",
    summary="A batch and its progress", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def read_batch(batch_id: BatchPath, who: CurrentPrincipal, session: Session) -> BatchOut:
    """The batch, with how many items are Pending, Processing, Processed and Failed at this moment."""
    batch = await service.get_batch(session, service.owner_of(who), batch_id)
    return await _batch_view(session, batch)


def item_out(item: DisbursementItem) -> ItemOut:
    currency = item.currency
    return ItemOut(
        item_id=item.id,
        batch_id=item.batch_id,
        row=item.row,
        destination_type=item.destination_type,
        destination=item.destination,
        bank_code=item.bank_code,
        amount=_money(item.amount, currency),
        currency=currency,
        narration=item.narration,
        reference=item.reference,
        status=item.status,
        attempts=item.attempts,
        fee=None if item.fee is None else _money(item.fee, currency),
        paid_amount=None if item.paid_amount is None else _money(item.paid_amount, currency),
        provider_reference=item.provider_reference,
        result_code=item.result_code,
        result_desc=item.result_desc,
        payout_id=item.payout_id,
        completed_at=item.completed_at,
        updated_at=item.updated_at,
    )


@router.get(
    "/batches/{batchId}/items", response_model=ItemPage, name="Disbursements.Items",
    summary="The status of every item of a batch", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def batch_items(
    batch_id: BatchPath, who: CurrentPrincipal, session: Session,
    item_status: Annotated[ItemStatusQuery, Query(alias="status")] = None, page: PageQuery = 1,
    page_size: PageSize = 100,
) -> ItemPage:  # fmt: skip
    """The items in their submitted order, a page at a time, each with its state, attempts, fee,
    amount paid and the rail's reference."""
    owner = service.owner_of(who)
    batch = await service.get_batch(session, owner, batch_id)
    rows, total = await repository.items(
        session, owner, batch.id, status=item_status, offset=(page - 1) * page_size, limit=page_size
    )
    return ItemPage(
        batch_id=batch.id, page=page, page_size=page_size, total=total, items=[item_out(r) for r in rows]
    )


@router.post(
    "/batches/{batchId}/retry", response_model=ProcessResult, name="Disbursements.Retry",
    summary="Retry failed items of a batch", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def retry_items(
    batch_id: BatchPath, body: RetryIn, who: CurrentPrincipal,
    idem: IdempotencyKey, session: Session, clock: ClockDep, settings: SettingsDep,
) -> ProcessResult:  # fmt: skip
    """Each named Failed item gets a new attempt (a new payout: held and queued now); items not
    Failed are listed as skipped. `batchId` in the body must be the path's. Send an
    `Idempotency-Key`."""
    if body.batch_id != batch_id:
        raise ValidationFailed.for_field("batchId", "must be the batch named in the path")
    result = await service.retry(session, who, batch_id, body.item_ids, settings=settings, now=clock.now())
    reply = _processed(result)
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


# --------------------------------------------------------------------------- approval threshold


@router.get(
    "/settings/{clientId}", response_model=ThresholdOut, name="Disbursements.ReadSettings",
    summary="A client's approval threshold", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def read_threshold(
    client_id: Annotated[uuid.UUID, Path(alias="clientId")], who: CurrentPrincipal, session: Session,
    settings: SettingsDep,
) -> ThresholdOut:  # fmt: skip
    """The threshold above which a batch of this client waits for approval: its own, or the
    gateway's default (`MALIPO_DISBURSEMENT_APPROVAL_THRESHOLD`)."""
    if not who.sees_client(client_id):
        raise service.BatchNotFound(f"no client {client_id}")
    threshold, source = await service.approval_threshold(session, settings, client_id)
    return ThresholdOut(client_id=client_id, approval_threshold=threshold, source=source)


@router.put(
    "/settings/{clientId}", response_model=ThresholdOut, name="Disbursements.SetApprovalThreshold",
    summary="Set a client's approval threshold", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def set_threshold(
    client_id: Annotated[uuid.UUID, Path(alias="clientId")], body: ThresholdIn, who: CurrentPrincipal,
    session: Session, clock: ClockDep, settings: SettingsDep,
) -> ThresholdOut:  # fmt: skip
    """Whole shillings: a batch of this client totalling more waits for a second person's approval
    (null: no batch does). Operators set any client's; a client's admins their own."""
    await service.set_approval_threshold(session, who, client_id, body.approval_threshold, now=clock.now())
    threshold, source = await service.approval_threshold(session, settings, client_id)
    return ThresholdOut(client_id=client_id, approval_threshold=threshold, source=source)


# --------------------------------------------------------------------------- reports


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
    "/batches/{batchId}", response_model=BatchOut, name="Reports.DisbursementBatch",
    summary="One disbursement batch", openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def report_batch(batch_id: BatchPath, who: CurrentPrincipal, session: Session) -> BatchOut:
    """The batch's status, its counts by state, total, amount paid and fees."""
    batch = await service.get_batch(session, _report_owner(who, None, None), batch_id)
    return await _batch_view(session, batch)


def _attempt_out(attempt: DisbursementAttempt, item: DisbursementItem) -> AttemptOut:
    return AttemptOut(
        attempt_id=attempt.id, batch_id=attempt.batch_id, item_id=attempt.item_id, number=attempt.number,
        destination=item.destination, amount=_money(item.amount, item.currency), status=attempt.status,
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
        requested=_money(item.amount, item.currency),
        paid=_money(item.paid_amount, item.currency),
        fee=_money(item.fee if item.paid_amount else 0, item.currency),
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
    "/batches/{batchId}/reconciliation",
    response_model=ReconciliationOut,
    name="Reports.DisbursementReconciliation",
    summary="A batch's reconciliation",
    openapi_extra=callers(OP, CA, KEY),
    responses=_CSV_REPLY,
)
async def report_reconciliation(
    batch_id: BatchPath, who: CurrentPrincipal, session: Session, db: DatabaseDep, output: Format = "json"
) -> Response:
    """Per item: requested, paid, fee, the rail's reference and its state; the totals, and what
    the ledger booked for the batch's payouts (`ledgerPaid`, `ledgerFees`): `ties` says they are
    equal. `format=csv`: the items as CSV, then the totals as rows whose `itemId` is `total`.
    Streamed as it is read: a batch of 100,000 items never loads into memory."""
    found = await service.reconcile(session, _report_owner(who, None, None), batch_id)
    batch, currency = found.batch, found.batch.currency
    totals = ReconciliationTotals(
        items=batch.item_count, requested=_money(batch.total_amount, currency),
        paid=_money(found.progress.paid, currency), fees=_money(found.progress.fees, currency),
        ledger_paid=_money(found.ledger_paid, currency), ledger_fees=_money(found.ledger_fees, currency),
        ties=found.ties,
    )  # fmt: skip

    async def lines() -> AsyncIterator[ReconciliationLine]:
        async for item in service.batch_items(db, batch.id):
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
        currency=currency, totals=totals, counts=_counts(found.progress), items=[],
    )  # fmt: skip
    return StreamingResponse(_json_body(head, lines()), media_type="application/json")
