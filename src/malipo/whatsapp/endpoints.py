"""/api/v1 routes of WhatsApp: sessions, CSV bulk and a batch's status.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. Sends take an
``Idempotency-Key`` and answer 201 once the messages are queued; the worker delivers them.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import KEY, CurrentPrincipal, callers
from malipo.http.tags import WHATSAPP
from malipo.sms.schemas import Page, PageSize, StatusCounts, rejections_out
from malipo.whatsapp import service as whatsapp
from malipo.whatsapp.models import WhatsAppSession
from malipo.whatsapp.schemas import (
    WhatsAppBatchMessageOut,
    WhatsAppBatchOut,
    WhatsAppBulkOut,
    WhatsAppSessionIn,
    WhatsAppSessionOut,
)

router = APIRouter()


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
        rejected=rejections_out(done.rejected),
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
