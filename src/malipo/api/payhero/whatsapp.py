"""Pay Hero's WhatsApp API: ``/api/v2/whatspp/sendText`` and ``/sendBulk`` (Pay Hero's own spelling),
also served under ``/api/v2/whatsapp/``, plus the status of a bulk batch.

``message_type`` is ``TEXT``, ``IMAGE`` or ``DOCUMENT``; for the last two ``document_url`` is the
media and ``message`` its caption. Sends take an ``Idempotency-Key``: a retry with the same key and
body answers the first reply and queues nothing again.

Translation only: the rules are in ``malipo.whatsapp.service``. Replies come once the messages
are queued; the worker sends them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from malipo.api.payhero.deps import API_USERS, PayHeroPrincipal
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.schemas import MAX_PAGE, plain_integer
from malipo.http.tags import PAYHERO_WHATSAPP
from malipo.whatsapp import service as whatsapp

router = APIRouter(prefix="/api/v2", tags=[PAYHERO_WHATSAPP])

_PREFIXES = ("/whatspp", "/whatsapp")


MessageType = Literal["TEXT", "IMAGE", "DOCUMENT"]


class PayHeroModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MessageIn(PayHeroModel):
    message_type: MessageType = Field(
        default="TEXT", description="TEXT, or IMAGE / DOCUMENT with document_url (the case is ignored)"
    )
    message: str = Field(
        default="",
        max_length=whatsapp.MAX_BODY,
        description="The text (1-4096 characters), or the image's or document's caption (up to 1024)",
    )
    document_url: str | None = Field(
        default=None,
        description=f"IMAGE and DOCUMENT: the media's absolute http(s) URL, up to {whatsapp.MAX_MEDIA_URL} "
        "characters; a document is named after its last path segment. Ignored for TEXT",
        examples=["https://shop.example/invoices/INV-009.pdf"],
    )

    @field_validator("message_type", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class SendTextIn(MessageIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_type": "TEXT",
                    "message": "Hello Amina, your order 1042 is ready.",
                    "phone_number": "0712345678",
                    "session": "shop",
                },
                {
                    "message_type": "DOCUMENT",
                    "message": "Your invoice",
                    "document_url": "https://dukalamama.co.ke/invoices/INV-1042.pdf",
                    "phone_number": "0712345678",
                    "session": "shop",
                },
            ]
        }
    )

    phone_number: str = Field(min_length=1, max_length=32, examples=["0787877878"])
    session: str = Field(min_length=1, max_length=100, description="The session's name")


class SendTextOut(BaseModel):
    success: bool
    message_id: str
    status: Literal["queued"]


class BulkRecipient(PayHeroModel):
    phone_number: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=200, description="Replaces {name} in the message")


class SendBulkIn(MessageIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_type": "TEXT",
                    "message": "Hello {name}, our weekend offer starts now.",
                    "session": "shop",
                    "recipients": [{"phone_number": "0712345678", "name": "Amina"}, "254722123456"],
                }
            ]
        }
    )

    session: str = Field(min_length=1, max_length=100)
    recipients: list[str | BulkRecipient] | dict[str, str | BulkRecipient] = Field(
        description="Phone numbers, or objects with phone_number (and name); an object of them is read too"
    )


class Rejected(BaseModel):
    index: int
    phone_number: str
    reason: str


class SendBulkOut(BaseModel):
    success: bool
    batch_id: str
    status: Literal["queued"]
    accepted: int
    rejected: list[Rejected]


class BatchMessage(BaseModel):
    id: str
    phone_number: str
    message_type: MessageType
    status: str
    message_id: str | None = Field(description="WhatsApp's wamid once sent")
    error: str | None
    attempts: int


class BatchOut(BaseModel):
    batch_id: str
    session: str
    message_type: MessageType
    document_url: str | None = Field(description="The image or document sent; null for TEXT")
    accepted: int
    rejected: int
    counts: dict[str, int]
    page: int
    per_page: int
    messages: list[BatchMessage]


def _message_type(value: str | None) -> MessageType:
    # Rows from before media carry no type: they are texts.
    return (value or "text").upper()  # type: ignore[return-value]


async def _send_text(
    body: SendTextIn,
    who: PayHeroPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> SendTextOut:
    """Queue one WhatsApp message through your session (`session`): a text, or an image or a
    document (`document_url`) with `message` as its caption. A retry with the same `Idempotency-Key`
    and body answers the first reply and queues nothing again."""
    sent = await whatsapp.send_text(
        session,
        who,
        settings,
        session_name=body.session,
        phone_number=body.phone_number,
        message=body.message,
        message_type=body.message_type,
        media_url=body.document_url,
        media_field="document_url",
        now=clock.now(),
    )
    reply = SendTextOut(success=True, message_id=str(sent.id), status="queued")
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


async def _send_bulk(
    body: SendBulkIn,
    who: PayHeroPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> SendBulkOut:
    """Queue one message to many numbers: the reply comes at once, with the batch's id (for its
    status) and the numbers refused. `{name}` in the message becomes each recipient's name."""
    items = list(body.recipients.values()) if isinstance(body.recipients, dict) else body.recipients
    recipients = [(item, None) if isinstance(item, str) else (item.phone_number, item.name) for item in items]
    done = await whatsapp.send_bulk(
        session,
        who,
        settings,
        session_name=body.session,
        recipients=recipients,
        message=body.message,
        message_type=body.message_type,
        media_url=body.document_url,
        media_field="document_url",
        now=clock.now(),
    )
    reply = SendBulkOut(
        success=True,
        batch_id=str(done.batch.id),
        status="queued",
        accepted=done.batch.accepted,
        rejected=[
            Rejected(index=r.index, phone_number=r.phone_number, reason=r.reason) for r in done.rejected
        ],
    )
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


async def _batch(
    batch_id: uuid.UUID, who: PayHeroPrincipal, session: Session, page: int, per_page: int
) -> BatchOut:
    view = await whatsapp.get_batch(session, who, batch_id, page=page, page_size=per_page)
    return BatchOut(
        batch_id=str(view.batch.id),
        session=view.session_name,
        message_type=_message_type(view.message_type),
        document_url=view.media_url,
        accepted=view.batch.accepted,
        rejected=view.batch.rejected,
        counts={state: view.counts.get(state, 0) for state in ("queued", "sent", "delivered", "failed")},
        page=page,
        per_page=per_page,
        messages=[
            BatchMessage(
                id=str(m.id),
                phone_number=m.phone_number,
                message_type=_message_type(m.message_type),
                status=m.status,
                message_id=m.gateway_message_id,
                error=m.error,
                attempts=m.attempts,
            )
            for m in view.messages
        ],
    )


for _prefix in _PREFIXES:
    _documented = _prefix == "/whatspp"
    router.add_api_route(
        f"{_prefix}/sendText",
        _send_text,
        methods=["POST"],
        response_model=SendTextOut,
        summary="Send a WhatsApp text, image or document",
        include_in_schema=_documented,
        name="Whatsapp.SendText",
        openapi_extra=API_USERS,
    )
    router.add_api_route(
        f"{_prefix}/sendBulk",
        _send_bulk,
        methods=["POST"],
        response_model=SendBulkOut,
        summary="Send a WhatsApp message to many numbers",
        include_in_schema=_documented,
        name="Whatsapp.SendBulk",
        openapi_extra=API_USERS,
    )


@router.get(
    "/whatspp/batches/{batch_id:uuid}",
    response_model=BatchOut,
    name="Whatsapp.ReadBatch",
    summary="Get a bulk send's status",
    openapi_extra=API_USERS,
)
@router.get(
    "/whatsapp/batches/{batch_id:uuid}",
    response_model=BatchOut,
    include_in_schema=False,
    name="Whatsapp.ReadBatch",
    summary="Get a bulk send's status",
    openapi_extra=API_USERS,
)
async def batch_status(
    batch_id: uuid.UUID,
    who: PayHeroPrincipal,
    session: Session,
    page: Annotated[int, BeforeValidator(plain_integer), Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, BeforeValidator(plain_integer), Query(ge=1, le=1000)] = 100,
) -> BatchOut:
    """A bulk send's counts by status and its recipients, a page at a time."""
    return await _batch(batch_id, who, session, page, per_page)
