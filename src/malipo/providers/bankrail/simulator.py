"""A local bank rail speaking the protocol of ``schemas`` (docs/bank-rail.md), with scripted outcomes.

Serves ``POST /v1/credit-transfers`` (a pacs.008; answered 201 with a pacs.002, or 409 with the
existing transfer's pacs.002 when its EndToEndId is known: a duplicate is never paid twice),
``GET /v1/credit-transfers/{EndToEndId}`` (its pacs.002 now; 404 when unknown) and
``GET /v1/credit-transfers`` (every transfer, for tests and local inspection). Every call needs
``Authorization: Bearer <key>``: any non-empty key, or one of ``api_keys`` when given (401
otherwise). An invalid body is a 400 ``{"Err": {"Cd": "INVALID_REQUEST", "Desc", "Flds"}}``.

A transfer's outcome is chosen by the last ten digits of its creditor account number
(``CdtrAcct.Id.Othr.Id``, table :data:`TEST_ACCOUNTS`), so that a test number can follow any
bank's 3-digit code (``0031000000004``: Union Trust Bank, closed account); any other settles.
After ``callback_delay`` seconds (real time)
the final status is POSTed to ``StsCallbackUrl``, retried a few times while the receiver fails;
a status already final in the POST's answer is not sent again.

==========  ==================  =============================================================
account     answer to the POST  then
==========  ==================  =============================================================
(other)     ACTC                ACSC (settled): callback
1000000001  ACTC                RJCT AC01 (incorrect account number): callback
1000000003  ACTC                RJCT MS03 (technical problem, not specified): callback
1000000004  ACTC                RJCT AC04 (closed account): callback
1000000006  ACTC                RJCT AC06 (blocked account): callback
1000000009  ACTC                RJCT AM04 (insufficient funds): callback
1000000011  RJCT RR04           nothing more (refused at once, regulatory reason)
1000000020  ACTC                no callback ever; the first query answers ACSC (settled)
1000000021  PDNG                no callback ever; the first query answers PDNG, the second ACSC
==========  ==================  =============================================================

``app.state.simulator`` is the :class:`BankRailSimulator` behind the app (its transfers,
duplicates refused and callback deliveries). A mounted app's lifespan does not run: its owner
calls :meth:`BankRailSimulator.aclose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.requests import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from malipo.core.ids import new_reference
from malipo.core.logging import configure_logging, get_logger
from malipo.providers.bankrail import codes
from malipo.providers.bankrail.schemas import (
    CREDIT_TRANSFERS_PATH,
    FINAL_STATUSES,
    CreditTransferRequest,
    GroupHeader,
    OriginalGroupInfo,
    OriginalTransactionReference,
    StatusReasonInfo,
    StatusReport,
    TransactionStatus,
    iso_now,
)
from malipo.providers.simulation import CallbackDelivery, CallbackSender

__all__ = [
    "ACCOUNT_BLOCKED",
    "ACCOUNT_CLOSED",
    "ACCOUNT_INCORRECT",
    "ACCOUNT_INSUFFICIENT_FUNDS",
    "ACCOUNT_NO_CALLBACK",
    "ACCOUNT_PENDING_TWO_QUERIES",
    "ACCOUNT_REGULATORY",
    "ACCOUNT_TECHNICAL",
    "DEFAULT_PORT",
    "SETTLES",
    "TEST_ACCOUNTS",
    "AccountOutcome",
    "BankRailSimulator",
    "CallbackDelivery",
    "SimulatedTransfer",
    "create_simulator_app",
    "main",
    "run",
]

log = get_logger("malipo.providers.bankrail.simulator")

DEFAULT_PORT = 8702


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    """What the simulated rail does with a transfer: its status in the POST's answer (``ack``),
    its final status and reason, whether the final status is called back, and else at which
    query it shows (``settles_on_query``)."""

    ack: str = "ACTC"
    final: str = "ACSC"
    reason: str | None = None
    callback: bool = True
    settles_on_query: int = 0


ACCOUNT_INCORRECT = "1000000001"
ACCOUNT_TECHNICAL = "1000000003"
ACCOUNT_CLOSED = "1000000004"
ACCOUNT_BLOCKED = "1000000006"
ACCOUNT_INSUFFICIENT_FUNDS = "1000000009"
ACCOUNT_REGULATORY = "1000000011"
ACCOUNT_NO_CALLBACK = "1000000020"
ACCOUNT_PENDING_TWO_QUERIES = "1000000021"

SETTLES = AccountOutcome()
TEST_ACCOUNTS: Mapping[str, AccountOutcome] = MappingProxyType(
    {
        ACCOUNT_INCORRECT: AccountOutcome(final="RJCT", reason=codes.INCORRECT_ACCOUNT),
        ACCOUNT_TECHNICAL: AccountOutcome(final="RJCT", reason=codes.NOT_SPECIFIED),
        ACCOUNT_CLOSED: AccountOutcome(final="RJCT", reason=codes.CLOSED_ACCOUNT),
        ACCOUNT_BLOCKED: AccountOutcome(final="RJCT", reason=codes.BLOCKED_ACCOUNT),
        ACCOUNT_INSUFFICIENT_FUNDS: AccountOutcome(final="RJCT", reason=codes.INSUFFICIENT_FUNDS),
        ACCOUNT_REGULATORY: AccountOutcome(ack="RJCT", final="RJCT", reason=codes.REGULATORY, callback=False),
        ACCOUNT_NO_CALLBACK: AccountOutcome(callback=False, settles_on_query=1),
        ACCOUNT_PENDING_TWO_QUERIES: AccountOutcome(ack="PDNG", callback=False, settles_on_query=2),
    }
)


@dataclass(slots=True)
class SimulatedTransfer:
    """One transfer the simulated rail took (a payment made once, whatever the resends)."""

    request: CreditTransferRequest
    reference: str
    outcome: AccountOutcome
    status: str
    reason: str | None = None
    queries: int = 0
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def end_to_end_id(self) -> str:
        return self.request.CdtTrfTxInf.PmtId.EndToEndId

    def finish(self) -> None:
        self.status = self.outcome.final
        self.reason = self.outcome.reason


def _error(status: int, code: str, description: str, fields: list[str] | None = None) -> JSONResponse:
    body = {"Err": {"Cd": code, "Desc": description, "Flds": fields or []}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


class BankRailSimulator(CallbackSender):
    """The state and handlers behind the simulator app; see the module docstring for behaviour."""

    def __init__(
        self,
        *,
        callback_delay: float = 0.0,
        api_keys: Collection[str] | None = None,
        callback_attempts: int = 3,
        callback_backoff: float = 0.2,
        callback_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            logger="malipo.providers.bankrail.simulator", events="bankrail_sim",
            callback_attempts=callback_attempts, callback_backoff=callback_backoff,
            callback_timeout=callback_timeout,
        )  # fmt: skip
        self.callback_delay = callback_delay
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.transfers: dict[str, SimulatedTransfer] = {}
        # Every transfer taken, in order: a resend that was paid again would show here twice.
        self.payments: list[SimulatedTransfer] = []
        self.duplicates: list[str] = []

        self.app = FastAPI(
            title="malipo bank rail simulator",
            openapi_url=None,
            docs_url=None,
            redoc_url=None,
            lifespan=self._lifespan,
        )
        self.app.add_api_route("/healthz", self._healthz, methods=["GET"])
        self.app.add_api_route(CREDIT_TRANSFERS_PATH, self._create, methods=["POST"])
        self.app.add_api_route(CREDIT_TRANSFERS_PATH, self._list, methods=["GET"])
        self.app.add_api_route(CREDIT_TRANSFERS_PATH + "/{end_to_end_id}", self._query, methods=["GET"])
        self.app.state.simulator = self

    def _schedule(self, transfer: SimulatedTransfer) -> None:
        # The task runs _settle itself: cancelled before it starts, nothing is left unawaited.
        self._in_background(self._settle(transfer))

    # ------------------------------------------------------------------ handlers

    def _authorised(self, request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return False
        return self.api_keys is None or key in self.api_keys

    async def _healthz(self) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def _create(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, "UNAUTHORIZED", "a valid Authorization: Bearer <API key> is required")
        try:
            message = CreditTransferRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            fields = [".".join(str(part) for part in error["loc"]) or "body" for error in errors[:20]]
            return _error(400, "INVALID_REQUEST", f"{exc.error_count()} invalid field(s)", fields)
        e2e = message.CdtTrfTxInf.PmtId.EndToEndId
        known = self.transfers.get(e2e)
        if known is not None:
            self.duplicates.append(e2e)
            log.info("bankrail_sim.transfer.duplicate", end_to_end_id=e2e, tx_sts=known.status)
            return JSONResponse(self._report(known), status_code=409)
        outcome = TEST_ACCOUNTS.get(message.CdtTrfTxInf.CdtrAcct.number[-10:], SETTLES)
        transfer = SimulatedTransfer(
            request=message,
            reference=f"BRS{new_reference(16)}",
            outcome=outcome,
            status=outcome.ack,
            reason=outcome.reason if outcome.ack == "RJCT" else None,
        )
        self.transfers[e2e] = transfer
        self.payments.append(transfer)
        log.info("bankrail_sim.transfer.taken", end_to_end_id=e2e, tx_sts=transfer.status)
        reply = self._report(transfer)
        if transfer.status not in FINAL_STATUSES and outcome.callback:
            self._schedule(transfer)
        return JSONResponse(reply, status_code=201)

    async def _query(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, "UNAUTHORIZED", "a valid Authorization: Bearer <API key> is required")
        transfer = self.transfers.get(request.path_params["end_to_end_id"])
        if transfer is None:
            return _error(404, "NOT_FOUND", "no credit transfer with this EndToEndId")
        transfer.queries += 1
        due = transfer.outcome.settles_on_query
        if due and transfer.queries >= due and transfer.status not in FINAL_STATUSES:
            transfer.finish()
        return JSONResponse(self._report(transfer))

    async def _list(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, "UNAUTHORIZED", "a valid Authorization: Bearer <API key> is required")
        return JSONResponse({"Transfers": [self._report(transfer) for transfer in self.transfers.values()]})

    # ------------------------------------------------------------------ outcomes

    @staticmethod
    def _report(transfer: SimulatedTransfer) -> dict[str, Any]:
        tx = transfer.request.CdtTrfTxInf
        reason = None
        if transfer.reason is not None:
            words = codes.REASONS.get(transfer.reason, transfer.reason)[:105]
            reason = StatusReasonInfo.model_validate({"Rsn": {"Cd": transfer.reason}, "AddtlInf": words})
        report = StatusReport(
            GrpHdr=GroupHeader(MsgId=f"BRS{new_reference(20)}", CreDtTm=iso_now()),
            OrgnlGrpInfAndSts=OriginalGroupInfo(OrgnlMsgId=transfer.request.GrpHdr.MsgId),
            TxInfAndSts=TransactionStatus(
                OrgnlEndToEndId=tx.PmtId.EndToEndId,
                OrgnlTxId=tx.PmtId.TxId,
                AcctSvcrRef=transfer.reference,
                TxSts=transfer.status,  # type: ignore[arg-type]
                StsRsnInf=reason,
                AccptncDtTm=iso_now(transfer.received_at),
                OrgnlTxRef=OriginalTransactionReference(
                    IntrBkSttlmAmt=tx.IntrBkSttlmAmt, CdtrAcct=tx.CdtrAcct, CdtrAgt=tx.CdtrAgt
                ),
            ),
        )
        return report.model_dump(mode="json", exclude_none=True)

    async def _settle(self, transfer: SimulatedTransfer) -> None:
        """After the delay: the final status, then its callback."""
        e2e = transfer.end_to_end_id
        try:
            await asyncio.sleep(self.callback_delay)
            transfer.finish()
            log.info("bankrail_sim.transfer.final", end_to_end_id=e2e, tx_sts=transfer.status)
            await self._deliver(transfer.request.StsCallbackUrl, self._report(transfer))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bankrail_sim.settle.failed", end_to_end_id=e2e)


# --------------------------------------------------------------------------- entry points


def create_simulator_app(
    *,
    callback_delay: float = 1.0,
    api_keys: Collection[str] | None = None,
    callback_attempts: int = 3,
    callback_backoff: float = 0.2,
    callback_timeout: float = 5.0,
) -> FastAPI:
    """A bank rail simulator as an ASGI app; ``app.state.simulator`` is its :class:`BankRailSimulator`."""
    return BankRailSimulator(
        callback_delay=callback_delay,
        api_keys=api_keys,
        callback_attempts=callback_attempts,
        callback_backoff=callback_backoff,
        callback_timeout=callback_timeout,
    ).app


def run(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_json: bool = False, log_level: str = "INFO",
    **options: Any,
) -> None:  # fmt: skip
    """Serve the simulator until interrupted; ``options`` go to :func:`create_simulator_app`."""
    configure_logging(json=log_json, level=log_level)
    log.info("bankrail_sim.starting", host=host, port=port)
    uvicorn.run(create_simulator_app(**options), host=host, port=port, log_config=None, access_log=False)


def main(port: int = DEFAULT_PORT) -> None:
    """The simulator on loopback with a 1 s callback delay."""
    run(port=port, callback_delay=1.0)
