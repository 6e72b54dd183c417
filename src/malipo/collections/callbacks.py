"""``/callbacks/daraja/{token}``: Daraja's STK results, found by the secret in their URL.

The callbacks that arrive together are applied together (``service.callback_writer``, a group
commit); each is answered "Accepted" only once its transaction has committed, so Daraja is never
told a result was taken that could still be lost.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from malipo.api.deps import DatabaseDep
from malipo.collections import service
from malipo.core.errors import ValidationFailed
from malipo.core.logging import get_logger
from malipo.providers.daraja.schemas import StkCallbackPayload

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=["provider callbacks"], include_in_schema=False)

# What Daraja expects back from a callback receiver.
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


def _unknown(request: Request) -> None:
    log.warning(
        "callback.unknown_token", provider="daraja", client=request.client.host if request.client else None
    )


@router.post("/daraja/{token}", name="Callbacks.Daraja")
async def daraja_callback(token: str, request: Request, db: DatabaseDep) -> dict[str, Any]:
    try:
        callback = StkCallbackPayload.model_validate_json(await request.body()).callback
    except ValidationError as exc:
        async with db.transaction() as session:  # an unknown address is refused as such first
            try:
                collection = await service.collection_for_token(session, token)
            except service.UnknownCallbackToken:
                _unknown(request)
                raise
        log.warning("callback.malformed", provider="daraja", reference=collection.reference)
        raise ValidationFailed(f"not a Daraja STK callback: {exc.error_count()} problem(s)") from None
    outcome = service.Outcome(
        callback.ResultCode, callback.ResultDesc, callback.mpesa_receipt_number, callback.MerchantRequestID
    )
    writer: service.CallbackWriter = request.app.state.daraja_callbacks
    try:
        await writer.submit((token, outcome))
    except service.UnknownCallbackToken:
        _unknown(request)
        raise
    return ACCEPTED
