"""/api/v1 routes of the banks registry: everyone who pays reads it; operators add and edit banks.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. Reading the
list and reading one bank are one act, ``Banks.Read``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from malipo.banks import service as banks
from malipo.banks.models import CODE_PATTERN, Bank
from malipo.banks.schemas import BankIn, BankList, BankOut, BankUpdate, CountryCode, Kind
from malipo.core.errors import ValidationFailed
from malipo.http.deps import ClockDep, Session
from malipo.http.permissions import CA, KEY, OP, callers
from malipo.http.tags import BANKS

router = APIRouter(tags=[BANKS])

# A plain {code} with a pattern: anything but 3 digits is a 422 naming `code`, after authorisation.
CodePath = Annotated[str, Path(pattern=CODE_PATTERN, description="The bank's 3-digit code", examples=["001"])]


def bank_out(row: Bank) -> BankOut:
    return BankOut.model_validate(row)


@router.get(
    "/banks", response_model=BankList, name="Banks.Read",
    summary="List banks and mobile-money operators",
    openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def list_banks(
    session: Session,
    country: Annotated[CountryCode | None, Query(description="Only this country's (SL or KE)")] = None,
    kind: Annotated[Kind | None, Query(description="Only banks, or only mobile-money operators")] = None,
    active: Annotated[bool | None, Query(description="Only active or inactive ones")] = None,
) -> BankList:
    """The banks and mobile-money operators malipo pays, by code. An account number's first 3 digits
    are its bank's code."""
    found = await banks.list_banks(session, country=country, kind=kind, active=active)
    return BankList(banks=[bank_out(row) for row in found])


@router.get(
    "/banks/{code}", response_model=BankOut, name="Banks.Read",
    summary="Get a bank by its code",
    openapi_extra=callers(OP, CA, KEY),
)  # fmt: skip
async def read_bank(code: CodePath, session: Session) -> BankOut:
    """One bank or mobile-money operator, active or not."""
    return bank_out(await banks.get_bank(session, code))


@router.post(
    "/banks", response_model=BankOut, status_code=status.HTTP_201_CREATED, name="Banks.Create",
    summary="Add a bank or mobile-money operator",
    openapi_extra=callers(OP),
)  # fmt: skip
async def create_bank(body: BankIn, session: Session, clock: ClockDep) -> BankOut:
    """Add a bank (codes 001-099 in Sierra Leone, 100-199 in Kenya) or a mobile-money operator
    (900-999). A code already in use is a 409."""
    row = await banks.create_bank(
        session, code=body.code, name=body.name, country=body.country, kind=body.kind, rail=body.rail,
        swift=body.swift, payhero_code=body.payhero_code, active=body.active, now=clock.now(),
    )  # fmt: skip
    return bank_out(row)


@router.patch(
    "/banks/{code}", response_model=BankOut, name="Banks.Update",
    summary="Edit a bank",
    openapi_extra=callers(OP),
)  # fmt: skip
async def update_bank(code: CodePath, body: BankUpdate, session: Session, clock: ClockDep) -> BankOut:
    """Change a bank's `name`, `swift` (null clears it), `active` or `rail`; fields absent stay as
    they are. An inactive bank is refused as a payment's destination."""
    given = body.model_dump(include=body.model_fields_set)
    if not given:
        raise ValidationFailed.for_field("body", "give at least one of name, swift, active, rail")
    row = await banks.update_bank(session, code, now=clock.now(), **given)
    return bank_out(row)
