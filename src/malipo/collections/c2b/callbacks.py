"""M-Pesa's C2B validation and confirmation: ``/callbacks/daraja/c2b/{token}/validation`` and
``/confirmation``. The token finds the merchant's own shortcode (its SHA-256 is stored) or is the
operator shortcode's, one per mode (derived from the secret key, stored nowhere).

An unknown token is a 404 and changes nothing. Validation answers within M-Pesa's 8 seconds
with no outbound call: accept, or reject with a ``C2B000xx`` code. A confirmation is taken once
per TransID (a repeat answers success and changes nothing); a body that is not JSON (415) or
not a C2B notice (422) changes nothing; a confirmation at a merchant's address for another
shortcode is a 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from malipo.collections.c2b import service
from malipo.collections.callbacks import UnsupportedMediaType, is_json, malformed, unknown_callback
from malipo.collections.service import UnknownCallbackToken
from malipo.core.logging import get_logger
from malipo.http.callback_sources import DarajaCallbackSource
from malipo.http.deps import ClockDep, DatabaseDep, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback
from malipo.providers.daraja.c2b import (
    C2B_PREFIX,
    C2bVerdict,
    confirmation_reply,
    parse_c2b_notice,
    validation_reply,
)

log = get_logger("malipo.c2b")

router = APIRouter(tags=[PROVIDER_CALLBACKS], include_in_schema=False)


async def _address(request: Request, db: DatabaseDep, settings: SettingsDep, token: str) -> service.Address:
    async with db.transaction() as session:
        address = await service.address_of(session, settings, token)
    if address is None:
        unknown_callback(request, "daraja", kind="c2b")
        raise UnknownCallbackToken("no C2B registration has this address")
    return address


@router.post(
    f"{C2B_PREFIX}/{{token}}/validation",
    name="Callbacks.DarajaC2bValidation",
    dependencies=[DarajaCallbackSource],
)
async def c2b_validation(
    token: str, request: Request, db: DatabaseDep, settings: SettingsDep, clock: ClockDep
) -> dict[str, Any]:
    address = await _address(request, db, settings, token)
    try:
        notice = parse_c2b_notice(await request.body())
    except MalformedCallback as exc:
        amount = any(p.field == "TransAmount" for p in exc.problems)
        log.warning("c2b.validation.malformed", fields=[p.field for p in exc.problems])
        return validation_reply(C2bVerdict.INVALID_AMOUNT if amount else C2bVerdict.OTHER)
    async with db.transaction() as session:
        verdict = await service.validate(session, settings, address, notice, now=clock.now())
    log.info("c2b.validated", trans_id=notice.trans_id, verdict=verdict.value)
    return validation_reply(verdict)


@router.post(
    f"{C2B_PREFIX}/{{token}}/confirmation",
    name="Callbacks.DarajaC2bConfirmation",
    dependencies=[DarajaCallbackSource],
)
async def c2b_confirmation(
    token: str, request: Request, db: DatabaseDep, settings: SettingsDep, clock: ClockDep
) -> dict[str, Any]:
    address = await _address(request, db, settings, token)
    if not is_json(request):
        raise UnsupportedMediaType("a Daraja C2B confirmation is sent as application/json")
    try:
        notice = parse_c2b_notice(await request.body())
    except MalformedCallback as exc:
        log.warning("callback.malformed", provider="daraja", kind="c2b", reason="validation_failed")
        raise malformed(exc) from None
    async with db.transaction() as session:
        await service.confirm(session, settings, address, notice, now=clock.now())
    return confirmation_reply()
