"""Messaging: SMS, WhatsApp and email senders."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Sms(Protocol):
    """An SMS gateway (Africa's Talking today): one message to many numbers, a result per number."""

    async def send(self, to: list[str], message: str, sender_id: str | None = None) -> Sequence[Any]: ...


@runtime_checkable
class WhatsApp(Protocol):
    """A WhatsApp Business sender (the Cloud API today)."""

    async def send_text(self, to: str, body: str, preview_url: bool = False) -> Any: ...

    async def send_image(self, to: str, link: str, caption: str | None = None) -> Any: ...

    async def send_document(
        self, to: str, link: str, caption: str | None = None, filename: str | None = None
    ) -> Any: ...


@runtime_checkable
class Email(Protocol):
    """An outgoing mail server (SMTP today): a built message in, the server's reply out."""

    async def deliver(self, message: EmailMessage) -> str: ...
