"""Meta's WhatsApp Cloud API: the client (``client``) and a simulator of its protocol (``simulator``)."""

from __future__ import annotations

from malipo.providers.whatsapp_cloud.client import (
    SentMessage,
    StatusUpdate,
    WhatsAppCloudClient,
    WhatsAppError,
    parse_status_webhook,
    verify_webhook_signature,
)

__all__ = [
    "SentMessage",
    "StatusUpdate",
    "WhatsAppCloudClient",
    "WhatsAppError",
    "parse_status_webhook",
    "verify_webhook_signature",
]
