"""One-time codes that step a transfer up: six digits, good for five minutes, kept only as an HMAC.

The HMAC is keyed with the gateway's secret key and bound to the transfer, so a code read from one
transfer's row says nothing of another's, and a copy of the database alone cannot test guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.crypto import encryptor
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.email import service as email
from malipo.identity import users
from malipo.transfers.models import Transfer
from malipo.worker.registry import enqueue

log = get_logger("malipo.transfers")

OTP_DIGITS = 6
OTP_TTL = timedelta(minutes=5)
MAX_FAILURES = 5  # wrong codes before the transfer is cancelled
MAX_RESENDS = 3
RESEND_INTERVAL = timedelta(seconds=30)
OTP_SMS_JOB = "transfer.otp_sms"


def secret_key(settings: Settings) -> str:
    assert settings.secret_key is not None, "settings.require_secrets() first"
    return settings.secret_key.get_secret_value()


def masked(account: str) -> str:
    """An account number as messages show it: its last four characters."""
    return f"••••{account[-4:]}"


def new_code() -> str:
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


def code_hash(secret_key: str, transfer_id: uuid.UUID, code: str) -> str:
    message = f"transfer-otp:{transfer_id}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def code_matches(secret_key: str, transfer_id: uuid.UUID, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(code_hash(secret_key, transfer_id, code), stored_hash)


async def send_code(session: AsyncSession, transfer: Transfer, settings: Settings, now: datetime) -> None:
    """A new code for the transfer (the old one dead), to the API user's email and phone."""
    code = new_code()
    transfer.otp_hash = code_hash(secret_key(settings), transfer.id, code)
    transfer.otp_expires_at = now + OTP_TTL
    transfer.otp_sent_at = now
    transfer.updated_at = now
    api_user = await users.api_user_by_id(session, transfer.api_user_id)
    amount = Money(transfer.amount, transfer.currency)
    minutes = int(OTP_TTL.total_seconds() // 60)
    account = masked(transfer.account_number)
    what = f"transfer {transfer.reference} of {amount} to {transfer.bank_name} account {account}"
    if api_user is not None and api_user.developer_email:
        try:
            await email.queue_email(
                session, to=api_user.developer_email,
                subject=f"Your malipo code for transfer {transfer.reference}",
                text=f"Your code to authorise {what} is {code}.\n\nIt expires in {minutes} minutes. "
                "Nobody from malipo will ever ask you for it.\n",
                purpose="transfer_otp", now=now, client_id=transfer.client_id,
            )  # fmt: skip
        except ValueError:
            log.warning("transfer.otp_no_email", reference=transfer.reference)
    if api_user is not None and api_user.developer_phone_number:
        # The code crosses the outbox encrypted: the jobs table never holds it in the clear.
        sealed = encryptor().encrypt(code, context=f"transfer-otp:{transfer.id}")
        payload = {"transfer_id": str(transfer.id), "to": api_user.developer_phone_number, "code": sealed}
        enqueue(session, OTP_SMS_JOB, payload, now=now)
    await session.flush()
    log.info("transfer.otp_sent", reference=transfer.reference)


def otp_text(transfer: Transfer, code: str) -> str:
    amount = Money(transfer.amount, transfer.currency)
    return (
        f"malipo code {code} for transfer {transfer.reference}:"
        f" {amount} to {masked(transfer.account_number)}."
        " Valid 5 min. Never share it."
    )


def sealed_code(transfer_id: uuid.UUID, sealed: str) -> str:
    return encryptor().decrypt(sealed, context=f"transfer-otp:{transfer_id}")
