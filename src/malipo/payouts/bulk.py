"""Many payouts of one merchant at once (a disbursement batch's chunk): ``request_payout``'s
guarantees for each, with the wallets locked once and each table written once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections import service as collections
from malipo.collections.service import CallbackMismatch
from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.core.crypto import sha256_hex
from malipo.core.errors import FieldError, MalipoError
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.db import Database
from malipo.db.group_commit import GroupCommit
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.payouts import repository, service, settlement
from malipo.payouts.models import Payout, PayoutStatus
from malipo.payouts.service import (
    CURRENCY,
    SEND_JOB,
    Destination,
    InsufficientBalance,
    PayoutRequest,
    callback_token,
    check_request,
)
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.providers.base import MalformedCallback, MobileMoney
from malipo.providers.registry import MPESA, mobile_money_for
from malipo.worker.registry import enqueue_many

log = get_logger("malipo.payouts")


@dataclass(frozen=True, slots=True)
class Refused:
    """A request of ``request_payouts`` that holds nothing, and why."""

    error: MalipoError


async def request_payouts(
    session: AsyncSession,
    requests: list[PayoutRequest],
    *,
    client_id: uuid.UUID,
    mode: str,
    api_user_id: uuid.UUID | None,
    settings: Settings,
    now: datetime,
) -> list[Payout | Refused]:
    """``request_payout`` for many requests of one merchant (a disbursement batch's chunk), in
    order, with the same guarantees for each: its amount and fee held and its send job queued in
    this transaction, or Refused (a rule, or the wallets no longer cover it) holding nothing. The
    wallets are locked once and each table written once, however many; no external references
    and no named channel."""
    answers: list[Payout | Refused | None] = [None] * len(requests)
    tariff = await pricing.tariff_for(session, settings, client_id, PricingKind.PAYOUT, CURRENCY)
    wanted: list[tuple[int, Destination, Money, Money, str]] = []
    for index, body in enumerate(requests):
        try:
            destination = check_request(settings, body, mode=mode)
        except MalipoError as exc:
            answers[index] = Refused(exc)
            continue
        amount = Money.parse(body.amount, CURRENCY)
        fee = tariff.fee(amount)
        wanted.append((index, destination, amount, fee, new_reference()))
    wallet = await ledger.merchant_wallet(
        session, client_id, AccountKind.PAYMENTS_WALLET, CURRENCY, mode, now
    )
    holds = await ledger.place_holds(
        session,
        wallet.id,
        [ledger.HoldRequest(a.amount, f"payout:{r}") for _i, _d, a, _f, r in wanted],
        now=now,
    )
    placed: list[tuple[int, Destination, Money, Money, str, uuid.UUID]] = []
    for (index, destination, amount, fee, reference), hold in zip(wanted, holds, strict=True):
        if isinstance(hold, ledger.InsufficientFunds):
            available = hold.extensions.get("available")
            answers[index] = Refused(
                InsufficientBalance(
                    f"insufficient balance: the payments wallet has {CURRENCY} {available} available, "
                    f"{amount} requested",
                    errors=[FieldError("amount", f"more than the {CURRENCY} {available} available")],
                )
            )
        else:
            placed.append((index, destination, amount, fee, reference, hold.id))
    fee_holds = await collections.hold_fees(
        session, client_id, mode, [(fee, reference) for _i, _d, _a, fee, reference, _h in placed], now
    )
    released: list[uuid.UUID] = []
    rows: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for (index, destination, amount, fee, reference, hold_id), fee_hold in zip(
        placed, fee_holds, strict=True
    ):
        if isinstance(fee_hold, MalipoError):
            answers[index] = Refused(fee_hold)
            released.append(hold_id)
            continue
        payout_id = new_id()
        row = {
            "id": payout_id, "client_id": client_id, "mode": mode, "api_user_id": api_user_id,
            "reference": reference, "external_reference": None, "channel": destination.channel,
            "network_code": requests[index].network_code, "phone": destination.phone,
            "account_number": destination.account, "amount": amount.amount, "currency": CURRENCY,
            "fee": fee.amount, "hold_id": hold_id, "fee_hold_id": fee_hold, "callback_url": None,
            "status": PayoutStatus.QUEUED.value,
            "callback_token_hash": sha256_hex(callback_token(settings, payout_id)),
            "originator_conversation_id": str(uuid.uuid4()), "conversation_id": None,
            "transaction_id": None, "result_code": None, "result_desc": None, "journal_id": None,
            "created_at": now, "updated_at": now, "sent_at": None, "completed_at": None,
        }  # fmt: skip
        rows.append(row)
        job: dict[str, Any] = {"payout_id": str(payout_id)}
        if destination.paybill is not None:
            job["paybill"] = destination.paybill
        jobs.append(job)
        answers[index] = Payout(**row)
    if released:
        await ledger.release_holds(session, released, now=now)
    await repository.insert_many(session, rows)
    await enqueue_many(session, SEND_JOB, jobs, now=now)
    log.info("payouts.queued_many", mode=mode, queued=len(rows), refused=len(requests) - len(rows))
    return [answer for answer in answers if answer is not None]


# --------------------------------------------------------------------------- results, many a commit

ResultAnswer = bool | BaseException
ResultWriter = GroupCommit[tuple[str, bytes], ResultAnswer]


async def apply_results(
    session: AsyncSession,
    results: list[tuple[str, bytes]],
    *,
    rail: MobileMoney,
    settings: Settings,
    now: datetime,
) -> list[ResultAnswer]:
    """The rail's results (the token of each payout's result address, and the body), each as
    ``service.apply_result`` applies one: True if it finished the payout, False if the payout was
    final already; or the refusal, and nothing of that result is written — UnknownPayoutToken,
    MalformedCallback, CallbackMismatch (it names another request)."""
    hashes = [sha256_hex(token) for token, _body in results]
    found = await repository.locked_by_token_hashes(session, set(hashes))
    answers: list[ResultAnswer | None] = [None] * len(results)
    known: list[tuple[Payout, service.Outcome]] = []
    known_at: list[int] = []
    for index, (token_hash, (_token, body)) in enumerate(zip(hashes, results, strict=True)):
        payout = found.get(token_hash)
        if payout is None:
            answers[index] = service.UnknownPayoutToken("no payout has this callback address")
            continue
        try:
            result = rail.parse_payout_result(body, to_business=payout.channel == "bank")
            known.append((payout, service.result_outcome(payout, result, settings=settings)))
        except (MalformedCallback, CallbackMismatch) as exc:  # nothing of it is written
            answers[index] = exc
            continue
        known_at.append(index)
    for index, moved in zip(known_at, await settlement.finish_locked(session, known, now=now), strict=True):
        answers[index] = moved
    return [answer for answer in answers if answer is not None]


def result_writer(db: Database, settings: Settings, clock: Clock) -> ResultWriter:
    """The process's Daraja payout results, applied many to a transaction (``apply_results``):
    each settlement of a merchant's payouts locks the same wallet rows, so one commit for many
    keeps them from queueing on each other. A batch that fails is applied again one by one."""

    async def apply(session: AsyncSession, results: list[tuple[str, bytes]]) -> list[ResultAnswer]:
        rail = mobile_money_for(settings, MPESA, "live")
        return await apply_results(session, results, rail=rail, settings=settings, now=clock.now())

    return GroupCommit(db, apply, name="payout results", max_batch=256, alone_after_failure=True)
