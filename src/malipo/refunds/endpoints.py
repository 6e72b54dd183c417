"""/api/v1 routes of refunds, for API keys (in the key's mode) and the merchant's portal users.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, status

from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import CA, KEY, CurrentPrincipal, callers
from malipo.http.tags import REFUNDS
from malipo.refunds import service
from malipo.refunds.schemas import RefundIn, RefundList, RefundOut

router = APIRouter(tags=[REFUNDS])

CollectionPath = Annotated[
    str, Path(min_length=1, max_length=40, description="The collection's id, or its reference")
]
_EXAMPLES = {
    "part": {"summary": "Refund part", "value": {"amount": "50", "reason": "One item returned"}},
    "all": {"summary": "Refund all that is left", "value": {"reason": "Order cancelled"}},
}


@router.post(
    "/collections/{id}/refund", response_model=RefundOut, status_code=status.HTTP_201_CREATED,
    name="Refunds.Create", summary="Refund a collection", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def refund_collection(
    id: CollectionPath,
    body: Annotated[RefundIn, Body(openapi_examples=_EXAMPLES)],  # type: ignore[arg-type]
    who: CurrentPrincipal,
    idem: IdempotencyKey,
    session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> RefundOut:
    """Refund a successful M-Pesa collection paid into your payments wallet, in full or in part, by
    M-Pesa's reversal. The amount is held on your payments wallet until M-Pesa answers; then the
    refund completes (the money leaves the wallet) or fails (the hold is released). Refunds of a
    collection never add up to more than it collected. Send an `Idempotency-Key`."""
    amount = None if body.amount is None else Money.parse(body.amount, "KES", field="amount").amount
    refund = await service.request_refund(
        session, who, id, amount=amount, reason=body.reason, settings=settings, now=clock.now()
    )
    collection, _refunds = await service.refunds_of(session, who, str(refund.collection_id))
    reply = RefundOut.model_validate(service.refund_view(refund, collection))
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.get(
    "/collections/{id}/refunds", response_model=RefundList, name="Refunds.List",
    summary="List a collection's refunds", openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def list_refunds(id: CollectionPath, who: CurrentPrincipal, session: Session) -> RefundList:
    """The refunds of one of your collections, oldest first, with what is left to refund."""
    collection, refunds = await service.refunds_of(session, who, id)
    refunded = sum(r.amount for r in refunds if r.status != "failed")

    def money(minor: int) -> str:
        return Money(minor, collection.currency).format()

    return RefundList(
        collection_id=str(collection.id), collection_reference=collection.reference,
        collected=money(collection.amount), refunded=money(refunded),
        refundable=money(max(collection.amount - refunded, 0) if collection.status == "SUCCESS" else 0),
        currency=collection.currency,
        refunds=[RefundOut.model_validate(service.refund_view(r, collection)) for r in refunds],
    )  # fmt: skip


@router.get(
    "/refunds/{id}", response_model=RefundOut, name="Refunds.Read", summary="Get a refund",
    openapi_extra=callers(CA, KEY),
)  # fmt: skip
async def read_refund(
    id: Annotated[uuid.UUID, Path(description="The refund's id")], who: CurrentPrincipal, session: Session
) -> RefundOut:
    """One of your refunds and where it stands (pending, completed or failed)."""
    refund = await service.get_refund(session, who, id)
    collection, _refunds = await service.refunds_of(session, who, str(refund.collection_id))
    return RefundOut.model_validate(service.refund_view(refund, collection))
