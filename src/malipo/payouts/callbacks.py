"""The rails' payout results: Daraja's at ``/callbacks/daraja/{token}/result`` (ResultURL),
``/timeout`` (QueueTimeOutURL) and ``/status`` (status answers), found by the per-payout secret in
their URL; and the payout results that come to Airtel's app-wide address
(``/callbacks/airtel/{token}``, the collections' route, which hands over a body naming no
collection: ``airtel_payout_callback``).

Each is refused, and changes nothing, when its address is unknown (404), its body is not JSON
(415) or not a bounded result of the rail (422), or it names another request than the payout's
(409). A success for another amount or receiver than was asked is taken (200) but held for review.
The rail's parser reads the raw body; ``service`` acts on the neutral outcome.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from malipo.collections.callbacks import (
    UnsupportedMediaType,
    daraja_rail,
    is_json,
    malformed,
    on_app_callback,
    unknown_callback,
)
from malipo.core.logging import get_logger
from malipo.http.callback_sources import DarajaCallbackSource
from malipo.http.deps import ClockDep, DatabaseDep, Session, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.payouts import bulk, service
from malipo.payouts.models import Payout
from malipo.providers.base import MalformedCallback, MobileMoney, Status

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


async def _payout(request: Request, token: str, session: Session) -> tuple[Payout, MobileMoney, bytes]:
    """The payout of the token, its rail (to parse with) and the JSON body; 404, 415 refused."""
    try:
        payout = await service.payout_for_token(session, token)
    except service.UnknownPayoutToken:
        unknown_callback(request, "daraja", kind="payout")
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


@router.post("/daraja/{token}/result", name="Callbacks.DarajaResult", dependencies=[DarajaCallbackSource])
async def b2c_result(token: str, request: Request, db: DatabaseDep) -> dict[str, Any]:
    """Applied with the other results arriving meanwhile, in one transaction (``bulk.result_writer``)."""
    rail = daraja_rail(request.app.state.settings)
    if not is_json(request):
        async with db.transaction() as session:  # an unknown address is refused as such first
            await _payout(request, token, session)
    writer: bulk.ResultWriter = request.app.state.payout_results
    try:
        await writer.submit((token, await request.body()))
    except service.UnknownPayoutToken:
        unknown_callback(request, "daraja", kind="payout")
        raise
    except MalformedCallback as exc:
        log.warning("callback.malformed", provider="daraja", kind="payout")
        raise malformed(exc) from None
    return rail.callback_reply()


@router.post("/daraja/{token}/timeout", name="Callbacks.DarajaTimeout", dependencies=[DarajaCallbackSource])
async def b2c_timeout(token: str, request: Request, session: Session, clock: ClockDep) -> dict[str, Any]:
    """The request timed out in the rail's queue before it was processed: nothing was paid."""
    payout, rail, body = await _payout(request, token, session)
    try:
        result = rail.parse_payout_timeout(body)
    except MalformedCallback as exc:
        raise _refuse_malformed(payout, exc) from None
    service.check_result_ids(payout, result)
    await service.finish(
        session, payout, service.Outcome(result.result_code, result.result_desc), now=clock.now()
    )
    return rail.callback_reply()


@router.post("/daraja/{token}/status", name="Callbacks.DarajaStatus", dependencies=[DarajaCallbackSource])
async def status_result(
    token: str, request: Request, session: Session, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    """The answer to a status query about a payout whose result never came (``apply_status_answer``)."""
    payout, rail, body = await _payout(request, token, session)
    try:
        answer = rail.parse_payout_status(body)
    except MalformedCallback as exc:
        raise _refuse_malformed(payout, exc) from None
    await service.apply_status_answer(session, payout, answer, settings=settings, now=clock.now())
    return rail.callback_reply()


async def airtel_payout_callback(
    request: Request, network_code: str, rail: MobileMoney, body: bytes, modes: frozenset[str]
) -> bool:
    """A callback to a rail's app-wide address naming one of our payouts (by its id): applied
    like a result. False when it names none that address may settle (the route answers 404)."""
    try:
        result = rail.parse_payout_result(body, to_business=False)
    except MalformedCallback:
        return False
    if result.our_id is None:
        return False
    settings, clock = request.app.state.settings, request.app.state.clock
    async with request.app.state.db.transaction() as session:
        payout = await service.payout_for_our_id(session, result.our_id)
        if payout is None or payout.mode not in modes or payout.network_code != network_code:
            return False
        if result.status not in (Status.SUCCEEDED, Status.FAILED):
            log.info("callback.intermediate", provider=rail.name, kind="payout", reference=payout.reference)
            return True
        await service.apply_result(session, payout, result, settings=settings, now=clock.now())
    return True


on_app_callback(airtel_payout_callback)
