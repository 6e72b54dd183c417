"""The bank rail as a :class:`~malipo.providers.base.BankTransfer`: send a credit transfer, ask for
its status, and read its status callbacks (the wire protocol is in ``schemas`` and
docs/bank-rail.md).

Whether a failed send may have been taken decides what the domain may do next
(:class:`RailError`'s ``not_taken``):

- the connection was never made (refused, connect timeout, no free connection), or the rail
  answered a 4xx other than 409 (a refused key, an invalid transfer, too many requests): nothing
  was taken. Connection failures, 408 and 429 are retryable; the other 4xx are not;
- the request was sent and no answer came (a read timeout, a dropped connection), or the rail
  answered 5xx or something unreadable: it may have been taken. Sending the same transfer again
  is safe (the rail answers a known EndToEndId with 409 and its status, never a second payment),
  so these are retryable, but only a query or a resend tells what happened;
- 409: the rail already has this EndToEndId; its status comes back as the accepted transfer.

The API key is sent in the ``Authorization`` header and never logged nor put in an error's text;
neither is the status callback URL, whose path holds the domain's secret token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from malipo.core.clock import Clock, SystemClock
from malipo.core.errors import InvalidAmount
from malipo.core.ids import new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.providers.bankrail import codes
from malipo.providers.bankrail.reports import outcome_of, parse_status_report, read_status_report
from malipo.providers.bankrail.schemas import (
    CREDIT_TRANSFERS_PATH,
    CreditTransferRequest,
    ErrorBody,
    StatusReport,
    iso_now,
)
from malipo.providers.base import (
    CreditTransfer,
    MalformedCallback,
    RailError,
    Status,
    TransferAccepted,
    TransferOutcome,
)

__all__ = ["CALLBACK_PREFIX", "BankRailClient", "build_request", "status_callback_url"]

log = get_logger(__name__)

# The domain serves the status callbacks here, under the public URL.
CALLBACK_PREFIX = "/callbacks/bank"
_RETRYABLE_REFUSALS = frozenset({408, 429})
_DUPLICATE = 409


def status_callback_url(public_url: str, token: str) -> str:
    """The ``StsCallbackUrl`` of a transfer: malipo's route with the domain's secret token."""
    return f"{public_url.rstrip('/')}{CALLBACK_PREFIX}/{token}"


def build_request(request: CreditTransfer, callback_url: str, now: datetime) -> CreditTransferRequest:
    """The pacs.008 for ``request``. ``TxId`` is the EndToEndId too (one transaction per message),
    so a resend differs only in its message id and time. Raises a pydantic ``ValidationError``
    naming the wire fields, or :class:`InvalidAmount`, for a transfer the protocol cannot carry."""
    remittance = request.remittance.strip()
    money = Money.of_minor(request.amount, request.currency)
    message: dict[str, Any] = {
        "GrpHdr": {
            "MsgId": f"MLP{new_reference(20)}",
            "CreDtTm": iso_now(now),
            "NbOfTxs": "1",
            "SttlmInf": {"SttlmMtd": "CLRG"},
        },
        "CdtTrfTxInf": {
            "PmtId": {"EndToEndId": request.end_to_end_id, "TxId": request.end_to_end_id},
            "IntrBkSttlmAmt": {"Ccy": money.currency, "Amt": money.format()},
            "Dbtr": {"Nm": request.debtor_name},
            "DbtrAcct": {"Id": {"Othr": {"Id": request.debtor_account}}},
            "CdtrAgt": {"FinInstnId": {"ClrSysMmbId": {"MmbId": request.creditor_bank_code}}},
            "Cdtr": {"Nm": request.creditor_name or None},
            "CdtrAcct": {"Id": {"Othr": {"Id": request.creditor_account}}},
            "RmtInf": {"Ustrd": remittance} if remittance else None,
        },
        "StsCallbackUrl": callback_url,
    }
    return CreditTransferRequest.model_validate(message)


def _refusal(response: httpx.Response) -> str:
    """The rail's own words for a refusal (code, message, fields), or its HTTP status."""
    try:
        error = ErrorBody.model_validate_json(response.content).Err
    except ValidationError:
        return f"HTTP {response.status_code}"
    fields = f" ({', '.join(error.Flds[:5])})" if error.Flds else ""
    return f"HTTP {response.status_code} {error.Cd}: {error.Desc}{fields}".strip()


def _rail_error(message: str, *, retryable: bool, not_taken: bool) -> RailError:
    return RailError(
        message, retryable=retryable, not_taken=not_taken, result_code=codes.RAIL_REFUSED,
        result_desc=f"The bank rail did not take the transfer: {message}"[:300],
    )  # fmt: skip


class BankRailClient:
    """One bank rail endpoint (``base_url``) with its API key. Status callbacks are asked for at
    ``{public_url}/callbacks/bank/{callback_token}``.

    ``http`` is shared and not closed here (malipo's worker passes its pool); None makes a client
    that only parses callbacks.
    """

    name = "bankrail"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        public_url: str,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._public_url = public_url
        self._http = http
        self._clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"BankRailClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("this bank rail was made without an HTTP client: it only parses callbacks")
        return self._http

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:  # no key: the rail answers 401, a refusal like any other
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    # ------------------------------------------------------------------ send

    async def send_transfer(self, request: CreditTransfer) -> TransferAccepted:
        """Send ``request``. The answer says ACTC/PDNG (accepted, pending), ACSC (settled at once)
        or RJCT (refused at once, an accepted FAILED outcome); 409 (a known EndToEndId) returns
        that transfer's status. Raises :class:`RailError` when it was not taken or may not have
        been (see the module docstring)."""
        http = self._client()
        callback_url = status_callback_url(self._public_url, request.callback_token)
        try:
            message = build_request(request, callback_url, self._clock.now())
        except (ValidationError, InvalidAmount) as exc:
            raise _rail_error(f"the transfer cannot be sent: {_invalid(exc)}", retryable=False,
                              not_taken=True) from exc  # fmt: skip
        payload = message.model_dump(mode="json", exclude_none=True)
        e2e = request.end_to_end_id
        try:
            response = await http.post(
                self._base_url + CREDIT_TRANSFERS_PATH, json=payload, headers=self._headers()
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            log.warning("bankrail.transfer.unreachable", end_to_end_id=e2e, error=type(exc).__name__)
            raise _rail_error(f"bank rail unreachable: {type(exc).__name__}", retryable=True,
                              not_taken=True) from exc  # fmt: skip
        except httpx.LocalProtocolError as exc:  # refused by our own HTTP stack: never sent
            log.warning("bankrail.transfer.unsendable", end_to_end_id=e2e, error=type(exc).__name__)
            raise _rail_error(f"the request cannot be sent: {type(exc).__name__}", retryable=False,
                              not_taken=True) from exc  # fmt: skip
        except httpx.RequestError as exc:  # sent, and no answer: it may have been taken
            log.warning("bankrail.transfer.no_answer", end_to_end_id=e2e, error=type(exc).__name__)
            raise _rail_error(f"no answer from the bank rail: {type(exc).__name__}", retryable=True,
                              not_taken=False) from exc  # fmt: skip
        return self._accepted(e2e, response)

    def _accepted(self, e2e: str, response: httpx.Response) -> TransferAccepted:
        status = response.status_code
        if response.is_success or status == _DUPLICATE:
            try:
                report = read_status_report(response.content)
            except MalformedCallback as exc:
                log.warning("bankrail.transfer.unreadable", end_to_end_id=e2e, status=status)
                # A 2xx was taken; a 409 is a transfer the rail has: a query tells what it says.
                raise _rail_error(f"unreadable answer (HTTP {status}): {exc}", retryable=status != _DUPLICATE,
                                  not_taken=False) from exc  # fmt: skip
            if report.TxInfAndSts.OrgnlEndToEndId != e2e:
                log.warning("bankrail.transfer.other_answer", end_to_end_id=e2e, status=status)
                raise _rail_error(f"the answer (HTTP {status}) is about another transfer", retryable=True,
                                  not_taken=False)  # fmt: skip
            return self._taken(e2e, report, duplicate=status == _DUPLICATE)
        refusal = _refusal(response)
        if 400 <= status < 500:
            log.warning("bankrail.transfer.refused", end_to_end_id=e2e, status=status, refusal=refusal)
            retryable = status in _RETRYABLE_REFUSALS
            raise _rail_error(f"refused: {refusal}", retryable=retryable, not_taken=True)
        log.warning("bankrail.transfer.failed", end_to_end_id=e2e, status=status, refusal=refusal)
        raise _rail_error(f"failed: {refusal}", retryable=status >= 500, not_taken=False)

    def _taken(self, e2e: str, report: StatusReport, *, duplicate: bool) -> TransferAccepted:
        outcome = outcome_of(report)
        reference = report.TxInfAndSts.AcctSvcrRef or e2e
        log.info(
            "bankrail.transfer.duplicate" if duplicate else "bankrail.transfer.accepted",
            end_to_end_id=e2e, provider_reference=reference, tx_sts=report.TxInfAndSts.TxSts,
            reason_code=outcome.reason_code,
        )  # fmt: skip
        return TransferAccepted(provider_reference=reference, outcome=outcome)

    # ------------------------------------------------------------------ query

    async def query_transfer(self, end_to_end_id: str) -> TransferOutcome:
        """The transfer's status now; UNKNOWN (with ``error``) when the rail does not know it
        (404), cannot be reached, or answers something else than its status report."""
        url = f"{self._base_url}{CREDIT_TRANSFERS_PATH}/{quote(end_to_end_id, safe='')}"
        try:
            response = await self._client().get(url, headers=self._headers())
        except httpx.RequestError as exc:
            log.warning("bankrail.query.unreachable", end_to_end_id=end_to_end_id, error=type(exc).__name__)
            return _unknown(end_to_end_id, f"bank rail unreachable: {type(exc).__name__}")
        if response.status_code == 404:
            return TransferOutcome(
                Status.UNKNOWN, end_to_end_id=end_to_end_id, not_found=True,
                error="the bank rail does not know this transfer (HTTP 404)",
            )  # fmt: skip
        if not response.is_success:
            log.warning("bankrail.query.failed", end_to_end_id=end_to_end_id, status=response.status_code)
            return _unknown(end_to_end_id, f"the bank rail answered {_refusal(response)}")
        try:
            outcome = parse_status_report(response.content)
        except MalformedCallback as exc:
            return _unknown(end_to_end_id, f"unreadable answer: {exc}")
        if outcome.end_to_end_id != end_to_end_id:
            return _unknown(end_to_end_id, "the bank rail answered about another transfer")
        return outcome

    # ------------------------------------------------------------------ callbacks

    def parse_status_report(self, body: bytes) -> TransferOutcome:
        """A status callback's body → outcome; :class:`MalformedCallback` naming at most five bad
        fields when it is not a bounded pacs.002."""
        return parse_status_report(body)

    def callback_reply(self) -> dict[str, Any]:
        """Any 2xx tells the rail the report arrived; this is the body malipo sends with it."""
        return {"Ack": "OK"}


def _unknown(end_to_end_id: str, error: str) -> TransferOutcome:
    return TransferOutcome(Status.UNKNOWN, end_to_end_id=end_to_end_id, error=error)


def _invalid(exc: ValidationError | InvalidAmount) -> str:
    if isinstance(exc, InvalidAmount):
        return exc.detail
    fields = [".".join(str(part) for part in error["loc"]) for error in exc.errors(include_url=False)[:5]]
    return ", ".join(fields) or str(exc)
