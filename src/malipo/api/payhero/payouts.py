"""``POST /api/v2/withdraw``: pay out from the payments wallet to a phone (M-Pesa B2C) or to a
bank account (M-Pesa B2B to the bank's paybill)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from malipo.api.payhero.deps import API_USERS, PayHeroPrincipal
from malipo.api.payhero.mappers import payhero_status
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.idempotency import IdempotencyKey
from malipo.http.schemas import Id, PlainText, WholeShillings
from malipo.http.tags import PAYHERO_WITHDRAWALS
from malipo.payouts import service as payouts

router = APIRouter(prefix="/api/v2", tags=[PAYHERO_WITHDRAWALS])


class WithdrawIn(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "external_reference": "WD-0001",
                    "amount": 1000,
                    "phone_number": "0712345678",
                    "network_code": "63902",
                    "callback_url": "https://dukalamama.co.ke/payhero/callback",
                    "channel": "mobile",
                    "payment_service": "b2c",
                }
            ]
        },
    )

    amount: WholeShillings = Field(ge=1, le=payouts.MAX_AMOUNT, description="Whole shillings")
    channel: str = Field(pattern=r"^(mobile|phone|bank)$", description="mobile (or phone), or bank")
    network_code: PlainText = Field(min_length=2, max_length=10)
    phone_number: str | None = Field(default=None, max_length=16, description="A Kenyan mobile number")
    account_number: PlainText | None = Field(default=None, max_length=40)
    external_reference: PlainText | None = Field(default=None, max_length=100)
    callback_url: PlainText | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    channel_id: Id | None = Field(
        default=None, description="Your payments wallet channel (the only source); another is a 404"
    )
    payment_service: PlainText | None = Field(default=None, max_length=20)  # "b2c"


@router.post(
    "/withdraw",
    status_code=status.HTTP_201_CREATED,
    name="Payouts.Withdraw",
    summary="Withdraw to a phone or a bank account",
    openapi_extra=API_USERS,
)
async def withdraw(
    body: WithdrawIn,
    who: PayHeroPrincipal,
    idem: IdempotencyKey,
    session: Session,
    settings: SettingsDep,
    clock: ClockDep,
) -> dict[str, Any]:
    """Hold the amount (and the fee on the service wallet), then pay out; the result goes to
    `callback_url`. A repeated `external_reference` answers the first payout."""
    payout, _created = await payouts.request_payout(
        session, who, payouts.PayoutRequest(
            amount=body.amount, channel=body.channel, network_code=body.network_code,
            phone_number=body.phone_number, account_number=body.account_number,
            external_reference=body.external_reference, callback_url=body.callback_url,
            channel_id=body.channel_id,
        ),
        settings=settings, now=clock.now(),
    )  # fmt: skip
    reply = {
        "status": payhero_status(payout.status),
        "merchant_reference": payout.reference,
        "checkout_request_id": payouts.checkout_request_id(payout, settings),
        "response_code": "0",
        "conversation_id": payout.originator_conversation_id,
        "external_reference": payout.external_reference,
    }
    await idem.complete(session, status.HTTP_201_CREATED, reply)
    return reply
