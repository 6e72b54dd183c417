"""Every query on the customers table."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.auth.authenticate import CustomerCaller
from malipo.customers.models import Customer
from malipo.identity.models import Client


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


async def customer_caller(session: AsyncSession, customer_id: uuid.UUID) -> CustomerCaller | None:
    """The customer a token names, with its client (for authentication), or None if it is gone."""
    row = (
        await session.execute(
            select(Customer.id, Customer.client_id, Customer.mode, Client)
            .join(Client, Customer.client_id == Client.id)
            .where(Customer.id == customer_id)
        )
    ).first()
    if row is None:
        return None
    return CustomerCaller(id=row.id, client_id=row.client_id, mode=row.mode, client=row.Client)
