"""Resolving a reconciliation exception: attach it to a merchant, write it off, or refund the
payer. Each is one balanced journal (a refund's when the rail's reversal result comes), recorded
on the item with who, when and why; an item is resolved once.

- attach (missing in malipo): SUSPENSE → the merchant's payments wallet, and the merchant's
  collection fee (its tariff) from its service wallet to fee revenue, in the same journal;
- write off (any): the difference to the WRITE_OFF account: a receipt in suspense leaves
  suspense; a receipt the rail does not have, or the part of an amount it does not agree with,
  corrects the clearing account;
- refund (missing in malipo): the payer is paid back through the rail's reversal. A rail without
  one answers 409 at once; otherwise the item is PENDING until the reversal's result, then
  SUSPENSE → clearing (``complete_refund``).
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.errors import Conflict, NotFound, ValidationFailed
from malipo.core.money import Money
from malipo.identity.clients import client_by_id
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.providers.base import ReversalOutcome, ReversalRequest, Status
from malipo.providers.registry import AIRTEL, MPESA, mobile_money_for
from malipo.reconciliation import repository
from malipo.reconciliation.models import ItemKind, ItemStatus, ReconciliationItem, Resolution
from malipo.refunds import callbacks as refund_callbacks
from malipo.refunds.service import ResultMismatch
from malipo.worker.registry import enqueue

REVERSE_JOB = "reconciliation.reverse"
NETWORKS = {"daraja": MPESA, "airtel": AIRTEL}


class ExceptionNotFound(NotFound):
    code = "reconciliation_item_not_found"
    title = "No such reconciliation exception"


class AlreadyResolved(Conflict):
    code = "already_resolved"
    title = "This exception is already resolved"


class NotAnException(Conflict):
    code = "not_an_exception"
    title = "A matched item has nothing to resolve"


class ActionNotAllowed(Conflict):
    code = "action_not_allowed"
    title = "This action does not fit this kind of exception"


class ReversalNotAvailable(Conflict):
    code = "reversal_not_available"
    title = "Reversal not available on this rail"


class UnknownClient(ValidationFailed):
    code = "unknown_client"
    title = "No such client"


async def resolve(
    session: AsyncSession, who: Principal, item_id: uuid.UUID, action: Resolution, *, settings: Settings,
    now: datetime, client_id: uuid.UUID | None = None, note: str | None = None,
) -> ReconciliationItem:  # fmt: skip
    """Resolve the exception ``item_id`` by ``action`` (see the module docstring)."""
    item = await repository.locked_item(session, item_id)
    if item is None:
        raise ExceptionNotFound(f"no reconciliation exception {item_id}")
    if item.kind == ItemKind.MATCHED:
        raise NotAnException(f"item {item_id} is matched")
    if item.status != ItemStatus.OPEN:
        raise AlreadyResolved(f"exception {item_id} is {item.status} ({item.resolution})")
    if action == Resolution.ATTACH:
        journal_id = await _attach(session, item, client_id or item.client_id, settings, now)
    elif action == Resolution.WRITE_OFF:
        journal_id = await _write_off(session, item, now)
    else:
        await _ask_refund(session, item, settings, now)
        journal_id = None
    item.resolution = action
    item.resolution_note = note
    item.resolution_journal_id = journal_id
    item.resolved_by = who.id
    item.resolved_at = now
    item.status = ItemStatus.PENDING if action == Resolution.REFUND else ItemStatus.RESOLVED
    item.updated_at = now
    await session.flush()
    return item


async def _mode_of(session: AsyncSession, item: ReconciliationItem) -> str:
    run = await repository.run_by_id(session, item.run_id)
    assert run is not None
    return run.mode


async def _attach(
    session: AsyncSession, item: ReconciliationItem, client_id: uuid.UUID | None, settings: Settings,
    now: datetime,
) -> uuid.UUID:  # fmt: skip
    if item.kind != ItemKind.MISSING_IN_MALIPO or item.suspense_journal_id is None:
        raise ActionNotAllowed("only money received with no record (held in suspense) can be attached")
    if client_id is None:
        raise UnknownClient.for_field("clientId", "name the client whose payments wallet receives it")
    client = await client_by_id(session, client_id)
    if client is None:
        raise UnknownClient.for_field("clientId", f"no client {client_id}")
    mode, amount, currency = await _mode_of(session, item), item.rail_amount or 0, item.currency
    fee = (await collections.collection_fee(session, settings, client.id, Money(amount, currency))).amount
    owner = ledger.owner_key(client_id=client.id)

    async def wallet(kind: AccountKind) -> uuid.UUID:
        return await ledger.account_id(
            session, owner=owner, kind=kind, currency=currency, mode=mode, client_id=client.id, now=now
        )

    suspense = await ledger.system_account_id(session, AccountKind.SUSPENSE, currency, mode, now)
    legs = [
        ledger.Leg(suspense, -amount, currency),
        ledger.Leg(await wallet(AccountKind.PAYMENTS_WALLET), amount, currency),
    ]
    if fee > 0:
        revenue = await ledger.system_account_id(session, AccountKind.FEE_REVENUE, currency, mode, now)
        legs += [
            ledger.Leg(await wallet(AccountKind.SERVICE_WALLET), -fee, currency),
            ledger.Leg(revenue, fee, currency),
        ]
    posted = await ledger.post_journal(
        session, legs, kind="reconciliation_attach", mode=mode, now=now, client_id=client.id,
        description=f"{item.receipt or item.match_key} attached from reconciliation",
        idempotency_key=f"reconciliation:attach:{item.id}",
        details={"item_id": str(item.id), "receipt": item.receipt, "fee": fee},
    )  # fmt: skip
    item.client_id = client.id
    return posted.journal.id


async def _write_off(session: AsyncSession, item: ReconciliationItem, now: datetime) -> uuid.UUID:
    mode, currency = await _mode_of(session, item), item.currency
    write_off = await ledger.system_account_id(session, AccountKind.WRITE_OFF, currency, mode, now)
    if item.kind == ItemKind.MISSING_IN_MALIPO:
        source = await ledger.system_account_id(session, AccountKind.SUSPENSE, currency, mode, now)
        if item.suspense_journal_id is None:  # never booked (no amount): nothing to move
            raise ActionNotAllowed("this receipt was never booked into suspense")
        difference = -(item.rail_amount or 0)  # out of suspense
    else:
        source = await ledger.system_account_id(
            session, AccountKind.MOBILE_MONEY_CLEARING, currency, mode, now
        )
        # The clearing account holds -malipo_amount for it; the rail says -rail_amount.
        difference = -((item.rail_amount or 0) - (item.malipo_amount or 0))
    if difference == 0:
        raise ActionNotAllowed("there is no difference to write off")
    posted = await ledger.post_journal(
        session, [ledger.Leg(source, difference, currency), ledger.Leg(write_off, -difference, currency)],
        kind="reconciliation_write_off", mode=mode, now=now, client_id=item.client_id,
        description=f"Reconciliation write-off: {item.kind} {item.receipt or item.match_key}",
        idempotency_key=f"reconciliation:write_off:{item.id}", details={"item_id": str(item.id)},
    )  # fmt: skip
    return posted.journal.id


def _reversal(item: ReconciliationItem, settings: Settings) -> ReversalRequest:
    return ReversalRequest(
        receipt=item.receipt or "", amount=item.rail_amount or 0, reference=f"recon-{item.id.hex[:12]}",
        callback_token=_reversal_token(settings, item.id), remarks="Reconciliation refund",
    )  # fmt: skip


def _reversal_token(settings: Settings, item_id: uuid.UUID) -> str:
    return collections.callback_token(settings, item_id, purpose="reconciliation-reversal")


async def item_for_reversal_token(
    session: AsyncSession, settings: Settings, token: str
) -> ReconciliationItem | None:
    """The item waiting for the reversal whose result address carries ``token``, if any."""
    for item in await repository.refunds_in_flight(session):
        if hmac.compare_digest(token, _reversal_token(settings, item.id)):
            return item
    return None


async def apply_reversal_result(
    session: AsyncSession, item: ReconciliationItem, result: ReversalOutcome, now: datetime
) -> None:
    """The rail's reversal result for ``item``, checked against what was asked (the rail's id
    for the request, the receipt, the amount) before money moves; a repeat changes nothing."""
    wrong = []
    if item.resolution_reference is not None and result.provider_reference not in (
        None,
        item.resolution_reference,
    ):
        wrong.append("ConversationID")
    if result.status == Status.SUCCEEDED:
        if result.amount is not None and result.amount != item.rail_amount:
            wrong.append("Amount")
        if result.original_receipt is not None and result.original_receipt != item.receipt:
            wrong.append("OriginalTransactionID")
    if wrong:
        raise ResultMismatch(f"the callback's {' and '.join(wrong)} is not this reconciliation refund's")
    await complete_refund(session, item.id, succeeded=result.status == Status.SUCCEEDED, now=now)


async def _ask_refund(
    session: AsyncSession, item: ReconciliationItem, settings: Settings, now: datetime
) -> None:
    if item.kind != ItemKind.MISSING_IN_MALIPO or item.suspense_journal_id is None or not item.receipt:
        raise ActionNotAllowed("only a receipt received with no record (held in suspense) can be refunded")
    mode = await _mode_of(session, item)
    rail = mobile_money_for(settings, NETWORKS.get(item.rail, MPESA), mode)  # no HTTP: nothing is sent
    if not rail.reverses:
        raise ReversalNotAvailable("reversal not available on this rail")
    # The reversal goes out from the worker, after this commits (outbox).
    enqueue(session, REVERSE_JOB, {"item_id": str(item.id)}, now=now)


async def record_refund_sent(
    session: AsyncSession, item_id: uuid.UUID, provider_reference: str, now: datetime
) -> None:
    item = await repository.locked_item(session, item_id)
    if item is not None and item.status == ItemStatus.PENDING:
        item.resolution_reference = provider_reference
        item.updated_at = now


async def complete_refund(
    session: AsyncSession, item_id: uuid.UUID, *, succeeded: bool, now: datetime
) -> bool:
    """The reversal's result: on success, one journal SUSPENSE → clearing (the money left the
    rail) and the item RESOLVED; on failure the item is OPEN again (resolve it another way).
    False, changing nothing, when the item is not waiting for a refund (a repeated result)."""
    item = await repository.locked_item(session, item_id)
    if item is None or item.status != ItemStatus.PENDING or item.resolution != Resolution.REFUND:
        return False
    if not succeeded:
        item.status, item.resolution, item.updated_at = ItemStatus.OPEN, None, now
        return True
    mode, currency, amount = await _mode_of(session, item), item.currency, item.rail_amount or 0
    suspense = await ledger.system_account_id(session, AccountKind.SUSPENSE, currency, mode, now)
    clearing = await ledger.system_account_id(session, AccountKind.MOBILE_MONEY_CLEARING, currency, mode, now)
    posted = await ledger.post_journal(
        session, [ledger.Leg(suspense, -amount, currency), ledger.Leg(clearing, amount, currency)],
        kind="reconciliation_refund", mode=mode, now=now, description=f"Refunded {item.receipt} to the payer",
        idempotency_key=f"reconciliation:refund:{item.id}", details={"item_id": str(item.id)},
    )  # fmt: skip
    item.resolution_journal_id = posted.journal.id
    item.status, item.resolved_at, item.updated_at = ItemStatus.RESOLVED, now, now
    return True


async def reversal_to_send(
    session: AsyncSession, item_id: uuid.UUID, settings: Settings
) -> tuple[str, str, ReversalRequest] | None:
    """What the reverse job sends: (rail network, mode, request); None if nothing is pending."""
    item = await repository.item_by_id(session, item_id)
    if item is None or item.status != ItemStatus.PENDING or item.resolution_reference is not None:
        return None
    return NETWORKS.get(item.rail, MPESA), await _mode_of(session, item), _reversal(item, settings)


refund_callbacks.on_reversal_result(
    refund_callbacks.ReversalReceiver(find=item_for_reversal_token, apply=apply_reversal_result)
)
