"""Bank transfers out of a merchant's payments wallet, with fraud checks and a one-time code.

What callers can rely on:
- ``create_transfer`` derives the bank from the account number (the banks registry), runs the
  fraud rules and keeps their flags and score, and — unless they block it, which is a 422 naming
  the flags that changes nothing — holds the amount on the payments wallet and the fee on the
  service wallet before anything else. Then it sends a six-digit code to the API user's phone
  and email (PENDING), or, where the client's rules allow it without a code, releases it to the
  rail at once (PROCESSING).
- ``authorize`` takes the right code within five minutes once: the transfer goes to the rail.
  A wrong code is counted, and the caller commits the count before it answers 422; the fifth cancels the
  transfer and releases its holds. ``resend_otp`` replaces the code (the old one is dead), at most
  three times and 30 s apart. A transfer nobody authorises in 30 minutes is cancelled.
- ``apply_outcome`` moves a transfer to COMPLETED or FAILED once (a guarded UPDATE) on what the
  rail reports, after checking the report names our EndToEndId: success settles both holds
  (money leaves through the bank clearing account, the fee goes to fee revenue), a rejection
  releases them. A success for another amount, currency or account than was asked is held for
  review with both holds kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.banks import service as banks
from malipo.collections import service as collections
from malipo.config import Settings
from malipo.core.crypto import sha256_hex
from malipo.core.errors import Conflict, FieldError, MalipoError, NotFound, RateLimited, ValidationFailed
from malipo.core.ids import new_id, new_reference
from malipo.core.logging import get_logger
from malipo.core.money import Money
from malipo.identity import clients
from malipo.identity.principals import Principal
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.pricing import service as pricing
from malipo.pricing.models import PricingKind
from malipo.providers.base import Status, TransferOutcome
from malipo.reviews import records as reviews
from malipo.reviews.models import ReviewKind
from malipo.transfers import fraud, otp, repository
from malipo.transfers.models import Transfer, TransferStatus
from malipo.worker.registry import enqueue

log = get_logger("malipo.transfers")

SEND_JOB = "transfer.send"
QUERY_JOB = "transfer.query"
OTP_SMS_JOB = otp.OTP_SMS_JOB
EXPIRE_JOB = "transfer.expire"
# How long a transfer waits for its code before it is cancelled and its funds released.
PENDING_TTL = timedelta(minutes=30)
# Status queries of a transfer whose result has not come before an operator must look at it.
MAX_QUERIES = 10
BANK_RAIL = "bankrail"
DEFAULT_NARRATION = "Transfer to {account}"
# Flags are reported against the field they are about.
_FLAG_FIELDS = {"amount_over_limit": "amount", "daily_count": "amount", "daily_value": "amount"}


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    title = "No such transfer"


class TransferBlocked(ValidationFailed):
    code = "transfer_blocked"
    title = "The fraud rules block this transfer"


class InsufficientBalance(ValidationFailed):
    code = "insufficient_balance"
    title = "The wallet does not hold enough"


class NotPending(Conflict):
    code = "transfer_not_pending"
    title = "The transfer is not waiting for a code"


class WrongCode(ValidationFailed):
    code = "otp_incorrect"
    title = "The code is not right"


class CodeExpired(ValidationFailed):
    code = "otp_expired"
    title = "The code has expired"


class TooManyWrongCodes(Conflict):
    code = "otp_attempts_exhausted"
    title = "Too many wrong codes: the transfer is cancelled"


class ResendRefused(RateLimited):
    code = "otp_resend_refused"
    title = "No new code can be sent now"


class CallbackMismatch(Conflict):
    code = "callback_mismatch"
    title = "The report is not about this transfer"


class UnknownTransferToken(NotFound):
    code = "unknown_callback"
    title = "Unknown callback"


def callback_token(settings: Settings, transfer_id: uuid.UUID) -> str:
    """The secret in the transfer's status URL: derived from its id, stored nowhere (only its hash)."""
    return collections.callback_token(settings, transfer_id, purpose="bank-transfer")


# --------------------------------------------------------------------------- making one


@dataclass(frozen=True, slots=True)
class TransferRequest:
    account_number: str
    amount: object  # as the client sent it: read by Money.parse in the client's currency
    narration: str | None = None


async def create_transfer(
    session: AsyncSession, who: Principal, body: TransferRequest, *, settings: Settings, now: datetime
) -> Transfer:
    assert who.client_id is not None
    client = await clients.client_by_id(session, who.client_id)
    assert client is not None
    mode = who.mode.value
    account = body.account_number.strip()
    bank = await banks.bank_for_account(session, account)
    if bank.rail != BANK_RAIL:
        raise ValidationFailed.for_field(
            "accountNumber", _not_on_the_bank_rail(bank.name, bank.rail, bank.payhero_code)
        )
    amount = Money.parse(body.amount, client.currency, field="amount")  # type: ignore[arg-type]
    assessment = await fraud.assess(
        session, client_id=client.id, mode=mode, api_user_id=who.api_user_id, destination=account,
        amount=amount, now=now,
    )  # fmt: skip
    if assessment.decision == fraud.Decision.BLOCK:
        raise blocked(assessment, client.id)
    fee = await pricing.fee(session, settings, client.id, PricingKind.PAYOUT, amount)
    transfer_id = new_id()
    reference = new_reference()
    hold_id = await _hold(session, client.id, mode, AccountKind.PAYMENTS_WALLET, amount, reference, now)
    fee_hold_id = (
        await _hold(session, client.id, mode, AccountKind.SERVICE_WALLET, fee, reference, now)
        if fee.is_positive
        else None
    )
    narration = (body.narration or "").strip() or DEFAULT_NARRATION.format(account=account)
    transfer = new_transfer(
        settings, who, assessment, transfer_id=transfer_id, reference=reference, now=now, kind="bank",
        account_number=account, bank_code=bank.code, bank_name=bank.name[:120], amount=amount.amount,
        currency=amount.currency, fee=fee.amount, narration=narration[:140], status=TransferStatus.PENDING,
        hold_id=hold_id, fee_hold_id=fee_hold_id,
    )  # fmt: skip
    session.add(transfer)
    await session.flush()
    if assessment.decision == fraud.Decision.OTP:
        await otp.send_code(session, transfer, settings, now)
        enqueue(session, EXPIRE_JOB, {"transfer_id": str(transfer.id)}, now=now, delay=PENDING_TTL)
    else:
        await _release_to_rail(session, transfer, now)
    log.info("transfer.created", reference=reference, mode=mode, decision=assessment.decision.value,
             score=assessment.score, bank=bank.code)  # fmt: skip
    return transfer


def blocked(assessment: fraud.Assessment, client_id: uuid.UUID, prefix: str = "") -> TransferBlocked:
    """The 422 of a transfer the fraud rules block, naming each flag (under ``prefix``'s fields)."""
    log.warning("transfer.blocked", client_id=str(client_id), score=assessment.score,
                rules=[f.rule for f in assessment.flags])  # fmt: skip
    return TransferBlocked(
        "blocked by the fraud rules: " + "; ".join(f.reason for f in assessment.flags),
        errors=[
            FieldError(prefix + _FLAG_FIELDS.get(f.rule, "accountNumber"), f.reason) for f in assessment.flags
        ],
        flags=[f.as_dict() for f in assessment.flags],
        riskScore=assessment.score,
    )


def new_transfer(
    settings: Settings,
    who: Principal,
    assessment: fraud.Assessment,
    *,
    now: datetime,
    transfer_id: uuid.UUID | None = None,
    reference: str | None = None,
    **fields: Any,
) -> Transfer:
    """A transfer row with the fraud verdict, its rail ids and counters filled in (not added)."""
    assert who.client_id is not None
    transfer_id = transfer_id or new_id()
    return Transfer(
        id=transfer_id, client_id=who.client_id, mode=who.mode.value, api_user_id=who.api_user_id,
        reference=reference or new_reference(), decision=assessment.decision.value,
        risk_score=assessment.score, flags=[f.as_dict() for f in assessment.flags], otp_failures=0,
        otp_resends=0, end_to_end_id=f"MLP{transfer_id.hex[:29].upper()}",
        callback_token_hash=sha256_hex(callback_token(settings, transfer_id)), queries=0,
        created_at=now, updated_at=now, **fields,
    )  # fmt: skip


def _not_on_the_bank_rail(name: str, rail: str, payhero_code: str | None) -> str:
    if rail == "mpesa_b2b":
        return (
            f"{name} is paid by M-Pesa to its paybill: use POST /api/v2/withdraw with channel bank and"
            f" network_code {payhero_code}"
        )
    return f"{name} is a mobile-money operator, not a bank: pay the phone with POST /api/v2/withdraw"


async def _hold(
    session: AsyncSession, client_id: uuid.UUID, mode: str, kind: AccountKind, amount: Money, reference: str,
    now: datetime,
) -> uuid.UUID:  # fmt: skip
    wallet = await ledger.merchant_wallet(session, client_id, kind, amount.currency, mode, now)
    try:
        hold = await ledger.place_hold(
            session, wallet.id, amount.amount, reference=f"transfer:{reference}", now=now
        )
    except ledger.InsufficientFunds:
        available = Money(wallet.balance - wallet.held, wallet.currency)
        what = "payments wallet" if kind == AccountKind.PAYMENTS_WALLET else "service wallet (fees)"
        raise InsufficientBalance(
            f"insufficient balance: the {what} has {available} available, {amount} needed",
            errors=[FieldError("amount", f"needs {amount} on the {what}, which has {available} available")],
        ) from None
    return hold.id


# --------------------------------------------------------------------------- the code


async def _pending(session: AsyncSession, who: Principal, transfer_id: uuid.UUID) -> Transfer:
    transfer = await get_transfer(session, who, transfer_id)
    locked = await repository.by_id(session, transfer.id, lock=True)
    assert locked is not None
    if locked.status != TransferStatus.PENDING:
        raise NotPending(
            f"transfer {locked.reference} is {locked.status}: only a PENDING transfer takes a code",
            errors=[FieldError("transactionId", f"the transfer is {locked.status}")],
        )
    return locked


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a code did: ``refusal`` is the error to raise once the counting is committed (a wrong
    code must count even though the caller answers with an error), None when it was right."""

    transfer: Transfer
    refusal: MalipoError | None = None


async def authorize(
    session: AsyncSession,
    who: Principal,
    transfer_id: uuid.UUID,
    code: str,
    *,
    settings: Settings,
    now: datetime,
) -> Authorization:
    """The right code releases the transfer to the rail. A wrong one is counted and answered as a
    refusal to raise after the commit; the last one also cancels the transfer and its holds."""
    transfer = await _pending(session, who, transfer_id)
    if transfer.otp_expires_at is None or now >= transfer.otp_expires_at:
        raise CodeExpired(
            "the code has expired: ask for a new one (POST /api/v1/payments/transfers/resend-otp)",
            errors=[FieldError("otpCode", "has expired")],
        )
    if transfer.otp_hash is not None and otp.code_matches(
        otp.secret_key(settings), transfer.id, code, transfer.otp_hash
    ):
        transfer.otp_hash = None
        transfer.authorized_at = now
        await _release_to_rail(session, transfer, now)
        log.info("transfer.authorized", reference=transfer.reference)
        return Authorization(transfer)
    failures = transfer.otp_failures + 1
    transfer.otp_failures = failures
    transfer.updated_at = now
    await session.flush()
    log.info("transfer.otp_wrong", reference=transfer.reference, failures=failures)
    left = otp.MAX_FAILURES - failures
    if left > 0:
        return Authorization(
            transfer,
            WrongCode(
                f"the code is not right: {left} attempt{'s' if left > 1 else ''} left",
                errors=[FieldError("otpCode", "is not right")],
            ),
        )
    await _cancel(session, transfer, "cancelled after too many wrong codes", now)
    return Authorization(
        transfer,
        TooManyWrongCodes(
            f"{otp.MAX_FAILURES} wrong codes: transfer {transfer.reference} is cancelled"
            " and its funds released",
            errors=[FieldError("otpCode", "wrong, for the last time")],
        ),
    )


async def resend_otp(
    session: AsyncSession, who: Principal, transfer_id: uuid.UUID, *, settings: Settings, now: datetime
) -> Transfer:
    transfer = await _pending(session, who, transfer_id)
    if transfer.otp_resends >= otp.MAX_RESENDS:
        raise ResendRefused(
            f"a code was sent again {otp.MAX_RESENDS} times already: no more can be sent for this transfer",
            errors=[FieldError("transactionId", "no more codes can be sent")],
        )
    last = transfer.otp_sent_at or transfer.created_at
    wait = otp.RESEND_INTERVAL - (now - last)
    if wait > timedelta(0):
        seconds = max(1, int(wait.total_seconds() + 0.999))
        raise ResendRefused(
            f"a code was sent {int((now - last).total_seconds())} s ago: ask again in {seconds} s",
            errors=[FieldError("transactionId", f"ask again in {seconds} s")],
            headers={"Retry-After": str(seconds)},
        )
    transfer.otp_resends += 1
    await otp.send_code(session, transfer, settings, now)
    return transfer


async def _release_to_rail(session: AsyncSession, transfer: Transfer, now: datetime) -> None:
    transfer.status = TransferStatus.PROCESSING
    transfer.updated_at = now
    transfer.authorized_at = transfer.authorized_at or now
    await session.flush()
    enqueue_send(session, transfer.id, now=now)


async def _cancel(session: AsyncSession, transfer: Transfer, why: str, now: datetime) -> bool:
    values = {"status": TransferStatus.CANCELLED, "result_desc": why, "otp_hash": None,
              "completed_at": now, "updated_at": now}  # fmt: skip
    if not await repository.move(session, transfer.id, [TransferStatus.PENDING], values):
        return False
    await ledger.release_holds(session, _holds(transfer), now=now)
    await session.refresh(transfer)
    log.info("transfer.cancelled", reference=transfer.reference, reason=why)
    return True


async def expire(session: AsyncSession, transfer_id: uuid.UUID, *, now: datetime) -> bool:
    """Cancel the transfer if it still waits for its code (the expiry job)."""
    transfer = await repository.by_id(session, transfer_id)
    if transfer is None or transfer.status != TransferStatus.PENDING:
        return False
    minutes = int(PENDING_TTL.total_seconds() // 60)
    return await _cancel(session, transfer, f"not authorised within {minutes} minutes", now)


def _held(transfer: Transfer) -> uuid.UUID:
    assert transfer.hold_id is not None, f"transfer {transfer.reference} holds nothing"
    return transfer.hold_id


def _holds(transfer: Transfer) -> list[uuid.UUID]:
    return [hold for hold in (transfer.hold_id, transfer.fee_hold_id) if hold is not None]


# --------------------------------------------------------------------------- the rail's answer


async def transfer_for_token(session: AsyncSession, token: str) -> Transfer:
    found = await repository.by_token_hash(session, sha256_hex(token))
    if found is None:
        raise UnknownTransferToken("no transfer has this status address")
    return found


def _differences(transfer: Transfer, outcome: TransferOutcome) -> list[str]:
    found = []
    if outcome.amount is not None and outcome.amount != transfer.amount:
        found.append("the amount differs")
    if outcome.currency is not None and outcome.currency != transfer.currency:
        found.append("the currency differs")
    if outcome.creditor_account is not None and outcome.creditor_account != transfer.account_number:
        found.append("the account differs")
    return found


async def apply_outcome(
    session: AsyncSession, transfer: Transfer, outcome: TransferOutcome, *, now: datetime
) -> bool:
    """Act once on a final status report (SUCCEEDED or FAILED); False when the transfer had
    moved already, or the report is not final. CallbackMismatch when it names another transfer."""
    if outcome.end_to_end_id is not None and outcome.end_to_end_id != transfer.end_to_end_id:
        log.warning(
            "callback.mismatch", provider="bankrail", reference=transfer.reference, fields="EndToEndId"
        )
        raise CallbackMismatch("the report's EndToEndId is not this transfer's")
    if outcome.status not in (Status.SUCCEEDED, Status.FAILED):
        return False
    values: dict[str, Any] = {
        "updated_at": now,
        "provider_reference": outcome.provider_reference or transfer.provider_reference,
    }
    differs = _differences(transfer, outcome) if outcome.status == Status.SUCCEEDED else []
    if differs:
        values["status"] = TransferStatus.REVIEW
        values["result_desc"] = "; ".join(differs)
    elif outcome.status == Status.SUCCEEDED:
        values |= {"status": TransferStatus.COMPLETED, "completed_at": now, "result_desc": "Settled"}
    else:
        values |= {"status": TransferStatus.FAILED, "completed_at": now, "reason_code": outcome.reason_code,
                   "result_desc": (outcome.reason or "Rejected by the bank")[:300]}  # fmt: skip
    if not await repository.move(session, transfer.id, [TransferStatus.PROCESSING], values):
        log.info("transfer.already_final", reference=transfer.reference, status=outcome.status)
        return False
    await session.refresh(transfer)
    if differs:
        reviews.open_review(
            session, kind=ReviewKind.TRANSFER, subject_id=transfer.id, client_id=transfer.client_id,
            mode=transfer.mode, reference=transfer.reference, asked_amount=transfer.amount,
            currency=transfer.currency, asked_party=transfer.account_number,
            received=reviews.Received(outcome.amount, outcome.creditor_account),
            receipt=outcome.provider_reference, reason="; ".join(differs), now=now,
        )  # fmt: skip
        await session.flush()
        return True
    await _settle_or_release(session, transfer, now=now)
    return True


async def _settle_or_release(
    session: AsyncSession, transfer: Transfer, *, now: datetime, held: int | None = None
) -> None:
    if transfer.status != TransferStatus.COMPLETED:
        await ledger.release_holds(session, _holds(transfer), now=now)
        log.info("transfer.failed", reference=transfer.reference, reason_code=transfer.reason_code)
        return
    currency, mode = transfer.currency, transfer.mode
    clearing = await ledger.system_account(session, AccountKind.BANK_CLEARING, currency, mode, now)
    legs = [ledger.Leg(clearing.id, transfer.amount, currency)]
    if held is not None and held > transfer.amount:  # an operator accepted less than was held
        wallet = await ledger.merchant_wallet(
            session, transfer.client_id, AccountKind.PAYMENTS_WALLET, currency, mode, now
        )
        legs.append(ledger.Leg(wallet.id, held - transfer.amount, currency))
    settlements = [
        ledger.Settlement(
            _held(transfer), legs, kind="bank_transfer", mode=mode, client_id=transfer.client_id,
            description=f"Transfer {transfer.reference} to {transfer.bank_name}"
            f" account {transfer.account_number}",
            idempotency_key=f"transfer:{transfer.id}",
        )
    ]  # fmt: skip
    if transfer.fee_hold_id is not None:
        revenue = await ledger.system_account(session, AccountKind.FEE_REVENUE, currency, mode, now)
        settlements.append(
            ledger.Settlement(
                transfer.fee_hold_id, [ledger.Leg(revenue.id, transfer.fee, currency)],
                kind="bank_transfer_fee",
                mode=mode, client_id=transfer.client_id, description=f"Transfer fee {transfer.reference}",
                idempotency_key=f"transfer-fee:{transfer.id}",
            )
        )  # fmt: skip
    posted = await ledger.settle_holds(session, settlements, now=now)
    transfer.journal_id = posted[0].journal.id
    await session.flush()
    log.info("transfer.completed", reference=transfer.reference)


async def accept_review(
    session: AsyncSession, transfer_id: uuid.UUID, received_amount: int | None, *, now: datetime
) -> Transfer:
    """An operator accepts what the bank reports: COMPLETED for the received amount (None: the
    amount asked, never more than was held), the rest released to the payments wallet."""
    current = await repository.by_id(session, transfer_id)
    if current is None or current.status != TransferStatus.REVIEW:
        raise reviews.NotInReview(f"transfer {transfer_id} is not held for review")
    held = current.amount
    paid = held if received_amount is None else received_amount
    if paid > held:
        raise Conflict(
            f"the bank reports {Money(paid, current.currency)} paid,"
            f" more than the {Money(held, current.currency)} held"
        )
    values = {"status": TransferStatus.COMPLETED, "amount": paid, "completed_at": now, "updated_at": now}
    transfer = await reviews.leave_review(
        session,
        Transfer,
        transfer_id,
        values,
        reviews.NotInReview(f"transfer {transfer_id} is not held for review"),
    )
    await _settle_or_release(session, transfer, now=now, held=held)
    return transfer


async def reject_review(session: AsyncSession, transfer_id: uuid.UUID, *, now: datetime) -> Transfer:
    values = {"status": TransferStatus.FAILED,
              "result_desc": "Rejected on review: what the bank reported differs",
              "completed_at": now, "updated_at": now}  # fmt: skip
    transfer = await reviews.leave_review(
        session,
        Transfer,
        transfer_id,
        values,
        reviews.NotInReview(f"transfer {transfer_id} is not held for review"),
    )
    await _settle_or_release(session, transfer, now=now)
    return transfer


reviews.register_resolver(ReviewKind.TRANSFER, reviews.Resolver(accept=accept_review, reject=reject_review))


# --------------------------------------------------------------------------- reads


async def get_transfer(session: AsyncSession, who: Principal, transfer_id: uuid.UUID) -> Transfer:
    """The caller's transfer in its mode; another client's (or mode's) is a 404."""
    assert who.client_id is not None
    found = await repository.of_client(session, who.client_id, who.mode.value, transfer_id)
    if found is None:
        raise TransferNotFound(
            f"no transfer {transfer_id}", errors=[FieldError("transactionId", "no such transfer")]
        )
    return found


PENDING_VIEW = (TransferStatus.PENDING, TransferStatus.PROCESSING, TransferStatus.REVIEW)
COMPLETED_VIEW = (TransferStatus.COMPLETED,)


async def list_transfers(
    session: AsyncSession,
    who: Principal,
    *,
    statuses: tuple[str, ...] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    page_size: int = 50,
) -> tuple[list[Transfer], int]:
    assert who.client_id is not None
    if since is not None and until is not None and since >= until:
        raise ValidationFailed.for_field("from", "must be before `to`")
    return await repository.page(
        session, who.client_id, who.mode.value, statuses=statuses, since=since, until=until,
        offset=(page - 1) * page_size, limit=page_size,
    )  # fmt: skip


def schedule_query(
    session: AsyncSession, transfer_id: uuid.UUID, query: int, *, delay: timedelta, now: datetime
) -> None:
    """Ask the rail about the transfer later, unless its status report arrives first."""
    enqueue(session, QUERY_JOB, {"transfer_id": str(transfer_id), "query": query}, now=now, delay=delay)


def enqueue_send(session: AsyncSession, transfer_id: uuid.UUID, *, now: datetime) -> None:
    enqueue(session, SEND_JOB, {"transfer_id": str(transfer_id)}, now=now)


async def list_incoming(
    session: AsyncSession, who: Principal, *, page: int = 1, page_size: int = 50
) -> tuple[list[Transfer], int]:
    """What other clients paid the caller's client by client-to-client transfer."""
    assert who.client_id is not None
    return await repository.incoming_page(
        session, who.client_id, who.mode.value, offset=(page - 1) * page_size, limit=page_size
    )
