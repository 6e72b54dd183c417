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
from pydantic import ValidationError

from malipo.collections import service
from malipo.core.errors import FieldError, MalipoError, ValidationFailed
from malipo.core.logging import get_logger
from malipo.http.deps import DatabaseDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.daraja.schemas import StkCallback, StkCallbackPayload
from malipo.reviews.records import Received

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)

# What Daraja expects back from a callback receiver.
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


class UnsupportedMediaType(MalipoError):
    status = 415
    code = "unsupported_media_type"
    title = "The body must be JSON"


def is_json(request: Request) -> bool:
    """Whether the request says its body is JSON (``application/json``, ``…+json``)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def malformed(what: str, exc: ValidationError) -> ValidationFailed:
    """A 422 naming the fields of the provider's body that are out of bounds (at most five)."""
    fields = [
        FieldError(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
        for error in exc.errors(include_url=False, include_input=False)[:5]
    ]
    named = ", ".join(field.field for field in fields)
    return ValidationFailed(f"{what}: {exc.error_count()} problem(s) ({named})", errors=fields)


def _unknown(request: Request) -> None:
    log.warning(
        "callback.unknown_token", provider="daraja", client=request.client.host if request.client else None
    )


def outcome_of(callback: StkCallback) -> service.Outcome:
    """The collection's outcome from Daraja's callback, with what it says was paid."""
    received = Received(callback.amount_minor, callback.phone_number) if callback.ResultCode == 0 else None
    return service.Outcome(
        callback.ResultCode, callback.ResultDesc, callback.mpesa_receipt_number, callback.MerchantRequestID,
        checkout_request_id=callback.CheckoutRequestID, received=received,
    )  # fmt: skip


@router.post("/daraja/{token}", name="Callbacks.Daraja")
async def daraja_callback(token: str, request: Request, db: DatabaseDep) -> dict[str, Any]:
    refusal: MalipoError = UnsupportedMediaType("a Daraja callback is sent as application/json")
    callback: StkCallback | None = None
    if is_json(request):
        try:
            callback = StkCallbackPayload.model_validate_json(await request.body()).callback
        except ValidationError as exc:
            refusal = malformed("not a Daraja STK callback", exc)
    if callback is None:
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
        await writer.submit((token, outcome_of(callback)))
    except service.UnknownCallbackToken:
        _unknown(request)
        raise
    return ACCEPTED
