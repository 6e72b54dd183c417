"""/api/v1 routes of SMS: send, send with a sender id, bulk, a batch's status, one message's status.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. Sends take an
``Idempotency-Key`` and answer 201 once the messages are queued; the worker delivers them.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import KEY, CurrentPrincipal, callers
from malipo.http.tags import SMS
from malipo.sms import service as sms
from malipo.sms.models import SmsMessage
from malipo.sms.schemas import (
    BatchMessageOut,
    BulkMessage,
    Page,
    PageSize,
    SmsBatchOut,
    SmsBulkIn,
    SmsBulkOut,
    SmsIn,
    SmsOut,
    SmsWithSenderIn,
    StatusCounts,
    rejections_out,
)

router = APIRouter()


def sms_out(message: SmsMessage) -> SmsOut:
    return SmsOut(
        id=message.id,
        phone_number=message.phone_number,
        sender_id=message.sender_id,
        message=message.message,
        status=message.status,  # type: ignore[arg-type]
        gateway_message_id=message.gateway_message_id,
        gateway_status=message.gateway_status,
        failure_reason=message.failure_reason,
        segments=message.segments,
        encoding=message.encoding,  # type: ignore[arg-type]
        cost=Money(message.cost, message.currency).format(),
        currency=message.currency,
        attempts=message.attempts,
        batch_id=message.batch_id,
        created_at=message.created_at,
        sent_at=message.sent_at,
        delivered_at=message.delivered_at,
    )


# -- SMS --------------------------------------------------------------------------------------


@router.post(
    "/sms/send",
    response_model=SmsOut,
    status_code=status.HTTP_201_CREATED,
    name="Sms.Send",
    summary="Send an SMS",
    openapi_extra=callers(KEY),
    tags=[SMS],
)
async def send_sms(
    body: SmsIn,
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> SmsOut:
    """Queue one SMS, charged to the service wallet per segment (402 when it holds too little)."""
    return await _send_one(body, None, who, idem, session, clock, settings)


@router.post(
    "/sms/send-with-sender",
    response_model=SmsOut,
    status_code=status.HTTP_201_CREATED,
    name="Sms.SendWithSender",
    summary="Send an SMS from your sender id",
    openapi_extra=callers(KEY),
    tags=[SMS],
)
async def send_sms_with_sender(
    body: SmsWithSenderIn,
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> SmsOut:
    """Queue one SMS from your own sender id (registered with the provider)."""
    return await _send_one(body, body.sender_id, who, idem, session, clock, settings)


async def _send_one(
    body: SmsIn,
    sender_id: str | None,
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> SmsOut:
    message = await sms.send_one(
        session, who, settings, phone_number=body.phone_number, message=body.message,
        sender_id=sender_id, now=clock.now(),
    )  # fmt: skip
    reply = sms_out(message)
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/sms/bulk",
    response_model=SmsBulkOut,
    status_code=status.HTTP_201_CREATED,
    name="Sms.SendBulk",
    summary="Send one SMS to many numbers",
    openapi_extra=callers(KEY),
    tags=[SMS],
)
async def send_sms_bulk(
    body: SmsBulkIn,
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> SmsBulkOut:
    """Queue one text to up to 10,000 numbers. Invalid or repeated numbers are listed in `rejected`
    and do not stop the others; only the accepted ones are charged."""
    done = await sms.send_bulk(
        session,
        who,
        settings,
        phone_numbers=body.phone_numbers,
        message=body.message,
        sender_id=body.sender_id,
        now=clock.now(),
    )
    reply = SmsBulkOut(
        batch_id=done.batch.id,
        status="queued",
        accepted=done.batch.accepted,
        rejected=rejections_out(done.rejected),
        segments=done.segments.segments,
        cost=done.cost.format(),
        currency=done.cost.currency,
        messages=[BulkMessage(id=sms_id, phone_number=number) for sms_id, number in done.messages],
    )
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.get(
    "/sms/batches/{id:uuid}",
    response_model=SmsBatchOut,
    name="Sms.ReadBatch",
    summary="Get a bulk SMS batch",
    openapi_extra=callers(KEY),
    tags=[SMS],
)
async def read_sms_batch(
    id: uuid.UUID,
    who: CurrentPrincipal,
    session: Session,
    page: Page = 1,
    page_size: PageSize = 100,
) -> SmsBatchOut:
    """A bulk send's counts by status, and its messages a page at a time."""
    view = await sms.get_batch(session, who, id, page=page, page_size=page_size)
    batch = view.batch
    return SmsBatchOut(
        id=batch.id,
        accepted=batch.accepted,
        rejected=batch.rejected,
        segments=batch.segments,
        cost=Money(batch.cost, batch.currency).format(),
        currency=batch.currency,
        counts=StatusCounts(**view.counts),
        created_at=batch.created_at,
        page=page,
        page_size=page_size,
        messages=[
            BatchMessageOut(
                id=m.id,
                phone_number=m.phone_number,
                status=m.status,  # type: ignore[arg-type]
                gateway_message_id=m.gateway_message_id,
                failure_reason=m.failure_reason,
                attempts=m.attempts,
            )
            for m in view.messages
        ],
    )


@router.get(
    "/sms/{id:uuid}",
    response_model=SmsOut,
    name="Sms.Read",
    summary="Get an SMS",
    openapi_extra=callers(KEY),
    tags=[SMS],
)
async def read_sms(
    id: uuid.UUID,
    who: CurrentPrincipal,
    session: Session,
) -> SmsOut:
    """One SMS: its status (queued, sent, delivered, failed), gateway id, segments, cost and attempts."""
    return sms_out(await sms.get_message(session, who, id))
