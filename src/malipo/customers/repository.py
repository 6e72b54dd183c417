"""Every query on the customers table.

Where a read also needs a row of a lower layer's table (a customer's client, a wallet's
currency), that layer's public ``with_…`` function joins it in: one round trip, and the join
on its table is written by the package that owns it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.auth.authenticate import CustomerCaller
from malipo.customers.models import Customer
from malipo.identity import clients
from malipo.ledger import statements as ledger_reads


def _by_email(client_id: uuid.UUID, mode: str, email: str) -> tuple[object, ...]:
    return (Customer.client_id == client_id, Customer.mode == mode, Customer.email == email)


async def customer_id_by_email(
    session: AsyncSession, *, client_id: uuid.UUID, mode: str, email: str
) -> uuid.UUID | None:
    """The id of the customer of ``client_id`` in ``mode`` with this (normalised) email, if any."""
    found: uuid.UUID | None = await session.scalar(
        select(Customer.id).where(*_by_email(client_id, mode, email))
    )
    return found


async def customer_by_email(
    session: AsyncSession, *, client_id: uuid.UUID, mode: str, email: str
) -> Customer | None:
    """The customer of ``client_id`` in ``mode`` with this (normalised) email, if any."""
    found: Customer | None = await session.scalar(select(Customer).where(*_by_email(client_id, mode, email)))
    return found


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """One customer by id, of any client: the caller checks it may see it."""
    return await session.get(Customer, customer_id)


# The customer a token names with its client: every customer request runs it, so built once.
_CALLER = clients.with_client(
    select(Customer.id, Customer.client_id, Customer.mode).where(Customer.id == bindparam("id")),
    Customer.client_id,
)


async def customer_caller(session: AsyncSession, customer_id: uuid.UUID) -> CustomerCaller | None:
    """The customer a token names, with its client (for authentication), or None if it is gone."""
    row = (await session.execute(_CALLER, {"id": customer_id})).first()
    if row is None:
        return None
    return CustomerCaller(id=row.id, client_id=row.client_id, mode=row.mode, client=row.Client)


# Customers and their wallets' accounts, in one round trip (a wallet transfer's two parties).
_WALLET_OWNERS = ledger_reads.with_account(
    select(Customer.id, Customer.client_id, Customer.mode).where(
        Customer.id.in_(bindparam("ids", expanding=True))
    ),
    Customer.wallet_account_id,
)


async def wallet_owners(session: AsyncSession, customer_ids: list[uuid.UUID]) -> list[Row[Any]]:
    """Each customer's id, client_id, mode, account_id (its wallet) and currency, of any client."""
    return list(await session.execute(_WALLET_OWNERS, {"ids": customer_ids}))
