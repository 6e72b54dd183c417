"""What the collections' sub-topics share: limits, errors, the callback token, the wallet ids."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.crypto import derived_token
from malipo.core.errors import Conflict, MalipoError, NotFound, ValidationFailed
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.providers import registry

SEND_JOB = "collection.send"
RECONCILE_JOB = "collection.reconcile"
# The kind of a merchant callback about a collection (``webhooks.queue``'s subject).
CALLBACK_SUBJECT = "collection"
CURRENCY = "KES"
MOBILE_NETWORKS = registry.MOBILE_NETWORKS  # Pay Hero's network codes, served or not
MAX_AMOUNT = 250_000  # M-Pesa's largest single transaction, in shillings
# malipo's own final result code (not one of Daraja's): the STK push never reached M-Pesa, so the
# payer was never prompted. A collection whose worker died after claiming it and before pushing ends
# with it, and so does one whose push was still waiting for a retry when it was given up.
NOT_SENT = 1099
NOT_SENT_DESC = "not sent: the request never reached M-Pesa"
# The country whose mobile numbers the mobile-money networks serve.
NETWORK_COUNTRY = "KE"


class InactiveChannel(ValidationFailed):
    code = "inactive_channel"
    title = "The payment channel is not active"


class ServiceWalletTooLow(ValidationFailed):
    code = "insufficient_service_wallet"
    title = "The service wallet cannot cover the fee"


class CollectionNotFound(NotFound):
    code = "transaction_not_found"
    title = "No such transaction"


class UnknownCallbackToken(NotFound):
    code = "unknown_callback"
    title = "Unknown callback"


class CallbackMismatch(Conflict):
    """A provider's callback names another request than the one its address belongs to."""

    code = "callback_mismatch"
    title = "The callback does not match the request"


class NetworkNotAvailable(MalipoError):
    status = 400
    code = "network_not_available"
    title = "The mobile network is not available yet"


def require_served_network(network_code: str) -> None:
    """NetworkNotAvailable naming ``network_code`` when no rail serves it yet (nothing is held)."""
    try:
        registry.require_mobile_network(network_code)
    except registry.ProviderUnavailable as exc:
        raise NetworkNotAvailable.for_field("network_code", str(exc)) from None


def payer_message(network_code: str, result_code: int | None, result_desc: str | None) -> str:
    """What the payer reads on malipo's pages about a collection that did not end in a payment."""
    return registry.payer_message(network_code, result_code, result_desc)


def reconcile_delay(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.stk_query_after_seconds)


def callback_token(settings: Settings, subject_id: uuid.UUID, *, purpose: str = "daraja-stk") -> str:
    """The secret in a Daraja callback URL of ``subject_id`` (a collection's CallBackURL, a
    payout's ResultURL …): derived from the id with the secret key, so it is stored nowhere (only
    its SHA-256, to find the subject) and the worker makes it again when it sends the request."""
    assert settings.secret_key is not None, "settings.require_secrets() first"
    return derived_token(settings.secret_key.get_secret_value(), f"{purpose}:{subject_id}")


async def merchant_wallet_id(
    session: AsyncSession, client_id: uuid.UUID, mode: str, kind: AccountKind, now: datetime
) -> uuid.UUID:
    """The id of the merchant's wallet of ``kind`` in ``mode``, without a query once seen (hot path)."""
    return await ledger.account_id(
        session, owner=ledger.owner_key(client_id=client_id), kind=kind, currency=CURRENCY, mode=mode,
        client_id=client_id, now=now,
    )  # fmt: skip
