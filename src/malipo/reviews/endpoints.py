"""/api/v1/operator/review: collections and payouts whose provider result differs from what
was asked, for operator staff to accept or reject (rules in ``malipo.reviews.service``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session
from malipo.http.permissions import OP, CurrentPrincipal, callers
from malipo.http.schemas import CamelModel
from malipo.http.tags import REVIEW
from malipo.reviews import service
from malipo.reviews.models import CallbackReview, ReviewKind, ReviewStatus

router = APIRouter(tags=[REVIEW])


class ReviewOut(CamelModel):
    kind: str
    id: uuid.UUID  # the collection's or payout's id
    reference: str
    client_id: uuid.UUID
    mode: str
    status: str
    reason: str
    asked_amount: str  # major units of ``currency``, as a decimal string
    received_amount: str | None  # None: the provider did not state it
    currency: str
    asked_party: str | None
    received_party: str | None
    receipt: str | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None


class ReviewPage(CamelModel):
    items: list[ReviewOut]
    total: int
    page: int
    page_size: int


def review_out(review: CallbackReview) -> ReviewOut:
    def money(minor: int | None) -> str | None:
        return None if minor is None else Money(minor, review.currency).format()

    return ReviewOut(
        kind=review.kind, id=review.subject_id, reference=review.reference, client_id=review.client_id,
        mode=review.mode, status=review.status, reason=review.reason,
        asked_amount=money(review.asked_amount) or "", received_amount=money(review.received_amount),
        currency=review.currency,
        asked_party=review.asked_party, received_party=review.received_party, receipt=review.receipt,
        created_at=review.created_at, resolved_at=review.resolved_at, resolved_by=review.resolved_by,
    )  # fmt: skip


@router.get(
    "/operator/review",
    response_model=ReviewPage,
    name="Review.List",
    summary="List held collections and payouts",
    openapi_extra=callers(OP),
)
async def list_reviews(
    who: CurrentPrincipal,
    session: Session,
    status: Annotated[
        ReviewStatus | None, Query(description="OPEN, ACCEPTED or REJECTED")
    ] = ReviewStatus.OPEN,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=500)] = 50,
) -> ReviewPage:
    """Collections and payouts held because what the provider reported (amount, payer or receiver)
    differs from what was asked: what was asked beside what was received. Open ones by default."""
    rows, total = await service.list_reviews(session, status=status, page=page, per=page_size)
    return ReviewPage(items=[review_out(r) for r in rows], total=total, page=page, page_size=page_size)


@router.post(
    "/operator/review/{kind}/{id:uuid}/accept", response_model=ReviewOut, name="Review.Accept",
    summary="Accept what the provider reported",
    openapi_extra=callers(OP),
)  # fmt: skip
async def accept_review(
    kind: ReviewKind, id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ReviewOut:
    """Accept the amount received: a collection is credited with it and the merchant told success;
    a payout settles it from its hold, the rest released (409 if it is more than was held)."""
    return review_out(await service.accept(session, who, kind, id, now=clock.now()))


@router.post(
    "/operator/review/{kind}/{id:uuid}/reject", response_model=ReviewOut, name="Review.Reject",
    summary="Reject a held collection or payout",
    openapi_extra=callers(OP),
)  # fmt: skip
async def reject_review(
    kind: ReviewKind, id: uuid.UUID, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> ReviewOut:
    """Reject it: the collection or payout fails, nothing is credited or settled, its holds are
    released and the merchant is told it failed."""
    return review_out(await service.reject(session, who, kind, id, now=clock.now()))
