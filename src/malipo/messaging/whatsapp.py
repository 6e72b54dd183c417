"""Merchants' WhatsApp: named sessions, a message to one number, bulk (a list or a CSV), batch status.

What callers can rely on:
- A session belongs to one client, by name (Pay Hero's ``session``); registering a name
  again re-binds it. Its Cloud API access token is stored encrypted and never returned.
- A send names a session of the caller's client (another name is a 404 naming it),
  normalises the number to E.164 and queues the message with its outbox job in the
  caller's transaction; the reply comes once it is queued. A sandbox key's messages
  always go to the simulator (``malipo.providers.registry``).
- A message is a text (1-4096 characters), or an image or document: an absolute http(s)
  URL, which Meta fetches (malipo does not), with an optional caption of up to 1024
  characters; a document is shown under its URL's last path segment. Each message keeps
  its type and URL. WhatsApp sends are not charged.
- A bulk send rejects invalid or repeated numbers one by one, inserts the rest in one
  statement with one job each, paced at ``MALIPO_WHATSAPP_BULK_RATE``, and answers
  with the batch id at once; the batch shows counts and per-recipient status.
- Reads are scoped to the caller's client and mode.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.crypto import constant_time_equal, derived_token, sha256_hex
from malipo.core.errors import NotFound, ValidationFailed
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.identity.principals import Principal
from malipo.messaging import whatsapp_tasks
from malipo.messaging.batches import batch_page
from malipo.messaging.models import (
    WhatsAppBatch,
    WhatsAppMessage,
    WhatsAppSession,
    WhatsAppStatus,
)
from malipo.messaging.sms import Rejected, merchant_client, normalise, normalise_many, nothing_valid
from malipo.messaging.whatsapp_tasks import WhatsAppMessageType
from malipo.providers.registry import whatsapp_webhook_url
from malipo.providers.whatsapp_cloud.client import StatusUpdate
from malipo.worker.registry import enqueue, enqueue_many

__all__ = [
    "BatchView",
    "BulkAccepted",
    "Content",
    "UnknownSession",
    "WhatsAppMessageType",
    "apply_status",
    "check_content",
    "get_batch",
    "list_sessions",
    "register_session",
    "send_bulk",
    "send_bulk_csv",
    "send_text",
]

log = get_logger("malipo.messaging.whatsapp")

MAX_BODY = 4096
MAX_CAPTION = 1024  # Meta's limit on an image's or document's caption
MAX_MEDIA_URL = 2000
_DERIVED_TOKEN_LENGTH = 32 + 40  # the session id's hex, then the HMAC's
_NAME_SLOT = re.compile(r"[ \t]*\{name\}")
_PHONE_COLUMNS = ("phone", "phone_number", "phonenumber", "msisdn", "number", "mobile", "recipient")
_NAME_COLUMNS = ("name", "first_name", "firstname", "full_name", "fullname")


class UnknownSession(NotFound):
    code = "unknown_session"
    title = "No such WhatsApp session"


class WhatsAppBatchNotFound(NotFound):
    code = "whatsapp_batch_not_found"
    title = "No such WhatsApp batch"


@dataclass(frozen=True, slots=True)
class BulkAccepted:
    batch: WhatsAppBatch
    rejected: list[Rejected]


@dataclass(frozen=True, slots=True)
class BatchView:
    batch: WhatsAppBatch
    session_name: str
    counts: dict[str, int]
    messages: list[WhatsAppMessage]
    message_type: WhatsAppMessageType  # every message of a batch has the batch's type and URL
    media_url: str | None


@dataclass(frozen=True, slots=True)
class Content:
    """What a send carries: its type, the text or caption, and the media URL of an image or document."""

    message_type: WhatsAppMessageType
    message: str
    media_url: str | None


# -- sessions ---------------------------------------------------------------------------------


async def register_session(
    session: AsyncSession,
    who: Principal,
    *,
    name: str,
    backend: str,
    phone_number_id: str | None,
    access_token: str | None,
    now: datetime,
) -> WhatsAppSession:
    """Create the caller's session ``name``, or re-bind it when it exists."""
    client = await merchant_client(session, who)
    found = await session.scalar(
        select(WhatsAppSession).where(WhatsAppSession.client_id == client.id, WhatsAppSession.name == name)
    )
    cloud = backend == "cloud"
    if found is None:
        found = WhatsAppSession(id=new_id(), client_id=client.id, name=name, created_at=now)
        session.add(found)
    found.backend = backend
    found.phone_number_id = phone_number_id if cloud else None
    found.access_token = access_token if cloud else None
    found.updated_at = now
    await session.flush()
    log.info(
        "whatsapp.session_registered", session_id=str(found.id), client_id=str(client.id), backend=backend
    )
    return found


async def list_sessions(session: AsyncSession, who: Principal) -> list[WhatsAppSession]:
    return list(
        (
            await session.scalars(
                select(WhatsAppSession)
                .where(WhatsAppSession.client_id == who.client_id)
                .order_by(WhatsAppSession.name)
            )
        ).all()
    )


def webhook_token(settings: Settings, session_id: uuid.UUID) -> str:
    """The secret part of a session's status webhook URL (and Meta's verify token): its id, then an
    HMAC of the id under the secret key. Stored nowhere; checked by recomputing it."""
    assert settings.secret_key is not None
    return session_id.hex + derived_token(
        settings.secret_key.get_secret_value(), f"whatsapp-webhook:{session_id}"
    )


def webhook_url(settings: Settings, found: WhatsAppSession) -> str:
    return whatsapp_webhook_url(settings, webhook_token(settings, found.id))


async def find_session(session: AsyncSession, who: Principal, name: str) -> WhatsAppSession:
    found = await session.scalar(
        select(WhatsAppSession).where(
            WhatsAppSession.client_id == who.client_id, WhatsAppSession.name == name
        )
    )
    if found is None:
        raise UnknownSession(
            f"session: we didn't find a session with name {name!r}; register it first "
            "with POST /api/v1/whatsapp/sessions"
        )
    return found


# -- sending ----------------------------------------------------------------------------------


def _check_body(message: str, field: str = "message") -> None:
    if not message.strip() or len(message) > MAX_BODY:
        raise ValidationFailed.for_field(field, f"must be 1 to {MAX_BODY} characters")


def _is_http_url(url: str) -> bool:
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed IPv6 host, say
        return False


def _check_media_url(value: str | None, kind: WhatsAppMessageType, field: str) -> str:
    url = (value or "").strip()
    when = f"when message_type is {kind.upper()}"
    if not url:
        raise ValidationFailed.for_field(field, f"required {when}: the http or https URL of the {kind}")
    if len(url) > MAX_MEDIA_URL:
        raise ValidationFailed.for_field(field, f"at most {MAX_MEDIA_URL} characters")
    if not _is_http_url(url):
        raise ValidationFailed.for_field(
            field, f"must be an absolute http or https URL {when} (such as https://shop.example/menu.jpg)"
        )
    return url


def check_content(
    message_type: str, message: str, media_url: str | None, *, media_field: str = "media_url"
) -> Content:
    """The send's content, checked: a text of 1-4096 characters (any media URL ignored), or an
    image or document with an absolute http(s) URL and a caption of at most 1024 characters."""
    try:
        kind = WhatsAppMessageType(message_type.lower())
    except ValueError:
        raise ValidationFailed.for_field("message_type", "must be TEXT, IMAGE or DOCUMENT") from None
    if kind == WhatsAppMessageType.TEXT:
        _check_body(message)
        return Content(kind, message, None)
    url = _check_media_url(media_url, kind, media_field)
    if len(message) > MAX_CAPTION:
        raise ValidationFailed.for_field(
            "message", f"a caption is at most {MAX_CAPTION} characters (WhatsApp's limit for media)"
        )
    return Content(kind, message if message.strip() else "", url)


def personalise(message: str, name: str | None) -> str:
    """``{name}`` replaced by the recipient's name (removed when there is none); nothing else is
    interpreted, so a message may hold any other braces."""
    if "{name}" not in message:
        return message
    name = (name or "").strip()
    if name:
        return message.replace("{name}", name)
    return _NAME_SLOT.sub("", message).strip() or message


async def send_text(
    session: AsyncSession,
    who: Principal,
    settings: Settings,
    *,
    session_name: str,
    phone_number: str,
    message: str,
    now: datetime,
    message_type: str = WhatsAppMessageType.TEXT,
    media_url: str | None = None,
    media_field: str = "media_url",
) -> WhatsAppMessage:
    """Queue one message (see :func:`check_content`); the worker sends it."""
    content = check_content(message_type, message, media_url, media_field=media_field)
    found = await find_session(session, who, session_name)
    client = await merchant_client(session, who)
    number = normalise(phone_number, client, settings, field="phone_number")
    sent = WhatsAppMessage(
        id=new_id(),
        client_id=client.id,
        mode=who.mode.value,
        session_id=found.id,
        phone_number=number,
        body=content.message,
        message_type=content.message_type.value,
        media_url=content.media_url,
        status=WhatsAppStatus.QUEUED,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(sent)
    await session.flush()
    enqueue(session, whatsapp_tasks.SEND_JOB, {"id": str(sent.id)}, now=now)
    log.info(
        "whatsapp.queued",
        message_id=str(sent.id),
        session_id=str(found.id),
        mode=sent.mode,
        type=content.message_type.value,
    )
    return sent


async def send_bulk(
    session: AsyncSession,
    who: Principal,
    settings: Settings,
    *,
    session_name: str,
    recipients: list[tuple[str, str | None]],
    message: str,
    now: datetime,
    field: str = "recipients",
    first_index: int = 0,
    message_type: str = WhatsAppMessageType.TEXT,
    media_url: str | None = None,
    media_field: str = "media_url",
) -> BulkAccepted:
    """Queue ``message`` (a text, or an image's or document's caption: see :func:`check_content`) to
    each ``(number, name)``; ``{name}`` in it is replaced per recipient."""
    content = check_content(message_type, message, media_url, media_field=media_field)
    limit = MAX_BODY if content.message_type == WhatsAppMessageType.TEXT else MAX_CAPTION
    if not recipients:
        raise ValidationFailed.for_field(field, "no recipients")
    if len(recipients) > settings.whatsapp_bulk_max_recipients:
        raise ValidationFailed.for_field(
            field, f"at most {settings.whatsapp_bulk_max_recipients} recipients per request"
        )
    found = await find_session(session, who, session_name)
    client = await merchant_client(session, who)
    accepted, rejected = normalise_many([number for number, _name in recipients], client, settings)
    rejected = [Rejected(r.index + first_index, r.phone_number, r.reason) for r in rejected]
    if not accepted:
        raise nothing_valid(field, rejected)
    batch = WhatsAppBatch(
        id=new_id(),
        client_id=client.id,
        mode=who.mode.value,
        session_id=found.id,
        message=content.message,
        accepted=len(accepted),
        rejected=len(rejected),
        created_at=now,
    )
    session.add(batch)
    await session.flush()
    rows = [
        {
            "id": new_id(),
            "client_id": client.id,
            "mode": who.mode.value,
            "session_id": found.id,
            "batch_id": batch.id,
            "phone_number": number,
            "body": personalise(content.message, recipients[index][1])[:limit],
            "message_type": content.message_type.value,
            "media_url": content.media_url,
            "status": WhatsAppStatus.QUEUED.value,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for index, number in accepted
    ]
    await session.execute(insert(WhatsAppMessage.__table__), rows)
    delays = None
    if settings.whatsapp_bulk_rate > 0:
        delays = [timedelta(seconds=i / settings.whatsapp_bulk_rate) for i in range(len(rows))]
    await enqueue_many(
        session, whatsapp_tasks.SEND_JOB, [{"id": str(row["id"])} for row in rows], now=now, delays=delays
    )
    log.info(
        "whatsapp.bulk_queued",
        batch_id=str(batch.id),
        session_id=str(found.id),
        accepted=len(accepted),
        rejected=len(rejected),
        type=content.message_type.value,
    )
    return BulkAccepted(batch, rejected)


def read_csv(body: bytes) -> tuple[list[tuple[str, str | None]], int]:
    """``(number, name)`` rows of a CSV and the row number of the first one (1-based, header counted).

    The phone column is one named like ``phone``/``phone_number``/``msisdn``, else the first;
    a ``name`` column is optional. A file without a recognisable header is all data.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed.for_field("body", "the CSV must be UTF-8 text") from None
    if "\x00" in text:
        raise ValidationFailed.for_field("body", "the CSV must not contain NUL characters")
    try:
        read = csv.reader(io.StringIO(text), strict=True)
        rows = [row for row in read if any(cell.strip() for cell in row)]
    except csv.Error as exc:  # a bare carriage return in an unquoted field, an unterminated quote
        raise ValidationFailed.for_field("body", f"the CSV cannot be read: {exc}") from None
    if not rows:
        raise ValidationFailed.for_field("body", "the CSV has no rows: send a column of phone numbers")
    header = [cell.strip().lower().replace(" ", "_") for cell in rows[0]]
    phone_at = next((header.index(c) for c in _PHONE_COLUMNS if c in header), None)
    name_at = next((header.index(c) for c in _NAME_COLUMNS if c in header), None)
    first = 2
    if phone_at is None and name_at is None:
        phone_at, first = 0, 1  # no header: the first column holds the numbers
    else:
        rows = rows[1:]
        if phone_at is None:
            raise ValidationFailed.for_field(
                "body", "the CSV has no phone column (phone, phone_number, msisdn)"
            )
    recipients = []
    for row in rows:
        number = row[phone_at].strip() if phone_at < len(row) else ""
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else None
        recipients.append((number, name or None))
    return recipients, first


async def send_bulk_csv(
    session: AsyncSession,
    who: Principal,
    settings: Settings,
    *,
    session_name: str,
    message: str,
    csv_body: bytes,
    now: datetime,
) -> BulkAccepted:
    """Bulk from a CSV; rejections carry the CSV row number (1-based, the header is row 1)."""
    recipients, first_row = read_csv(csv_body)
    return await send_bulk(
        session,
        who,
        settings,
        session_name=session_name,
        recipients=recipients,
        message=message,
        now=now,
        field="body",
        first_index=first_row,
    )


# -- reading ----------------------------------------------------------------------------------


async def get_batch(
    session: AsyncSession, who: Principal, batch_id: uuid.UUID, *, page: int, page_size: int
) -> BatchView:
    row = (
        await session.execute(
            select(WhatsAppBatch, WhatsAppSession.name)
            .join(WhatsAppSession, WhatsAppSession.id == WhatsAppBatch.session_id)
            .where(
                WhatsAppBatch.id == batch_id,
                WhatsAppBatch.client_id == who.client_id,
                WhatsAppBatch.mode == who.mode.value,
            )
        )
    ).first()
    if row is None:
        raise WhatsAppBatchNotFound(f"no WhatsApp batch {batch_id}")
    counts, messages = await batch_page(session, WhatsAppMessage, batch_id, page=page, page_size=page_size)
    content = (
        await session.execute(
            select(WhatsAppMessage.message_type, WhatsAppMessage.media_url)
            .where(WhatsAppMessage.batch_id == batch_id)
            .limit(1)
        )
    ).first()
    kind, media_url = content if content is not None else (None, None)
    return BatchView(
        row[0], row[1], counts, messages, WhatsAppMessageType(kind or WhatsAppMessageType.TEXT), media_url
    )


# -- status webhooks --------------------------------------------------------------------------


async def session_by_webhook_token(
    session: AsyncSession, settings: Settings, token: str
) -> WhatsAppSession | None:
    """The session whose webhook URL holds ``token``: a derived token (``webhook_token``), or one given
    out before tokens were derived (its hash is kept). None for any other."""
    if len(token) == _DERIVED_TOKEN_LENGTH and all(c in "0123456789abcdef" for c in token):
        session_id = uuid.UUID(hex=token[:32])
        if not constant_time_equal(token, webhook_token(settings, session_id)):
            return None
        return await session.get(WhatsAppSession, session_id)
    return await session.scalar(
        select(WhatsAppSession).where(WhatsAppSession.legacy_webhook_token_hash == sha256_hex(token))
    )


async def apply_status(
    session: AsyncSession, status: StatusUpdate, *, session_id: uuid.UUID | None, now: datetime
) -> str:
    """Move a message on from a status webhook: ``updated``, ``unchanged`` or ``unknown``.

    ``session_id`` limits it to one session's messages (a Cloud session's webhook); None means
    the simulator's webhook, which may only touch messages sent through the simulator.
    """
    query = select(WhatsAppMessage.id).where(WhatsAppMessage.gateway_message_id == status.message_id)
    if session_id is not None:
        query = query.where(WhatsAppMessage.session_id == session_id, WhatsAppMessage.backend == "cloud")
    else:
        query = query.where(WhatsAppMessage.backend == "simulator")
    found = await session.scalar(query)
    if found is None:
        return "unknown"
    values: dict[str, Any] = {"updated_at": now}
    if status.status in ("delivered", "read"):
        values.update(status=WhatsAppStatus.DELIVERED, delivered_at=now)
    elif status.status == "failed":
        reason = f"{status.error_code} {status.error_title}" if status.error_code else "failed"
        values.update(status=WhatsAppStatus.FAILED, error=reason[:500])
    else:
        return "unchanged"
    result = await session.execute(
        update(WhatsAppMessage)
        .where(WhatsAppMessage.id == found, WhatsAppMessage.status == WhatsAppStatus.SENT)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return "updated" if result.rowcount else "unchanged"  # type: ignore[attr-defined]
