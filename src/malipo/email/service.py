"""Operator mail: queue an email through the outbox, list the mailbox, render templates.

A queued message is a ``mail_messages`` row plus a ``mail.send`` outbox job,
both in the caller's transaction: they exist only if it commits. The job
(``malipo.messaging.tasks``) sends the message through ``MALIPO_SMTP_URL``,
or, when none is configured, marks it ``stored`` for the dev mailbox
(``malipo mail list``).

Templates live in ``templates/mail/<name>.jinja``; each extends
``_layout.jinja`` and defines the blocks ``subject``, ``text`` and ``html``
(see the layout for the convention).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.ids import new_id
from malipo.core.logging import get_logger

# Importing tasks registers mail.send, which enqueue() checks.
from malipo.messaging import tasks as _tasks
from malipo.messaging.models import MailMessage, MailStatus
from malipo.worker.registry import enqueue

__all__ = ["MAIL_TEMPLATES", "SEND_JOB", "get_mail", "list_mail", "queue_email", "render"]

log = get_logger("malipo.messaging")

SEND_JOB = _tasks.SEND_JOB

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
    enqueue(session, SEND_JOB, {"mail_id": str(message.id)}, now=now)
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
    query = select(MailMessage).order_by(MailMessage.created_at.desc(), MailMessage.id.desc()).limit(limit)
    if to is not None:
        query = query.where(func.lower(MailMessage.to_address) == to.strip().lower())
    return list((await session.scalars(query)).all())


async def get_mail(session: AsyncSession, mail_id: uuid.UUID) -> MailMessage | None:
    """One message by id, or None."""
    return await session.get(MailMessage, mail_id)
