"""/api/v1/operator/rail-balances: the float at each rail as it last reported it (operator staff)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from malipo.core.money import Money
from malipo.http.deps import Session
from malipo.http.permissions import OP, CurrentPrincipal, callers
from malipo.http.schemas import CamelModel
from malipo.http.tags import RAIL_BALANCES
from malipo.railbalances import service
from malipo.railbalances.models import RailBalance

router = APIRouter(tags=[RAIL_BALANCES])


class AccountOut(CamelModel):
    name: str
    currency: str
    amounts: list[str] = Field(description="In the rail's order (Daraja: available, uncleared, reserved, …)")


class RailBalanceOut(CamelModel):
    mode: str
    rail: str
    party: str = Field(description="The shortcode (M-Pesa) or account (Airtel) asked about")
    status: str = Field(description="asked (no answer yet), answered or failed")
    accounts: list[AccountOut]
    result_code: str | None
    result_desc: str | None
    asked_at: datetime
    answered_at: datetime | None
    last_answered_at: datetime | None = Field(description="When the newest answer (of any ask) came")


class RailBalancesOut(CamelModel):
    balances: list[RailBalanceOut]


def _accounts(row: RailBalance | None) -> list[AccountOut]:
    if row is None or not row.accounts:
        return []
    return [
        AccountOut(
            name=a["name"],
            currency=a["currency"],
            amounts=[Money(int(x), a["currency"]).format() for x in a["amounts"]],
        )
        for a in row.accounts
    ]


@router.get(
    "/operator/rail-balances", response_model=RailBalancesOut, name="RailBalances.List",
    summary="See the rails' balances", openapi_extra=callers(OP),
)  # fmt: skip
async def rail_balances(who: CurrentPrincipal, session: Session) -> RailBalancesOut:
    """The newest balance ask per mode, rail and shortcode, with the newest answer's accounts (an
    ask not answered yet shows the last answer's). Asked every `MALIPO_RAIL_BALANCE_INTERVAL_SECONDS`
    by the worker, or now by `malipo rail-balances`."""
    found = []
    for row in await service.latest(session):
        answered = (
            row
            if row.status == service.ANSWERED
            else await service.latest_answered(session, row.mode, row.rail, row.party)
        )
        last = None if answered is None else answered.answered_at
        found.append(
            RailBalanceOut(
                mode=row.mode, rail=row.rail, party=row.party, status=row.status,
                accounts=_accounts(answered), result_code=row.result_code, result_desc=row.result_desc,
                asked_at=row.asked_at, answered_at=row.answered_at, last_answered_at=last,
            )
        )  # fmt: skip
    return RailBalancesOut(balances=found)
