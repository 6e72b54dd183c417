"""Mail malipo sends: operator mail, and merchants' email through their own SMTP servers."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base, EncryptedText


class MailStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    # No SMTP server configured: kept for the operator's dev mailbox instead of sent.
    STORED = "stored"
    FAILED = "failed"


class MailMessage(Base):
    __tablename__ = "mail_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"), index=True)
    # What the message is for (client_credentials, client_rejected, password_reset, api_key …).
    purpose: Mapped[str] = mapped_column(String(50))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    # Bodies may carry credentials (temporary passwords, API keys): encrypted at rest.
    text_body: Mapped[str] = mapped_column(EncryptedText)
    html_body: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(10), default=MailStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Mailer(Base):
    """An API user's own SMTP server (Pay Hero's "mailer"): one per API user, re-registering replaces it."""

    __tablename__ = "mailers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    api_user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_users.id", ondelete="CASCADE"), unique=True
    )
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    username: Mapped[str] = mapped_column(String(320))
    password: Mapped[str] = mapped_column(EncryptedText)
    # implicit (465), starttls (required), or none: plain text, only when registered insecure.
    tls: Mapped[str] = mapped_column(String(10))
    insecure: Mapped[bool] = mapped_column(Boolean, default=False)
    # Registered with a sandbox key: unless MALIPO_SMTP_ALLOW_PRIVATE says otherwise, only such a
    # mailer may reach a host on a loopback, private or link-local address (a local test server).
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MerchantEmailStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class MerchantEmail(Base):
    """One email a merchant sent through its mailer, to one recipient of a batch."""

    __tablename__ = "merchant_emails"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mailer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailers.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[str] = mapped_column(String(32))
    sender_email: Mapped[str] = mapped_column(String(320))
    sender_name: Mapped[str | None] = mapped_column(String(200))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    recipient_email: Mapped[str] = mapped_column(String(320))
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(EncryptedText)
    html_body: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(10), default=MerchantEmailStatus.QUEUED)
    # The server's last answer: its acceptance, or why it failed.
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_merchant_emails_client_id_batch_id", "client_id", "batch_id"),)
