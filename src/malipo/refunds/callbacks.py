"""Daraja's reversal results: ``/callbacks/daraja/{token}/reversal`` (its ResultURL and
QueueTimeOutURL), found by the per-refund secret in the address.

Refused, and nothing changes, when the address is unknown (404), the body is not JSON (415) or
not a bounded reversal result (422), or it names another request, amount or receipt than the
refund's (409). A repeated result is answered as taken and changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from malipo.collections.callbacks import (
    UnsupportedMediaType,
    daraja_rail,
    is_json,
    malformed,
    unknown_callback,
)
from malipo.core.logging import get_logger
from malipo.http.callback_sources import DarajaCallbackSource
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback
from malipo.refunds import service

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


@router.post("/daraja/{token}/reversal", name="Callbacks.DarajaReversal", dependencies=[DarajaCallbackSource])
async def reversal_result(
    token: str, request: Request, session: Session, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    try:
        refund = await service.refund_for_token(session, token)
    except service.UnknownRefundToken:
        unknown_callback(request, "daraja", kind="refund")
        raise
    if not is_json(request):
        log.warning("callback.malformed", provider="daraja", reference=refund.reference, reason="media type")
        raise UnsupportedMediaType("a Daraja result is sent as application/json")
    rail = daraja_rail(settings)
    try:
        result = rail.parse_reversal_result(await request.body())
    except MalformedCallback as exc:
        log.warning("callback.malformed", provider="daraja", reference=refund.reference)
        raise malformed(exc) from None
    await service.apply_result(session, refund, result, now=clock.now())
    return rail.callback_reply()
