"""Wallet customers: registration, login (a short-lived JWT) and lookup.

What callers can rely on:
- A customer belongs to the client whose API key registered it, in that key's mode
  (``mk_test_`` keys make "test" customers, live keys "live" ones). Every lookup is
  scoped to the caller's client and mode: anything else is a 404, never a 403.
- An email is unique per client and mode, also when two registrations race
  (the database's unique constraint decides; the loser gets the same 409).
- Each customer has one wallet in the ledger, in its client's currency, opened
  with the customer in the same transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.auth.authenticate import (
    CUSTOMER_JWT_ALGORITHM,
    CUSTOMER_JWT_ISSUER,
    CUSTOMER_JWT_TYPE,
    CUSTOMER_TOKEN_TTL,
    register_customer_lookup,
)
from malipo.core import crypto
from malipo.core.errors import Conflict, NotFound, Unauthorized
from malipo.core.ids import new_id
from malipo.customers import repository
from malipo.customers.models import Customer
from malipo.identity import clients
from malipo.identity.models import Client, KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind

# Auth checks a customer's token against the customer it names through this domain's lookup.
register_customer_lookup(repository.customer_caller)


class CustomerEmailTaken(Conflict):
    code = "customer_email_taken"
    title = "A customer with this email already exists"


class InvalidCustomerCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Invalid email or password"


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime
    customer: Customer


def _normalise_email(email: str) -> str:
    return email.strip().lower()


@cache
def _decoy_hash() -> str:
    # Verified when the email is unknown, so a miss costs as long as a wrong password.
    return crypto.hash_password(crypto.generate_password())


async def create_customer(
    session: AsyncSession,
    *,
    client: Client,
    mode: KeyMode,
    email: str,
    password: str,
    full_name: str | None,
    now: datetime,
) -> Customer:
    """A customer of ``client`` in ``mode`` with an empty wallet in the client's currency.

    An email already taken (per client and mode) is a 409 naming ``email``, also when a
    concurrent registration took it first: the unique constraint decides, in a savepoint,
    so the caller's transaction stays usable.
    """
    password_hash = await asyncio.to_thread(crypto.hash_password, password)
    customer_id = new_id()
    try:
        async with session.begin_nested():
            wallet = await ledger.open_account(
                session,
                owner=ledger.owner_key(customer_id=customer_id),
                kind=AccountKind.CUSTOMER_WALLET,
                currency=client.currency,
                mode=mode.value,
                now=now,
                client_id=client.id,
            )
            customer = Customer(
                id=customer_id,
                client_id=client.id,
                mode=mode.value,
                email=_normalise_email(email),
                password_hash=password_hash,
                full_name=full_name or "",
                wallet_account_id=wallet.id,
                created_at=now,
            )
            session.add(customer)
            await session.flush()
    except IntegrityError:
        raise CustomerEmailTaken.for_field("email", "a customer with this email already exists") from None
    return customer


async def register_customer(
    session: AsyncSession, who: Principal, *, email: str, password: str, full_name: str | None, now: datetime
) -> Customer:
    """Register a customer of the caller's client, in the caller's key mode."""
    client = await _client_of(session, who)
    taken = await repository.customer_id_by_email(
        session, client_id=client.id, mode=who.mode.value, email=_normalise_email(email)
    )
    if taken is not None:  # the common case answered before paying for a password hash
        raise CustomerEmailTaken.for_field("email", "a customer with this email already exists")
    return await create_customer(
        session, client=client, mode=who.mode, email=email, password=password, full_name=full_name, now=now
    )


async def login_customer(
    session: AsyncSession, who: Principal, *, email: str, password: str, secret: str, now: datetime
) -> IssuedToken:
    """Check a customer's password (of the caller's client and mode) and issue its token.

    An unknown email and a wrong password get the same 401, in about the same time.
    """
    customer = (
        await repository.customer_by_email(
            session, client_id=who.client_id, mode=who.mode.value, email=_normalise_email(email)
        )
        if who.client_id is not None
        else None
    )
    stored = customer.password_hash if customer is not None else _decoy_hash()
    matches = await asyncio.to_thread(crypto.verify_password, stored, password)
    if customer is None or not matches:
        raise InvalidCustomerCredentials("invalid email or password")
    return issue_customer_token(customer, secret=secret, now=now)


def issue_customer_token(customer: Customer, *, secret: str, now: datetime) -> IssuedToken:
    """A signed JWT (HS256) naming the customer and its client, good for CUSTOMER_TOKEN_TTL."""
    expires_at = now + CUSTOMER_TOKEN_TTL
    claims = {
        "iss": CUSTOMER_JWT_ISSUER,
        "typ": CUSTOMER_JWT_TYPE,
        "sub": str(customer.id),
        "customer_id": str(customer.id),
        "client_id": str(customer.client_id),
        "mode": customer.mode,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, secret, algorithm=CUSTOMER_JWT_ALGORITHM)
    return IssuedToken(token=token, expires_at=expires_at, customer=customer)


async def get_customer(session: AsyncSession, who: Principal, customer_id: uuid.UUID) -> Customer:
    """The customer, if the caller may see it: a customer sees only itself; an API key
    sees its client's customers of its own mode. Anything else is a 404."""
    customer = await repository.get_customer(session, customer_id)
    visible = customer is not None and (
        customer.id == who.id
        if who.kind == PrincipalKind.CUSTOMER
        else customer.client_id == who.client_id and customer.mode == who.mode.value
    )
    if not visible:
        raise CustomerNotFound(f"no customer {customer_id}")
    assert customer is not None
    return customer


async def current_customer(session: AsyncSession, who: Principal) -> Customer:
    """The calling customer itself (a customer principal only)."""
    if who.kind != PrincipalKind.CUSTOMER:
        raise CustomerNotFound("this route is for a customer's own token")
    return await get_customer(session, who, who.id)


async def find_customer(
    session: AsyncSession, *, client_id: uuid.UUID, mode: str, customer_id: uuid.UUID
) -> Customer | None:
    """A customer of ``client_id`` in ``mode``, or None: for other domains naming a customer."""
    customer = await repository.get_customer(session, customer_id)
    if customer is None or customer.client_id != client_id or customer.mode != mode:
        return None
    return customer


@dataclass(frozen=True, slots=True)
class WalletOwner:
    """A customer and its wallet: what a movement between two customers checks."""

    id: uuid.UUID
    client_id: uuid.UUID
    mode: str
    wallet_id: uuid.UUID
    currency: str


async def wallet_owners(session: AsyncSession, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, WalletOwner]:
    """These customers (of any client: the caller checks who may see whom) with their wallets,
    by customer id, in one round trip; an unknown id is absent."""
    return {
        row.id: WalletOwner(row.id, row.client_id, row.mode, row.account_id, row.currency)
        for row in await repository.wallet_owners(session, customer_ids)
    }


async def _client_of(session: AsyncSession, who: Principal) -> Client:
    client = await clients.client_by_id(session, who.client_id)
    if client is None:
        raise NotFound("the caller belongs to no client")
    return client
