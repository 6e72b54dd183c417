"""Merchants' WhatsApp: named sessions, bulk batches and one row per message."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base, EncryptedText


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


class WhatsAppMessageType(StrEnum):
    """What a message carries; the values are the Cloud API's ``type``."""

    TEXT = "text"
    IMAGE = "image"
    DOCUMENT = "document"


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
