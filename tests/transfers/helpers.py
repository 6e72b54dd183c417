"""What the transfer tests share: a funded merchant with an API user, its principal, and the code
the API user was sent (read from the operator's mailbox, as a developer reads it)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.email.models import MailMessage
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger.models import AccountKind
from tests.factories import make_api_user, make_client, make_funded_wallet, wallet_balances

# Union Trust Bank (Sierra Leone, code 003): paid through the bank rail. The simulator settles
# any account number but its documented test numbers (docs/bank-rail.md).
SL_ACCOUNT = "0031234567890"
KCB_ACCOUNT = "1011234567890"  # KCB (Kenya): paid by M-Pesa B2B, not this route
PAYMENTS_FUNDS = 100_000_00
SERVICE_FUNDS = 1_000_00
_CODE = re.compile(r"\b([0-9]{6})\b")


@dataclass(frozen=True)
class Sender:
    client_id: uuid.UUID
    api_user_id: uuid.UUID
    email: str
    who: Principal


async def make_sender(session: AsyncSession, tag: str, *, now: datetime) -> Sender:
    """A merchant whose sandbox payments wallet holds PAYMENTS_FUNDS and service wallet SERVICE_FUNDS,
    with an API user (email ``dev@{tag}.example``), acting as that API user's sandbox key."""
    client = await make_client(session, tag, now=now)
    merchant = await make_api_user(session, client, tag, now=now)
    await make_funded_wallet(session, client.id, PAYMENTS_FUNDS, now=now, kind=AccountKind.PAYMENTS_WALLET)
    await make_funded_wallet(session, client.id, SERVICE_FUNDS, now=now)
    who = Principal(
        kind=PrincipalKind.API_KEY, id=merchant.api_user_id, client_id=client.id, role_ids=(),
        role_names=frozenset({"Developer"}), mode=KeyMode.TEST,
    )  # fmt: skip
    return Sender(client.id, merchant.api_user_id, f"dev@{tag}.example", who)


async def last_code(session: AsyncSession, email: str) -> str:
    """The code in the newest transfer-code mail to ``email``."""
    mail = await session.scalar(
        select(MailMessage)
        .where(MailMessage.to_address == email, MailMessage.purpose == "transfer_otp")
        .order_by(MailMessage.created_at.desc(), MailMessage.id.desc())
        .limit(1)
    )
    assert mail is not None, f"no code was mailed to {email}"
    found = _CODE.search(mail.text_body)
    assert found is not None, mail.text_body
    return found.group(1)


async def balances(
    session: AsyncSession, sender: Sender, now: datetime
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(balance, held) of the payments wallet, then of the service wallet."""
    return await wallet_balances(session, sender.client_id, now=now)
