"""Messages malipo sends: emails now; SMS and WhatsApp join them later."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
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
