"""Items held for review: the operator's list, and accepting or rejecting one.

What callers can rely on:
- ``list_reviews`` gives what malipo asked beside what the provider reported, newest first.
- ``accept`` and ``reject`` resolve an OPEN review once: the item's own guarded transition out of
  REVIEW (``update … where status = 'REVIEW'``) and the review's (``where status = 'OPEN'``) run
  in the caller's transaction with the item's journal and the merchant's callback. Resolving a
  resolved item is a 409 and changes nothing; another kind or an unknown id is a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, NotFound
from malipo.core.logging import get_logger
from malipo.identity.principals import Principal
from malipo.reviews import repository
from malipo.reviews.models import CallbackReview, ReviewKind, ReviewStatus
from malipo.reviews.records import NotInReview, resolver_for

log = get_logger("malipo.reviews")


class ReviewNotFound(NotFound):
    code = "review_not_found"
    title = "No such review"


class AlreadyResolved(Conflict):
    code = "review_resolved"
    title = "The review is resolved already"


class NothingReceived(Conflict):
    code = "nothing_received"
    title = "The provider reported no money moved"


async def list_reviews(
    session: AsyncSession, *, status: ReviewStatus | None, page: int, per: int
) -> tuple[list[CallbackReview], int]:
    """One page of reviews (in ``status`` when given), newest first, and how many there are."""
    return await repository.page_of_reviews(session, status=status, page=page, per=per)


async def _open(session: AsyncSession, kind: ReviewKind, subject_id: uuid.UUID) -> CallbackReview:
    review = await repository.review_of(session, kind, subject_id)
    if review is None:
        raise ReviewNotFound(f"no {kind.value} {subject_id} is held for review")
    if review.status != ReviewStatus.OPEN:
        raise AlreadyResolved(f"the review of {kind.value} {subject_id} is {review.status.lower()} already")
    return review


async def _close(
    session: AsyncSession,
    review: CallbackReview,
    status: ReviewStatus,
    who: Principal,
    now: datetime,
    journal_id: uuid.UUID | None,
) -> CallbackReview:
    if not await repository.close_review(
        session, review, status, resolved_by=who.id, now=now, journal_id=journal_id
    ):
        raise AlreadyResolved(f"the review of {review.kind} {review.subject_id} is resolved already")
    log.info(
        "review.resolved", kind=review.kind, reference=review.reference, status=status.value,
        operator=str(who.id),
    )  # fmt: skip
    return review


async def accept(
    session: AsyncSession, who: Principal, kind: ReviewKind, subject_id: uuid.UUID, *, now: datetime
) -> CallbackReview:
    """Take the amount the provider reported: a collection is credited with it, a payout settles
    it from its hold (refused with a 409 when it is more than the hold)."""
    review = await _open(session, kind, subject_id)
    if review.received_amount is not None and review.received_amount <= 0:
        raise NothingReceived(f"{kind.value} {review.reference}: the provider reported 0 moved; reject it")
    try:
        journal_id = (
            await resolver_for(kind).accept(session, subject_id, review.received_amount, now=now)
        ).journal_id
    except NotInReview:
        raise AlreadyResolved(f"{kind.value} {subject_id} is not held for review any more") from None
    return await _close(session, review, ReviewStatus.ACCEPTED, who, now, journal_id)


async def reject(
    session: AsyncSession, who: Principal, kind: ReviewKind, subject_id: uuid.UUID, *, now: datetime
) -> CallbackReview:
    """Refuse what the provider reported: the item FAILS, nothing is credited or settled, its
    holds are released and the merchant is told it failed."""
    review = await _open(session, kind, subject_id)
    try:
        await resolver_for(kind).reject(session, subject_id, now=now)
    except NotInReview:
        raise AlreadyResolved(f"{kind.value} {subject_id} is not held for review any more") from None
    return await _close(session, review, ReviewStatus.REJECTED, who, now, None)
