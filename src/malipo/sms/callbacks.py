"""Africa's Talking delivery reports in: ``/callbacks/africastalking/{token}``.

The token is the secret part of the URL (``malipo.providers.registry``). An unknown token is a
404 and logged. A report is idempotent: a repeat, or one about a message already final, changes
nothing. A delivery report about a message whose gateway id is not recorded yet (the report
overtook the worker) is a 503, and logged, so that the sender tries again.

Delivery reports are written in batches (``malipo.sms.delivery_reports``): each request is
answered once the transaction holding its report has committed, never before; if it fails, the
request is a 503 and the provider sends the report again.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from malipo.core.clock import Clock
from malipo.core.crypto import constant_time_equal
from malipo.core.errors import NotFound
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.http.deps import ClockDep, DatabaseDep, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.africastalking.client import InvalidDeliveryReport, parse_delivery_report
from malipo.providers.registry import at_report_token
from malipo.sms.delivery_reports import DeliveryReportBatcher

log = get_logger("malipo.sms.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


def _report_batcher(request: Request, db: Database, clock: Clock) -> DeliveryReportBatcher:
    batcher: DeliveryReportBatcher | None = getattr(request.app.state, "sms_report_batcher", None)
    if batcher is None or batcher.db is not db:
        batcher = DeliveryReportBatcher(db, clock)
        request.app.state.sms_report_batcher = batcher
    return batcher


def _unknown_token(provider: str, request: Request) -> NotFound:
    log.warning(
        "callback.unknown_token", provider=provider, ip=request.client.host if request.client else None
    )
    return NotFound("no such callback")


@router.post("/africastalking/{token}")
async def africastalking_delivery_report(
    token: str, request: Request, db: DatabaseDep, settings: SettingsDep, clock: ClockDep
) -> Response:
    if not constant_time_equal(token, at_report_token(settings)):
        raise _unknown_token("africastalking", request)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    try:
        report = parse_delivery_report(form)
    except InvalidDeliveryReport as exc:
        log.warning("sms.delivery_report_invalid", error=str(exc))
        return PlainTextResponse(str(exc), status_code=400)
    try:
        outcome = await _report_batcher(request, db, clock).apply(report)
    except Exception:  # logged by the batcher; not acknowledged, so the provider sends it again
        return PlainTextResponse("the report could not be recorded; try again later", status_code=503)
    if outcome == "unknown":
        log.info(
            "sms.delivery_report_unknown", gateway_message_id=report.message_id, status=report.raw_status
        )
        return PlainTextResponse("unknown message id; try again later", status_code=503)
    return PlainTextResponse("OK")
