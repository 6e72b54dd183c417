"""Outbox job ``mailer.send``: one merchant email through the merchant's own SMTP server.

Sent -> ``sent`` with the server's reply. A refusal for good (a 5xx about the sender,
recipient or data) -> ``failed`` at once; anything else (unreachable, timed out, the
connection lost mid-send, 4xx, login refused) is retried with backoff, and after the
last attempt the email is ``failed`` with the reason. The Message-ID comes from the
row, so a resend after a lost reply carries the same one.
"""

from __future__ import annotations

import email.utils
import uuid
from typing import Any

from sqlalchemy import update

from malipo.core.logging import get_logger, redact_secret, redact_text
from malipo.messaging.models import Mailer, MerchantEmail, MerchantEmailStatus
from malipo.providers.smtp.client import (
    SmtpError,
    SmtpTarget,
    build_message,
    deliver,
    private_allowed,
)
from malipo.worker.registry import JobContext, PermanentJobError, job_handler

log = get_logger("malipo.messaging.mailers")

SEND_JOB = "mailer.send"


@job_handler(SEND_JOB, max_attempts=5, base_delay=5.0, max_delay=600.0)
async def send_merchant_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    try:
        email_id = uuid.UUID(str(payload["id"]))
    except (KeyError, ValueError) as exc:
        raise PermanentJobError(f"mailer.send payload has no valid id: {exc}") from exc
    async with ctx.db.transaction() as session:
        found = await session.get(MerchantEmail, email_id)
        if found is None:
            raise PermanentJobError(f"email {email_id} does not exist")
        if found.status != MerchantEmailStatus.QUEUED:
            return  # sent or failed already (the job ran twice)
        mailer = await session.get(Mailer, found.mailer_id)
        assert mailer is not None  # a foreign key
        target = SmtpTarget(
            mailer.host, mailer.port, mailer.username, mailer.password, mailer.tls,  # type: ignore[arg-type]
            allow_private=private_allowed(ctx.settings.smtp_allow_private, mailer.sandbox),
        )  # fmt: skip
        domain = found.sender_email.rpartition("@")[2] or "malipo.local"
        message = build_message(
            mail_from=email.utils.formataddr((found.sender_name or "", found.sender_email)),
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
        error = redact_text(redact_secret(str(exc), target.password))[:2000]
        final = exc.permanent or ctx.attempt >= ctx.max_attempts
        await _move(
            ctx, email_id, smtp_reply=error, **({"status": MerchantEmailStatus.FAILED} if final else {})
        )
        log.warning(
            "mailer.send_failed", email_id=str(email_id), attempt=ctx.attempt, final=final, error=error
        )
        if exc.permanent:
            raise PermanentJobError(error) from None
        raise SmtpError(error, code=exc.code) from None
    await _move(
        ctx, email_id, status=MerchantEmailStatus.SENT, smtp_reply=reply[:2000], sent_at=ctx.clock.now()
    )
    log.info("mailer.sent", email_id=str(email_id), attempt=ctx.attempt)


async def _move(ctx: JobContext, email_id: uuid.UUID, **values: Any) -> None:
    async with ctx.db.transaction() as session:
        await session.execute(
            update(MerchantEmail)
            .where(MerchantEmail.id == email_id, MerchantEmail.status == MerchantEmailStatus.QUEUED)
            .values(updated_at=ctx.clock.now(), **values)
            .execution_options(synchronize_session=False)
        )
