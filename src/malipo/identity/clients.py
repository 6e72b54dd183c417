"""Clients (merchants): registration, approval, rejection, deactivation.

A client registers as Pending, with a portal admin whose initial credentials
are emailed. A CompanyAdmin approves (an Individual then gets exactly one API
user, its key emailed), rejects with a reason, or later deactivates it. Every
transition is guarded: it happens only from the state it expects.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core import crypto
from malipo.core.errors import Conflict, NotFound, ValidationFailed
from malipo.identity import service
from malipo.identity.models import ApiUser, Client, ClientStatus, ClientType, KeyMode, PortalUser
from malipo.identity.notices import notify
from malipo.identity.principals import Principal
from malipo.identity.requests import ClientDetails
from malipo.ledger import service as ledger

# Country names merchants type, to ISO 3166 codes (local phone numbers are read in this country).
_COUNTRIES = {
    "kenya": "KE",
    "sierra leone": "SL",
    "uganda": "UG",
    "tanzania": "TZ",
    "rwanda": "RW",
    "burundi": "BI",
    "ethiopia": "ET",
    "nigeria": "NG",
    "ghana": "GH",
    "south africa": "ZA",
    "zambia": "ZM",
    "malawi": "MW",
    "mozambique": "MZ",
    "somalia": "SO",
    "south sudan": "SS",
    "democratic republic of the congo": "CD",
}
# The currency a new client's wallets use, by country.
_CURRENCIES = {
    "KE": "KES", "SL": "SLE", "UG": "UGX", "TZ": "TZS", "RW": "RWF", "BI": "BIF", "ET": "ETB", "NG": "NGN",
    "GH": "GHS", "ZA": "ZAR", "ZM": "ZMW", "MW": "MWK", "MZ": "MZN", "SO": "SOS", "SS": "SSP", "CD": "CDF",
}  # fmt: skip


class ClientStateConflict(Conflict):
    code = "client_state_conflict"
    title = "The client is not in a state that allows this"


def country_code(value: str) -> str:
    code = value.strip()
    if len(code) == 2 and code.upper() in _CURRENCIES:
        return code.upper()
    found = _COUNTRIES.get(code.lower())
    if found is None:
        supported = ", ".join(sorted(_CURRENCIES))
        raise ValidationFailed.for_field("country", f"unsupported country {value!r}; use one of {supported}")
    return found


def client_out(client: Client) -> dict[str, Any]:
    return {
        "id": client.id,
        "client_type": client.type,
        "name": client.name,
        "status": client.status,
        "contact_person": client.contact_person,
        "phone_number": client.phone_number,
        "email_address": client.email,
        "address": client.address,
        "city": client.city,
        "state": client.state_or_province,
        "country": client.country,
        "currency": client.currency,
        "rejection_reason": client.rejection_reason,
        "created_at": client.created_at,
    }


async def register_client(
    session: AsyncSession, body: ClientDetails, *, now: datetime, settings: Settings
) -> Client:
    """A Pending client and its portal admin; the admin's initial credentials go out by email."""
    email = body.email_address.lower()
    country = country_code(body.country)
    roles = await service.ensure_system_roles(session, now)
    client = await service.create_client(
        session,
        name=body.name,
        client_type=body.client_type,
        email=email,
        now=now,
        country=country,
        currency=_CURRENCIES[country],
    )
    client.contact_person = body.contact_person
    client.phone_number = body.phone_number
    client.address = body.address
    client.city = body.city
    client.state_or_province = body.state
    password = crypto.generate_password()
    await service.create_portal_user(
        session,
        email=email,
        user_name=body.contact_person or body.name,
        password=password,
        roles=[roles["ClientAdmin"]],
        client_id=client.id,
        now=now,
        email_field="emailAddress",
    )
    await notify(
        session,
        "client_registered",
        to=email,
        now=now,
        client_id=client.id,
        client_name=client.name,
        login_email=email,
        temporary_password=password,
        portal_url=f"{settings.public_url}/portal",
    )
    return client


async def get_client(session: AsyncSession, who: Principal, client_id: uuid.UUID) -> Client:
    client = await session.get(Client, client_id)
    if client is None or not who.sees_client(client.id):
        raise NotFound(f"no client {client_id}")
    return client


async def client_by_id(session: AsyncSession, client_id: uuid.UUID | None) -> Client | None:
    """The client ``client_id`` (of a caller, a token, a command line), or None if there is none."""
    return await session.get(Client, client_id) if client_id is not None else None


def with_client(query: Select[Any], client_id: ColumnElement[uuid.UUID]) -> Select[Any]:
    """``query`` with the ``Client`` its ``client_id`` column names joined in: a caller reads its
    row and the client behind it in one round trip (authentication does, on every request)."""
    return query.add_columns(Client).join(Client, client_id == Client.id)


async def list_clients(session: AsyncSession, *, status: str | None = None) -> list[Client]:
    """Every client (or those in ``status``), oldest first."""
    query = select(Client).order_by(Client.created_at, Client.id)
    if status is not None:
        query = query.where(Client.status == status)
    return list((await session.scalars(query)).all())


async def api_users_by_client(
    session: AsyncSession, client_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[ApiUser]]:
    found: dict[uuid.UUID, list[ApiUser]] = {cid: [] for cid in client_ids}
    if client_ids:
        rows = await session.scalars(
            select(ApiUser).where(ApiUser.client_id.in_(client_ids)).order_by(ApiUser.created_at)
        )
        for api_user in rows:
            found[api_user.client_id].append(api_user)
    return found


async def count_api_users(session: AsyncSession, client_id: uuid.UUID | None = None) -> int:
    query = select(func.count()).select_from(ApiUser)
    if client_id is not None:
        query = query.where(ApiUser.client_id == client_id)
    return int(await session.scalar(query) or 0)


async def active_api_user_counts(session: AsyncSession) -> dict[uuid.UUID, int]:
    """How many active API users each client has (a client with none is absent)."""
    rows = await session.execute(
        select(ApiUser.client_id, func.count()).where(ApiUser.is_active.is_(True)).group_by(ApiUser.client_id)
    )
    return {client_id: count for client_id, count in rows}  # noqa: C416


async def _transition(
    session: AsyncSession,
    client: Client,
    *,
    expected: ClientStatus,
    to: ClientStatus,
    now: datetime,
    **values: Any,
) -> None:
    result = await session.execute(
        update(Client)
        .where(Client.id == client.id, Client.status == expected)
        .values(status=to, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(client)
        raise ClientStateConflict(
            f"the client is {client.status}; only a {expected} client can become {to}",
            clientStatus=client.status,
        )
    await session.refresh(client)


async def approve_client(
    session: AsyncSession, client: Client, *, now: datetime, settings: Settings
) -> Client:
    await _transition(session, client, expected=ClientStatus.PENDING, to=ClientStatus.ACTIVE, now=now)
    await ledger.open_merchant_wallets(session, client.id, client.currency, now)
    portal_url = f"{settings.public_url}/portal"
    await notify(
        session, "client_approved", to=client.email, now=now, client_id=client.id,
        client_name=client.name, portal_url=portal_url,
    )  # fmt: skip
    if client.type == ClientType.INDIVIDUAL and await count_api_users(session, client.id) == 0:
        roles = await service.ensure_system_roles(session, now)
        admin = await session.scalar(select(PortalUser).where(PortalUser.client_id == client.id).limit(1))
        issued = await service.create_api_user(
            session,
            client=client,
            role=roles["Developer"],
            developer_name=client.contact_person or client.name,
            developer_email=admin.email if admin else client.email,
            developer_phone_number=client.phone_number or "",
            now=now,
        )
        key = await service.issue_api_key(
            session, api_user=issued.api_user, mode=KeyMode.LIVE, description="issued at approval", now=now
        )
        await notify(
            session,
            "api_key_issued",
            to=client.email,
            now=now,
            client_id=client.id,
            client_name=client.name,
            name=issued.api_user.developer_name,
            api_key=key.raw,
            mode="live",
            api_username=issued.api_user.api_username,
            api_password=issued.api_password,
            portal_url=portal_url,
        )
    return client


async def reject_client(session: AsyncSession, client: Client, *, reason: str, now: datetime) -> Client:
    await _transition(
        session,
        client,
        expected=ClientStatus.PENDING,
        to=ClientStatus.REJECTED,
        now=now,
        rejection_reason=reason,
    )
    await notify(
        session, "client_rejected", to=client.email, now=now, client_id=client.id,
        client_name=client.name, reason=reason,
    )  # fmt: skip
    return client


async def deactivate_client(session: AsyncSession, client: Client, *, now: datetime) -> Client:
    await _transition(session, client, expected=ClientStatus.ACTIVE, to=ClientStatus.DEACTIVATED, now=now)
    await notify(
        session, "client_deactivated", to=client.email, now=now, client_id=client.id, client_name=client.name
    )
    return client
