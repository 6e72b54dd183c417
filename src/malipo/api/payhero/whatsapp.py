"""Pay Hero's WhatsApp API: ``/api/v2/whatspp/sendText`` and ``/sendBulk`` (Pay Hero's own spelling),
also served under ``/api/v2/whatsapp/``, plus the status of a bulk batch.

Translation only: the rules are in ``malipo.messaging.whatsapp``. Replies come once the messages
are queued; the worker sends them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from malipo.api.deps import ClockDep, Session, SettingsDep
from malipo.api.payhero.deps import PayHeroPrincipal
from malipo.core.errors import ValidationFailed
from malipo.messaging import whatsapp

router = APIRouter(prefix="/api/v2", tags=["pay hero: whatsapp"])

_PREFIXES = ("/whatspp", "/whatsapp")


class PayHeroModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SendTextIn(PayHeroModel):
    message: str = Field(min_length=1, max_length=whatsapp.MAX_BODY)
    phone_number: str = Field(min_length=1, max_length=32, examples=["0787877878"])
    session: str = Field(min_length=1, max_length=100, description="The session's name")


class SendTextOut(BaseModel):
    success: bool
    message_id: str
    status: Literal["queued"]


class BulkRecipient(PayHeroModel):
    phone_number: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=200, description="Replaces {name} in the message")


class SendBulkIn(PayHeroModel):
    message_type: Literal["TEXT", "IMAGE", "DOCUMENT"] = "TEXT"
    session: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=whatsapp.MAX_BODY)
    document_url: str | None = Field(default=None, max_length=2000)
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
    status: str
    message_id: str | None = Field(description="WhatsApp's wamid once sent")
    error: str | None
    attempts: int


class BatchOut(BaseModel):
    batch_id: str
    session: str
    accepted: int
    rejected: int
    counts: dict[str, int]
    page: int
    per_page: int
    messages: list[BatchMessage]


async def _send_text(
    body: SendTextIn, who: PayHeroPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> SendTextOut:
    sent = await whatsapp.send_text(
        session,
        who,
        settings,
        session_name=body.session,
        phone_number=body.phone_number,
        message=body.message,
        now=clock.now(),
    )
    return SendTextOut(success=True, message_id=str(sent.id), status="queued")


async def _send_bulk(
    body: SendBulkIn, who: PayHeroPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> SendBulkOut:
    if body.message_type != "TEXT":
        raise ValidationFailed.for_field(
            "message_type",
            f"{body.message_type} is not supported yet: send TEXT (with any link in the message)",
        )
    items = list(body.recipients.values()) if isinstance(body.recipients, dict) else body.recipients
    recipients = [(item, None) if isinstance(item, str) else (item.phone_number, item.name) for item in items]
    done = await whatsapp.send_bulk(
        session,
        who,
        settings,
        session_name=body.session,
        recipients=recipients,
        message=body.message,
        now=clock.now(),
    )
    return SendBulkOut(
        success=True,
        batch_id=str(done.batch.id),
        status="queued",
        accepted=done.batch.accepted,
        rejected=[
            Rejected(index=r.index, phone_number=r.phone_number, reason=r.reason) for r in done.rejected
        ],
    )


async def _batch(
    batch_id: uuid.UUID, who: PayHeroPrincipal, session: Session, page: int, per_page: int
) -> BatchOut:
    view = await whatsapp.get_batch(session, who, batch_id, page=page, page_size=per_page)
    return BatchOut(
        batch_id=str(view.batch.id),
        session=view.session_name,
        accepted=view.batch.accepted,
        rejected=view.batch.rejected,
        counts={state: view.counts.get(state, 0) for state in ("queued", "sent", "delivered", "failed")},
        page=page,
        per_page=per_page,
        messages=[
            BatchMessage(
                id=str(m.id),
                phone_number=m.phone_number,
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
        summary="Send a WhatsApp text",
        include_in_schema=_documented,
        name=f"payhero.whatsapp.send_text{_prefix}",
    )
    router.add_api_route(
        f"{_prefix}/sendBulk",
        _send_bulk,
        methods=["POST"],
        response_model=SendBulkOut,
        summary="Send a WhatsApp text to many numbers; answers a batch id at once",
        include_in_schema=_documented,
        name=f"payhero.whatsapp.send_bulk{_prefix}",
    )


@router.get("/whatspp/batches/{batch_id:uuid}", response_model=BatchOut)
@router.get("/whatsapp/batches/{batch_id:uuid}", response_model=BatchOut, include_in_schema=False)
async def batch_status(
    batch_id: uuid.UUID,
    who: PayHeroPrincipal,
    session: Session,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BatchOut:
    """A bulk send's counts by status and its recipients, a page at a time."""
    return await _batch(batch_id, who, session, page, per_page)
