"""Ask every rail for its balance and keep the answers (a history, newest wins).

What callers can rely on: ``ask_all`` asks each mode's M-Pesa shortcodes (Daraja answers at the
balance callback) and Airtel's account (answered in its reply); each ask is a row, committed
before the call, that its answer fills in once (``apply_answer``: an answer naming another
query's ids is refused and changes nothing; a repeat changes nothing). ``latest`` is the newest
row per mode, rail and party.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.core.crypto import derived_token, sha256_hex
from malipo.core.errors import Conflict, NotFound
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.providers.base import BalanceOutcome, NotSupported, RailError
from malipo.providers.registry import AIRTEL, MPESA, mobile_money_for
from malipo.railbalances.models import RailBalance

log = get_logger("malipo.railbalances")

REFRESH_JOB = "rail_balance.refresh"
MODES = ("test", "live")
NETWORKS = (MPESA, AIRTEL)
ASKED, ANSWERED, FAILED = "asked", "answered", "failed"


class UnknownBalanceToken(NotFound):
    code = "unknown_callback"
    title = "Unknown callback"


class BalanceMismatch(Conflict):
    code = "callback_mismatch"
    title = "The callback does not match the request"


def callback_token(settings: Settings, query_id: uuid.UUID) -> str:
    assert settings.secret_key is not None, "settings.require_secrets() first"
    return derived_token(settings.secret_key.get_secret_value(), f"rail-balance:{query_id}")


async def ask_all(db: Database, settings: Settings, http: httpx.AsyncClient, clock: Clock) -> list[uuid.UUID]:
    """Ask every rail and party in every mode; the ids of the rows asked (answers may come later)."""
    asked = []
    for mode in MODES:
        for network in NETWORKS:
            rail = mobile_money_for(settings, network, mode, http)
            try:
                parties = rail.balance_parties()
            except Exception as exc:  # a rail not configured in this mode: nothing to ask
                log.warning("rail_balance.no_parties", rail=rail.name, mode=mode, error=str(exc))
                continue
            for party in parties:
                asked.append(await _ask(db, settings, clock, rail.name, network, mode, party, http))
    return asked


async def _ask(
    db: Database, settings: Settings, clock: Clock, rail_name: str, network: str, mode: str, party: str,
    http: httpx.AsyncClient,
) -> uuid.UUID:  # fmt: skip
    query_id = new_id()
    token = callback_token(settings, query_id)
    async with db.transaction() as session:
        session.add(
            RailBalance(
                id=query_id, mode=mode, rail=rail_name, party=party, status=ASKED,
                callback_token_hash=sha256_hex(token), asked_at=clock.now(),
            )
        )  # fmt: skip
    rail = mobile_money_for(settings, network, mode, http)
    try:
        answer = await rail.balance(party, token)
    except (NotSupported, RailError) as exc:
        async with db.transaction() as session:
            await _record(session, query_id, FAILED, clock.now(), result_code="1", result_desc=str(exc)[:300])
        log.warning("rail_balance.refused", rail=rail_name, mode=mode, party=party, error=str(exc))
        return query_id
    if answer is not None:
        async with db.transaction() as session:
            row = await session.get(RailBalance, query_id)
            assert row is not None
            await apply_answer(session, row, answer, now=clock.now())
    return query_id


async def _record(
    session: AsyncSession, query_id: uuid.UUID, status: str, now: datetime, **values: object
) -> bool:
    moved = await session.execute(
        update(RailBalance)
        .where(RailBalance.id == query_id, RailBalance.status == ASKED)
        .values(status=status, answered_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def apply_answer(
    session: AsyncSession, row: RailBalance, answer: BalanceOutcome, *, now: datetime
) -> bool:
    """Fill in the ask's answer once; False if it was answered already."""
    wrong = []
    if row.conversation_id and answer.provider_reference and answer.provider_reference != row.conversation_id:
        wrong.append("ConversationID")
    if row.originator_conversation_id and answer.our_id and answer.our_id != row.originator_conversation_id:
        wrong.append("OriginatorConversationID")
    if wrong:
        raise BalanceMismatch(f"the callback's {' and '.join(wrong)} is not this query's")
    status = ANSWERED if answer.result_code == "0" else FAILED
    accounts = [asdict(line) | {"amounts": list(line.amounts)} for line in answer.accounts]
    return await _record(
        session, row.id, status, now, accounts=accounts, result_code=answer.result_code[:20],
        result_desc=answer.result_desc[:300], rail_time=answer.answered_at,
        conversation_id=row.conversation_id or answer.provider_reference,
        originator_conversation_id=row.originator_conversation_id or answer.our_id,
    )  # fmt: skip


async def row_for_token(session: AsyncSession, token: str) -> RailBalance:
    found = await session.scalar(
        select(RailBalance).where(RailBalance.callback_token_hash == sha256_hex(token))
    )
    if found is None:
        raise UnknownBalanceToken("no balance query has this callback address")
    return found


async def latest(session: AsyncSession) -> list[RailBalance]:
    """The newest ask per mode, rail and party (answered or not), by mode, rail and party."""
    newest = (
        select(
            RailBalance.mode, RailBalance.rail, RailBalance.party, func.max(RailBalance.asked_at).label("at")
        )
        .group_by(RailBalance.mode, RailBalance.rail, RailBalance.party)
        .subquery()
    )
    rows = await session.scalars(
        select(RailBalance)
        .join(
            newest,
            (RailBalance.mode == newest.c.mode)
            & (RailBalance.rail == newest.c.rail)
            & (RailBalance.party == newest.c.party)
            & (RailBalance.asked_at == newest.c.at),
        )
        .order_by(RailBalance.mode, RailBalance.rail, RailBalance.party)
    )
    return list(rows.all())


async def latest_answered(session: AsyncSession, mode: str, rail: str, party: str) -> RailBalance | None:
    return await session.scalar(
        select(RailBalance)
        .where(RailBalance.mode == mode, RailBalance.rail == rail, RailBalance.party == party)
        .where(RailBalance.status == ANSWERED)
        .order_by(RailBalance.asked_at.desc())
        .limit(1)
    )
