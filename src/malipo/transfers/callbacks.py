"""The bank rail's status reports (``/callbacks/bank/{token}``).

A report is refused, and changes nothing, when its address is unknown (404), its body is not JSON
(415) or not a bounded status report of the rail (422), or it names another transfer than the
address's (409). The rail's parser reads the raw body; this module acts on the neutral outcome.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from malipo.collections.callbacks import UnsupportedMediaType, is_json, malformed
from malipo.core.logging import get_logger
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback
from malipo.providers.registry import bank_transfer_for
from malipo.transfers import service

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


@router.post("/bank/{token}", name="Callbacks.BankStatus")
async def bank_status_report(
    token: str, request: Request, session: Session, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    try:
        transfer = await service.transfer_for_token(session, token)
    except service.UnknownTransferToken:
        log.warning("callback.unknown_token", provider="bankrail", kind="transfer")
        raise
    if not is_json(request):
        log.warning(
            "callback.malformed", provider="bankrail", reference=transfer.reference, reason="media type"
        )
        raise UnsupportedMediaType("a bank status report is sent as application/json")
    rail = bank_transfer_for(settings, transfer.mode)  # parses only: no HTTP client
    try:
        outcome = rail.parse_status_report(await request.body())
    except MalformedCallback as exc:
        log.warning("callback.malformed", provider="bankrail", reference=transfer.reference)
        raise malformed(exc) from None
    await service.apply_outcome(session, transfer, outcome, now=clock.now())
    return rail.callback_reply()
