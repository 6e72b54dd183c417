"""Outbox job handlers of the messaging domain."""

from __future__ import annotations

import email.utils
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.logging import get_logger, redact_secret, redact_text
from malipo.messaging.models import MailMessage, MailStatus
from malipo.providers.smtp.client import SmtpError, SmtpTarget, parse_smtp_url, send_message
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.messaging")

SEND_JOB = "mail.send"

# States a send job leaves alone: the message has been delivered or kept already.
_DONE = frozenset({MailStatus.SENT, MailStatus.STORED})
# States a send job may move on from (failed: someone queued the job again on purpose).
_OPEN = (MailStatus.QUEUED, MailStatus.FAILED)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    to: str
    subject: str
    text: str
    html: str | None


@job_handler(SEND_JOB, max_attempts=8, base_delay=5.0, max_delay=600.0)
async def send_mail(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Send the MailMessage ``payload["mail_id"]`` through ``settings.smtp_url``.

    - Already ``sent`` or ``stored``: nothing happens (the job may run twice).
    - No SMTP URL configured: the message becomes ``stored`` (the dev mailbox).
    - Sent: ``sent`` with ``sent_at``. The network call happens outside any transaction.
    - SMTP failure: the redacted error is recorded on the message and the job is
      retried; after the last attempt, or at once on a permanent 5xx refusal
      (``PermanentJobError``), the message becomes ``failed``.
    """
    try:
        mail_id = uuid.UUID(str(payload["mail_id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"mail.send payload has no valid mail_id: {exc}") from exc

    async with ctx.db.transaction() as session:
        mail = await session.get(MailMessage, mail_id)
        if mail is None:
            raise PermanentJobError(f"mail message {mail_id} does not exist")
        if mail.status in _DONE:
            log.info("mail.already_done", mail_id=str(mail_id), status=mail.status)
            return
        if ctx.settings.smtp_url is None:
            if await _move(session, mail_id, status=MailStatus.STORED):
                log.info("mail.stored", mail_id=str(mail_id), purpose=mail.purpose)
            return
        outgoing = _Outgoing(mail.to_address, mail.subject, mail.text_body, mail.html_body)

    target: SmtpTarget | None = None
    try:
        target = parse_smtp_url(ctx.settings.smtp_url.get_secret_value())
        await send_message(
            target,
            mail_from=ctx.settings.mail_from,
            to=outgoing.to,
            subject=outgoing.subject,
            text=outgoing.text,
            html=outgoing.html,
            # Derived from the row, so a resend after a lost reply carries the same Message-ID.
            message_id=f"<{mail_id}@{_domain(ctx.settings.mail_from)}>",
        )
    except SmtpError as exc:
        error = await _record_failure(ctx, mail_id, exc, target.password if target else None)
        # Fresh exceptions carrying only the scrubbed text: the worker stores and logs what we raise.
        if exc.permanent:
            raise PermanentJobError(error) from None
        raise SmtpError(error, code=exc.code) from None  # the worker schedules a retry, or gives up

    async with ctx.db.transaction() as session:
        await _move(session, mail_id, status=MailStatus.SENT, sent_at=ctx.clock.now(), error=None)
    log.info("mail.sent", mail_id=str(mail_id), attempt=ctx.attempt)


async def _record_failure(ctx: JobContext, mail_id: uuid.UUID, exc: SmtpError, password: str | None) -> str:
    """Write the scrubbed error on the message (``failed`` if this was its last chance); return it."""
    error = _scrub(str(exc), password)
    final = exc.permanent or ctx.attempt >= ctx.max_attempts
    values: dict[str, Any] = {"error": error}
    if final:
        values["status"] = MailStatus.FAILED
    async with ctx.db.transaction() as session:
        await _move(session, mail_id, **values)
    log.warning(
        "mail.send_failed",
        mail_id=str(mail_id),
        attempt=ctx.attempt,
        max_attempts=ctx.max_attempts,
        code=exc.code,
        permanent=exc.permanent,
        final=final,
        error=error,
    )
    return error


async def _move(session: AsyncSession, mail_id: uuid.UUID, **values: Any) -> bool:
    """Update the message unless it is sent or stored already (a guarded transition)."""
    result = await session.execute(
        update(MailMessage)
        .where(MailMessage.id == mail_id, MailMessage.status.in_(_OPEN))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _scrub(text: str, password: str | None) -> str:
    return redact_text(redact_secret(text, password))[:2000]


def _domain(mail_from: str) -> str:
    return email.utils.parseaddr(mail_from)[1].rpartition("@")[2] or "malipo.local"
