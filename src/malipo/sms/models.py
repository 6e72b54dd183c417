"""Messages malipo sends: operator mail, merchants' SMS, email through their own SMTP, WhatsApp."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, false
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


# -- SMS -----------------------------------------------------------------------------------------


class SmsStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class SmsBatch(Base):
    """One bulk send: the text, what was accepted and rejected, and what it cost."""

    __tablename__ = "sms_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    sender_id: Mapped[str | None] = mapped_column(String(11))
    # Texts may carry codes and personal data: encrypted at rest, like mail bodies.
    message: Mapped[str] = mapped_column(EncryptedText)
    accepted: Mapped[int]
    rejected: Mapped[int]
    segments: Mapped[int]
    cost: Mapped[int]  # minor units of ``currency``, for every accepted recipient
    currency: Mapped[str] = mapped_column(String(3))
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    created_at: Mapped[datetime]


class SmsMessage(Base):
    """One SMS to one number. Moves queued -> sent -> delivered | failed (failed also from queued)."""

    __tablename__ = "sms_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sms_batches.id"), index=True)
    phone_number: Mapped[str] = mapped_column(String(20))
    sender_id: Mapped[str | None] = mapped_column(String(11))
    message: Mapped[str] = mapped_column(EncryptedText)
    segments: Mapped[int]
    encoding: Mapped[str] = mapped_column(String(5))
    cost: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # Set on single sends; a bulk's charge is its batch's journal.
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journals.id"))
    status: Mapped[str] = mapped_column(String(10), default=SmsStatus.QUEUED)
    gateway_message_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # The provider's own word for the latest state (Success, UserInBlacklist, Buffered, …).
    gateway_status: Mapped[str | None] = mapped_column(String(40))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=0)
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_sms_messages_client_id_created_at", "client_id", "created_at"),)


# -- merchants' email ----------------------------------------------------------------------------


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


# -- WhatsApp ------------------------------------------------------------------------------------


class WhatsAppSession(Base):
    """A merchant's named WhatsApp sender (Pay Hero's ``session``): Cloud API credentials or the simulator."""

    __tablename__ = "whatsapp_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    name: Mapped[str] = mapped_column(String(100))
    backend: Mapped[str] = mapped_column(String(10))  # cloud | simulator
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    # The secret part of its status webhook URL (/callbacks/whatsapp/{token}) is derived from the id
    # with the secret key (``whatsapp.webhook_token``). Sessions made before that keep the token they
    # were given, of which only the SHA-256 is kept here.
    legacy_webhook_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("client_id", "name"),)


class WhatsAppBatch(Base):
    __tablename__ = "whatsapp_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("whatsapp_sessions.id"))
    message: Mapped[str] = mapped_column(EncryptedText)
    accepted: Mapped[int]
    rejected: Mapped[int]
    created_at: Mapped[datetime]


class WhatsAppStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class WhatsAppMessage(Base):
    """One WhatsApp message (a text, an image or a document) to one number.
    Moves queued -> sent -> delivered | failed."""

    __tablename__ = "whatsapp_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    mode: Mapped[str] = mapped_column(String(4))
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("whatsapp_sessions.id"), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("whatsapp_batches.id"), index=True)
    # Where it went: the simulator or the Cloud API (decided when it is sent).
    backend: Mapped[str | None] = mapped_column(String(10))
    phone_number: Mapped[str] = mapped_column(String(20))
    # The text, or the caption of an image or document ("" for none).
    body: Mapped[str] = mapped_column(EncryptedText)
    # text | image | document (the Cloud API's ``type``); NULL on rows older than media: text.
    message_type: Mapped[str | None] = mapped_column(String(10))
    # The image's or document's http(s) URL; it may be a signed link: encrypted at rest, like the body.
    media_url: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(10), default=WhatsAppStatus.QUEUED)
    gateway_message_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_whatsapp_messages_client_id_created_at", "client_id", "created_at"),)
