"""Daraja's account balance answers: ``/callbacks/daraja/{token}/balance`` (ResultURL and
QueueTimeOutURL), found by the per-query secret in the address. Refused, and nothing changes, for
an unknown address (404), a body not JSON (415) or not a balance result (422), another query's
ids (409); a repeat changes nothing."""

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
from malipo.http.callback_sources import DarajaCallbackSource
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback
from malipo.railbalances import service

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


@router.post("/daraja/{token}/balance", name="Callbacks.DarajaBalance", dependencies=[DarajaCallbackSource])
async def balance_result(
    token: str, request: Request, session: Session, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    try:
        row = await service.row_for_token(session, token)
    except service.UnknownBalanceToken:
        unknown_callback(request, "daraja", kind="balance")
        raise
    if not is_json(request):
        raise UnsupportedMediaType("a Daraja result is sent as application/json")
    rail = daraja_rail(settings)
    try:
        answer = rail.parse_balance_result(await request.body())
    except MalformedCallback as exc:
        raise malformed(exc) from None
    await service.apply_answer(session, row, answer, now=clock.now())
    return rail.callback_reply()
