"""Wallet customers over real HTTP: registration, login (JWT), reading one; tenancy and modes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy import func, select, update

from malipo.core.clock import FrozenClock
from malipo.customers import service as customers
from malipo.customers.models import Customer as CustomerRow
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import Client, ClientStatus, ClientType, KeyMode
from malipo.ledger.models import AccountKind, LedgerAccount
from tests.customers.helpers import Served
from tests.factories import PASSWORD, bearer


def _field(reply: httpx.Response) -> list[str]:
    return [e["field"] for e in reply.json()["errors"]]


def test_register_login_and_read_a_customer(served: Served) -> None:
    registered = served.register(served.a.test_key, "Wanjiru@Example.com")
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["email"] == "wanjiru@example.com"
    assert body["fullName"] == "Wanjiru Kamau"
    assert body["mode"] == "test"
    assert body["clientId"] == str(served.a.client_id)
    assert "password" not in registered.text.lower()

    login = served.login(served.a.test_key, "WANJIRU@example.com")
    assert login.status_code == 200, login.text
    token = login.json()
    assert token["tokenType"] == "Bearer"
    assert token["customerId"] == body["id"]
    assert 0 < token["expiresIn"] <= 3600
    claims = jwt.decode(token["accessToken"], options={"verify_signature": False})
    assert (claims["sub"], claims["client_id"], claims["typ"], claims["iss"]) == (
        body["id"],
        str(served.a.client_id),
        "customer",
        "malipo",
    )

    for headers in (bearer(token["accessToken"]), bearer(served.a.test_key)):
        reply = served.request("GET", f"/api/v1/customers/{body['id']}", headers)
        assert reply.status_code == 200, reply.text
        assert reply.json() == body


async def test_a_customer_gets_a_wallet_in_its_clients_currency(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    db = Database.from_url(served.db_url)
    try:
        async with db.transaction() as session:
            row = await session.get(CustomerRow, customer.id)
            assert row is not None
            wallet = await session.get(LedgerAccount, row.wallet_account_id)
            client = await session.get(Client, served.a.client_id)
    finally:
        await db.dispose()
    assert wallet is not None
    assert client is not None
    assert (wallet.kind, wallet.currency, wallet.mode, wallet.balance) == (
        AccountKind.CUSTOMER_WALLET,
        client.currency,
        "test",
        0,
    )
    assert wallet.client_id == served.a.client_id
    assert served.balance(customer) == "0.00"


def test_a_taken_email_is_409_naming_email(served: Served) -> None:
    assert served.register(served.a.test_key, "ann@example.com").status_code == 201
    again = served.register(served.a.test_key, "ANN@example.com", password="another password")
    assert again.status_code == 409
    assert again.json()["code"] == "customer_email_taken"
    assert _field(again) == ["email"]
    # Unique per client (and mode): another merchant, or the live mode, may use it.
    assert served.register(served.b.test_key, "ann@example.com").status_code == 201
    assert served.register(served.a.live_key, "ann@example.com").status_code == 201


def test_racing_registrations_of_one_email_make_one_customer(served: Served) -> None:
    async def race() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            replies = await asyncio.gather(
                *(
                    client.post(
                        f"{served.url}/api/v1/customers/register",
                        headers=bearer(served.a.test_key),
                        json={"email": "racer@example.com", "password": PASSWORD, "fullName": f"racer {n}"},
                    )
                    for n in range(6)
                )
            )
        for reply in replies:
            if reply.status_code == 409:
                assert _field(reply) == ["email"]
        return sorted(r.status_code for r in replies)

    assert asyncio.run(race()) == [201] + [409] * 5


async def test_the_unique_constraint_decides_a_race_and_the_transaction_survives(db: Database) -> None:
    """The path a concurrent registration takes: no pre-check, the constraint refuses, in a savepoint."""
    now = FrozenClock().now()
    async with db.transaction() as session:
        client = await identity.create_client(
            session,
            name="M",
            client_type=ClientType.COMPANY,
            email="m@example.com",
            status=ClientStatus.ACTIVE,
            now=now,
        )
        first = await customers.create_customer(
            session,
            client=client,
            mode=KeyMode.TEST,
            email="same@example.com",
            password=PASSWORD,
            full_name=None,
            now=now,
        )
        with pytest.raises(customers.CustomerEmailTaken) as refused:
            await customers.create_customer(
                session,
                client=client,
                mode=KeyMode.TEST,
                email="Same@Example.com",
                password=PASSWORD,
                full_name=None,
                now=now,
            )
        assert refused.value.status == 409
        assert [e.field for e in refused.value.errors] == ["email"]
    async with db.transaction() as session:
        assert await session.scalar(select(func.count(CustomerRow.id))) == 1
        # The loser's wallet went with it: one customer wallet only.
        wallets = await session.scalar(
            select(func.count(LedgerAccount.id)).where(LedgerAccount.kind == AccountKind.CUSTOMER_WALLET)
        )
        assert wallets == 1
        assert (await session.get(CustomerRow, first.id)) is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com", "password": "short", "fullName": "X"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD, "fullName": "X"}, "email"),
        ({"email": "x@example.com", "password": PASSWORD, "fullName": "x" * 201}, "fullName"),
        ({"password": PASSWORD}, "email"),
    ],
)
def test_invalid_registrations_are_422_naming_the_field(served: Served, body: dict, field: str) -> None:
    reply = served.request("POST", "/api/v1/customers/register", bearer(served.a.test_key), json=body)
    assert reply.status_code == 422, reply.text
    assert _field(reply) == [field]


def test_full_name_is_optional(served: Served) -> None:
    reply = served.request(
        "POST",
        "/api/v1/customers/register",
        bearer(served.a.test_key),
        json={"email": "nameless@example.com", "password": PASSWORD},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["fullName"] is None


def test_wrong_password_and_unknown_email_are_the_same_401(served: Served) -> None:
    served.customer(served.a.test_key, "known@example.com")
    wrong = served.login(served.a.test_key, "known@example.com", "wrong password")
    unknown = served.login(served.a.test_key, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "invalid email or password"


def test_another_clients_key_neither_reads_nor_logs_in_a_customer(served: Served) -> None:
    customer = served.customer(served.a.test_key, "only-a@example.com")
    reply = served.request("GET", f"/api/v1/customers/{customer.id}", bearer(served.b.test_key))
    assert reply.status_code == 404
    assert served.login(served.b.test_key, "only-a@example.com").status_code == 401


def test_sandbox_and_live_customers_never_see_each_other(served: Served) -> None:
    sandbox = served.customer(served.a.test_key, "sandbox@example.com")
    live = served.customer(served.a.live_key, "live@example.com")
    assert (
        served.request("GET", f"/api/v1/customers/{live.id}", bearer(served.a.live_key)).json()["mode"]
        == "live"
    )
    assert served.request("GET", f"/api/v1/customers/{live.id}", bearer(served.a.test_key)).status_code == 404
    assert (
        served.request("GET", f"/api/v1/customers/{sandbox.id}", bearer(served.a.live_key)).status_code == 404
    )
    assert served.login(served.a.test_key, "live@example.com").status_code == 401
    assert served.login(served.a.live_key, "sandbox@example.com").status_code == 401


def test_a_customer_sees_only_itself(served: Served) -> None:
    me = served.customer(served.a.test_key)
    neighbour = served.customer(served.a.test_key)
    assert served.request("GET", f"/api/v1/customers/{me.id}", me.headers).status_code == 200
    assert served.request("GET", f"/api/v1/customers/{neighbour.id}", me.headers).status_code == 404


def test_customers_and_keys_stay_on_their_own_routes(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    as_customer = served.request(
        "POST",
        "/api/v1/customers/register",
        customer.headers,
        json={"email": "y@example.com", "password": PASSWORD},
    )
    assert as_customer.status_code == 403
    assert as_customer.json()["permission"] == "Customers.Register"
    as_key = served.request("GET", "/api/v1/wallet/balance", bearer(served.a.test_key))
    assert as_key.status_code == 403
    assert as_key.json()["permission"] == "Wallet.ReadBalance"


def test_an_expired_token_is_401(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    assert served.request("GET", "/api/v1/wallet/balance", customer.headers).status_code == 200
    served.clock.advance(customers.CUSTOMER_TOKEN_TTL - timedelta(seconds=1))
    assert served.request("GET", "/api/v1/wallet/balance", customer.headers).status_code == 200
    served.clock.advance(timedelta(seconds=1))
    expired = served.request("GET", "/api/v1/wallet/balance", customer.headers)
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    assert "Bearer" in expired.headers["www-authenticate"]
    fresh = served.login(served.a.test_key, customer.email).json()["accessToken"]
    assert served.request("GET", "/api/v1/wallet/balance", bearer(fresh)).status_code == 200


def test_forged_or_foreign_tokens_are_401(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    claims = jwt.decode(customer.token, options={"verify_signature": False})
    secret = served.settings.secret_key.get_secret_value()  # type: ignore[union-attr]
    forged = [
        jwt.encode(claims, "another secret of at least thirty-two bytes", algorithm="HS256"),
        jwt.encode({**claims, "typ": "portal"}, secret, algorithm="HS256"),
        jwt.encode({**claims, "iss": "someone-else"}, secret, algorithm="HS256"),
        jwt.encode({**claims, "sub": str(uuid.uuid4())}, secret, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, algorithm="HS256"),
        jwt.encode(claims, secret, algorithm="HS512"),
        customer.token[:-2] + ("AA" if not customer.token.endswith("AA") else "BB"),
    ]
    for token in forged:
        reply = served.request("GET", "/api/v1/wallet/balance", bearer(token))
        assert reply.status_code == 401, (token, reply.text)
        assert reply.json()["code"] == "unauthorized"


async def _deactivate(db_url: str, client_id: uuid.UUID) -> None:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            await session.execute(
                update(Client).where(Client.id == client_id).values(status=ClientStatus.DEACTIVATED)
            )
    finally:
        await db.dispose()


def test_a_deactivated_merchants_customers_are_refused(served: Served) -> None:
    customer = served.customer(served.a.test_key)
    asyncio.run(_deactivate(served.db_url, served.a.client_id))
    reply = served.request("GET", "/api/v1/wallet/balance", customer.headers)
    assert reply.status_code == 403
    assert reply.json()["code"] == "client_not_active"
