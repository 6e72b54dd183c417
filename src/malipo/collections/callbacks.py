"""``/callbacks/daraja/{token}``: Daraja's STK results, found by the secret in their URL.

The callbacks that arrive together are applied together (``service.callback_writer``, a group
commit); each is answered "Accepted" only once its transaction has committed, so Daraja is never
told a result was taken that could still be lost.

A callback is refused, and changes nothing, when its address is unknown (404), its body is not
JSON (415) or not a bounded Daraja STK callback (422), or its ids are another request's (409).
A success for another amount or payer than was asked is taken (200) but held for review.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from malipo.collections import service
from malipo.config import Settings
from malipo.core.errors import FieldError, MalipoError, ValidationFailed
from malipo.core.logging import get_logger
from malipo.http.deps import DatabaseDep, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback, MobileMoney, PushOutcome, Status
from malipo.providers.registry import MPESA, mobile_money_for
from malipo.reviews.records import Received

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


class UnsupportedMediaType(MalipoError):
    status = 415
    code = "unsupported_media_type"
    title = "The body must be JSON"


def is_json(request: Request) -> bool:
    """Whether the request says its body is JSON (``application/json``, ``…+json``)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def malformed(exc: MalformedCallback) -> ValidationFailed:
    """A 422 naming the fields of the provider's body that are out of bounds (at most five)."""
    return ValidationFailed(str(exc), errors=[FieldError(p.field, p.message) for p in exc.problems])


def daraja_rail(settings: Settings) -> MobileMoney:
    """The rail whose callbacks arrive under ``/callbacks/daraja`` (M-Pesa's): it parses them.
    Made without an HTTP client, so it calls nothing; parsing is the same in either mode."""
    return mobile_money_for(settings, MPESA, "live")


def _unknown(request: Request) -> None:
    log.warning(
        "callback.unknown_token", provider="daraja", client=request.client.host if request.client else None
    )


def outcome_of(pushed: PushOutcome) -> service.Outcome:
    """The collection's outcome from the rail's callback, with what it says was paid."""
    received = Received(pushed.amount, pushed.party) if pushed.status == Status.SUCCEEDED else None
    return service.Outcome(
        pushed.result_code, pushed.result_desc, pushed.receipt, pushed.provider_request_id,
        checkout_request_id=pushed.provider_reference, received=received,
    )  # fmt: skip


@router.post("/daraja/{token}", name="Callbacks.Daraja")
async def daraja_callback(
    token: str, request: Request, db: DatabaseDep, settings: SettingsDep
) -> dict[str, Any]:
    refusal: MalipoError = UnsupportedMediaType("a Daraja callback is sent as application/json")
    rail = daraja_rail(settings)
    pushed: PushOutcome | None = None
    if is_json(request):
        try:
            pushed = rail.parse_push_callback(await request.body())
        except MalformedCallback as exc:
            refusal = malformed(exc)
    if pushed is None:
        async with db.transaction() as session:  # an unknown address is refused as such first
            try:
                collection = await service.collection_for_token(session, token)
            except service.UnknownCallbackToken:
                _unknown(request)
                raise
        log.warning(
            "callback.malformed", provider="daraja", reference=collection.reference, reason=refusal.code
        )
        raise refusal
    writer: service.CallbackWriter = request.app.state.daraja_callbacks
    try:
        await writer.submit((token, outcome_of(pushed)))
    except service.UnknownCallbackToken:
        _unknown(request)
        raise
    return rail.callback_reply()
