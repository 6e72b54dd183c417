"""What the collection and payout services need to hold an item for review, and how the operator's
decision reaches them: each registers a ``Resolver`` for its kind, so reviews import neither."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, MalipoError
from malipo.core.logging import get_logger
from malipo.reviews import repository
from malipo.reviews.models import CallbackReview, ReviewKind, ReviewStatus

log = get_logger("malipo.reviews")


class NotInReview(Conflict):
    code = "not_in_review"
    title = "The item is not held for review"


class _Journaled(Protocol):
    journal_id: uuid.UUID | None


class _Accept(Protocol):
    def __call__(
        self, session: AsyncSession, subject_id: uuid.UUID, received_amount: int | None, *, now: datetime
    ) -> Awaitable[_Journaled]: ...


class _Reject(Protocol):
    def __call__(
        self, session: AsyncSession, subject_id: uuid.UUID, *, now: datetime
    ) -> Awaitable[object]: ...


@dataclass(frozen=True, slots=True)
class Resolver:
    """How one kind of item leaves REVIEW: ``accept`` answers the item with the journal it posted;
    both raise ``NotInReview``, changing nothing, when the item is not in REVIEW."""

    accept: _Accept
    reject: _Reject


_resolvers: dict[ReviewKind, Resolver] = {}


def register_resolver(kind: ReviewKind, resolver: Resolver) -> None:
    """The collection and payout services call this once, when they are imported."""
    _resolvers[kind] = resolver


def resolver_for(kind: ReviewKind) -> Resolver:
    try:
        return _resolvers[kind]
    except KeyError:
        raise RuntimeError(f"no resolver registered for {kind.value} reviews") from None


@dataclass(frozen=True, slots=True)
class Received:
    """What the provider says it did, to compare with what malipo asked. ``amount`` in minor
    units; ``party`` the payer or receiver as the provider wrote it; None where it said nothing."""

    amount: int | None
    party: str | None
    # Other parties the provider names that must match too (``label``, asked, received).
    extra: tuple[tuple[str, str | None, str | None], ...] = ()


def same_party(asked: str | None, received: str | None) -> bool:
    """Whether ``received`` names ``asked``: equal digits, equal where the provider did not mask
    them (``2547 ***** 149``), or its SHA-256 hex (how Daraja hides MSISDNs in some callbacks).
    A party the provider did not name is not compared."""
    if received is None or asked is None:
        return True
    received = received.replace(" ", "").removeprefix("+")
    if received.startswith("0") and asked.startswith("254"):  # Kenyan local form: 07…, 01…
        received = "254" + received[1:]
    if len(received) == 64 and "*" not in received:
        return hmac.compare_digest(received.lower(), hashlib.sha256(asked.encode()).hexdigest())
    if len(received) != len(asked):
        return False
    return all(r == "*" or r == a for r, a in zip(received, asked, strict=True))


def leading_party(value: object) -> str | None:
    """``"254708374149 - John Doe"`` → ``"254708374149"``: the number before Daraja's name."""
    if value is None:
        return None
    text = str(value)
    return text.split(" - ", 1)[0].strip() or None


def differences(asked_amount: int, asked_party: str | None, received: Received) -> list[str]:
    """How ``received`` differs from what was asked, for people; empty if it matches."""
    found = []
    if received.amount is None:
        found.append("the amount was not stated")
    elif received.amount != asked_amount:
        found.append("the amount differs")
    if not same_party(asked_party, received.party):
        found.append("the party differs")
    found += [f"the {label} differs" for label, a, r in received.extra if not same_party(a, r)]
    return found


def _shown(received: Received) -> str:
    parts = [received.party or ""] + [f"{label} {r}" for label, _a, r in received.extra if r is not None]
    return " / ".join(part for part in parts if part)


def open_review(
    session: AsyncSession,
    *,
    kind: ReviewKind,
    subject_id: uuid.UUID,
    client_id: uuid.UUID,
    mode: str,
    reference: str,
    asked_amount: int,
    currency: str,
    asked_party: str | None,
    received: Received,
    receipt: str | None,
    reason: str,
    now: datetime,
) -> CallbackReview:
    """Record an item held for review (its own status is set to REVIEW by its service)."""
    review = CallbackReview(
        kind=kind.value, subject_id=subject_id, client_id=client_id, mode=mode, reference=reference,
        status=ReviewStatus.OPEN.value, asked_amount=asked_amount, received_amount=received.amount,
        currency=currency, asked_party=asked_party,
        received_party=_shown(received)[:120] or None, receipt=receipt, reason=reason[:200],
        created_at=now,
    )  # fmt: skip
    repository.add_review(session, review)
    log.warning(
        "callback.held_for_review", kind=kind.value, reference=reference, reason=reason,
        asked_amount=asked_amount, received_amount=received.amount,
    )  # fmt: skip
    return review


Item = TypeVar("Item")


async def leave_review(
    session: AsyncSession,
    model: type[Item],
    item_id: uuid.UUID,
    values: dict[str, Any],
    not_in_review: MalipoError,
) -> Item:
    """Move a collection or payout out of REVIEW with a guarded UPDATE and return it fresh; raise
    ``not_in_review`` (nothing changed) when it is not in REVIEW: resolved already, or never held."""
    table: Any = model
    moved = await session.execute(
        update(table)
        .where(table.id == item_id, table.status == "REVIEW")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise not_in_review
    found: Item | None = await session.scalar(
        select(table).where(table.id == item_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found
