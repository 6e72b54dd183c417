"""/api/v1 routes of disbursement batches, their reports and their approval threshold.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. A batch
belongs to the client and mode of whoever submitted it; nobody else sees it.
"""

from __future__ import annotations

import tempfile
import uuid
from typing import IO, Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from malipo.core.errors import ValidationFailed
from malipo.core.money import Money
from malipo.disbursements import intake, repository, service
from malipo.disbursements.models import DisbursementBatch, DisbursementItem, ItemStatus
from malipo.disbursements.schemas import (
    BatchIn,
    BatchOut,
    Counts,
    ItemOut,
    ItemPage,
    ItemRef,
    ProcessResult,
    RejectedOut,
    RetryIn,
    SkippedOut,
    SubmitBatchResult,
    ThresholdIn,
    ThresholdOut,
)
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import Idempotency, IdempotencyKey
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.schemas import PageQuery, page_size_query
from malipo.http.tags import DISBURSEMENTS

router = APIRouter(prefix="/disbursements", tags=[DISBURSEMENTS])

PageSize = page_size_query(1000, alias="pageSize")
BatchPath = Annotated[
    uuid.UUID, Path(alias="batchId", description="The batch's id (SubmitBatchResult.batchId)")
]
ItemStatusQuery = Annotated[ItemStatus | None, Query(description="Only items in this state")]
_SPOOL = 8 * 1_048_576  # an upload or CSV body is kept in memory up to this size, then on disk


def money(amount: int | None, currency: str) -> str:
    return Money(amount or 0, currency).format()


def _submitted(result: service.Submitted) -> SubmitBatchResult:
    batch = result.batch
    return SubmitBatchResult(
        batch_id=batch.id, batch_name=batch.name, status=batch.status, item_count=batch.item_count,
        accepted_count=len(result.item_ids), rejected_count=len(result.rejected),
        total_amount=money(batch.total_amount, batch.currency), currency=batch.currency,
        approval_required=batch.approval_required, item_ids=result.item_ids,
        rejected=[RejectedOut(row=r.row, field=r.field, reason=r.reason, destination=r.destination)
                  for r in result.rejected],
    )  # fmt: skip


async def _submit_reply(
    result: service.Submitted, idem: Idempotency, session: AsyncSession
) -> SubmitBatchResult:
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
        session, who, name=body.batch_name, records=intake.json_records(body.item_dicts()), source="json",
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
    batch_name: Annotated[
        str | None, Query(alias="batchName", min_length=1, max_length=100, description="Default: the time")
    ] = None,
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
        now = clock.now()
        result = await service.submit(
            session, who, name=batch_name or f"CSV batch of {now:%Y-%m-%d %H:%M} UTC",
            records=intake.csv_records(spool), source="csv", settings=settings, now=now,
        )  # fmt: skip
    finally:
        spool.close()
    return await _submit_reply(result, idem, session)


def _is_workbook(upload: UploadFile, head: bytes) -> bool:
    name = (upload.filename or "").lower()
    return head.startswith(b"PK\x03\x04") or name.endswith(".xlsx")


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "batchName"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "A .csv (UTF-8) or .xlsx file, columns as for /batches/csv"},
                    "batchName": {"type": "string", "minLength": 1, "maxLength": 100},
                },
            },
            "example": {"file": "destination,amount\r\n254712345678,1500\r\n", "batchName": "Salaries"},
        }
    },
}  # fmt: skip


async def _upload_form(request: Request) -> tuple[UploadFile, str]:
    """The form's ``file`` and ``batchName``, or a 422 naming the missing or wrong one."""
    try:
        form = await request.form(max_files=1, max_fields=5)
    except (AssertionError, ValueError, HTTPException) as exc:  # not a form python-multipart can read
        raise ValidationFailed.for_field("file", f"send a multipart/form-data form: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationFailed.for_field("file", "is required: the batch's .csv or .xlsx file")
    name = form.get("batchName")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise ValidationFailed.for_field("batchName", "is required: 1 to 100 characters")
    return upload, name


@router.post(
    "/batches/upload", response_model=SubmitBatchResult, status_code=status.HTTP_201_CREATED,
    name="Disbursements.Upload", summary="Submit a batch of payouts (a CSV or Excel file upload)",
    openapi_extra={**callers(CA, KEY), "requestBody": _UPLOAD_BODY},
)  # fmt: skip
async def upload_batch(
    request: Request, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> SubmitBatchResult:  # fmt: skip
    """A multipart form with `file` (CSV or XLSX: the first sheet is read, row by row) and
    `batchName`. Otherwise as `POST /api/v1/disbursements/batches/csv`."""
    # Read here, after the Idempotency-Key's check has read (and kept) the body.
    upload, batch_name = await _upload_form(request)
    stream = upload.file
    head = stream.read(4)
    stream.seek(0)
    workbook = _is_workbook(upload, head)
    records = intake.xlsx_records(stream) if workbook else intake.csv_records(stream)
    try:
        result = await service.submit(
            session, who, name=batch_name, records=records, source="xlsx" if workbook else "csv",
            settings=settings, now=clock.now(),
        )  # fmt: skip
    finally:
        await upload.close()
    return await _submit_reply(result, idem, session)


def counts_out(progress: service.Progress) -> Counts:
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
        counts=counts_out(progress),
        total_amount=money(batch.total_amount, batch.currency),
        paid_amount=money(progress.paid, batch.currency),
        fees=money(progress.fees, batch.currency),
        currency=batch.currency,
        source=batch.source,
        approval_required=batch.approval_required,
        approved_by=batch.approved_by,
        approved_at=batch.approved_at,
        created_at=batch.created_at,
        processing_started_at=batch.processing_started_at,
    )


async def batch_view(session: AsyncSession, batch: DisbursementBatch) -> BatchOut:
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
    "/batches/{batchId:uuid}/process", response_model=ProcessResult, name="Disbursements.Process",
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
    "/batches/{batchId:uuid}/approve", response_model=BatchOut, name="Disbursements.Approve",
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
    return await batch_view(session, batch)


@router.get(
    "/batches/{batchId:uuid}", response_model=BatchOut, name="Disbursements.Read",
    summary="A batch and its progress", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def read_batch(batch_id: BatchPath, who: CurrentPrincipal, session: Session) -> BatchOut:
    """The batch, with how many items are Pending, Processing, Processed and Failed at this moment."""
    batch = await service.get_batch(session, service.owner_of(who), batch_id)
    return await batch_view(session, batch)


def item_out(item: DisbursementItem) -> ItemOut:
    currency = item.currency
    return ItemOut(
        item_id=item.id,
        batch_id=item.batch_id,
        row=item.row,
        destination_type=item.destination_type,
        destination=item.destination,
        bank_code=item.bank_code,
        amount=money(item.amount, currency),
        currency=currency,
        narration=item.narration,
        reference=item.reference,
        status=item.status,
        attempts=item.attempts,
        fee=None if item.fee is None else money(item.fee, currency),
        paid_amount=None if item.paid_amount is None else money(item.paid_amount, currency),
        provider_reference=item.provider_reference,
        result_code=item.result_code,
        result_desc=item.result_desc,
        payout_id=item.payout_id,
        completed_at=item.completed_at,
        updated_at=item.updated_at,
    )


@router.get(
    "/batches/{batchId:uuid}/items", response_model=ItemPage, name="Disbursements.Items",
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
    "/batches/{batchId:uuid}/retry", response_model=ProcessResult, name="Disbursements.Retry",
    summary="Retry failed items of a batch", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def retry_items(
    batch_id: BatchPath, body: RetryIn, who: CurrentPrincipal,
    idem: IdempotencyKey, session: Session, clock: ClockDep, settings: SettingsDep,
) -> ProcessResult:  # fmt: skip
    """Each named Failed item gets a new attempt (a new payout: held and queued now); items not
    Failed are listed as skipped. `batchId` in the body must be the path's. Send an
    `Idempotency-Key`."""
    result = await service.retry(
        session, who, batch_id, body.item_ids, named=body.batch_id, settings=settings, now=clock.now()
    )
    reply = _processed(result)
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


# --------------------------------------------------------------------------- approval threshold


@router.get(
    "/settings/{clientId:uuid}", response_model=ThresholdOut, name="Disbursements.ReadSettings",
    summary="A client's approval threshold", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def read_threshold(
    client_id: Annotated[uuid.UUID, Path(alias="clientId")], who: CurrentPrincipal, session: Session,
    settings: SettingsDep,
) -> ThresholdOut:  # fmt: skip
    """The threshold above which a batch of this client waits for approval: its own, or the
    gateway's default (`MALIPO_DISBURSEMENT_APPROVAL_THRESHOLD`)."""
    await service.visible_client(session, who, client_id)
    threshold, source = await service.approval_threshold(session, settings, client_id)
    return ThresholdOut(client_id=client_id, approval_threshold=threshold, source=source)


@router.put(
    "/settings/{clientId:uuid}", response_model=ThresholdOut, name="Disbursements.SetApprovalThreshold",
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
