"""The rails' collection callbacks: ``/callbacks/daraja/{token}`` (Daraja's STK results, found by
the per-collection secret in their URL) and ``/callbacks/airtel/{token}`` (Airtel's, which come to
one address for the whole app and name the collection's reference in their body).

Each rail parses its own body into the neutral :class:`PushOutcome`; this module finds the
collection and hands the outcome to ``service.callback_writer``: the callbacks that arrive
together are applied together (a group commit), and each is answered only once its transaction
has committed, so a rail is never told a result was taken that could still be lost.

A callback is refused, and changes nothing, when its address is unknown (404), its body is not
JSON (415) or not a bounded callback of the rail (422), it names no collection its address may
settle (404), or its ids are another request's (409). A success for another amount or payer than
was asked is taken (200) but held for review. Airtel's address is shared with payouts: a body
naming no collection goes to the handlers payouts registers (``on_app_callback``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request

from malipo.collections import service
from malipo.config import Settings
from malipo.core.errors import FieldError, MalipoError, Unauthorized, ValidationFailed
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.http.callback_sources import DarajaCallbackSource
from malipo.http.deps import DatabaseDep, SettingsDep
from malipo.http.tags import PROVIDER_CALLBACKS
from malipo.providers.base import MalformedCallback, MobileMoney, PushOutcome, Status
from malipo.providers.registry import (
    AIRTEL,
    MPESA,
    airtel_callback_authentic,
    airtel_callback_modes,
    mobile_money_for,
)
from malipo.reviews.records import Received

log = get_logger("malipo.callbacks")

router = APIRouter(prefix="/callbacks", tags=[PROVIDER_CALLBACKS], include_in_schema=False)


class CallbackNotSigned(Unauthorized):
    code = "callback_not_signed"
    title = "The callback is not signed with the callback key"


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


def unknown_callback(request: Request, provider: str, kind: str = "collection") -> None:
    log.warning(
        "callback.unknown_token", provider=provider, kind=kind,
        client=request.client.host if request.client else None,
    )  # fmt: skip


def outcome_of(pushed: PushOutcome) -> service.Outcome:
    """The collection's outcome from the rail's callback, with what it says was paid."""
    stated = pushed.status == Status.SUCCEEDED and pushed.states_payment
    received = Received(pushed.amount, pushed.party) if stated else None
    return service.Outcome(
        pushed.result_code, pushed.result_desc, pushed.receipt, pushed.provider_request_id,
        checkout_request_id=pushed.provider_reference, received=received,
    )  # fmt: skip


async def _apply(request: Request, rail: MobileMoney, token: str, pushed: PushOutcome) -> dict[str, Any]:
    """Apply a final outcome to the collection of ``token`` (committed before the answer)."""
    writer: service.CallbackWriter = request.app.state.collection_callbacks
    try:
        await writer.submit((token, outcome_of(pushed)))
    except service.UnknownCallbackToken:
        unknown_callback(request, rail.name)
        raise
    return rail.callback_reply()


@router.post("/daraja/{token}", name="Callbacks.Daraja", dependencies=[DarajaCallbackSource])
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
                unknown_callback(request, rail.name)
                raise
        log.warning(
            "callback.malformed", provider=rail.name, reference=collection.reference, reason=refusal.code
        )
        raise refusal
    return await _apply(request, rail, token, pushed)


# A rail whose callbacks come to one address for the whole app (Airtel) brings the results of
# payouts there too. Payouts, above this domain, registers a handler: given the request, the
# network code, its rail, the raw body and the modes the address may settle, it applies the body
# when it names one of its payouts and says whether it did.
AppCallbackHandler = Callable[[Request, str, MobileMoney, bytes, frozenset[str]], Awaitable[bool]]
_app_callback_handlers: list[AppCallbackHandler] = []


def on_app_callback(handler: AppCallbackHandler) -> None:
    if handler not in _app_callback_handlers:
        _app_callback_handlers.append(handler)


@router.post("/airtel/{token}", name="Callbacks.Airtel")
async def airtel_callback(
    token: str, request: Request, db: DatabaseDep, settings: SettingsDep
) -> dict[str, Any]:
    """Airtel's callbacks, at the URL set once in its portal (``registry.airtel_callback_url``).
    With callback authentication on, one without a valid ``hash`` is refused and changes nothing."""
    modes = airtel_callback_modes(settings, token)
    if modes and not airtel_callback_authentic(settings, token, await request.body()):
        log.warning("callback.unauthenticated", provider="airtel")
        raise CallbackNotSigned("the callback's hash is missing or was not made with the callback key")
    return await app_callback(AIRTEL, modes, request, db, settings)


async def app_callback(
    network_code: str, modes: frozenset[str], request: Request, db: Database, settings: Settings
) -> dict[str, Any]:
    """A callback to a rail's app-wide address whose token lets it settle requests of ``modes``
    (none: an unknown address). Its body names the collection (``PushOutcome.our_reference``) or,
    through the registered handlers, the payout."""
    rail = mobile_money_for(settings, network_code, "live")
    if not modes:
        unknown_callback(request, rail.name)
        raise service.UnknownCallbackToken("no callback has this address")
    if not is_json(request):
        log.warning("callback.malformed", provider=rail.name, reason="unsupported_media_type")
        raise UnsupportedMediaType(f"an {rail.name} callback is sent as application/json")
    body = await request.body()
    try:
        pushed = rail.parse_push_callback(body)
    except MalformedCallback as exc:
        log.warning("callback.malformed", provider=rail.name, reason="validation_failed")
        raise malformed(exc) from None
    collection = None
    if pushed.our_reference is not None:
        async with db.transaction() as session:
            collection = await service.collection_for_reference(
                session, pushed.our_reference, modes=modes, network_code=network_code
            )
    if collection is None:
        for handler in _app_callback_handlers:
            if await handler(request, network_code, rail, body, modes):
                return rail.callback_reply()
        unknown_callback(request, rail.name, kind="any")
        raise service.UnknownCallbackToken("the callback names no collection or payout of this address")
    if pushed.status not in (Status.SUCCEEDED, Status.FAILED):
        # An intermediate callback (in progress, ambiguous): the final one, or a query, decides.
        log.info("callback.intermediate", provider=rail.name, reference=collection.reference)
        return rail.callback_reply()
    return await _apply(request, rail, service.callback_token(settings, collection.id), pushed)
