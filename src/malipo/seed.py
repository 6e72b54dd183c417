"""The demo operator and sandbox merchant that ``make run`` creates on a fresh database.

The merchant's API user has two ways in, to two separate worlds (wallets, channels, transactions):
its Pay Hero pair and live keys are **live** mode; its ``mk_test_`` key is **sandbox** mode, whose
service wallet starts funded. Live mode starts at zero: top its service wallet up by STK push.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.checkout import links as checkout_links
from malipo.checkout.models import PaymentLink
from malipo.core import crypto
from malipo.core.clock import Clock
from malipo.core.money import Money
from malipo.db import Database
from malipo.identity import service as identity
from malipo.identity.models import ApiUser, Client, ClientStatus, ClientType, KeyMode, PortalUser
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind, LedgerAccount

OPERATOR_EMAIL = "admin@malipo.example"
MERCHANT_ADMIN_EMAIL = "owner@demo-merchant.example"
DEVELOPER_EMAIL = "dev@demo-merchant.example"
# Prepaid fees for the sandbox (SMS costs are debited from the service wallet), in major units.
SANDBOX_SERVICE_FUNDS = "10000.00"


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    created: bool
    operator_email: str
    operator_password: str
    merchant_id: str
    merchant_name: str
    merchant_admin_email: str
    merchant_admin_password: str
    api_user_id: str
    sandbox_api_key: str
    payhero_api_username: str
    payhero_api_password: str
    # Where the API is reached (MALIPO_PUBLIC_URL, or where `malipo serve` will listen).
    public_url: str = ""
    # Available balances, e.g. "KES 10000.00": the Pay Hero pair sees the live wallets, the
    # sandbox key the sandbox ones.
    live_service_wallet: str = ""
    live_payments_wallet: str = ""
    sandbox_service_wallet: str = ""
    sandbox_payments_wallet: str = ""
    # A sandbox payment link anyone can pay (the simulator pays 254711222333), and its Pay button.
    sandbox_payment_link: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def demo_exists(db: Database) -> bool:
    async with db.transaction() as session:
        return (await session.scalar(select(Client.id).where(Client.is_demo.is_(True)).limit(1))) is not None


async def seed_demo(db: Database, clock: Clock, *, public_url: str = "") -> DemoCredentials:
    """Create the demo objects, or, if they exist, rotate their secrets and return them anew.

    The secrets are stored hashed, so a second run cannot show the old ones:
    it issues new ones and revokes the old API keys.
    """
    now = clock.now()
    operator_password = crypto.generate_password()
    merchant_password = crypto.generate_password()
    async with db.transaction() as session:
        roles = await identity.ensure_system_roles(session, now)
        client = await session.scalar(select(Client).where(Client.is_demo.is_(True)).limit(1))
        created = client is None
        if client is None:
            client = await identity.create_client(
                session,
                name="Demo Merchant",
                client_type=ClientType.COMPANY,
                email=MERCHANT_ADMIN_EMAIL,
                status=ClientStatus.ACTIVE,
                is_demo=True,
                now=now,
            )
            await identity.create_portal_user(
                session,
                email=OPERATOR_EMAIL,
                user_name="Demo Operator",
                password=operator_password,
                roles=[roles["SuperAdmin"]],
                now=now,
            )
            await identity.create_portal_user(
                session,
                email=MERCHANT_ADMIN_EMAIL,
                user_name="Demo Merchant Owner",
                password=merchant_password,
                roles=[roles["ClientAdmin"]],
                client_id=client.id,
                now=now,
            )
            issued = await identity.create_api_user(
                session,
                client=client,
                role=roles["Developer"],
                developer_name="Demo Developer",
                developer_email=DEVELOPER_EMAIL,
                developer_phone_number="+254700000000",
                now=now,
            )
            api_user, api_password = issued.api_user, issued.api_password
            wallets = await ledger.open_merchant_wallets(session, client.id, client.currency, now)
            await _fund_sandbox_service_wallet(session, wallets[("test", AccountKind.SERVICE_WALLET)], now)
        else:
            for email, password in (
                (OPERATOR_EMAIL, operator_password),
                (MERCHANT_ADMIN_EMAIL, merchant_password),
            ):
                user = await session.scalar(select(PortalUser).where(PortalUser.email == email))
                if user is not None:
                    identity.set_portal_password(user, password)
            api_user = (
                await session.scalars(
                    select(ApiUser)
                    .where(ApiUser.client_id == client.id)
                    .order_by(ApiUser.created_at)
                    .limit(1)
                )
            ).one()
            api_password = identity.rotate_api_password(api_user)
            await identity.revoke_api_keys(session, api_user, now)
        key = await identity.issue_api_key(
            session, api_user=api_user, mode=KeyMode.TEST, description="demo sandbox key", now=now
        )
        balances = await _wallet_balances(session, client.id)
        link = await _demo_link(session, client.id, api_user.id, now)
        return DemoCredentials(
            created=created,
            operator_email=OPERATOR_EMAIL,
            operator_password=operator_password,
            merchant_id=str(client.id),
            merchant_name=client.name,
            merchant_admin_email=MERCHANT_ADMIN_EMAIL,
            merchant_admin_password=merchant_password,
            api_user_id=str(api_user.id),
            sandbox_api_key=key.raw,
            payhero_api_username=api_user.api_username,
            payhero_api_password=api_password,
            public_url=public_url,
            live_service_wallet=balances[("live", AccountKind.SERVICE_WALLET)],
            live_payments_wallet=balances[("live", AccountKind.PAYMENTS_WALLET)],
            sandbox_service_wallet=balances[("test", AccountKind.SERVICE_WALLET)],
            sandbox_payments_wallet=balances[("test", AccountKind.PAYMENTS_WALLET)],
            sandbox_payment_link=f"{public_url}/pay/{link.slug}",
        )


DEMO_LINK = "demo-shop"


async def _demo_link(
    session: AsyncSession, client_id: uuid.UUID, api_user_id: uuid.UUID, now: datetime
) -> PaymentLink:
    """The demo merchant's sandbox payment link (the payer chooses the amount), made once."""
    found = await checkout_links.find_by_slug(session, DEMO_LINK)
    if found is not None:
        return found
    who = Principal(
        kind=PrincipalKind.API_KEY, id=api_user_id, client_id=client_id, role_ids=(), role_names=frozenset(),
        mode=KeyMode.TEST,
    )  # fmt: skip
    new = checkout_links.NewLink(
        title="Demo Merchant", description="A sandbox payment link: try 254711222333, which pays at once.",
        slug=DEMO_LINK,
    )  # fmt: skip
    return await checkout_links.create_link(session, who, new, now=now)


async def _wallet_balances(session: AsyncSession, client_id: uuid.UUID) -> dict[tuple[str, str], str]:
    """The merchant's wallets' available balances (what Pay Hero's ``/wallets`` shows), by mode and kind."""
    accounts = await session.scalars(
        select(LedgerAccount)
        .where(
            LedgerAccount.client_id == client_id,
            LedgerAccount.owner_key == ledger.owner_key(client_id=client_id),
            LedgerAccount.kind.in_([AccountKind.SERVICE_WALLET, AccountKind.PAYMENTS_WALLET]),
        )
        # The funding journal moved balances in SQL: read them, not the objects loaded before.
        .execution_options(populate_existing=True)
    )
    return {(a.mode, a.kind): str(Money.of_minor(a.balance - a.held, a.currency)) for a in accounts.all()}


async def _fund_sandbox_service_wallet(session: AsyncSession, wallet: LedgerAccount, now: datetime) -> None:
    """Credit the demo's sandbox service wallet from the sandbox funding account (one balanced journal)."""
    amount = Money.parse(SANDBOX_SERVICE_FUNDS, wallet.currency)
    funding = await ledger.system_account(
        session, AccountKind.SANDBOX_FUNDING, wallet.currency, wallet.mode, now
    )
    await ledger.post_journal(
        session,
        [
            ledger.Leg(funding.id, -amount.amount, amount.currency),
            ledger.Leg(wallet.id, amount.amount, amount.currency),
        ],
        kind="sandbox_service_funding",
        description="demo sandbox service wallet: prepaid fees for SMS",
        mode=wallet.mode,
        now=now,
        client_id=wallet.client_id,
    )
