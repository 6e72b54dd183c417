"""M-Pesa through Daraja as a :class:`~malipo.providers.base.MobileMoney` rail.

The domains hand it neutral requests and read back neutral outcomes: amounts in minor units
become whole shillings here, the callback URLs are built here from the public URL and the
domain's token, and every :class:`DarajaError` becomes a :class:`RailError` carrying the outcome
malipo records when it gives up (``codes``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx

from malipo.config import Settings
from malipo.providers.base import (
    BalanceOutcome,
    BusinessPayment,
    PayoutAccepted,
    PayoutOutcome,
    PayoutStatusAnswer,
    PayoutStatusQuery,
    PhonePayment,
    PushAccepted,
    PushOutcome,
    PushRequest,
    RailError,
    RailTransaction,
    ReversalAccepted,
    ReversalOutcome,
    ReversalRequest,
    StatementUnavailable,
    Status,
)
from malipo.providers.daraja import callbacks, codes, commands, pull, urls
from malipo.providers.daraja.client import DarajaClient, DarajaError, DarajaPending, surely_not_taken
from malipo.providers.daraja.connection import daraja_client
from malipo.providers.daraja.schemas import B2B_ACCOUNT_REFERENCE_MAX

__all__ = ["DarajaMobileMoney"]

_MINOR_PER_SHILLING = 100


def _shillings(minor: int) -> int:
    # Daraja takes whole shillings; malipo only asks for whole-shilling amounts.
    return minor // _MINOR_PER_SHILLING


def _rail_error(exc: DarajaError, outcome: tuple[int, str], *, not_taken: bool | None = None) -> RailError:
    code, desc = outcome
    error = RailError(
        str(exc), retryable=exc.retryable,
        not_taken=surely_not_taken(exc) if not_taken is None else not_taken,
        result_code=code, result_desc=desc, retry_after=exc.retry_after,
    )  # fmt: skip
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def _payout_errors() -> Iterator[None]:
    try:
        yield
    except DarajaError as exc:
        raise _rail_error(exc, codes.refused_payout(exc.error_message or str(exc))) from exc


class DarajaMobileMoney:
    """Daraja for one mode ("live" or "test"). ``http`` may be None for a rail that only parses
    callbacks; the calls need it (the client keeps its OAuth token while ``http`` lives)."""

    name = "daraja"
    account_reference_max = B2B_ACCOUNT_REFERENCE_MAX
    reverses = True

    def __init__(self, settings: Settings, mode: str, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._mode = mode
        self._http = http

    def _client(self) -> DarajaClient:
        if self._http is None:
            raise RuntimeError("this Daraja rail was made without an HTTP client: it only parses callbacks")
        return daraja_client(self._settings, self._mode, self._http)

    # ------------------------------------------------------------------ collections (STK push)

    async def push_collection(self, request: PushRequest) -> PushAccepted:
        client = self._client()
        try:
            await client.access_token()
        except DarajaError as exc:  # no push was sent: retry or fail it, as Daraja's answer says
            raise _rail_error(exc, codes.refused_push(exc.error_message or str(exc)), not_taken=True) from exc
        try:
            reply = await client.stk_push(
                amount=_shillings(request.amount),
                phone=request.phone,
                account_reference=request.reference,
                description=request.description or f"Payment {request.reference}",
                callback_url=urls.stk_callback_url(self._settings.public_url, request.callback_token),
            )
        except DarajaError as exc:
            raise _rail_error(exc, codes.refused_push(exc.error_message or str(exc))) from exc
        return PushAccepted(reply.CheckoutRequestID, reply.MerchantRequestID)

    async def query_push(self, provider_reference: str) -> PushOutcome:
        """An answer malipo asked for: no ids or amounts to compare, only the result."""
        try:
            answer = await self._client().stk_query(provider_reference)
        except DarajaPending:
            return PushOutcome(Status.PENDING, codes.NO_ANSWER, codes.PAYER_DID_NOT_ANSWER)
        except DarajaError as exc:
            # No answer (Daraja down, or it no longer knows the push): ask again later.
            return PushOutcome(Status.UNKNOWN, codes.NO_ANSWER, codes.NO_ANSWER_FROM_MPESA, error=str(exc))
        code = int(answer.ResultCode)
        return PushOutcome(
            codes.status_of(code), code, codes.explain(code, codes.stk_query_desc(answer.ResultDesc))
        )

    def push_query_id(self, reference: str) -> str | None:
        return None  # only Daraja's reply gives the CheckoutRequestID

    def no_answer(self) -> PushOutcome:
        return PushOutcome(Status.FAILED, codes.NO_ANSWER, codes.NO_ANSWER_FROM_MPESA)

    def parse_push_callback(self, body: bytes) -> PushOutcome:
        return callbacks.parse_stk_callback(body)

    # ------------------------------------------------------------------ payouts (B2C, B2B, status)

    async def pay_phone(self, payment: PhonePayment) -> PayoutAccepted:
        public = self._settings.public_url
        with _payout_errors():
            reply = await self._client().b2c(
                amount=_shillings(payment.amount), phone=payment.phone, remarks=f"Payout {payment.reference}",
                occasion=payment.reference, result_url=urls.result_url(public, payment.callback_token),
                queue_timeout_url=urls.timeout_url(public, payment.callback_token),
                originator_conversation_id=payment.our_id,
            )  # fmt: skip
        return PayoutAccepted(reply.ConversationID)

    async def pay_business(self, payment: BusinessPayment) -> PayoutAccepted:
        public = self._settings.public_url
        with _payout_errors():
            reply = await self._client().b2b(
                amount=_shillings(payment.amount), paybill=payment.paybill, account_reference=payment.account,
                remarks=f"Payout {payment.reference}", occasion=payment.reference,
                result_url=urls.result_url(public, payment.callback_token),
                queue_timeout_url=urls.timeout_url(public, payment.callback_token),
                originator_conversation_id=payment.our_id,
            )  # fmt: skip
        return PayoutAccepted(reply.ConversationID)

    def payout_query_id(self, *, to_business: bool, our_id: str, provider_reference: str | None) -> str:
        """The id a status query asks about: ours for B2C (Daraja keeps it), Daraja's
        ConversationID for B2B when its ack gave one (its B2B may not keep ours)."""
        if to_business and provider_reference:
            return provider_reference
        return our_id

    async def query_payout(self, query: PayoutStatusQuery) -> PayoutStatusAnswer | None:
        """Daraja answers at the status URL: None here."""
        status_url = urls.status_url(self._settings.public_url, query.callback_token)
        with _payout_errors():
            await self._client().transaction_status(
                original_conversation_id=query.query_id, result_url=status_url, queue_timeout_url=status_url,
                remarks=f"Status of payout {query.query_id}", occasion=f"query-{query.attempt}",
            )  # fmt: skip
        return None

    def parse_payout_result(self, body: bytes, *, to_business: bool) -> PayoutOutcome:
        return callbacks.parse_payout_result(body, to_business=to_business)

    def parse_payout_timeout(self, body: bytes) -> PayoutOutcome:
        return callbacks.parse_payout_timeout(body)

    def parse_payout_status(self, body: bytes) -> PayoutStatusAnswer:
        return callbacks.parse_payout_status(body)

    def callback_reply(self) -> dict[str, Any]:
        return dict(callbacks.ACCEPTED)

    # ------------------------------------------------------------------ statement (Pull Transactions)

    async def statement(self, start: datetime, end: datetime) -> list[RailTransaction]:
        """What the shortcode received from ``start`` to ``end``, by Pull Transactions."""
        try:
            rows = await self._client().pull_transactions(start, end)
        except pull.PullWindowExpired as exc:
            raise StatementUnavailable(str(exc), window_expired=True) from exc
        except DarajaError as exc:
            message = f"M-Pesa's statement is unavailable: {exc}"
            raise StatementUnavailable(message, retryable=exc.retryable) from exc
        return [
            RailTransaction(
                receipt=row.transactionId,
                amount=row.amount_minor(),
                currency="KES",
                completed_at=row.completed_at(),
                party=row.msisdn,
                reference=row.billreference,
                kind=row.transactiontype,
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ reversal and balance

    async def reverse(self, request: ReversalRequest) -> ReversalAccepted:
        """Daraja's Reversal of the collection's receipt; the result comes to the reversal URL."""
        url = urls.reversal_url(self._settings.public_url, request.callback_token)
        try:
            reply = await self._client().reversal(
                transaction_id=request.receipt, amount=_shillings(request.amount), result_url=url,
                queue_timeout_url=url, remarks=request.remarks[:100].ljust(2, "."),
                occasion=request.reference,
            )  # fmt: skip
        except DarajaError as exc:
            raise _rail_error(
                exc, (codes.FAILED, f"M-Pesa refused the reversal: {exc.error_message or exc}")
            ) from exc
        return ReversalAccepted(reply.ConversationID, reply.OriginatorConversationID or None)

    def parse_reversal_result(self, body: bytes) -> ReversalOutcome:
        outcome = commands.parse_reversal_result(body)
        if outcome.status == Status.FAILED:
            desc = codes.explain_reversal(outcome.result_code, outcome.result_desc)
            return dataclasses.replace(outcome, result_desc=desc)
        return outcome

    def balance_parties(self) -> list[str]:
        return self._client().shortcodes if self._http is not None else []

    async def balance(
        self, party: str | None = None, callback_token: str | None = None
    ) -> BalanceOutcome | None:
        """Daraja answers at the balance URL: None here."""
        if callback_token is None:
            raise ValueError("Daraja answers balances at a callback: give callback_token")
        client = self._client()
        url = urls.balance_url(self._settings.public_url, callback_token)
        try:
            await client.account_balance(
                party_a=party or client.shortcodes[0], result_url=url, queue_timeout_url=url
            )
        except DarajaError as exc:
            raise _rail_error(
                exc, (codes.FAILED, f"M-Pesa refused the balance query: {exc.error_message or exc}")
            ) from exc
        return None

    def parse_balance_result(self, body: bytes) -> BalanceOutcome:
        return commands.parse_balance_result(body)
