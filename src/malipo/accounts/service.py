"""The accounts domain's rules beyond identity's own: identity's notices go out as operator mail,
rendered from their templates and queued with the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.email.service import queue_email, render
from malipo.identity.notices import register_notice_sender


async def send_identity_mail(
    session: AsyncSession,
    template: str,
    *,
    to: str,
    now: datetime,
    client_id: uuid.UUID | None,
    context: dict[str, Any],
) -> None:
    """Render ``template`` and queue it to ``to`` in ``session``'s transaction."""
    subject, text, html = render(template, **context)
    await queue_email(
        session, to=to, subject=subject, text=text, html=html, purpose=template, now=now, client_id=client_id
    )


register_notice_sender(send_identity_mail)
