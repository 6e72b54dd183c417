"""/api/v1/reconciliation: a day's report (JSON or CSV) and resolving its exceptions; operator
staff only (rules in ``malipo.reconciliation.service`` and ``resolutions``)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from malipo.http.csvfiles import csv_response, csv_text
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.permissions import OP, CurrentPrincipal, callers
from malipo.http.tags import RECONCILIATION
from malipo.reconciliation import resolutions, service
from malipo.reconciliation.schemas import ItemOut, ReportOut, ResolveIn, item_out, report_out

router = APIRouter(tags=[RECONCILIATION])

Mode = Annotated[Literal["live", "test"], Query(description="live (default) or test (sandbox)")]
Format = Annotated[
    Literal["json", "csv"],
    Query(alias="format", description="json (default), or csv: the items, with a header row"),
]
_CSV_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV (`format=csv`)",
    }
}


def _csv(items: list[ItemOut], day: date, mode: str) -> Response:
    header = [info.alias or name for name, info in ItemOut.model_fields.items()]
    rows = (item.model_dump(mode="json", by_alias=True) for item in items)
    return csv_response(csv_text(header, rows), f"reconciliation-{day.isoformat()}-{mode}.csv")


@router.get(
    "/reconciliation/{day}", response_model=ReportOut, responses=_CSV_REPLY, name="Reconciliation.Read",
    summary="A day's reconciliation report", openapi_extra=callers(OP),
)  # fmt: skip
async def read_report(
    day: date, who: CurrentPrincipal, session: Session, mode: Mode = "live", output: Format = "json"
) -> ReportOut | Response:
    """The stored report of `day` (YYYY-MM-DD, the operator's calendar day): every rail transaction
    and malipo record, matched or an exception (missing in malipo, missing at the rail, amount
    mismatch), and per currency the totals (minor units) with whether they tie to the ledger.
    `format=csv` gives the items as CSV. 404 if that day was never reconciled."""
    result = await service.report(session, day, mode)
    if output == "csv":
        return _csv([item_out(i) for i in result.items], day, mode)
    return report_out(result.run, result.items)


@router.post(
    "/reconciliation/exceptions/{id}/resolve", response_model=ItemOut, name="Reconciliation.Resolve",
    summary="Resolve a reconciliation exception", openapi_extra=callers(OP),
)  # fmt: skip
async def resolve_exception(
    id: uuid.UUID, body: ResolveIn, who: CurrentPrincipal, session: Session, clock: ClockDep,
    settings: SettingsDep,
) -> ItemOut:  # fmt: skip
    """Resolve one exception, once (409 the second time): `attach` money received with no record to
    a client's payments wallet (its collection fee taken as its tariff says), `write_off` the
    difference, or `refund` the payer through the rail's reversal (409 where the rail has none;
    otherwise pending until the reversal's result). Each is one journal in the ledger."""
    item = await resolutions.resolve(
        session, who, id, body.action, settings=settings, now=clock.now(), client_id=body.client_id,
        note=body.note,
    )  # fmt: skip
    return item_out(item)
