"""Matching a rail's statement to malipo's collections, and the report's totals: pure functions,
no database (the service reads and writes)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from malipo.collections.models import Collection, CollectionStatus
from malipo.providers.base import RailTransaction
from malipo.reconciliation.models import ItemKind


@dataclass(slots=True)
class Found:
    """One item of a run as matching found it (before it is stored)."""

    match_key: str
    kind: ItemKind
    rail: str
    currency: str
    detail: str
    receipt: str | None = None
    rail_amount: int | None = None
    malipo_amount: int | None = None
    party: str | None = None
    bill_reference: str | None = None
    rail_time: datetime | None = None
    collection_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None


def receipt_key(rail: str, receipt: str) -> str:
    return f"{rail}:receipt:{receipt}"


def match_statement(
    rail: str, statement: Iterable[RailTransaction], credited: list[Collection], known: list[Collection]
) -> list[Found]:
    """Each statement row against the collections malipo credited (``credited``: SUCCESS, on this
    rail, finished in the period): by receipt first, then by the account reference the push
    carried (our reference: the CheckoutRequestID's collection, whose STK query gave no receipt).
    A row with no credited collection is missing in malipo (linked to ``known``'s collection of
    that reference, if any: a push malipo failed that the payer paid); a credited collection no row
    names is missing at the rail."""
    by_receipt = {c.mpesa_receipt: c for c in credited if c.mpesa_receipt}
    by_reference = {c.reference: c for c in credited}
    anyone = {c.reference: c for c in known}
    used: set[uuid.UUID] = set()
    found: list[Found] = []
    for row in statement:
        collection = by_receipt.get(row.receipt)
        if collection is None and row.reference:
            candidate = by_reference.get(row.reference)
            if candidate is not None and candidate.mpesa_receipt in (None, row.receipt):
                collection = candidate
        item = Found(
            receipt_key(rail, row.receipt), ItemKind.MATCHED, rail, row.currency, "", receipt=row.receipt,
            rail_amount=row.amount, party=row.party, bill_reference=row.reference, rail_time=row.completed_at,
        )  # fmt: skip
        if collection is None or collection.id in used:
            linked = anyone.get(row.reference or "")
            item.kind = ItemKind.MISSING_IN_MALIPO
            item.detail = "money received at the rail with no collection credited in malipo"
            if linked is not None:
                item.collection_id, item.client_id = linked.id, linked.client_id
                item.detail += f" (collection {linked.reference} is {linked.status})"
        else:
            used.add(collection.id)
            item.collection_id, item.client_id = collection.id, collection.client_id
            item.malipo_amount = collection.amount
            if collection.amount == row.amount:
                item.detail = f"collection {collection.reference}"
            else:
                item.kind = ItemKind.AMOUNT_MISMATCH
                item.detail = f"collection {collection.reference}: malipo credited another amount"
        found.append(item)
    for collection in credited:
        if collection.id not in used:
            found.append(
                Found(
                    f"{rail}:collection:{collection.id}",
                    ItemKind.MISSING_AT_RAIL,
                    rail,
                    collection.currency,
                    f"collection {collection.reference} credited; the rail has no such receipt",
                    receipt=collection.mpesa_receipt,
                    malipo_amount=collection.amount,
                    party=collection.phone,
                    bill_reference=collection.reference,
                    rail_time=collection.completed_at,
                    collection_id=collection.id,
                    client_id=collection.client_id,
                )
            )
    return found


def paid_after_failing(rail: str, collection: Collection, receipt: str | None) -> Found:
    """A collection malipo failed (its enquiries gave no answer) that the rail now says was paid."""
    return Found(
        receipt_key(rail, receipt) if receipt else f"{rail}:collection:{collection.id}",
        ItemKind.MISSING_IN_MALIPO, rail, collection.currency,
        f"collection {collection.reference} failed in malipo after its enquiries; the rail says it was paid",
        receipt=receipt, rail_amount=collection.amount, party=collection.phone,
        bill_reference=collection.reference, collection_id=collection.id, client_id=collection.client_id,
    )  # fmt: skip


def credited_total(collections: Iterable[Collection], currency: str) -> int:
    return sum(
        c.amount for c in collections if c.status == CollectionStatus.SUCCESS and c.currency == currency
    )


_KEYS = {
    ItemKind.MATCHED: "matched",
    ItemKind.MISSING_IN_MALIPO: "missingInMalipo",
    ItemKind.MISSING_AT_RAIL: "missingAtRail",
    ItemKind.AMOUNT_MISMATCH: "amountMismatch",
}


def totals(items: Iterable[Any], currency: str) -> dict[str, Any]:
    """The report's figures for ``currency`` (minor units): rail total, each kind's count and rail
    and malipo amounts. ``items`` are stored items or :class:`Found` (same field names)."""
    out: dict[str, Any] = {"railTotal": 0}
    for key in _KEYS.values():
        out[key] = {"count": 0, "railAmount": 0, "malipoAmount": 0}
    for item in items:
        if item.currency != currency:
            continue
        entry = out[_KEYS[ItemKind(item.kind)]]
        entry["count"] += 1
        entry["railAmount"] += item.rail_amount or 0
        entry["malipoAmount"] += item.malipo_amount or 0
        out["railTotal"] += item.rail_amount or 0
    return out
