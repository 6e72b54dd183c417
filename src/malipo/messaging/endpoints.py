"""/api/v1 routes of messaging: SMS (send, with a sender id, bulk, status) and WhatsApp sessions,
CSV bulk and batch status.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. Sends take an
``Idempotency-Key`` and answer 201 once the messages are queued; the worker delivers them.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import KEY, CurrentPrincipal, callers
from malipo.http.tags import SMS, WHATSAPP
from malipo.messaging import sms, whatsapp
from malipo.messaging.models import SmsMessage, WhatsAppSession
from malipo.messaging.schemas import (
    BatchMessageOut,
    BulkMessage,
    Rejection,
    SmsBatchOut,
    SmsBulkIn,
    SmsBulkOut,
    SmsIn,
    SmsOut,
    SmsWithSenderIn,
    StatusCounts,
    WhatsAppBatchMessageOut,
    WhatsAppBatchOut,
    WhatsAppBulkOut,
    WhatsAppSessionIn,
    WhatsAppSessionOut,
)

router = APIRouter()

Page = Annotated[int, Query(ge=1, le=100_000, description="1-based page of the batch's messages")]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=1000)]


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


def _rejections(rejected: list[sms.Rejected]) -> list[Rejection]:
    return [Rejection(index=r.index, phone_number=r.phone_number, reason=r.reason) for r in rejected]


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
        rejected=_rejections(done.rejected),
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


# -- WhatsApp -----------------------------------------------------------------------------------


def session_out(found: WhatsAppSession, settings: SettingsDep) -> WhatsAppSessionOut:
    return WhatsAppSessionOut(
        id=found.id,
        name=found.name,
        backend=found.backend,  # type: ignore[arg-type]
        phone_number_id=found.phone_number_id,
        webhook_url=whatsapp.webhook_url(settings, found),
        created_at=found.created_at,
    )


@router.post(
    "/whatsapp/sessions",
    response_model=WhatsAppSessionOut,
    status_code=status.HTTP_201_CREATED,
    name="Whatsapp.CreateSession",
    summary="Register a WhatsApp session",
    openapi_extra=callers(KEY),
    tags=[WHATSAPP],
)
async def create_whatsapp_session(
    body: WhatsAppSessionIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> WhatsAppSessionOut:
    """Register (or re-bind) a named session: Cloud API credentials, or the simulator. The access
    token is stored encrypted and never shown again."""
    found = await whatsapp.register_session(
        session,
        who,
        name=body.name,
        backend=body.backend,
        phone_number_id=body.phone_number_id,
        access_token=body.access_token,
        now=clock.now(),
    )
    return session_out(found, settings)


@router.get(
    "/whatsapp/sessions",
    response_model=list[WhatsAppSessionOut],
    name="Whatsapp.ListSessions",
    summary="List WhatsApp sessions",
    openapi_extra=callers(KEY),
    tags=[WHATSAPP],
)
async def list_whatsapp_sessions(
    who: CurrentPrincipal, session: Session, settings: SettingsDep
) -> list[WhatsAppSessionOut]:
    """Your WhatsApp sessions, each with the webhook URL its status reports are sent to."""
    return [session_out(found, settings) for found in await whatsapp.list_sessions(session, who)]


@router.post(
    "/whatsapp/bulk-csv",
    response_model=WhatsAppBulkOut,
    status_code=status.HTTP_201_CREATED,
    name="Whatsapp.SendBulkCsv",
    summary="Send WhatsApp messages to the numbers in a CSV file",
    tags=[WHATSAPP],
    openapi_extra={
        **callers(KEY),
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": "phone,name\n0712345678,Amina\n"}
            },
        },
    },
)
async def send_whatsapp_bulk_csv(
    request: Request,
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
    session_name: Annotated[str, Query(alias="session", min_length=1, max_length=100)],
    message: Annotated[str, Query(min_length=1, max_length=4096, description="`{name}` is replaced")],
) -> WhatsAppBulkOut:
    """Bulk WhatsApp from a CSV body (`Content-Type: text/csv`): a column of phone numbers (`phone`,
    `phone_number`, `msisdn` or the first column) and optionally `name`, used as `{name}`."""
    done = await whatsapp.send_bulk_csv(
        session,
        who,
        settings,
        session_name=session_name,
        message=message,
        csv_body=await request.body(),
        now=clock.now(),
    )
    reply = WhatsAppBulkOut(
        batch_id=done.batch.id,
        status="queued",
        accepted=done.batch.accepted,
        rejected=_rejections(done.rejected),
    )
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.get(
    "/whatsapp/batches/{id:uuid}",
    response_model=WhatsAppBatchOut,
    name="Whatsapp.ReadBatch",
    summary="Get a bulk WhatsApp batch",
    openapi_extra=callers(KEY),
    tags=[WHATSAPP],
)
async def read_whatsapp_batch(
    id: uuid.UUID,
    who: CurrentPrincipal,
    session: Session,
    page: Page = 1,
    page_size: PageSize = 100,
) -> WhatsAppBatchOut:
    """A bulk WhatsApp send's counts by status, and its messages a page at a time."""
    return batch_out(
        await whatsapp.get_batch(session, who, id, page=page, page_size=page_size), page, page_size
    )


def batch_out(view: whatsapp.BatchView, page: int, page_size: int) -> WhatsAppBatchOut:
    return WhatsAppBatchOut(
        id=view.batch.id,
        session=view.session_name,
        message_type=view.message_type.value,  # type: ignore[arg-type]
        media_url=view.media_url,
        accepted=view.batch.accepted,
        rejected=view.batch.rejected,
        counts=StatusCounts(**view.counts),
        created_at=view.batch.created_at,
        page=page,
        page_size=page_size,
        messages=[
            WhatsAppBatchMessageOut(
                id=m.id,
                phone_number=m.phone_number,
                status=m.status,  # type: ignore[arg-type]
                gateway_message_id=m.gateway_message_id,
                error=m.error,
                attempts=m.attempts,
            )
            for m in view.messages
        ],
    )
