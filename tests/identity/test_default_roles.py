"""The default roles' grants, checked against what their holders can do over HTTP, on both surfaces.

ReadOnly reads and moves nothing; Developer collects, pays out and sends; an API user's own
overrides count on the Pay Hero surface as on /api/v1; ClientAdmin runs its client from the
portal but is no API user; among operators only SuperAdmin opens the dev mailbox.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from malipo.collections.models import Collection, PaymentChannel
from malipo.core.clock import SystemClock
from malipo.email.models import Mailer, MerchantEmail
from malipo.identity import service as identity
from malipo.identity.models import Client, KeyMode, Permission
from malipo.ledger.models import Hold, Journal
from malipo.payouts.models import Payout
from malipo.sms.models import SmsMessage
from malipo.whatsapp.models import WhatsAppBatch, WhatsAppMessage
from malipo.worker.models import Job
from tests.fixtures.world import PAYS, Balances, World, eventually, final_payout, fund_payments

PASSWORD = "correct horse battery"
WITHDRAW = {"amount": 10, "phone_number": "254708374149", "network_code": "63902", "channel": "mobile"}
EMAIL = {
    "sender_email": "shop@a.example",
    "recipients": [{"email": "payer@example.com", "subject": "Receipt", "body": "Thanks"}],
}
# Every write a merchant's API user can ask for, with a body that passes validation: what a
# role without the permission must be refused, naming it.
WRITES: list[tuple[str, dict[str, Any], str]] = [
    ("/api/v2/withdraw", WITHDRAW, "Payouts.Withdraw"),
    ("/api/v2/payments", {"amount": 10, "phone_number": PAYS, "provider": "m-pesa"}, "Payments.Collect"),
    ("/api/v2/topup", {"amount": 10, "phone_number": PAYS}, "MerchantWallets.TopUp"),
    (
        "/api/v2/payment_channels",
        {"channel_type": "till", "short_code": "123456", "description": "Shop till"},
        "Channels.Create",
    ),
    (
        "/api/v1/channels",
        {"channelType": "till", "shortCode": "123456", "description": "Shop till"},
        "Channels.Create",
    ),
    ("/api/v1/sms/send", {"phoneNumber": "+254712345678", "message": "hi"}, "Sms.Send"),
    (
        "/api/v2/whatspp/sendText",
        {"phone_number": "0712345678", "session": "shop", "message": "hi"},
        "Whatsapp.SendText",
    ),
    (
        "/api/v2/whatsapp/sendBulk",
        {"session": "shop", "recipients": ["0712345678"], "message": "hi"},
        "Whatsapp.SendBulk",
    ),
    (
        "/mailer/register",
        {"smtp_host": "smtp.example.com", "smtp_username": "u", "smtp_password": "p", "smtp_port": "587"},
        "Email.Register",
    ),
    ("/mailer/send", EMAIL, "Email.Send"),
]
COUNTED = (Collection, Payout, PaymentChannel, Hold, Journal, Job, SmsMessage, WhatsAppBatch)
COUNTED_TOO = (WhatsAppMessage, Mailer, MerchantEmail)


@dataclass
class ApiUser:
    id: uuid.UUID
    key: dict[str, str]
    basic: dict[str, str]


async def _api_user(world: World, role: str) -> ApiUser:
    """A new API user of merchant A with ``role``: a sandbox key and a Pay Hero pair."""
    now = SystemClock().now()
    async with world.db.transaction() as session:
        roles = await identity.ensure_system_roles(session, now)
        client = await session.get(Client, world.a.client_id)
        assert client is not None
        issued = await identity.create_api_user(
            session, client=client, role=roles[role], developer_name=role,
            developer_email=f"{role.lower()}-{uuid.uuid4().hex[:6]}@a.example",
            developer_phone_number="+254700000001", now=now,
        )  # fmt: skip
        key = await identity.issue_api_key(session, api_user=issued.api_user, mode=KeyMode.TEST, now=now)
    pair = base64.b64encode(f"{issued.api_user.api_username}:{issued.api_password}".encode()).decode()
    return ApiUser(
        issued.api_user.id, {"Authorization": f"Bearer {key.raw}"}, {"Authorization": f"Basic {pair}"}
    )


async def _portal_user(world: World, role: str, *, client_id: uuid.UUID | None) -> dict[str, Any]:
    """A portal user with ``role`` (of merchant A's client, or an operator), signed in."""
    now = SystemClock().now()
    email = f"{role.lower()}-{uuid.uuid4().hex[:6]}@example.com"
    async with world.db.transaction() as session:
        roles = await identity.ensure_system_roles(session, now)
        await identity.create_portal_user(
            session, email=email, user_name=role, password=PASSWORD, roles=[roles[role]], now=now,
            client_id=client_id,
        )  # fmt: skip
    reply = await world.http.post("/api/v1/account/login", json={"username": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return {
        "headers": {"X-CSRF-Token": csrf},
        "cookies": {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf},
    }


def _refused_for(reply: httpx.Response, permission: str) -> bool:
    if reply.status_code != 403:
        return False
    body = reply.json()
    if "error_message" in body:  # the Pay Hero surface
        return (
            body["error_code"] == "permission_denied"
            and f"missing permission {permission} " in (body["error_message"])
        )
    return bool(body.get("permission") == permission)


async def _counts(world: World) -> dict[str, int]:
    return {model.__name__: await world.count(model) for model in (*COUNTED, *COUNTED_TOO)}


async def _collected(world: World, headers: dict[str, str], amount: int = 100) -> str:
    """A collection asked with ``headers`` and paid; its reference."""
    reply = await world.http.post(
        "/api/v2/payments", json={"amount": amount, "phone_number": PAYS}, headers=headers
    )
    assert reply.status_code == 201, reply.text
    reference = str(reply.json()["reference"])

    async def paid() -> bool:
        return (await world.collection(reference)).status == "SUCCESS"

    await eventually(paid, f"{reference} to be paid")
    return reference


async def _all_balances(world: World) -> tuple[Balances, Balances]:
    return await world.balances(mode="test"), await world.balances(mode="live")


@pytest.mark.parametrize("way_in", ["key", "basic"])
async def test_read_only_reads_and_moves_nothing(world: World, way_in: str) -> None:
    # Something to read, by merchant A's Developer, in the mode the reader's way in works in
    # (a sandbox key: test; a Pay Hero pair: live).
    reference = await _collected(world, world.a.headers if way_in == "key" else world.a.basic)
    await fund_payments(world, 1_000_00)
    reader = await _api_user(world, "ReadOnly")
    headers = reader.key if way_in == "key" else reader.basic
    before_balances, before_counts = await _all_balances(world), await _counts(world)

    for path, body, permission in WRITES:
        reply = await world.http.post(path, json=body, headers=headers)
        assert _refused_for(reply, permission), f"{path}: {reply.status_code} {reply.text}"

    assert await _all_balances(world) == before_balances
    assert await _counts(world) == before_counts
    await world.verify_ledger()

    # Its reads work, on both surfaces.
    for path, params in [
        ("/api/v2/wallets", {}),
        ("/api/v2/wallets", {"wallet_type": "payment_wallet"}),
        ("/api/v2/payment_channels", {}),
        ("/api/v2/transactions", {}),
        ("/api/v2/transaction-status", {"reference": reference}),
        ("/api/v1/channels", {}),
    ]:
        reply = await world.http.get(path, params=params, headers=headers)
        assert reply.status_code == 200, f"{path}: {reply.text}"
    transactions = (await world.http.get("/api/v2/transactions", headers=headers)).json()
    assert reference in [t["transaction_reference"] for t in transactions["transactions"]]
    status = await world.http.get(
        "/api/v2/transaction-status", params={"reference": reference}, headers=headers
    )
    assert status.json()["status"] == "SUCCESS"
    # Reads of objects that do not exist pass the permission and answer 404.
    for path, params in [
        (f"/api/v2/whatspp/batches/{uuid.uuid4()}", {}),
        ("/mailer/mail_status", {"batch_id": "nosuchbatch"}),
        (f"/mailer/status/{uuid.uuid4()}", {}),
    ]:
        reply = await world.http.get(path, params=params, headers=headers)
        assert reply.status_code == 404, f"{path}: {reply.text}"


async def test_developer_collects_pays_out_and_sends(world: World) -> None:
    developer = await _api_user(world, "Developer")
    await fund_payments(world, 1_000_00)
    before = await _all_balances(world)

    await _collected(world, developer.basic, 100)  # live, by the group-commit path
    await _collected(world, developer.key, 200)  # sandbox
    paid = await world.http.post("/api/v2/withdraw", json=WITHDRAW, headers=developer.key)
    assert paid.status_code == 201, paid.text
    assert (await final_payout(world, paid.json()["merchant_reference"])).status == "SUCCESS"
    test, live = await _all_balances(world)
    assert live.payments[0] == before[1].payments[0] + 100_00
    assert test.payments[0] == before[0].payments[0] + 200_00 - 10_00
    await world.verify_ledger()

    channel = await world.http.post("/api/v2/payment_channels", json=WRITES[3][1], headers=developer.basic)
    assert channel.status_code == 201, channel.text
    # Sends pass the permission check: what answers is the send itself (no such WhatsApp
    # session, no mailer registered), not a 403.
    for path, body, _permission in WRITES[6:8] + WRITES[9:]:
        reply = await world.http.post(path, json=body, headers=developer.basic)
        assert reply.status_code == 404, f"{path}: {reply.text}"


async def test_an_api_users_overrides_count_on_the_pay_hero_surface(world: World) -> None:
    """An operator grants a ReadOnly user collections and takes payouts from a Developer."""
    reader = await _api_user(world, "ReadOnly")
    developer = await _api_user(world, "Developer")
    await fund_payments(world, 1_000_00)
    operator = await _portal_user(world, "SuperAdmin", client_id=None)
    async with world.db.transaction() as session:
        ids = {
            (p.http_method, p.route_pattern): p.id for p in (await session.scalars(select(Permission))).all()
        }
    body = {"amount": 100, "phone_number": PAYS}
    assert (await world.http.post("/api/v2/payments", json=body, headers=reader.basic)).status_code == 403
    assert (
        await world.http.post("/api/v2/withdraw", json=WITHDRAW, headers=developer.key)
    ).status_code == 201

    # One row of a permission stands for its name: denying the v1 row of Channels.Create, or
    # one spelling of Pay Hero's WhatsApp path, denies the act on every route that serves it.
    overrides = [
        (reader, {("POST", "/api/v2/payments"): True}),
        (
            developer,
            {
                ("POST", "/api/v2/withdraw"): False,
                ("POST", "/api/v1/channels"): False,
                ("POST", "/api/v2/whatspp/sendText"): False,
            },
        ),
    ]
    for user, wanted in overrides:
        put = await world.http.put(
            f"/api/v1/api-users/{user.id}/permissions",
            json={"overrides": {str(ids[row]): allowed for row, allowed in wanted.items()}},
            **operator,
        )
        assert put.status_code == 200, put.text

    granted = await world.http.post("/api/v2/payments", json=body, headers=reader.basic)
    assert granted.status_code == 201, granted.text
    revoked = await world.http.post("/api/v2/withdraw", json=WITHDRAW, headers=developer.key)
    assert _refused_for(revoked, "Payouts.Withdraw"), revoked.text
    channels = await world.count(PaymentChannel)
    for path, body, permission in (WRITES[3], WRITES[4], WRITES[6]):
        for spelling in {path, path.replace("whatspp", "whatsapp")}:
            reply = await world.http.post(spelling, json=body, headers=developer.basic)
            assert _refused_for(reply, permission), f"{spelling}: {reply.text}"
    assert await world.count(PaymentChannel) == channels
    assert await world.count(Payout) == 1


async def test_client_admin_runs_its_client_from_the_portal_but_is_no_api_user(world: World) -> None:
    admin = await _portal_user(world, "ClientAdmin", client_id=world.a.client_id)
    assert (await world.http.get("/api/v1/api-users", **admin)).status_code == 200
    created = await world.http.post("/api/v1/channels", json=WRITES[4][1], **admin)
    assert created.status_code == 201, created.text
    assert (await world.http.get("/api/v1/channels", **admin)).status_code == 200
    for path, body, _permission in WRITES[:4]:
        reply = await world.http.post(path, json=body, **admin)
        assert reply.status_code == 403, reply.text
        assert "is only for" in reply.json()["error_message"]
    assert (await world.http.get("/portal/dev/mailbox", **admin)).status_code == 403


async def test_only_super_admin_operators_open_the_dev_mailbox(world: World) -> None:
    company = await _portal_user(world, "CompanyAdmin", client_id=None)
    assert (await world.http.get("/api/v1/clients", **company)).status_code == 200
    refused = await world.http.get("/portal/dev/mailbox", **company)
    assert refused.status_code == 403
    assert refused.json()["permission"] == "DevMailbox.Open"
    read_only = await _portal_user(world, "ReadOnly", client_id=None)
    assert (await world.http.get("/portal/dev/mailbox", **read_only)).status_code == 403
    super_admin = await _portal_user(world, "SuperAdmin", client_id=None)
    page = await world.http.get("/portal/dev/mailbox", **super_admin)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
