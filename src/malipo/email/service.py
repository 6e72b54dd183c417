"""Email: operator mail (queued through the outbox, kept for the dev mailbox when no SMTP server
is set, rendered from templates) and merchants' email through their own SMTP servers (Pay Hero's
"mailer").

Operator mail: a queued message is a ``mail_messages`` row plus a ``mail.send`` outbox job, both
in the caller's transaction: they exist only if it commits. The job (``malipo.email.tasks``) sends
the message through ``MALIPO_SMTP_URL``, or, when none is configured, marks it ``stored`` for the
dev mailbox (``malipo mail list``). Templates live in ``templates/mail/<name>.jinja``; each extends
``_layout.jinja`` and defines the blocks ``subject``, ``text`` and ``html`` (see the layout for the
convention).

Merchants' mailers: what callers can rely on:
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
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.errors import Forbidden, MalipoError, NotFound, ValidationFailed
from malipo.core.ids import new_id
from malipo.core.logging import get_logger, redact_secret
from malipo.db import Database
from malipo.email import repository
from malipo.email.models import Mailer, MailMessage, MailStatus, MerchantEmail, MerchantEmailStatus
from malipo.identity import users
from malipo.identity.models import ApiUser, KeyMode
from malipo.identity.principals import Principal
from malipo.providers.smtp.client import (
    SmtpDestinationRefused,
    SmtpError,
    SmtpTarget,
    TlsMode,
    private_allowed,
    verify_login,
)
from malipo.worker.registry import enqueue, enqueue_many

__all__ = [
    "MAILER_SEND_JOB",
    "MAIL_SEND_JOB",
    "MAIL_TEMPLATES",
    "MAX_RECIPIENTS",
    "EmailNotFound",
    "MailerCheckFailed",
    "Outcome",
    "Recipient",
    "check_api_username",
    "get_email",
    "get_mail",
    "list_mail",
    "mail_from",
    "mail_status",
    "queue_email",
    "register_mailer",
    "render",
    "send_emails",
]

log = get_logger("malipo.email")

# The outbox jobs of ``malipo.email.tasks``; rows already queued carry these kinds.
MAIL_SEND_JOB = "mail.send"
MAILER_SEND_JOB = "mailer.send"

MAX_RECIPIENTS = 1000
_TAGS = re.compile(r"<[^>]+>")

# The templates render() knows, by purpose; see each file's first line for its context variables.
MAIL_TEMPLATES: tuple[str, ...] = (
    "client_registered",
    "client_approved",
    "client_rejected",
    "client_deactivated",
    "api_key_issued",
    "password_reset",
)

# Column sizes of mail_messages: checked here so both backends refuse the same input.
_MAX_PURPOSE = 50
_MAX_ADDRESS = 320
_MAX_SUBJECT = 300

_TEMPLATE_DIR = Path(__file__).parent / "templates" / "mail"


def _environment(*, autoescape: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATE_DIR),
        autoescape=autoescape,  # noqa: S701  (off only for subject and plain text; html renders with it on)
        # A misspelt or missing context variable is an error, not an empty string in a customer's mail.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(brand="malipo", support_email=None)
    return env


# The same template files are compiled twice: only the HTML rendering escapes.
_PLAIN = _environment(autoescape=False)
_HTML = _environment(autoescape=True)


def render(template_name: str, **context: Any) -> tuple[str, str, str]:
    """Render the mail template ``template_name`` into ``(subject, text, html)``.

    The subject is one line (whitespace collapsed, so a value cannot inject a
    header). The text is plain; the html has every context value escaped.
    Raises ``ValueError`` for an unknown template and ``jinja2.UndefinedError``
    when a required context variable is missing. ``brand`` (default
    ``"malipo"``) and ``support_email`` (default none) may be passed to any template.
    """
    if template_name not in MAIL_TEMPLATES:
        raise ValueError(f"unknown mail template {template_name!r}; known: {', '.join(MAIL_TEMPLATES)}")
    filename = f"{template_name}.jinja"
    subject = " ".join(_PLAIN.get_template(filename).render(context, part="subject").split())
    text = _PLAIN.get_template(filename).render(context, part="text").strip() + "\n"
    html = _HTML.get_template(filename).render(context, part="html").strip() + "\n"
    return subject, text, html


async def queue_email(
    session: AsyncSession,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    purpose: str,
    now: datetime,
    client_id: uuid.UUID | None = None,
) -> MailMessage:
    """Add a ``queued`` MailMessage and its ``mail.send`` job to the caller's transaction.

    Both exist only if that transaction commits; the worker then sends the
    message (or stores it for the dev mailbox when no SMTP server is set).
    Flushes, never commits. Raises ``ValueError`` for an address or subject
    holding a line break (header injection) or longer than its column.
    """
    to = to.strip()
    if not to or "@" not in to or len(to) > _MAX_ADDRESS or any(c in to for c in "\r\n"):
        raise ValueError("the recipient must be one email address")
    if any(c in subject for c in "\r\n") or len(subject) > _MAX_SUBJECT:
        raise ValueError(f"the subject must be one line of at most {_MAX_SUBJECT} characters")
    if not purpose or len(purpose) > _MAX_PURPOSE:
        raise ValueError(f"the purpose must be 1 to {_MAX_PURPOSE} characters")
    message = MailMessage(
        id=new_id(),
        client_id=client_id,
        purpose=purpose,
        to_address=to,
        subject=subject,
        text_body=text,
        html_body=html,
        status=MailStatus.QUEUED,
        created_at=now,
    )
    session.add(message)
    enqueue(session, MAIL_SEND_JOB, {"mail_id": str(message.id)}, now=now)
    await session.flush()
    log.info(
        "mail.queued",
        mail_id=str(message.id),
        purpose=purpose,
        client_id=str(client_id) if client_id else None,
    )
    return message


async def list_mail(session: AsyncSession, *, limit: int = 50, to: str | None = None) -> list[MailMessage]:
    """The newest ``limit`` messages (any status), newest first; only those to ``to`` if given.

    ``to`` matches the whole address, ignoring case.
    """
    return await repository.recent_mail(session, limit=limit, to=to)


async def get_mail(session: AsyncSession, mail_id: uuid.UUID) -> MailMessage | None:
    """One message by id, or None."""
    return await repository.mail_by_id(session, mail_id)


# -- merchants' mailers --------------------------------------------------------------------------


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
    user = await users.api_user_by_id(session, who.api_user_id)
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
        mailer = await repository.mailer_of(session, user.id)
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
    mailer = await repository.mailer_of(session, user.id)
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
        await repository.insert_emails(session, rows)
        await enqueue_many(session, MAILER_SEND_JOB, [{"id": str(row["id"])} for row in rows], now=now)
    log.info(
        "mailer.queued", batch_id=batch_id, mailer_id=str(mailer.id), accepted=len(rows), errors=len(errors)
    )
    return Outcome(batch_id, [(row["id"], row["recipient_email"]) for row in rows], errors)


async def mail_status(
    session: AsyncSession, who: Principal, *, batch_id: str, page: int, per_page: int
) -> tuple[list[MerchantEmail], int]:
    """A batch's emails, a page at a time, and how many it holds (0 for another client's batch)."""
    return await repository.batch_emails(session, who.client_id, batch_id, page=page, per_page=per_page)


async def get_email(session: AsyncSession, who: Principal, email_id: uuid.UUID) -> MerchantEmail:
    found = await repository.email_of(session, who.client_id, email_id)
    if found is None:
        raise EmailNotFound(f"no email {email_id}")
    return found


def mail_from(found: MerchantEmail) -> str:
    """The From header of a merchant's email: its sender's name and address."""
    return email.utils.formataddr((found.sender_name or "", found.sender_email))
