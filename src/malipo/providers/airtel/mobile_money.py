"""Airtel Money as a :class:`~malipo.providers.base.MobileMoney` rail.

The domains hand it neutral requests and read back neutral outcomes. At this edge: amounts in
minor units become major units, ``2547XXXXXXXX`` becomes the national ``7XXXXXXXX`` Airtel wants,
our ids become Airtel's ``transaction.id`` (a collection's reference, a payout's id), the PIN is
encrypted, and every :class:`AirtelError` becomes a :class:`RailError` with the outcome malipo
records when it gives up (``codes``).

Airtel's callback address is one per app, set in its portal; the per-request callback tokens the
domains hand over are not sent. Its callbacks name our id instead (``PushOutcome.our_reference``,
``PayoutOutcome.our_id``). Disbursements often answer with their outcome at once
(``PayoutAccepted.outcome``), and enquiries answer in their reply (``query_payout``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import phonenumbers

from malipo.config import Settings
from malipo.core.money import Money
from malipo.providers.airtel import callbacks, codes
from malipo.providers.airtel.client import AirtelClient, AirtelError, surely_not_taken
from malipo.providers.airtel.connection import airtel_client, uses_simulator
from malipo.providers.airtel.pin import InvalidPinKey, encrypt_pin, load_public_key
from malipo.providers.airtel.sandbox import SANDBOX_PIN, SANDBOX_PIN_PUBLIC_KEY
from malipo.providers.airtel.schemas import AMBIGUOUS, FAILED, IN_PROGRESS, SUCCESS, TransactionReply
from malipo.providers.base import (
    BalanceLine,
    BalanceOutcome,
    BusinessPayment,
    CallbackProblem,
    MalformedCallback,
    NotSupported,
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
    Status,
)

__all__ = ["AirtelMobileMoney", "national_msisdn"]


def national_msisdn(phone: str, country: str) -> str:
    """``254733000001`` → ``733000001``: the number without the country's calling code."""
    digits = phone.lstrip("+")
    prefix = str(phonenumbers.country_code_for_region(country.upper()) or "")
    return digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits


def major_units(minor: int, currency: str) -> int | Decimal:
    """Minor units as the major-unit number Airtel takes (a whole number when there are no cents)."""
    value = Money(minor, currency).to_decimal()
    return int(value) if value == value.to_integral_value() else value


def _rail_error(exc: AirtelError, outcome: tuple[int, str], *, not_taken: bool | None = None) -> RailError:
    code, desc = outcome
    error = RailError(
        str(exc), retryable=exc.retryable,
        not_taken=surely_not_taken(exc) if not_taken is None else not_taken,
        result_code=code, result_desc=desc,
    )  # fmt: skip
    error.__cause__ = exc
    return error


def _failed_payout(dp_code: str | None, message: str | None, cause: str) -> RailError:
    """A disbursement Airtel answered as failed: nothing was paid, it may be failed now."""
    code, desc = codes.payout_failure(dp_code, message)
    return RailError(f"Airtel refused the payout: {cause}", retryable=False, not_taken=True,
                     result_code=code, result_desc=desc)  # fmt: skip


class AirtelMobileMoney:
    """Airtel Money for one mode ("live" or "test"). ``http`` may be None for a rail that only
    parses callbacks; the calls need it (the client keeps its OAuth token while ``http`` lives)."""

    name = "airtel"
    # Airtel pays phones only here: no business payments, so no account reference.
    account_reference_max = 0
    reverses = False

    def __init__(self, settings: Settings, mode: str, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._mode = mode
        self._http = http
        self._currency = settings.airtel_currency

    def _client(self) -> AirtelClient:
        if self._http is None:
            raise RuntimeError("this Airtel rail was made without an HTTP client: it only parses callbacks")
        return airtel_client(self._settings, self._mode, self._http)

    def _msisdn(self, phone: str) -> str:
        return national_msisdn(phone, self._settings.airtel_country)

    def _encrypted_pin(self) -> str:
        """The disbursement PIN encrypted under Airtel's key (the simulator's in sandbox)."""
        if uses_simulator(self._settings, self._mode):
            key_text, pin = SANDBOX_PIN_PUBLIC_KEY, SANDBOX_PIN
        else:
            secret = self._settings.airtel_disbursement_pin
            if self._settings.airtel_pin_public_key is None or secret is None:
                raise RailError(
                    "no disbursement PIN configured", retryable=False, not_taken=True,
                    result_code=codes.PAYOUT_FAILED,
                    result_desc="not sent: MALIPO_AIRTEL_PIN_PUBLIC_KEY and MALIPO_AIRTEL_DISBURSEMENT_PIN "
                    "are not set",
                )  # fmt: skip
            key_text, pin = self._settings.airtel_pin_public_key, secret.get_secret_value()
        try:
            return encrypt_pin(pin, load_public_key(key_text))
        except InvalidPinKey as exc:
            raise RailError(
                str(exc), retryable=False, not_taken=True, result_code=codes.PAYOUT_FAILED,
                result_desc=f"not sent: MALIPO_AIRTEL_PIN_PUBLIC_KEY is {exc}",
            ) from None  # fmt: skip

    # ------------------------------------------------------------------ collections (USSD push)

    async def push_collection(self, request: PushRequest) -> PushAccepted:
        client = self._client()
        try:
            await client.access_token()
        except AirtelError as exc:  # no push was sent: retry or fail it, as Airtel's answer says
            raise _rail_error(exc, codes.refused_push(exc.error_message or str(exc)), not_taken=True) from exc
        try:
            await client.collect(
                transaction_id=request.reference, msisdn=self._msisdn(request.phone),
                amount=major_units(request.amount, self._currency),
                reference=request.description or f"Payment {request.reference}",
            )  # fmt: skip
        except AirtelError as exc:
            raise _rail_error(exc, codes.refused_push(exc.error_message or str(exc))) from exc
        # Airtel knows the push by our id (its reply's echo of it is not reliable).
        return PushAccepted(request.reference)

    async def query_push(self, provider_reference: str) -> PushOutcome:
        """An answer malipo asked for: the result and Airtel's receipt, no amount to compare."""
        try:
            reply = await self._client().collection_status(provider_reference)
        except AirtelError as exc:
            return PushOutcome(Status.UNKNOWN, codes.NO_ANSWER, codes.NO_ANSWER_FROM_AIRTEL, error=str(exc))
        transaction = reply.transaction
        if transaction.status is None:  # no such transaction at Airtel (yet): ask again later
            return PushOutcome(
                Status.UNKNOWN, codes.NO_ANSWER, codes.NO_ANSWER_FROM_AIRTEL, error=_said(reply)
            )
        status = codes.status_of(transaction.status)
        if status == Status.SUCCEEDED:
            return PushOutcome(
                status, codes.PAID, codes.collection_success(transaction.message),
                receipt=transaction.airtel_money_id, provider_reference=provider_reference,
            )  # fmt: skip
        if status == Status.FAILED:
            dp_code = reply.status.response_code if reply.status else None
            code, desc = codes.collection_failure(
                dp_code if dp_code in codes.COLLECTION_CODES else None, transaction.message
            )
            return PushOutcome(status, code, desc, provider_reference=provider_reference)
        return PushOutcome(Status.PENDING, codes.NO_ANSWER, codes.PAYER_DID_NOT_ANSWER)

    def push_query_id(self, reference: str) -> str | None:
        return reference  # the push's transaction.id

    def no_answer(self) -> PushOutcome:
        return PushOutcome(Status.FAILED, codes.NO_ANSWER, codes.NO_ANSWER_FROM_AIRTEL)

    def parse_push_callback(self, body: bytes) -> PushOutcome:
        return callbacks.parse_push_callback(body, currency=self._currency)

    # ------------------------------------------------------------------ payouts (disbursement)

    async def pay_phone(self, payment: PhonePayment) -> PayoutAccepted:
        pin = self._encrypted_pin()
        client = self._client()
        try:
            await client.access_token()
        except AirtelError as exc:
            raise _rail_error(
                exc, codes.refused_payout(exc.error_message or str(exc)), not_taken=True
            ) from exc
        try:
            reply = await client.disburse(
                transaction_id=payment.our_id, msisdn=self._msisdn(payment.phone),
                amount=major_units(payment.amount, self._currency), reference=payment.reference,
                encrypted_pin=pin,
            )  # fmt: skip
        except AirtelError as exc:
            if exc.response_code in codes.DISBURSEMENT_CODES and surely_not_taken(exc):
                raise _failed_payout(exc.response_code, exc.error_message, str(exc)) from exc
            raise _rail_error(exc, codes.refused_payout(exc.error_message or str(exc))) from exc
        return self._disbursed(payment, reply)

    def _disbursed(self, payment: PhonePayment, reply: TransactionReply) -> PayoutAccepted:
        """A disbursement's reply: paid at once, failed (raised), or in progress (enquire later)."""
        transaction, envelope = reply.transaction, reply.status
        dp_code = envelope.response_code if envelope else None
        if transaction.status == SUCCESS:
            outcome = PayoutOutcome(
                Status.SUCCEEDED, codes.PAID, codes.payout_success(transaction.message),
                receipt=transaction.airtel_money_id or transaction.reference_id,
                our_id=transaction.id if isinstance(transaction.id, str) else payment.our_id,
                provider_reference=payment.our_id, states_payment=False,
            )  # fmt: skip
            return PayoutAccepted(payment.our_id, outcome=outcome)
        failing = envelope is not None and envelope.success is False
        if transaction.status == FAILED or (failing and dp_code in codes.DISBURSEMENT_CODES):
            message = transaction.message or (envelope.message if envelope else None)
            raise _failed_payout(
                dp_code if dp_code in codes.DISBURSEMENT_CODES else None, message, _said(reply)
            )
        if failing and transaction.status is None and envelope is not None:
            error = AirtelError(_said(reply), retryable=False, status=200, code=envelope.code,
                                result_code=envelope.result_code, response_code=dp_code)  # fmt: skip
            if surely_not_taken(error):  # refused in so many words ("Missing header/body params" …)
                raise _failed_payout(None, envelope.message, _said(reply))
        return PayoutAccepted(payment.our_id)  # in progress, or Airtel cannot tell yet: enquire

    async def pay_business(self, payment: BusinessPayment) -> PayoutAccepted:
        raise NotSupported("Airtel Money pays phones only")

    def payout_query_id(self, *, to_business: bool, our_id: str, provider_reference: str | None) -> str:
        """Airtel's enquiry takes our id."""
        return our_id

    async def query_payout(self, query: PayoutStatusQuery) -> PayoutStatusAnswer:
        """Airtel's disbursement enquiry answers in its reply."""
        try:
            reply = await self._client().disbursement_status(query.query_id)
        except AirtelError as exc:
            if not _not_found(exc):  # no answer: the job asks again later
                raise _rail_error(exc, codes.refused_payout(exc.error_message or str(exc))) from exc
            desc = f"No completed payout at Airtel Money: {exc.error_message or 'not found'}"[
                : codes.DESC_MAX
            ]
            outcome = PayoutOutcome(Status.FAILED, codes.PAYOUT_FAILED, desc)
            return PayoutStatusAnswer(completed=False, outcome=outcome, attempt=query.attempt)
        transaction = reply.transaction
        dp_code = reply.status.response_code if reply.status else None
        if transaction.status == SUCCESS:
            outcome = PayoutOutcome(
                Status.SUCCEEDED, codes.PAID, codes.payout_success(transaction.message),
                receipt=transaction.airtel_money_id or transaction.reference_id,
                our_id=transaction.id if isinstance(transaction.id, str) else query.query_id,
                provider_reference=query.query_id, states_payment=False,
            )  # fmt: skip
            return PayoutStatusAnswer(completed=True, outcome=outcome)
        if transaction.status == FAILED:
            code, desc = codes.payout_failure(dp_code if dp_code in codes.DISBURSEMENT_CODES else None,
                                              transaction.message)  # fmt: skip
            return PayoutStatusAnswer(
                completed=False, failed=True, outcome=PayoutOutcome(Status.FAILED, code, desc)
            )
        words = transaction.message or (reply.status.message if reply.status else None) or "not completed"
        outcome = PayoutOutcome(
            Status.FAILED,
            codes.PAYOUT_FAILED,
            f"No completed payout at Airtel Money: {words}"[: codes.DESC_MAX],
        )
        # In progress (or ambiguous): Airtel may still pay it, so it is never failed on our side.
        undecided = transaction.status in (IN_PROGRESS, AMBIGUOUS)
        return PayoutStatusAnswer(
            completed=False, outcome=outcome, attempt=query.attempt, in_progress=undecided
        )

    def parse_payout_result(self, body: bytes, *, to_business: bool) -> PayoutOutcome:
        return callbacks.parse_payout_callback(body, currency=self._currency)

    def parse_payout_timeout(self, body: bytes) -> PayoutOutcome:
        raise MalformedCallback("Airtel sends no queue timeouts", 1, [CallbackProblem("body", "unexpected")])

    def parse_payout_status(self, body: bytes) -> PayoutStatusAnswer:
        raise MalformedCallback(
            "Airtel answers enquiries in their reply", 1, [CallbackProblem("body", "unexpected")]
        )

    def callback_reply(self) -> dict[str, Any]:
        return dict(callbacks.ACCEPTED)

    # ------------------------------------------------------------------ balance; not yet

    def balance_parties(self) -> list[str]:
        return ["disbursement"]  # the one account Airtel's balance API answers for

    async def balance(self, party: str | None = None, callback_token: str | None = None) -> BalanceOutcome:
        """The disbursement account's balance at Airtel, in minor units by currency (in the reply)."""
        try:
            reply = await self._client().balance()
        except AirtelError as exc:
            raise _rail_error(exc, codes.refused_payout(exc.error_message or str(exc))) from exc
        data = reply.data
        if data is None or data.balance is None:
            return BalanceOutcome()
        currency = (data.currency or self._currency).upper()
        amount = Money.parse(data.balance, currency, allow_zero=True).amount
        line = BalanceLine("Disbursement", currency, (amount,))
        return BalanceOutcome({currency: amount}, accounts=(line,), result_desc=data.account_status or "")

    def parse_balance_result(self, body: bytes) -> BalanceOutcome:
        raise MalformedCallback(
            "Airtel answers balances in their reply", 1, [CallbackProblem("body", "unexpected")]
        )

    async def reverse(self, request: ReversalRequest) -> ReversalAccepted:
        raise NotSupported("Airtel Money has no reversal in malipo: its refund API is not in the reference")

    def parse_reversal_result(self, body: bytes) -> ReversalOutcome:
        raise MalformedCallback(
            "Airtel sends no reversal results", 1, [CallbackProblem("body", "unexpected")]
        )

    async def statement(self, start: datetime, end: datetime) -> list[RailTransaction]:
        # Airtel's Open API has no statement: reconciliation asks its enquiry about open items.
        raise NotSupported("Airtel Money has no statement API; its open items are asked about one by one")


def _not_found(exc: AirtelError) -> bool:
    """Airtel has no transaction with the id asked about."""
    return exc.result_code == codes.NOT_FOUND_RESULT or exc.response_code in (
        codes.DISBURSEMENT_NOT_FOUND, codes.COLLECTION_NOT_FOUND,
    )  # fmt: skip


def _said(reply: TransactionReply) -> str:
    status = reply.status
    if status is None:
        return "no status in Airtel's reply"
    return " ".join(
        str(part) for part in (status.code, status.result_code, status.response_code, status.message) if part
    )
