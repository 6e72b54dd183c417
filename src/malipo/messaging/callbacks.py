"""Provider reports in: Africa's Talking delivery reports and WhatsApp status webhooks.

``/callbacks/africastalking/{token}`` and ``/callbacks/whatsapp/{token}``; the token is the
secret part of the URL (``malipo.providers.registry``). An unknown token is a 404 and
logged. A report is idempotent: a repeat, or one about a message already final, changes
nothing. A delivery report about a message whose gateway id is not recorded yet (the report
overtook the worker) is a 503, and logged, so that the sender tries again.

Delivery reports are written in batches (``malipo.messaging.delivery_reports``): each request is
answered once the transaction holding its report has committed, never before; if it fails, the
request is a 503 and the provider sends the report again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from malipo.core.clock import Clock
from malipo.core.crypto import constant_time_equal
from malipo.core.errors import NotFound
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.http.deps import ClockDep, DatabaseDep, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.messaging import whatsapp
from malipo.messaging.delivery_reports import DeliveryReportBatcher
from malipo.providers.africastalking.client import InvalidDeliveryReport, parse_delivery_report
from malipo.providers.registry import at_report_token, whatsapp_simulator_token
from malipo.providers.whatsapp_cloud.client import parse_status_webhook, verify_webhook_signature

log = get_logger("malipo.messaging.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)

# WhatsApp status webhooks come in bursts (a bulk's statuses). Each one is a short write; letting
# them all queue for database connections at once starves every other request of the pool (and
# on SQLite, with one writer, gains nothing). So a few at a time.
_CONCURRENT_WRITES = {"sqlite": 1}
_DEFAULT_CONCURRENT_WRITES = 8


def _write_slots(request: Request, db: Database) -> asyncio.Semaphore:
    slots: asyncio.Semaphore | None = getattr(request.app.state, "callback_write_slots", None)
    if slots is None:
        slots = asyncio.Semaphore(_CONCURRENT_WRITES.get(db.dialect, _DEFAULT_CONCURRENT_WRITES))
        request.app.state.callback_write_slots = slots
    return slots


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


@router.get("/whatsapp/{token}")
async def whatsapp_verify(
    token: str,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    verify_token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> Response:
    """Meta's webhook check: answers the challenge when the verify token is the URL's own token."""
    async with db.transaction() as session:
        found = await whatsapp.session_by_webhook_token(session, settings, token)
    if found is None or mode != "subscribe" or not constant_time_equal(verify_token or "", token):
        raise _unknown_token("whatsapp", request)
    return PlainTextResponse(challenge or "")


@router.post("/whatsapp/{token}")
async def whatsapp_status_webhook(
    token: str, request: Request, db: DatabaseDep, settings: SettingsDep, clock: ClockDep
) -> Response:
    raw = await request.body()
    simulator = constant_time_equal(token, whatsapp_simulator_token(settings))
    session_id = None
    if not simulator:
        async with db.transaction() as session:
            found = await whatsapp.session_by_webhook_token(session, settings, token)
        if found is None:
            raise _unknown_token("whatsapp", request)
        session_id = found.id
        secret = settings.whatsapp_app_secret
        if secret is not None and not verify_webhook_signature(
            raw, request.headers.get("x-hub-signature-256"), secret.get_secret_value()
        ):
            log.warning("whatsapp.webhook_bad_signature", session_id=str(session_id))
            return JSONResponse({"error": "bad signature"}, status_code=401)
    try:
        payload = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    updates = parse_status_webhook(payload) if isinstance(payload, dict) else []
    outcomes = []
    async with _write_slots(request, db), db.transaction() as session:
        for update in updates:
            outcomes.append(
                await whatsapp.apply_status(session, update, session_id=session_id, now=clock.now())
            )
    # Meta retries what is not answered 200: acknowledge also what could not be used.
    return JSONResponse({"received": len(updates), "updated": outcomes.count("updated")})
