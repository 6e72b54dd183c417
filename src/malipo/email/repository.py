"""Every query on the email tables (``mail_messages``, ``mailers``, ``merchant_emails``).

A merchant's emails are read by its client (the tables have no mode: a mailer is an API user's,
whatever its key's mode). Operator mail is the operator's mailbox: read by address or id, for
the operator's commands and the dev mailbox page. The workers' queries go by the job's row id.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.email.models import Mailer, MailMessage, MailStatus, MerchantEmail, MerchantEmailStatus

# States a send job may move an operator message on from (failed: someone queued it again on purpose).
_MAIL_OPEN = (MailStatus.QUEUED, MailStatus.FAILED)

# -- operator mail --------------------------------------------------------------------------------


async def recent_mail(session: AsyncSession, *, limit: int, to: str | None) -> list[MailMessage]:
    """The newest ``limit`` messages, newest first; only those to ``to`` (whole address, any case)."""
    query = select(MailMessage).order_by(MailMessage.created_at.desc(), MailMessage.id.desc()).limit(limit)
    if to is not None:
        query = query.where(func.lower(MailMessage.to_address) == to.strip().lower())
    return list((await session.scalars(query)).all())


async def mail_by_id(session: AsyncSession, mail_id: uuid.UUID) -> MailMessage | None:
    return await session.get(MailMessage, mail_id)


async def move_open_mail(session: AsyncSession, mail_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Write ``values`` on the message unless it is sent or stored already; whether it was open."""
    result = await session.execute(
        update(MailMessage)
        .where(MailMessage.id == mail_id, MailMessage.status.in_(_MAIL_OPEN))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- merchants' mailers and their emails ----------------------------------------------------------


async def mailer_of(session: AsyncSession, api_user_id: uuid.UUID) -> Mailer | None:
    """The API user's mailer (one per API user, so of its client)."""
    return await session.scalar(select(Mailer).where(Mailer.api_user_id == api_user_id))


async def mailer_by_id(session: AsyncSession, mailer_id: uuid.UUID) -> Mailer | None:
    return await session.get(Mailer, mailer_id)


async def insert_emails(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """A send's emails in one multi-row INSERT."""
    await session.execute(insert(MerchantEmail.__table__), rows)


async def batch_emails(
    session: AsyncSession, client_id: uuid.UUID | None, batch_id: str, *, page: int, per_page: int
) -> tuple[list[MerchantEmail], int]:
    """A batch's emails, a page at a time in the order they were queued, and how many it holds."""
    scope = (MerchantEmail.client_id == client_id, MerchantEmail.batch_id == batch_id)
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


async def email_of(
    session: AsyncSession, client_id: uuid.UUID | None, email_id: uuid.UUID
) -> MerchantEmail | None:
    return await session.scalar(
        select(MerchantEmail).where(MerchantEmail.id == email_id, MerchantEmail.client_id == client_id)
    )


async def email_by_id(session: AsyncSession, email_id: uuid.UUID) -> MerchantEmail | None:
    return await session.get(MerchantEmail, email_id)


async def move_queued_email(session: AsyncSession, email_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Write ``values`` on the email if it is still ``queued`` (sent or failed never move again)."""
    await session.execute(
        update(MerchantEmail)
        .where(MerchantEmail.id == email_id, MerchantEmail.status == MerchantEmailStatus.QUEUED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
