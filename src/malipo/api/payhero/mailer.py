"""Pay Hero's Email API: ``/mailer/register``, ``/mailer/send``, ``/mailer/mail_status``, plus
``/mailer/status/{id}``.

Pay Hero identifies the caller by ``api_username`` in the body alone; malipo also requires the
HTTP Basic credentials (or an API key), and ``api_username``, where sent, must name that same API
user (403 otherwise). Sends take an ``Idempotency-Key``: a retry with the same key and body
answers the first reply and queues no email again. Translation only: the rules are in
``malipo.email.service``.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.api.payhero.deps import API_USERS
from malipo.auth.authenticate import authenticate
from malipo.auth.permissions import check_permission
from malipo.core.clock import Clock
from malipo.email import service as mailers
from malipo.email.models import MerchantEmail, MerchantEmailStatus
from malipo.http.deps import ClockDep, DatabaseDep, Session, SettingsDep
from malipo.http.idempotency import Idempotency, IdempotencyKey
from malipo.http.permissions import admit, guard
from malipo.http.schemas import PageQuery, page_size_query
from malipo.http.tags import PAYHERO_EMAIL
from malipo.identity.principals import Principal
from malipo.providers.smtp.client import is_host_name

router = APIRouter(prefix="/mailer", tags=[PAYHERO_EMAIL])

# Pay Hero's mail_status "status": 1 is sent (documented); the others are malipo's.
_STATUS_CODES = {MerchantEmailStatus.QUEUED: 0, MerchantEmailStatus.SENT: 1, MerchantEmailStatus.FAILED: 2}


@guard
async def mailer_caller(request: Request, db: DatabaseDep, clock: ClockDep) -> Principal:
    """The calling API user holding the route's permission, checked in a short transaction of its
    own: registration talks to an SMTP server afterwards, and no transaction (on SQLite, the write
    lock) may wait on that."""
    async with db.transaction() as session:
        principal = await authenticate(request, session, clock.now())
        template = admit(request, principal)
        await check_permission(session, principal, request.method, template)
    return principal


MailerCaller = Annotated[Principal, Depends(mailer_caller)]


PerPage = page_size_query(1000)


class PayHeroModel(BaseModel):
    # Pay Hero clients send fields malipo does not use; they are ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class RegisterIn(PayHeroModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "smtp_host": "smtp.gmail.com",
                    "smtp_username": "duka.la.mama@gmail.com",
                    "smtp_password": "abcd efgh ijkl mnop",
                    "smtp_port": "587",
                }
            ]
        }
    )

    api_username: str | None = Field(default=None, max_length=64)
    smtp_host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-\[\]:]+$")
    smtp_username: str | None = Field(
        default=None,
        max_length=320,
        description="Required unless `insecure` is true: then, left out or empty, no login is attempted",
    )
    smtp_password: str | None = Field(default=None, max_length=500, description="Required with a username")
    smtp_port: int | str = Field(description='e.g. "465" (implicit TLS) or "587" (STARTTLS)')
    insecure: bool = Field(
        default=False,
        description=(
            "Allow plain text when the server offers no STARTTLS, and a server that needs no login "
            "(no `smtp_username`): local test servers such as `python -m aiosmtpd -n`"
        ),
    )

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not is_host_name(value):
            raise ValueError(
                "must be a host name (labels of 1 to 63 letters, digits or hyphens) or an IP address"
            )
        return value

    @field_validator("smtp_port")
    @classmethod
    def _port(cls, value: int | str) -> int:
        try:
            port = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a port number") from None
        if not 1 <= port <= 65535:
            raise ValueError("must be between 1 and 65535")
        return port


class RegisterOut(BaseModel):
    id: str
    message: str


class RecipientIn(PayHeroModel):
    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=200)
    subject: str = Field(max_length=300)
    body: str | None = Field(default=None, max_length=500_000, description="Plain text")
    html: str | None = Field(default=None, max_length=500_000, description="An HTML body (optional)")


class SendIn(PayHeroModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sender_email": "duka.la.mama@gmail.com",
                    "sender_name": "Duka La Mama",
                    "reply_to": "support@dukalamama.co.ke",
                    "recipients": [
                        {
                            "email": "amina.hassan@gmail.com",
                            "name": "Amina Hassan",
                            "subject": "Your receipt for order 1042",
                            "body": "Thank you for your order of KES 1,200.",
                            "html": "<p>Thank you for your order of <b>KES 1,200</b>.</p>",
                        }
                    ],
                }
            ]
        }
    )

    sender_email: str = Field(max_length=320)
    sender_name: str | None = Field(default=None, max_length=200)
    api_username: str | None = Field(default=None, max_length=64)
    reply_to: str | None = Field(default=None, max_length=320)
    recipients: list[RecipientIn] = Field(min_length=1, max_length=mailers.MAX_RECIPIENTS)


class Accepted(BaseModel):
    id: str
    recipient_email: str


class Refused(BaseModel):
    index: int
    recipient_email: str
    error: str


class SendOut(BaseModel):
    success: list[Accepted]
    errors: list[Refused]
    batch_id: str = Field(description="For GET /mailer/mail_status?batch_id=")


class MailStatusItem(BaseModel):
    id: str
    batch_id: str
    recipient_email: str
    subject: str
    status: int = Field(description="1 sent, 0 queued, 2 failed")
    state: str = Field(description="queued, sent or failed")
    description: str
    attempts: int
    updated_at: str = Field(description="YYYY-MM-DD HH:MM:SS (UTC)")


class Pagination(BaseModel):
    current_page: str
    per_page: str
    total_records: int
    total_pages: int


class MailStatusOut(BaseModel):
    data: list[MailStatusItem]
    pagination: Pagination


class EmailStatusOut(BaseModel):
    id: str
    batch_id: str
    recipient_email: str
    subject: str
    status: str = Field(description="queued, sent or failed")
    smtp_reply: str | None = Field(description="The server's acceptance, or why it failed")
    attempts: int
    created_at: datetime
    sent_at: datetime | None


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _description(found: MerchantEmail) -> str:
    if found.status == MerchantEmailStatus.SENT:
        return f"Email successfully sent to: {found.recipient_email}"
    if found.status == MerchantEmailStatus.FAILED:
        return f"Email to {found.recipient_email} failed: {found.smtp_reply or 'unknown error'}"
    if found.smtp_reply:
        return f"Queued for {found.recipient_email}; last attempt: {found.smtp_reply}"
    return f"Queued for {found.recipient_email}"


@router.post(
    "/register",
    response_model=RegisterOut,
    name="Email.Register",
    summary="Register your SMTP server",
    openapi_extra=API_USERS,
)
async def register(
    body: RegisterIn, who: MailerCaller, db: DatabaseDep, settings: SettingsDep, clock: ClockDep
) -> RegisterOut:
    """Register your SMTP server: checked by logging in first; the password is stored encrypted."""
    mailer = await mailers.register_mailer(
        db,
        who,
        settings,
        api_username=body.api_username,
        host=body.smtp_host,
        port=int(body.smtp_port),
        username=body.smtp_username or "",
        password=body.smtp_password or "",
        insecure=body.insecure,
        now=clock.now(),
    )
    return RegisterOut(id=str(mailer.id), message="Credentials registered successfully")


async def _send(
    body: SendIn, who: Principal, idem: Idempotency, session: AsyncSession, clock: Clock
) -> SendOut:
    outcome = await mailers.send_emails(
        session,
        who,
        api_username=body.api_username,
        sender_email=body.sender_email,
        sender_name=body.sender_name,
        reply_to=body.reply_to,
        recipients=[mailers.Recipient(r.email, r.name, r.subject, r.body, r.html) for r in body.recipients],
        now=clock.now(),
    )
    reply = SendOut(
        success=[
            Accepted(id=str(email_id), recipient_email=address) for email_id, address in outcome.accepted
        ],
        errors=[Refused(**error) for error in outcome.errors],  # type: ignore[arg-type]
        batch_id=outcome.batch_id,
    )
    await idem.complete(session, status.HTTP_200_OK, reply)
    return reply


@router.post(
    "/send", response_model=SendOut, name="Email.Send", summary="Send emails", openapi_extra=API_USERS
)
async def send(
    body: SendIn, who: MailerCaller, idem: IdempotencyKey, session: Session, clock: ClockDep
) -> SendOut:
    """Send to many recipients through your mailer: each is queued, then sent by the worker. A retry
    with the same `Idempotency-Key` and body answers the first reply and sends nothing again."""
    return await _send(body, who, idem, session, clock)


@router.post(
    "/send_email",
    response_model=SendOut,
    include_in_schema=False,
    name="Email.Send",
    summary="Send emails",
    openapi_extra=API_USERS,
)
async def send_alias(
    body: SendIn, who: MailerCaller, idem: IdempotencyKey, session: Session, clock: ClockDep
) -> SendOut:
    return await _send(body, who, idem, session, clock)


@router.get(
    "/mail_status",
    response_model=MailStatusOut,
    name="Email.ReadStatus",
    summary="Get a batch's emails and their status",
    openapi_extra=API_USERS,
)
async def mail_status(
    who: MailerCaller,
    session: Session,
    batch_id: Annotated[str, Query(min_length=1, max_length=32)],
    api_username: Annotated[str | None, Query(max_length=64)] = None,
    page: PageQuery = 1,
    per_page: PerPage = 100,
) -> MailStatusOut:
    """The emails of a batch and where each one is."""
    await mailers.check_api_username(session, who, api_username)
    emails, total = await mailers.mail_status(session, who, batch_id=batch_id, page=page, per_page=per_page)
    if total == 0:
        raise mailers.EmailNotFound(f"no batch {batch_id}")
    return MailStatusOut(
        data=[
            MailStatusItem(
                id=str(found.id),
                batch_id=found.batch_id,
                recipient_email=found.recipient_email,
                subject=found.subject,
                status=_STATUS_CODES[MerchantEmailStatus(found.status)],
                state=found.status,
                description=_description(found),
                attempts=found.attempts,
                updated_at=_stamp(found.updated_at),
            )
            for found in emails
        ],
        pagination=Pagination(
            current_page=str(page),
            per_page=str(per_page),
            total_records=total,
            total_pages=math.ceil(total / per_page),
        ),
    )


@router.get(
    "/status/{id:uuid}",
    response_model=EmailStatusOut,
    name="Email.Read",
    summary="Get an email's status",
    openapi_extra=API_USERS,
)
async def email_status(
    id: uuid.UUID,
    who: MailerCaller,
    session: Session,
) -> EmailStatusOut:
    """One email: queued, sent or failed, with the SMTP server's reply."""
    found = await mailers.get_email(session, who, id)
    return EmailStatusOut(
        id=str(found.id),
        batch_id=found.batch_id,
        recipient_email=found.recipient_email,
        subject=found.subject,
        status=found.status,
        smtp_reply=found.smtp_reply,
        attempts=found.attempts,
        created_at=found.created_at,
        sent_at=found.sent_at,
    )
