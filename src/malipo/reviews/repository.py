"""Every query on the reviews table (items held for the operator).

``records.leave_review``, the one guarded "leave REVIEW" update shared by collections and payouts,
runs on the table its caller names: the owner passes its own model, so it stays beside the
resolvers in ``records``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.reviews.models import CallbackReview, ReviewKind, ReviewStatus


def add_review(session: AsyncSession, review: CallbackReview) -> None:
    session.add(review)


async def page_of_reviews(
    session: AsyncSession, *, status: ReviewStatus | None, page: int, per: int
) -> tuple[list[CallbackReview], int]:
    """One page of reviews (in ``status`` when given), newest first, and how many there are."""
    query = select(CallbackReview)
    if status is not None:
        query = query.where(CallbackReview.status == status.value)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(CallbackReview.created_at.desc(), CallbackReview.id.desc())
        .offset((page - 1) * per)
        .limit(per)
    )
    return list(rows.all()), total


async def review_of(session: AsyncSession, kind: ReviewKind, subject_id: uuid.UUID) -> CallbackReview | None:
    """The review of ``kind``'s item ``subject_id``, if it was held."""
    found: CallbackReview | None = await session.scalar(
        select(CallbackReview).where(
            CallbackReview.kind == kind.value, CallbackReview.subject_id == subject_id
        )
    )
    return found


async def close_review(
    session: AsyncSession,
    review: CallbackReview,
    status: ReviewStatus,
    *,
    resolved_by: uuid.UUID,
    now: datetime,
    journal_id: uuid.UUID | None,
) -> bool:
    """Resolve ``review`` if it is still OPEN (guarded) and reload it; False when it was not."""
    closed = await session.execute(
        update(CallbackReview)
        .where(CallbackReview.id == review.id, CallbackReview.status == ReviewStatus.OPEN)
        .values(status=status.value, resolved_at=now, resolved_by=resolved_by, journal_id=journal_id)
        .execution_options(synchronize_session=False)
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(review)
    return True
