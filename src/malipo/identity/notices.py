"""The mail identity sends: credentials, approval, rejection, deactivation, password resets.

Identity decides that a notice goes out, to whom and with what; delivering mail is a domain
above identity, which registers how (``malipo.accounts.service`` does, on import). The sender
writes the message and its send job in the caller's transaction, so a notice exists only if
the change it reports commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class NoticeSender(Protocol):
    async def __call__(
        self,
        session: AsyncSession,
        template: str,
        *,
        to: str,
        now: datetime,
        client_id: uuid.UUID | None,
        context: dict[str, Any],
    ) -> None: ...


_senders: list[NoticeSender] = []


def register_notice_sender(sender: NoticeSender) -> None:
    """Make ``sender`` the way identity's notices go out (the mail domain calls this once)."""
    _senders[:] = [sender]


async def notify(
    session: AsyncSession,
    template: str,
    *,
    to: str,
    now: datetime,
    client_id: uuid.UUID | None,
    **context: Any,
) -> None:
    """Send the mail ``template`` with ``context`` to ``to``, in ``session``'s transaction."""
    if not _senders:
        raise RuntimeError("no notice sender registered: import malipo.accounts")
    await _senders[0](session, template, to=to, now=now, client_id=client_id, context=context)
