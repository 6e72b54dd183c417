"""Fraud rules of transfers: each rule that fires yields a flag with a reason and a weight; the
score (the sum of the weights) decides: allow, ask for the one-time code, or block.

The operator sets a client's thresholds (``FraudRules``); a client without a row uses
``DEFAULT_RULES``, under which every transfer needs the one-time code (``otp_score`` 0) and a
transfer over the per-transaction limit or to a blocked destination is refused. Velocity is over
the last 24 hours, of the transfers still standing (pending, processing, completed, in review).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.money import Money
from malipo.transfers import repository
from malipo.transfers.models import BlockedDestination, FraudRules


class Decision(StrEnum):
    ALLOW = "allow"
    OTP = "otp"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Rules:
    """Amounts in minor units of the client's currency."""

    max_amount: int = 1_000_000_00
    daily_count: int = 50
    daily_value: int = 5_000_000_00
    destination_daily_count: int = 10
    destination_daily_value: int = 2_000_000_00
    duplicate_window_minutes: int = 10
    new_destination_amount: int = 100_000_00
    otp_score: int = 0
    block_score: int = 100


DEFAULT_RULES = Rules()
RULE_FIELDS = tuple(f.name for f in fields(Rules))

# What each rule adds to the score when it fires.
WEIGHTS = {
    "amount_over_limit": 100,
    "blocked_destination": 100,
    "daily_count": 50,
    "daily_value": 50,
    "destination_daily_count": 50,
    "destination_daily_value": 50,
    "duplicate": 50,
    "new_destination_large_amount": 30,
}
WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Flag:
    rule: str
    reason: str
    weight: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Assessment:
    flags: tuple[Flag, ...]
    score: int
    decision: Decision


async def rules_for(session: AsyncSession, client_id: uuid.UUID) -> tuple[Rules, bool]:
    """The client's rules, and whether the operator set them (False: the defaults)."""
    row = await session.get(FraudRules, client_id)
    if row is None:
        return DEFAULT_RULES, False
    return Rules(**{name: getattr(row, name) for name in RULE_FIELDS}), True


async def set_rules(session: AsyncSession, client_id: uuid.UUID, rules: Rules, *, now: datetime) -> Rules:
    row = await session.get(FraudRules, client_id)
    if row is None:
        row = FraudRules(client_id=client_id, updated_at=now, **asdict(rules))
        session.add(row)
    else:
        for name, value in asdict(rules).items():
            setattr(row, name, value)
        row.updated_at = now
    await session.flush()
    return rules


def decide(score: int, rules: Rules) -> Decision:
    if score >= rules.block_score:
        return Decision.BLOCK
    if score >= rules.otp_score:
        return Decision.OTP
    return Decision.ALLOW


async def assess(
    session: AsyncSession,
    *,
    client_id: uuid.UUID,
    mode: str,
    api_user_id: uuid.UUID | None,
    destination: str,
    amount: Money,
    now: datetime,
) -> Assessment:
    """Run every rule on a transfer about to be made (earlier entries of the same request count
    once they are flushed)."""
    rules, _ = await rules_for(session, client_id)
    flags: list[Flag] = []

    def flag(rule: str, reason: str) -> None:
        flags.append(Flag(rule, reason, WEIGHTS[rule]))

    def fmt(minor: int) -> str:
        return str(Money(minor, amount.currency))

    if amount.amount > rules.max_amount:
        flag("amount_over_limit", f"{amount} is above the limit of {fmt(rules.max_amount)} per transfer")
    blocked = await repository.blocked_reason(session, client_id, destination)
    if blocked is not None:
        flag("blocked_destination", f"{destination} is on the block list: {blocked}")
    since = now - WINDOW
    if api_user_id is not None:
        count, value = await repository.standing_totals(
            session, client_id, mode, since, api_user_id=api_user_id
        )
        if count + 1 > rules.daily_count:
            flag("daily_count", f"more than {rules.daily_count} transfers by this API user in 24 hours")
        if value + amount.amount > rules.daily_value:
            flag("daily_value", f"more than {fmt(rules.daily_value)} sent by this API user in 24 hours")
    count, value = await repository.standing_totals(session, client_id, mode, since, destination=destination)
    if count + 1 > rules.destination_daily_count:
        flag(
            "destination_daily_count",
            f"more than {rules.destination_daily_count} transfers to {destination} in 24 hours",
        )
    if value + amount.amount > rules.destination_daily_value:
        flag(
            "destination_daily_value",
            f"more than {fmt(rules.destination_daily_value)} to {destination} in 24 hours",
        )
    window = now - timedelta(minutes=rules.duplicate_window_minutes)
    if await repository.has_duplicate(session, client_id, mode, destination, amount.amount, window):
        flag(
            "duplicate",
            f"{amount} to {destination} was asked for already in the last"
            f" {rules.duplicate_window_minutes} minutes",
        )
    if amount.amount >= rules.new_destination_amount and not await repository.has_paid(
        session, client_id, mode, destination
    ):
        flag(
            "new_destination_large_amount",
            f"{amount} to {destination}, never paid before (at least {fmt(rules.new_destination_amount)})",
        )
    score = sum(f.weight for f in flags)
    return Assessment(tuple(flags), score, decide(score, rules))


async def block(
    session: AsyncSession, client_id: uuid.UUID, destination: str, reason: str, *, now: datetime
) -> BlockedDestination:
    """Put ``destination`` on the client's block list (a second time answers the first entry)."""
    for entry in await repository.blocklist(session, client_id):
        if entry.destination == destination:
            return entry
    entry = BlockedDestination(client_id=client_id, destination=destination, reason=reason, created_at=now)
    session.add(entry)
    await session.flush()
    return entry
