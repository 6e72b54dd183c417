"""Daraja's reversal results: ``/callbacks/daraja/{token}/reversal`` (its ResultURL and
QueueTimeOutURL), found by the per-refund secret in the address.

Refused, and nothing changes, when the address is unknown (404), the body is not JSON (415) or
not a bounded reversal result (422), or it names another request, amount or receipt than the
refund's (409). A repeated result is answered as taken and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.collections.callbacks import (
    UnsupportedMediaType,
    daraja_rail,
    is_json,
    malformed,
    unknown_callback,
)
from malipo.config import Settings
from malipo.core.logging import get_logger
from malipo.http.callback_sources import DarajaCallbackSource
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback, ReversalOutcome
from malipo.refunds import service

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


@dataclass(frozen=True, slots=True)
class ReversalReceiver:
    """Another domain's reversals (a reconciliation exception refunded to the payer) whose results
    come to the same address: ``find`` the request a token belongs to (None: not one of its own),
    ``apply`` the checked result to it (raising :class:`service.ResultMismatch` when it is not its
    result), in the callback's transaction."""

    find: Callable[[AsyncSession, Settings, str], Awaitable[Any | None]]
    apply: Callable[[AsyncSession, Any, ReversalOutcome, datetime], Awaitable[None]]


_receivers: list[ReversalReceiver] = []


def on_reversal_result(receiver: ReversalReceiver) -> None:
    if receiver not in _receivers:
        _receivers.append(receiver)


async def _receiver_for(
    session: AsyncSession, settings: Settings, token: str
) -> tuple[ReversalReceiver, Any] | None:
    for receiver in _receivers:
        found = await receiver.find(session, settings, token)
        if found is not None:
            return receiver, found
    return None


@router.post("/daraja/{token}/reversal", name="Callbacks.DarajaReversal", dependencies=[DarajaCallbackSource])
async def reversal_result(
    token: str, request: Request, session: Session, clock: ClockDep, settings: SettingsDep
) -> dict[str, Any]:
    refund = None
    other = None
    try:
        refund = await service.refund_for_token(session, token)
    except service.UnknownRefundToken:
        other = await _receiver_for(session, settings, token)
        if other is None:
            unknown_callback(request, "daraja", kind="refund")
            raise
    reference = refund.reference if refund is not None else "reconciliation"
    if not is_json(request):
        log.warning("callback.malformed", provider="daraja", reference=reference, reason="media type")
        raise UnsupportedMediaType("a Daraja result is sent as application/json")
    rail = daraja_rail(settings)
    try:
        result = rail.parse_reversal_result(await request.body())
    except MalformedCallback as exc:
        log.warning("callback.malformed", provider="daraja", reference=reference)
        raise malformed(exc) from None
    if refund is not None:
        await service.apply_result(session, refund, result, now=clock.now())
    else:
        assert other is not None
        receiver, found = other
        await receiver.apply(session, found, result, clock.now())
    return rail.callback_reply()
