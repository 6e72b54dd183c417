"""/api/v1 routes of wallet customers: register and log in (with an API key), read one.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from malipo.customers import service as customers
from malipo.customers.models import Customer
from malipo.customers.schemas import CustomerLoginIn, CustomerOut, CustomerRegisterIn, CustomerToken
from malipo.http.deps import ClockDep, Session, SettingsDep
from malipo.http.permissions import KEY, CurrentPrincipal, callers
from malipo.http.tags import CUSTOMERS
from malipo.identity.principals import Audience

CUST = Audience.CUSTOMER

router = APIRouter(tags=[CUSTOMERS])


def _customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        id=customer.id,
        client_id=customer.client_id,
        email=customer.email,
        full_name=customer.full_name or None,
        mode=customer.mode,
        created_at=customer.created_at,  # type: ignore[arg-type]
    )


@router.post(
    "/customers/register",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    name="Customers.Register",
    summary="Register a wallet customer",
    openapi_extra=callers(KEY),
)
async def register_customer(
    body: CustomerRegisterIn, who: CurrentPrincipal, session: Session, clock: ClockDep
) -> CustomerOut:
    """A new wallet customer of your client, in your key's mode (sandbox keys make test customers)."""
    customer = await customers.register_customer(
        session, who, email=body.email, password=body.password, full_name=body.full_name, now=clock.now()
    )
    return _customer_out(customer)


@router.post(
    "/customers/login",
    response_model=CustomerToken,
    name="Customers.Login",
    summary="Sign a wallet customer in",
    openapi_extra=callers(KEY),
)
async def login_customer(
    body: CustomerLoginIn, who: CurrentPrincipal, session: Session, clock: ClockDep, settings: SettingsDep
) -> CustomerToken:
    """Check a customer's password and answer a short-lived JWT for its wallet routes."""
    assert settings.secret_key is not None
    now = clock.now()
    issued = await customers.login_customer(
        session,
        who,
        email=body.email,
        password=body.password,
        secret=settings.secret_key.get_secret_value(),
        now=now,
    )
    return CustomerToken(
        access_token=issued.token,
        expires_in=int((issued.expires_at - now).total_seconds()),
        expires_at=issued.expires_at,
        customer_id=issued.customer.id,
        client_id=issued.customer.client_id,
    )


@router.get(
    "/customers/{id:uuid}",
    response_model=CustomerOut,
    name="Customers.Read",
    summary="Get a wallet customer",
    openapi_extra=callers(KEY, CUST),
)
async def get_customer(id: uuid.UUID, who: CurrentPrincipal, session: Session) -> CustomerOut:
    """A customer of your client (API key), or yourself (customer token)."""
    return _customer_out(await customers.get_customer(session, who, id))
