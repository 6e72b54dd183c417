"""Pay Hero's shapes of malipo's collections and payouts: the status word its clients know,
amounts as whole shillings, and the bodies of the callbacks posted to a merchant's callback_url.

Translation only. The webhook job renders a callback from the subject's id when it delivers it,
through the renderers this module registers with ``webhooks`` (``register_renderers``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.models import Collection, CollectionStatus
from malipo.core.money import Money
from malipo.payouts import service as payouts
from malipo.payouts import settlement as payout_settlement
from malipo.payouts.models import Payout, PayoutStatus
from malipo.webhooks import service as webhooks

# What Pay Hero's clients know as QUEUED: pushed but unanswered (SENT), or held for review.
_SHOWN_AS_QUEUED = frozenset({"QUEUED", "SENT", "REVIEW"})


def payhero_status(status: str) -> str:
    """A collection's or payout's status as Pay Hero names it: open ones are QUEUED."""
    return "QUEUED" if status in _SHOWN_AS_QUEUED else status


def whole_shillings(minor: int, currency: str = collections.CURRENCY) -> int | float:
    """Minor units as Pay Hero writes amounts: a whole number, or a float when there are cents."""
    value = Money(minor, currency).to_decimal()
    return int(value) if value == value.to_integral_value() else float(value)


def iso(moment: Any) -> str:
    """A timestamp as Pay Hero writes it: ISO 8601, ``Z`` for UTC."""
    return str(moment.isoformat()).replace("+00:00", "Z")


def collection_callback(collection: Collection) -> dict[str, Any]:
    """The body Pay Hero posts to a merchant's callback_url (failure shape inferred, see the reference)."""
    success = collection.status == CollectionStatus.SUCCESS
    return {
        "forward_url": "",
        "response": {
            "Amount": whole_shillings(collection.amount, collection.currency),
            "CheckoutRequestID": collection.checkout_request_id,
            "ExternalReference": collection.external_reference or "",
            "MerchantRequestID": collection.merchant_request_id or "",
            "MpesaReceiptNumber": collection.mpesa_receipt or "",
            "Phone": f"+{collection.phone}",
            "ResultCode": collection.result_code,
            "ResultDesc": collection.result_desc or "",
            "Status": "Success" if success else "Failed",
        },
        "status": success,
    }


def payout_callback(payout: Payout) -> dict[str, Any]:
    """Pay Hero's outbound-payment callback (the newer platform's documented shape)."""
    success = payout.status == PayoutStatus.SUCCESS
    return {
        "success": success,
        "status": "success" if success else "failed",
        "message": payout.result_desc or "",
        "reference": payout.reference,
        "external_reference": payout.external_reference or "",
        "amount": whole_shillings(payout.amount, payout.currency),
        "currency": payout.currency,
        "transaction_id": payout.transaction_id or "",
        "transaction_date": iso(payout.completed_at or payout.created_at),
        "transaction_type": "outbound_payment",
        "provider_reference": payout.transaction_id or "",
        "provider": payouts.payout_provider(payout),
        "callback_urls": None,
    }


async def _collection_callbacks(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    return {c.id: collection_callback(c) for c in await collections.get_collections(session, ids)}


async def _payout_callbacks(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    return {p.id: payout_callback(p) for p in await payouts.get_payouts(session, ids)}


def register_renderers() -> None:
    """Let the webhook job render collections' and payouts' callbacks in Pay Hero's shapes."""
    webhooks.register_renderer(collections.CALLBACK_SUBJECT, _collection_callbacks)
    webhooks.register_renderer(payout_settlement.CALLBACK_SUBJECT, _payout_callbacks)


# Importing this module (the app does; the worker's job modules name it) registers them.
register_renderers()
