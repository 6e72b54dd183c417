"""Outbox jobs of email: ``mail.send`` (operator mail through ``MALIPO_SMTP_URL``) and ``mailer.send``
(one merchant email through the merchant's own SMTP server).

``mailer.send``: sent -> ``sent`` with the server's reply. A refusal for good (a 5xx about the
sender, recipient or data) -> ``failed`` at once; anything else (unreachable, timed out, the
connection lost mid-send, 4xx, login refused) is retried with backoff, and after the last attempt
the email is ``failed`` with the reason. The Message-ID comes from the row, so a resend after a
lost reply carries the same one.
"""

from __future__ import annotations

import email.utils
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.logging import get_logger, redact_secret, redact_text
from malipo.email import repository
from malipo.email.models import MailStatus, MerchantEmailStatus
from malipo.email.service import MAIL_SEND_JOB, MAILER_SEND_JOB, mail_from
from malipo.providers.smtp.client import (
    SmtpError,
    SmtpTarget,
    build_message,
    deliver,
    parse_smtp_url,
    private_allowed,
    send_message,
)
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.email")

# States a send job leaves alone: the message has been delivered or kept already.
_DONE = frozenset({MailStatus.SENT, MailStatus.STORED})


@dataclass(frozen=True, slots=True)
class _Outgoing:
    to: str
    subject: str
    text: str
    html: str | None


@job_handler(MAIL_SEND_JOB, max_attempts=8, base_delay=5.0, max_delay=600.0)
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
        mail = await repository.mail_by_id(session, mail_id)
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
    return await repository.move_open_mail(session, mail_id, values)


def _scrub(text: str, password: str | None) -> str:
    return redact_text(redact_secret(text, password))[:2000]


def _domain(mail_from: str) -> str:
    return email.utils.parseaddr(mail_from)[1].rpartition("@")[2] or "malipo.local"


# -- merchants' email ----------------------------------------------------------------------------


@job_handler(MAILER_SEND_JOB, max_attempts=5, base_delay=5.0, max_delay=600.0)
async def send_merchant_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        email_id = uuid.UUID(str(payload["id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"mailer.send payload has no valid id: {exc}") from exc
    async with ctx.db.transaction() as session:
        found = await repository.email_by_id(session, email_id)
        if found is None:
            raise PermanentJobError(f"email {email_id} does not exist")
        if found.status != MerchantEmailStatus.QUEUED:
            return  # sent or failed already (the job ran twice)
        mailer = await repository.mailer_by_id(session, found.mailer_id)
        assert mailer is not None  # a foreign key
        target = SmtpTarget(
            mailer.host, mailer.port, mailer.username, mailer.password, mailer.tls,  # type: ignore[arg-type]
            allow_private=private_allowed(ctx.settings.smtp_allow_private, mailer.sandbox),
        )  # fmt: skip
        domain = found.sender_email.rpartition("@")[2] or "malipo.local"
        message = build_message(
            mail_from=mail_from(found),
            to=email.utils.formataddr((found.recipient_name or "", found.recipient_email)),
            subject=found.subject,
            text=found.text_body,
            html=found.html_body,
            reply_to=found.reply_to,
            message_id=f"<{email_id}@{domain}>",
        )
        found.attempts += 1
        found.updated_at = ctx.clock.now()
    try:
        reply = await deliver(target, message)
    except SmtpError as exc:
        error = _scrub(str(exc), target.password)
        final = exc.permanent or ctx.attempt >= ctx.max_attempts
        await _move_email(
            ctx, email_id, smtp_reply=error, **({"status": MerchantEmailStatus.FAILED} if final else {})
        )
        log.warning(
            "mailer.send_failed", email_id=str(email_id), attempt=ctx.attempt, final=final, error=error
        )
        if exc.permanent:
            raise PermanentJobError(error) from None
        raise SmtpError(error, code=exc.code) from None
    await _move_email(
        ctx, email_id, status=MerchantEmailStatus.SENT, smtp_reply=reply[:2000], sent_at=ctx.clock.now()
    )
    log.info("mailer.sent", email_id=str(email_id), attempt=ctx.attempt)


async def _move_email(ctx: JobContext, email_id: uuid.UUID, **values: Any) -> None:
    async with ctx.db.transaction() as session:
        await repository.move_queued_email(session, email_id, {"updated_at": ctx.clock.now(), **values})
