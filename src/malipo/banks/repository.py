"""Every query on the banks registry (one table, the same for every client and mode)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.banks.models import Bank


async def bank_row(session: AsyncSession, code: str) -> Bank | None:
    """The bank with ``code``, active or not."""
    found: Bank | None = await session.get(Bank, code)
    return found


async def bank_rows(
    session: AsyncSession, *, country: str | None, kind: str | None, active: bool | None
) -> list[Bank]:
    """The banks matching every filter given (None: any), by code."""
    query = select(Bank).order_by(Bank.code)
    if country is not None:
        query = query.where(Bank.country == country)
    if kind is not None:
        query = query.where(Bank.kind == kind)
    if active is not None:
        query = query.where(Bank.active == active)
    return list((await session.scalars(query)).all())


async def bank_with_payhero_code(session: AsyncSession, payhero_code: str) -> Bank | None:
    found: Bank | None = await session.scalar(select(Bank).where(Bank.payhero_code == payhero_code))
    return found


async def add_bank(session: AsyncSession, row: Bank) -> None:
    """Insert ``row``; the primary key (code) and unique payhero_code raise IntegrityError if taken."""
    session.add(row)
    await session.flush()
