"""The rail's payout results (ResultURL), queue timeouts (QueueTimeOutURL) and status answers.

Each is refused, and changes nothing, when its address is unknown (404), its body is not JSON
(415) or not a bounded result of the rail (422), or it names another request than the payout's
(409). A success for another amount or receiver than was asked is taken (200) but held for review.
The rail's parser reads the raw body; this module acts on the neutral outcome.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from malipo.collections.callbacks import UnsupportedMediaType, daraja_rail, is_json, malformed
from malipo.collections.service import CallbackMismatch
from malipo.core.logging import get_logger
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.payouts import banks, service
from malipo.payouts.models import Payout
from malipo.providers.base import MalformedCallback, MobileMoney, PayoutOutcome, Status
from malipo.reviews.records import Received

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


async def _payout(request: Request, token: str, session: Session) -> tuple[Payout, MobileMoney, bytes]:
    """The payout of the token, its rail (to parse with) and the JSON body; 404, 415 refused."""
    try:
        payout = await service.payout_for_token(session, token)
    except service.UnknownPayoutToken:
        log.warning("callback.unknown_token", provider="daraja", kind="payout")
        raise
    if not is_json(request):
        log.warning("callback.malformed", provider="daraja", reference=payout.reference, reason="media type")
        raise UnsupportedMediaType("a Daraja result is sent as application/json")
    # The rail whose results arrive here (Daraja's), whatever the payout's network: one sent before
    # its network was refused is still answered.
    return payout, daraja_rail(request.app.state.settings), await request.body()


def _refuse_malformed(payout: Payout, exc: MalformedCallback) -> Exception:
    log.warning("callback.malformed", provider="daraja", reference=payout.reference)
    return malformed(exc)


def _check_ids(payout: Payout, outcome: PayoutOutcome) -> None:
    wrong = service.result_mismatch(payout, outcome.our_id, outcome.provider_reference)
    if wrong is not None:
        log.warning(
            "callback.mismatch", provider="daraja", kind="payout", reference=payout.reference, fields=wrong,
            result_code=outcome.result_code,
        )  # fmt: skip
        raise CallbackMismatch(f"the result's {wrong} is not this payout's")


def _received(request: Request, payout: Payout, outcome: PayoutOutcome) -> Received:
    """What the rail says it paid: to the phone, or to the bank's paybill and account."""
    if payout.channel != "bank":
        return Received(outcome.amount, outcome.party)
    paybill = banks.bank_paybill(request.app.state.settings, payout.network_code)
    extra = (("paybill", paybill, outcome.party), ("account", payout.account_number, outcome.account))
    return Received(outcome.amount, None, extra)


@router.post("/daraja/{token}/result", name="Callbacks.DarajaResult")
async def b2c_result(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    payout, rail, body = await _payout(request, token, session)
    try:
        result = rail.parse_payout_result(body, to_business=payout.channel == "bank")
    except MalformedCallback as exc:
        raise _refuse_malformed(payout, exc) from None
    _check_ids(payout, result)
    received = _received(request, payout, result) if result.status == Status.SUCCEEDED else None
    outcome = service.Outcome(
        result.result_code, result.result_desc, result.receipt, result.provider_reference, received=received
    )
    await service.finish(session, payout, outcome, now=clock.now())
    return rail.callback_reply()


@router.post("/daraja/{token}/timeout", name="Callbacks.DarajaTimeout")
async def b2c_timeout(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    """The request timed out in the rail's queue before it was processed: nothing was paid."""
    payout, rail, body = await _payout(request, token, session)
    try:
        result = rail.parse_payout_timeout(body)
    except MalformedCallback as exc:
        raise _refuse_malformed(payout, exc) from None
    _check_ids(payout, result)
    await service.finish(
        session, payout, service.Outcome(result.result_code, result.result_desc), now=clock.now()
    )
    return rail.callback_reply()


@router.post("/daraja/{token}/status", name="Callbacks.DarajaStatus")
async def status_result(
    token: str, request: Request, session: Session, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    """The answer to a status query about a payout whose result never came.

    A completed payout it reports must be this payout's and is compared with what was asked;
    otherwise the next query is scheduled, or after the last one the payout fails.
    """
    payout, rail, body = await _payout(request, token, session)
    try:
        answer = rail.parse_payout_status(body)
    except MalformedCallback as exc:
        raise _refuse_malformed(payout, exc) from None
    found = answer.outcome
    now = clock.now()
    if answer.completed:
        _check_ids(payout, found)
        received = _received(request, payout, found)
        outcome = service.Outcome(found.result_code, found.result_desc, found.receipt, received=received)
        await service.finish(session, payout, outcome, now=now)
        return rail.callback_reply()
    query = service.MAX_STATUS_QUERIES
    if answer.attempt is not None:
        query = min(answer.attempt, service.MAX_STATUS_QUERIES)
    if query < service.MAX_STATUS_QUERIES:
        service.schedule_reconcile(session, payout.id, query + 1, settings=settings, now=now)
    else:
        await service.finish(session, payout, service.Outcome(found.result_code, found.result_desc), now=now)
    return rail.callback_reply()
