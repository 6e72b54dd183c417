"""Merchants' email through their own SMTP servers (Pay Hero's "mailer").

What callers can rely on:
- An API user registers one mailer (host, port, username, password); registering
  again replaces it. Registration connects and logs in first and says what failed;
  the password is stored encrypted and never returned or logged.
- The server's host must resolve to public addresses only, unless the operator allows others
  (``MALIPO_SMTP_ALLOW_PRIVATE``; by default only sandbox keys may use a loopback or private
  server): the mailer is no probe of the internal network. A connection failure reads the same
  whatever its cause.
- Port 465 is implicit TLS; any other port must offer STARTTLS, unless the mailer was
  registered ``insecure`` (plain text: local test servers only).
- A send queues one email per recipient (rows plus outbox jobs, in one transaction)
  and answers which recipients were accepted and which not, and why; the worker sends
  them, retrying with backoff, and each ends ``sent`` or ``failed`` with the server's reply.
- ``api_username``, where a request carries it, must name the calling API user (403 if not).
- Reads are scoped to the caller's client.
"""

from __future__ import annotations

import email.utils
import html as html_lib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.errors import Forbidden, MalipoError, NotFound, ValidationFailed
from malipo.core.ids import new_id
from malipo.core.logging import get_logger, redact_secret
from malipo.db import Database
from malipo.identity.models import ApiUser, KeyMode
from malipo.identity.principals import Principal
from malipo.messaging import mailer_tasks
from malipo.messaging.models import Mailer, MerchantEmail, MerchantEmailStatus
from malipo.providers.smtp.client import (
    SmtpDestinationRefused,
    SmtpError,
    SmtpTarget,
    TlsMode,
    private_allowed,
    verify_login,
)
from malipo.worker.registry import enqueue_many

__all__ = [
    "MailerCheckFailed",
    "Outcome",
    "check_api_username",
    "get_email",
    "mail_status",
    "register_mailer",
    "send_emails",
]

log = get_logger("malipo.messaging.mailers")

MAX_RECIPIENTS = 1000
_TAGS = re.compile(r"<[^>]+>")


class MailerCheckFailed(MalipoError):
    status = 400
    code = "smtp_check_failed"
    title = "The SMTP server refused the credentials"


class NoMailer(NotFound):
    code = "no_mailer"
    title = "No mailer registered"


class EmailNotFound(NotFound):
    code = "email_not_found"
    title = "No such email"


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    name: str | None
    subject: str
    body: str | None
    html: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    batch_id: str
    accepted: list[tuple[uuid.UUID, str]]
    errors: list[dict[str, object]]


async def _api_user(session: AsyncSession, who: Principal) -> ApiUser:
    user = await session.get(ApiUser, who.api_user_id) if who.api_user_id else None
    if user is None:
        raise Forbidden("the mailer is for API users")
    return user


async def check_api_username(session: AsyncSession, who: Principal, api_username: str | None) -> ApiUser:
    """The calling API user; 403 when ``api_username`` names someone else."""
    user = await _api_user(session, who)
    if api_username is not None and api_username != user.api_username:
        raise Forbidden("api_username does not match the credentials this request was sent with")
    return user


def tls_mode(port: int, insecure: bool) -> TlsMode:
    if port == 465:
        return "implicit"
    return "none" if insecure else "starttls"


async def register_mailer(
    db: Database,
    who: Principal,
    settings: Settings,
    *,
    api_username: str | None,
    host: str,
    port: int,
    username: str,
    password: str,
    insecure: bool,
    now: datetime,
) -> Mailer:
    """Check the credentials against the server, then store them (no transaction is held meanwhile).

    An empty ``username`` means a server that needs no login, allowed only ``insecure`` (a local
    test server): no AUTH is attempted, then or when sending.
    """
    if not username:
        if not insecure:
            raise ValidationFailed.for_field(
                "smtp_username",
                "is required (a server that needs no login is allowed only with insecure: true, "
                "for a local test server)",
            )
        if password:
            raise ValidationFailed.for_field("smtp_password", "is given without smtp_username")
    elif not password:
        raise ValidationFailed.for_field("smtp_password", "is required with smtp_username")
    async with db.transaction() as session:
        user = await check_api_username(session, who, api_username)
    sandbox = who.mode == KeyMode.TEST
    target = SmtpTarget(
        host=host,
        port=port,
        username=username or None,
        password=password or None,
        tls=tls_mode(port, insecure),
        allow_private=private_allowed(settings.smtp_allow_private, sandbox),
    )
    try:
        await verify_login(target)
    except SmtpDestinationRefused as exc:
        log.info("mailer.host_refused", client_id=str(user.client_id), host=host, port=port)
        raise ValidationFailed.for_field("smtp_host", f"{exc}; MALIPO_SMTP_ALLOW_PRIVATE allows it") from None
    except SmtpError as exc:
        detail = redact_secret(str(exc), password)
        hint = ""
        if "STARTTLS" in detail.upper():
            hint = (
                "; port 465 uses implicit TLS, other ports need STARTTLS "
                "(register with insecure: true only for a local test server)"
            )
        log.info("mailer.check_failed", client_id=str(user.client_id), host=host, port=port, code=exc.code)
        raise MailerCheckFailed(f"could not log in to {host}:{port}: {detail}{hint}") from None
    async with db.transaction() as session:
        mailer = await session.scalar(select(Mailer).where(Mailer.api_user_id == user.id))
        if mailer is None:
            mailer = Mailer(id=new_id(), client_id=user.client_id, api_user_id=user.id, created_at=now)
            session.add(mailer)
        mailer.host, mailer.port, mailer.username, mailer.password = host, port, username, password
        mailer.tls, mailer.insecure, mailer.sandbox, mailer.updated_at = target.tls, insecure, sandbox, now
        await session.flush()
    log.info(
        "mailer.registered", mailer_id=str(mailer.id), client_id=str(user.client_id), host=host, port=port
    )
    return mailer


def _one_line(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if any(c in value for c in "\r\n") or len(value) > limit:
        raise ValueError(f"must be one line of at most {limit} characters")
    return value or None


def _address(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an email address: {exc}") from None


def text_of(html: str) -> str:
    """A plain-text rendering of an HTML body, for clients that show no HTML."""
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h\d>|</li>", "\n", html)
    return html_lib.unescape(_TAGS.sub("", text)).strip() + "\n"


async def send_emails(
    session: AsyncSession,
    who: Principal,
    *,
    api_username: str | None,
    sender_email: str,
    sender_name: str | None,
    reply_to: str | None,
    recipients: list[Recipient],
    now: datetime,
) -> Outcome:
    """Queue one email per valid recipient through the caller's mailer; list the others' errors."""
    user = await check_api_username(session, who, api_username)
    mailer = await session.scalar(select(Mailer).where(Mailer.api_user_id == user.id))
    if mailer is None:
        raise NoMailer(f"no mailer is registered for {user.api_username}: POST /mailer/register first")
    try:
        sender = _address(sender_email)
    except ValueError as exc:
        raise ValidationFailed.for_field("sender_email", str(exc)) from None
    try:
        name = _one_line(sender_name, 200)
    except ValueError as exc:
        raise ValidationFailed.for_field("sender_name", str(exc)) from None
    try:
        reply = _address(reply_to) if reply_to and reply_to.strip() else None
    except ValueError as exc:
        raise ValidationFailed.for_field("reply_to", str(exc)) from None
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise ValidationFailed.for_field("recipients", f"send 1 to {MAX_RECIPIENTS} recipients")
    batch_id = secrets.token_hex(6)  # Pay Hero style: "67d81c2dacc1"
    rows = []
    errors: list[dict[str, object]] = []
    for index, recipient in enumerate(recipients):
        try:
            address = _address(recipient.email)
            subject = _one_line(recipient.subject, 300)
            if subject is None:
                raise ValueError("subject: is required")
            if not (recipient.body or recipient.html):
                raise ValueError("body: give a body or an html body")
            rows.append(
                {
                    "id": new_id(),
                    "client_id": user.client_id,
                    "mailer_id": mailer.id,
                    "batch_id": batch_id,
                    "sender_email": sender,
                    "sender_name": name,
                    "reply_to": reply,
                    "recipient_email": address,
                    "recipient_name": _one_line(recipient.name, 200),
                    "subject": subject,
                    "text_body": recipient.body or text_of(recipient.html or ""),
                    "html_body": recipient.html,
                    "status": MerchantEmailStatus.QUEUED.value,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        except ValueError as exc:
            errors.append({"index": index, "recipient_email": recipient.email, "error": str(exc)})
    if rows:
        await session.execute(insert(MerchantEmail.__table__), rows)
        await enqueue_many(session, mailer_tasks.SEND_JOB, [{"id": str(row["id"])} for row in rows], now=now)
    log.info(
        "mailer.queued", batch_id=batch_id, mailer_id=str(mailer.id), accepted=len(rows), errors=len(errors)
    )
    return Outcome(batch_id, [(row["id"], row["recipient_email"]) for row in rows], errors)


async def mail_status(
    session: AsyncSession, who: Principal, *, batch_id: str, page: int, per_page: int
) -> tuple[list[MerchantEmail], int]:
    """A batch's emails, a page at a time, and how many it holds (0 for another client's batch)."""
    scope = (MerchantEmail.client_id == who.client_id, MerchantEmail.batch_id == batch_id)
    total = int(await session.scalar(select(func.count()).select_from(MerchantEmail).where(*scope)) or 0)
    emails = (
        await session.scalars(
            select(MerchantEmail)
            .where(*scope)
            .order_by(MerchantEmail.created_at, MerchantEmail.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    ).all()
    return list(emails), total


async def get_email(session: AsyncSession, who: Principal, email_id: uuid.UUID) -> MerchantEmail:
    found = await session.scalar(
        select(MerchantEmail).where(MerchantEmail.id == email_id, MerchantEmail.client_id == who.client_id)
    )
    if found is None:
        raise EmailNotFound(f"no email {email_id}")
    return found


def mail_from(found: MerchantEmail) -> str:
    return email.utils.formataddr((found.sender_name or "", found.sender_email))
