"""/api/v1 routes of payments out (bank transfers with fraud checks and a one-time code) and of
the fraud rules operators set per client.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from malipo.core.errors import FieldError, NotFound, ValidationFailed
from malipo.core.money import Money
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.permissions import CA, KEY, OP, CurrentPrincipal, callers
from malipo.http.schemas import IsoDateTime, PageQuery, page_size_query
from malipo.http.tags import FRAUD, PAYMENTS
from malipo.identity import clients
from malipo.transfers import bulk, fraud, otp, repository, service
from malipo.transfers.models import BlockedDestination, Transfer, TransferStatus
from malipo.transfers.schemas import (
    AuthorizeIn,
    BlockIn,
    BlockOut,
    BulkOut,
    ClientBankTransferIn,
    ClientMobileTransferIn,
    FlagOut,
    FraudRulesIn,
    FraudRulesOut,
    MobileBulkIn,
    RejectedEntry,
    ResendIn,
    TransferIn,
    TransferOut,
    TransferPage,
)

router = APIRouter(tags=[PAYMENTS])
fraud_router = APIRouter(tags=[FRAUD])

PageSize = page_size_query(200)


def transfer_out(transfer: Transfer) -> TransferOut:
    pending = transfer.status == TransferStatus.PENDING
    return TransferOut(
        transaction_id=transfer.id, reference=transfer.reference, status=transfer.status,
        kind=transfer.kind, account_number=transfer.account_number, bank_code=transfer.bank_code,
        bank_name=transfer.bank_name, destination_client_id=transfer.destination_client_id,
        beneficiary_name=transfer.beneficiary_name, entry_reference=transfer.entry_reference,
        batch_id=transfer.batch_id,
        amount=Money(transfer.amount, transfer.currency).format(),
        fee=Money(transfer.fee, transfer.currency).format(),
        currency=transfer.currency, narration=transfer.narration, decision=transfer.decision,
        risk_score=transfer.risk_score, flags=[FlagOut(**flag) for flag in transfer.flags],
        otp_required=transfer.decision == fraud.Decision.OTP,
        otp_expires_at=transfer.otp_expires_at if pending else None,
        otp_attempts_left=otp.MAX_FAILURES - transfer.otp_failures if pending else None,
        otp_resends_left=otp.MAX_RESENDS - transfer.otp_resends if pending else None,
        end_to_end_id=transfer.end_to_end_id, provider_reference=transfer.provider_reference,
        reason_code=transfer.reason_code, result_desc=transfer.result_desc, created_at=transfer.created_at,
        authorized_at=transfer.authorized_at, completed_at=transfer.completed_at,
    )  # fmt: skip


@router.post(
    "/payments/transfers", response_model=TransferOut, status_code=status.HTTP_201_CREATED,
    name="Payments.Transfer", summary="Transfer to a bank account (fraud checks, then a one-time code)",
    openapi_extra=callers(KEY),
)  # fmt: skip
async def create_transfer(
    body: TransferIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> TransferOut:  # fmt: skip
    """Hold the amount (and the fee on the service wallet) and run the fraud rules. Unless they
    block it (422, naming the flags), the transfer is PENDING and a 6-digit code goes to your API
    user's phone and email: authorise it within 5 minutes. The bank is the account number's first
    3 digits (`GET /api/v1/banks`)."""
    request = service.TransferRequest(body.account_number, body.amount, body.narration)
    transfer = await service.create_transfer(session, who, request, settings=settings, now=clock.now())
    reply = transfer_out(transfer)
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/payments/transfers/authorize", response_model=TransferOut, name="Payments.Authorize",
    summary="Authorise a pending transfer with its one-time code", openapi_extra=callers(KEY),
)  # fmt: skip
async def authorize_transfer(
    body: AuthorizeIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> TransferOut:
    """The right code within 5 minutes sends the transfer to the bank (PROCESSING, then COMPLETED
    or FAILED with the bank's reason). A wrong code is counted: the fifth cancels the transfer and
    releases its funds. An expired code says so: ask for a new one."""
    done = await service.authorize(
        session, who, body.transaction_id, body.otp_code, settings=settings, now=clock.now()
    )
    if done.refusal is not None:
        await session.commit()  # the wrong code counts, although the answer is an error
        raise done.refusal
    return transfer_out(done.transfer)


@router.post(
    "/payments/transfers/resend-otp", response_model=TransferOut, name="Payments.ResendOtp",
    summary="Send a pending transfer's code again", openapi_extra=callers(KEY),
)  # fmt: skip
async def resend_otp(
    body: ResendIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> TransferOut:
    """A new code (the old one stops working), at most 3 times per transfer and 30 s apart (429
    with `Retry-After` otherwise)."""
    transfer = await service.resend_otp(session, who, body.transaction_id, settings=settings, now=clock.now())
    return transfer_out(transfer)


def _page(rows: list[Transfer], total: int, page: int, page_size: int) -> TransferPage:
    return TransferPage(items=[transfer_out(r) for r in rows], page=page, page_size=page_size, total=total)


@router.get(
    "/payments/transactions/pending", response_model=TransferPage, name="Payments.ReadPending",
    summary="Transfers not finished yet", openapi_extra=callers(KEY),
)  # fmt: skip
async def pending_transfers(
    who: CurrentPrincipal, session: Session, page: PageQuery = 1, page_size: PageSize = 50
) -> TransferPage:
    """PENDING (waiting for the code), PROCESSING (with the bank) and REVIEW, newest first."""
    rows, total = await service.list_transfers(
        session, who, statuses=service.PENDING_VIEW, page=page, page_size=page_size
    )
    return _page(rows, total, page, page_size)


@router.get(
    "/payments/transactions/completed", response_model=TransferPage, name="Payments.ReadCompleted",
    summary="Completed transfers", openapi_extra=callers(KEY),
)  # fmt: skip
async def completed_transfers(
    who: CurrentPrincipal, session: Session, page: PageQuery = 1, page_size: PageSize = 50
) -> TransferPage:
    """COMPLETED transfers and entries (settled by the bank or M-Pesa, or credited to another
    client), newest first."""
    rows, total = await service.list_transfers(
        session, who, statuses=service.COMPLETED_VIEW, page=page, page_size=page_size
    )
    return _page(rows, total, page, page_size)


@router.get(
    "/payments/transactions/incoming", response_model=TransferPage, name="Payments.ReadIncoming",
    summary="Client-to-client transfers paid to you", openapi_extra=callers(KEY),
)  # fmt: skip
async def incoming_transfers(
    who: CurrentPrincipal, session: Session, page: PageQuery = 1, page_size: PageSize = 50
) -> TransferPage:
    """Entries other clients sent to your payments wallet, each with its narration, reference and
    beneficiary, newest first."""
    rows, total = await service.list_incoming(session, who, page=page, page_size=page_size)
    return _page(rows, total, page, page_size)


def _bulk_out(result: bulk.BulkResult) -> BulkOut:
    return BulkOut(
        batch_id=result.batch_id, accepted=[transfer_out(t) for t in result.accepted],
        rejected=[
            RejectedEntry(index=r.index, destination=r.destination, amount=r.amount, field=r.field,
                          reason=r.reason,
                          flags=[FlagOut(**f) for f in r.flags])
            for r in result.rejected
        ],
        accepted_count=len(result.accepted), rejected_count=len(result.rejected),
    )  # fmt: skip


@router.post(
    "/payments/mobile/bulk", response_model=BulkOut, status_code=status.HTTP_201_CREATED,
    name="Payments.MobileBulk", summary="Pay many phones by M-Pesa, each entry checked on its own",
    openapi_extra=callers(KEY),
)  # fmt: skip
async def mobile_bulk(
    body: MobileBulkIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> BulkOut:  # fmt: skip
    """Each entry (a Kenyan mobile number, whole shillings) is checked on its own — number,
    amount, fraud rules, funds — and either accepted (its amount and fee held, an M-Pesa B2C
    payment queued, settled on its own result) or listed under `rejected` with its field and
    reason. No entry accepted: 422, nothing held."""
    entries = [bulk.MobileEntry(p.phone_number, p.amount, p.narration) for p in body.payments]
    reply = _bulk_out(await bulk.bulk_mobile(session, who, entries, settings=settings, now=clock.now()))
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


def _client_entries(body: ClientBankTransferIn | ClientMobileTransferIn) -> list[bulk.ClientEntry]:
    return [bulk.ClientEntry(e.amount, e.narration, e.reference, e.beneficiary_name) for e in body.entries]


@router.post(
    "/payments/client-transfers/bank", response_model=BulkOut, status_code=status.HTTP_201_CREATED,
    name="Payments.ClientTransferBank",
    summary="Pay another malipo client, entry by entry (its bank account)",
    openapi_extra=callers(KEY),
)  # fmt: skip
async def client_transfer_bank(
    body: ClientBankTransferIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> BulkOut:  # fmt: skip
    """From your payments wallet to the destination client's, one journal per entry with the
    entry's narration (e.g. an employer's contribution per employee to a pension fund). The
    destination must be an active client in the same currency; `accountNumber` is its account,
    whose first 3 digits name the bank. Fraud rules per entry."""
    request = bulk.ClientTransfer(
        body.destination_client_id, "client_bank", body.account_number, _client_entries(body)
    )
    reply = _bulk_out(await bulk.client_to_client(session, who, request, settings=settings, now=clock.now()))
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.post(
    "/payments/client-transfers/mobile", response_model=BulkOut, status_code=status.HTTP_201_CREATED,
    name="Payments.ClientTransferMobile",
    summary="Pay another malipo client, entry by entry (a phone number)",
    openapi_extra=callers(KEY),
)  # fmt: skip
async def client_transfer_mobile(
    body: ClientMobileTransferIn, who: CurrentPrincipal, idem: IdempotencyKey, session: Session,
    clock: ClockDep,
    settings: SettingsDep,
) -> BulkOut:  # fmt: skip
    """As the bank form, for a beneficiary known by phone number: every entry credits the same
    number's client with its own amount and narration."""
    request = bulk.ClientTransfer(
        body.destination_client_id, "client_mobile", body.phone_number, _client_entries(body)
    )
    reply = _bulk_out(await bulk.client_to_client(session, who, request, settings=settings, now=clock.now()))
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply


@router.get(
    "/payments/transactions/{id:uuid}", response_model=TransferOut, name="Payments.ReadOne",
    summary="One transfer", openapi_extra=callers(KEY),
)  # fmt: skip
async def one_transfer(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> TransferOut:
    """A transfer or bulk entry of your client, with its fraud flags, its status and the bank's or
    M-Pesa's reason when it failed. Another client's is a 404."""
    return transfer_out(await service.get_transfer(session, who, id))


@router.get(
    "/payments/transactions", response_model=TransferPage, name="Payments.ReadRange",
    summary="Transfers made in a date range", openapi_extra=callers(KEY),
)  # fmt: skip
async def transfers_in_range(
    who: CurrentPrincipal,
    session: Session,
    from_: Annotated[
        IsoDateTime | None, Query(alias="from", description="From this time (inclusive)")
    ] = None,
    to: Annotated[IsoDateTime | None, Query(description="Before this time")] = None,
    page: PageQuery = 1,
    page_size: PageSize = 50,
) -> TransferPage:
    """Every transfer created in [`from`, `to`), any status, newest first."""
    rows, total = await service.list_transfers(
        session, who, since=from_, until=to, page=page, page_size=page_size
    )
    return _page(rows, total, page, page_size)


# --------------------------------------------------------------------------- fraud rules


def _rules_out(client_id: uuid.UUID, currency: str, rules: fraud.Rules, own: bool) -> FraudRulesOut:
    def fmt(minor: int) -> str:
        return Money(minor, currency).format()

    return FraudRulesOut(
        client_id=client_id, currency=currency, max_amount=fmt(rules.max_amount),
        daily_count=rules.daily_count,
        daily_value=fmt(rules.daily_value), destination_daily_count=rules.destination_daily_count,
        destination_daily_value=fmt(rules.destination_daily_value),
        duplicate_window_minutes=rules.duplicate_window_minutes,
        new_destination_amount=fmt(rules.new_destination_amount), otp_score=rules.otp_score,
        block_score=rules.block_score, weights=dict(fraud.WEIGHTS), source="client" if own else "default",
    )  # fmt: skip


@fraud_router.get(
    "/clients/{id:uuid}/fraud-rules", response_model=FraudRulesOut, name="FraudRules.Read",
    summary="A client's fraud rules", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def read_fraud_rules(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> FraudRulesOut:
    """The client's limits and scores (`source`: set by the operator, or the defaults), and each
    rule's weight."""
    client = await clients.get_client(session, who, id)
    rules, own = await fraud.rules_for(session, client.id)
    return _rules_out(client.id, client.currency, rules, own)


@fraud_router.put(
    "/clients/{id:uuid}/fraud-rules", response_model=FraudRulesOut, name="FraudRules.Update",
    summary="Set a client's fraud rules", openapi_extra=callers(OP),
)  # fmt: skip
async def update_fraud_rules(
    id: uuid.UUID, body: FraudRulesIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> FraudRulesOut:
    """Limits (amounts in the client's currency) and the scores at which a transfer needs the
    one-time code (`otpScore`, 0: always) or is refused (`blockScore`). Each rule that fires adds
    its weight (`weights` in the reply) to the score. Applies from the client's next transfer."""
    client = await clients.get_client(session, who, id)

    def minor(value: object, field: str) -> int:
        return Money.parse(value, client.currency, field=field).amount  # type: ignore[arg-type]

    if body.otp_score > body.block_score:
        raise ValidationFailed.for_field("otpScore", "must not be above blockScore")
    rules = fraud.Rules(
        max_amount=minor(body.max_amount, "maxAmount"), daily_count=body.daily_count,
        daily_value=minor(body.daily_value, "dailyValue"),
        destination_daily_count=body.destination_daily_count,
        destination_daily_value=minor(body.destination_daily_value, "destinationDailyValue"),
        duplicate_window_minutes=body.duplicate_window_minutes,
        new_destination_amount=minor(body.new_destination_amount, "newDestinationAmount"),
        otp_score=body.otp_score, block_score=body.block_score,
    )  # fmt: skip
    await fraud.set_rules(session, client.id, rules, now=clock.now())
    return _rules_out(client.id, client.currency, rules, True)


def _block_out(entry: BlockedDestination) -> BlockOut:
    return BlockOut.model_validate(entry)


@fraud_router.get(
    "/clients/{id:uuid}/fraud-blocklist", response_model=list[BlockOut], name="FraudRules.ReadBlocklist",
    summary="Destinations a client may not pay", openapi_extra=callers(OP, CA),
)  # fmt: skip
async def read_blocklist(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> list[BlockOut]:
    """The account numbers and phones the client may not pay, with why."""
    client = await clients.get_client(session, who, id)
    return [_block_out(e) for e in await repository.blocklist(session, client.id)]


@fraud_router.post(
    "/clients/{id:uuid}/fraud-blocklist", response_model=BlockOut, status_code=status.HTTP_201_CREATED,
    name="FraudRules.Block", summary="Block a destination for a client", openapi_extra=callers(OP),
)  # fmt: skip
async def block_destination(
    id: uuid.UUID, body: BlockIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> BlockOut:
    """Transfers from this client to the account number (or phone) are refused from now on."""
    client = await clients.get_client(session, who, id)
    entry = await fraud.block(session, client.id, body.destination, body.reason, now=clock.now())
    return _block_out(entry)


@fraud_router.delete(
    "/clients/{id:uuid}/fraud-blocklist/{entry_id:uuid}", status_code=status.HTTP_204_NO_CONTENT,
    name="FraudRules.Unblock", summary="Remove a destination from a client's block list",
    openapi_extra=callers(OP),
)  # fmt: skip
async def unblock_destination(
    id: uuid.UUID, entry_id: uuid.UUID, who: CurrentPrincipal, session: Session
) -> None:
    """The client may pay the destination again (the other rules still apply)."""
    client = await clients.get_client(session, who, id)
    entry = await repository.blocked_entry(session, entry_id)
    if entry is None or entry.client_id != client.id:
        raise NotFound(f"no block list entry {entry_id}", errors=[FieldError("entryId", "no such entry")])
    await session.delete(entry)
