"""The authorisation matrix, generated from the app's own routes, of every surface: /api/v1,
the Pay Hero surface (/api/v2, /mailer) and the portal's pages.

Every route checks a permission or is in PUBLIC_ROUTES, with its reason. For every
protected route: no credentials is 401; a caller without the route's permission is 403
naming it (in the Pay Hero shape on /api/v2 and /mailer); a caller of an audience the
route does not serve is refused even holding every permission; and a route with an
object id in its path or query answers 404 for another client's object. A route added
later without a check, or with a tenant id the matrix does not know, fails here.

Wallet customers (JWTs) all share the Customer role, so a customer without a
route's permission exists only once that role has lost its permissions: the
customer routes' 403s are checked last, after emptying the role.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from malipo.app import create_app
from malipo.cards.models import CardAuthorization, CardToken
from malipo.checkout.models import CheckoutSession, PaymentLink
from malipo.collections import service as collections
from malipo.collections.c2b.models import PaymentRequest
from malipo.collections.models import Collection
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.customers import service as customers
from malipo.db import Database
from malipo.disbursements.models import DisbursementBatch
from malipo.email.models import Mailer, MerchantEmail
from malipo.http.errors import is_payhero_path
from malipo.http.permissions import CALLERS_KEY, is_protected, protected_routes, route_callers
from malipo.http.routes import effective_routes
from malipo.identity import service
from malipo.identity.models import (
    ApiKey,
    ApiUserPermission,
    ClientStatus,
    ClientType,
    KeyMode,
    Permission,
    Role,
    RolePermission,
)
from malipo.identity.permission_cache import DECISION_TTL
from malipo.identity.principals import Audience
from malipo.ledger import service as ledger
from malipo.ledger.models import AccountKind
from malipo.refunds.models import Refund
from malipo.transfers.models import Transfer
from tests.factories import make_funded_wallet
from tests.fixtures.messaging import messaging_objects

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
# The routes anyone may call, and why. Everything else must check a permission.
PUBLIC_ROUTES = {
    ("GET", "/healthz"): "liveness probe: says the process answers, nothing more",
    ("GET", "/readyz"): "readiness probe for the load balancer: database reachable and migrated",
    ("GET", "/metrics"): "Prometheus scrape: process-wide counters, no tenant's data",
    ("POST", "/api/v1/account/login"): "signing in is how a portal user gets credentials",
    ("POST", "/api/v1/account/forgot-password"): "for a user who cannot sign in; answers the same for all",
    ("POST", "/api/v1/account/reset-password"): "authenticated by the emailed one-time reset token",
    ("POST", "/api/v1/clients"): "a merchant's registration, before it has any credentials",
    # Provider callbacks: each is authenticated by the unguessable per-request token in its path.
    ("POST", "/callbacks/daraja/{token}"): "Daraja STK result, per-collection callback token",
    ("POST", "/callbacks/daraja/{token}/result"): "Daraja B2C/B2B result, per-payout callback token",
    ("POST", "/callbacks/daraja/{token}/timeout"): "Daraja queue timeout, per-payout callback token",
    ("POST", "/callbacks/daraja/{token}/status"): "Daraja status query result, per-request token",
    ("POST", "/callbacks/daraja/{token}/reversal"): "Daraja reversal result, per-refund callback token",
    ("POST", "/callbacks/daraja/{token}/balance"): "Daraja account balance result, per-query token",
    # Airtel sets one callback URL per app: its token (one for Airtel, one for the simulator, each
    # settling only its own modes' requests) authenticates it; the body names the request.
    ("POST", "/callbacks/airtel/{token}"): "Airtel Money collection and payout results, per-app token",
    # M-Pesa C2B: the validation and confirmation URLs registered for a shortcode; the token (a
    # merchant's own shortcode's, stored hashed, or the operator shortcode's, one per mode) is the
    # credential, and the body's BusinessShortCode must be the one registered at that address.
    ("POST", "/callbacks/daraja/c2b/{token}/validation"): "M-Pesa C2B validation, per-shortcode token",
    ("POST", "/callbacks/daraja/c2b/{token}/confirmation"): "M-Pesa C2B confirmation, per-shortcode token",
    ("POST", "/callbacks/africastalking/{token}"): "SMS delivery reports, per-client callback token",
    ("POST", "/callbacks/bank/{token}"): "bank rail status reports, per-transfer callback token",
    ("GET", "/callbacks/whatsapp/{token}"): "Meta's webhook verification, per-session webhook token",
    ("POST", "/callbacks/whatsapp/{token}"): "WhatsApp statuses, per-session webhook token",
    # The payer's pages: a checkout session's unguessable id (or a link's public slug) is the
    # credential, and each route shows or changes only what that id names.
    ("GET", "/checkout/{sessionId}"): "the payer's hosted page of one session, by its unguessable id",
    ("GET", "/checkout/{sessionId}/status"): "that page's live status, by the session's id",
    ("POST", "/checkout/{sessionId}/mpesa"): "the payer pays that session by M-Pesa, by its id",
    ("POST", "/checkout/{sessionId}/card"): "the payer pays that session by card, by its id",
    ("GET", "/checkout/{sessionId}/3ds"): "the 3-D Secure page sends the payer back here, by its id",
    ("GET", "/pay/{slug}"): "a merchant's public payment link: anyone may pay it",
    ("POST", "/pay/{slug}"): "paying a public payment link opens a session of it",
    ("GET", "/button.js"): "the Pay button script merchants embed: static",
    ("GET", "/assets/{name}"): "the pages' static script and styles",
}
# Routes that act on another tenant's object, and which of client B's objects to name: in the
# path, or (a name the path does not hold) in the query. A route listed here is checked even when
# the id is an optional query filter (the reports' `clientId`); other query values it needs to get
# that far (a valid date range) are named too.
TENANT_OBJECTS = {
    "/api/v1/clients/{id}": {"id": "client"},
    "/api/v1/clients/{id}/api-users/count": {"id": "client"},
    "/api/v1/api-users/{apiUserId}": {"apiUserId": "api_user"},
    "/api/v1/api-users/{apiUserId}/permissions": {"apiUserId": "api_user"},
    "/api/v1/portal-users/{id}": {"id": "portal_user"},
    "/api/v1/sandbox/api-keys/{id}": {"id": "sandbox_key"},
    "/api/v1/customers/{id}": {"id": "customer"},
    "/api/v1/sms/{id}": {"id": "sms"},
    "/api/v1/sms/batches/{id}": {"id": "sms_batch"},
    "/api/v1/whatsapp/batches/{id}": {"id": "whatsapp_batch"},
    "/api/v1/channels/{id}": {"id": "channel"},
    "/api/v1/channels/{id}/deactivate": {"id": "channel"},
    "/api/v1/channels/{id}/activate": {"id": "channel"},
    "/api/v1/channels/{id}/register-c2b": {"id": "channel"},
    "/api/v1/channels/{id}/c2b": {"id": "channel"},
    "/api/v1/payment-requests/{id}": {"id": "payment_request"},
    "/api/v1/payment-requests/{id}/cancel": {"id": "payment_request"},
    "/api/v1/payment-requests/{id}/stk-push": {"id": "payment_request"},
    "/api/v1/clients/{id}/pricing": {"id": "client"},
    "/api/v1/clients/{id}/fraud-rules": {"id": "client"},
    "/api/v1/clients/{id}/fraud-blocklist": {"id": "client"},
    "/api/v1/payments/transactions/{id}": {"id": "transfer"},
    "/api/v1/cards/authorizations/{authorizationId}": {"authorizationId": "card_authorization"},
    "/api/v1/checkout/sessions/{sessionId}": {"sessionId": "checkout_session"},
    "/api/v1/payment-links/{linkId}": {"linkId": "payment_link"},
    "/api/v2/payment_channels/{channel_id}": {"channel_id": "channel"},
    "/api/v2/whatspp/batches/{batch_id}": {"batch_id": "whatsapp_batch"},
    "/api/v2/whatsapp/batches/{batch_id}": {"batch_id": "whatsapp_batch"},
    "/api/v2/transaction-status": {"reference": "collection_reference"},
    "/api/v1/collections/{id}/refund": {"id": "collection_reference"},
    "/api/v1/collections/{id}/refunds": {"id": "collection_reference"},
    "/api/v1/refunds/{id}": {"id": "refund"},
    "/mailer/status/{id}": {"id": "email"},
    "/mailer/mail_status": {"batch_id": "email_batch"},
    "/api/v1/reports/cards": {"clientId": "client"},
    "/api/v1/reports/cards/range": {"clientId": "client", "from": "range_from", "to": "range_to"},
    "/api/v1/reports/cards/summary": {"clientId": "client"},
    "/api/v1/reports/checkout/sessions": {"clientId": "client"},
    "/api/v1/reports/checkout/summary": {"clientId": "client"},
    "/api/v1/disbursements/batches/{batchId}": {"batchId": "disbursement_batch"},
    "/api/v1/disbursements/batches/{batchId}/process": {"batchId": "disbursement_batch"},
    "/api/v1/disbursements/batches/{batchId}/approve": {"batchId": "disbursement_batch"},
    "/api/v1/disbursements/batches/{batchId}/items": {"batchId": "disbursement_batch"},
    "/api/v1/disbursements/batches/{batchId}/retry": {"batchId": "disbursement_batch"},
    "/api/v1/disbursements/settings/{clientId}": {"clientId": "client"},
    "/api/v1/reports/disbursements/batches": {"clientId": "client"},
    "/api/v1/reports/disbursements/batches/{batchId}": {"batchId": "disbursement_batch"},
    "/api/v1/reports/disbursements/batches/{batchId}/reconciliation": {"batchId": "disbursement_batch"},
    "/api/v1/reports/disbursements/retries": {"clientId": "client"},
    "/api/v1/reports/disbursements/failed-items": {"clientId": "client"},
    # A WhatsApp session is named by the caller: client B's "shop" is not client A's.
    "/api/v1/whatsapp/bulk-csv": {"session": "whatsapp_session_name", "message": "greeting"},
}
# Routes that name an object no client owns, and why (every client reads the same one).
SHARED_OBJECTS = {
    "/api/v1/banks/{code}": "the banks registry is one for every client",
}
# A body that passes validation, so the request reaches the tenancy check.
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/api/v1/api-users/{apiUserId}/permissions"): {"overrides": {}},
    ("PATCH", "/api/v1/payment-links/{linkId}"): {"isActive": False},
    ("POST", "/api/v1/payment-requests/{id}/stk-push"): {"phoneNumber": "0712345678"},
    ("POST", "/api/v1/collections/{id}/refund"): {"reason": "Order cancelled"},
    ("POST", "/api/v1/reconciliation/exceptions/{id}/resolve"): {"action": "write_off"},
    ("POST", "/api/v1/disbursements/batches/{batchId}/retry"): {
        "batchId": "01900000-0000-7000-8000-000000000000",
        "itemIds": ["01900000-0000-7000-8000-000000000001"],
    },
    ("PUT", "/api/v1/disbursements/settings/{clientId}"): {"approvalThreshold": 100000},
}


@dataclass
class Caller:
    headers: dict[str, str]
    cookies: dict[str, str]


@dataclass
class World:
    url: str
    # Holds no permission at all, one caller per audience.
    powerless: dict[Audience, Caller]
    # Client A's callers holding every permission.
    mighty: dict[Audience, Caller]
    client_b: dict[str, uuid.UUID | int | str]
    db_url: str
    # Client A's API user without permissions, by its Pay Hero Basic pair.
    powerless_pair: Caller


async def _build(
    db: Database, clock: FrozenClock, app: Any, secret: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two active clients; in client A, callers with no permission and with all of them."""
    from malipo.http.permissions import sync_permissions

    now = clock.now()
    await sync_permissions(db, app.routes, now)
    made: dict[str, Any] = {}
    async with db.transaction() as session:
        roles = await service.ensure_system_roles(session, now)
        nothing = Role(name="Nothing", is_system=False, created_at=now)
        everything = Role(name="Everything", is_system=False, created_at=now)
        session.add_all([nothing, everything])
        await session.flush()
        all_ids = (await session.scalars(select(Permission.id))).all()
        session.add_all(RolePermission(role_id=everything.id, permission_id=pid) for pid in all_ids)
        # Customers share the Customer role: it holds everything until test_matrix empties it, so
        # that a customer on a route for others is refused by its audience, not a permission.
        customer_role = roles["Customer"].id
        held = set(
            (
                await session.scalars(
                    select(RolePermission.permission_id).where(RolePermission.role_id == customer_role)
                )
            ).all()
        )
        session.add_all(
            RolePermission(role_id=customer_role, permission_id=pid) for pid in all_ids if pid not in held
        )
        for tag in ("a", "b"):
            client = await service.create_client(
                session, name=f"Client {tag}", client_type=ClientType.COMPANY, email=f"{tag}@example.com",
                status=ClientStatus.ACTIVE, now=now,
            )  # fmt: skip
            made[f"client_{tag}"] = client.id
            for role, label in ((nothing, "powerless"), (everything, "mighty")):
                user = await service.create_portal_user(
                    session, email=f"{label}-{tag}@example.com", user_name=label,
                    password="correct horse battery", roles=[role], client_id=client.id, now=now,
                )  # fmt: skip
                made[f"portal_{label}_{tag}"] = user.id
                issued = await service.create_api_user(
                    session, client=client, role=roles["Developer"] if label == "mighty" else nothing,
                    developer_name=label, developer_email=f"dev-{label}-{tag}@example.com",
                    developer_phone_number="+254700000001", now=now,
                )  # fmt: skip
                if label == "mighty":  # overrides grant the API user every permission
                    session.add_all(
                        ApiUserPermission(api_user_id=issued.api_user.id, permission_id=pid, is_allowed=True)
                        for pid in all_ids
                    )
                key = await service.issue_api_key(
                    session, api_user=issued.api_user, mode=KeyMode.TEST, now=now
                )
                made[f"key_{label}_{tag}"] = key.raw
                made[f"basic_{label}_{tag}"] = (issued.api_user.api_username, issued.api_password)
                made[f"api_user_{label}_{tag}"] = issued.api_user.id
                made[f"sandbox_key_{label}_{tag}"] = key.key.id
                # Sandbox customers, like the keys: tenancy, not mode, is what hides B's from A.
                customer = await customers.create_customer(
                    session, client=client, mode=KeyMode.TEST, email=f"cust-{label}-{tag}@example.com",
                    password="correct horse battery", full_name=label, now=now,
                )  # fmt: skip
                made[f"customer_{label}_{tag}"] = customer.id
                made[f"customer_token_{label}_{tag}"] = customers.issue_customer_token(
                    customer, secret=secret, now=now
                ).token
        # A paybill channel of each client (channel ids are integers).
        channel = await collections.create_channel(
            session, collections.acting_for(client.id, "test"), channel_type="paybill", short_code="522522",
            account_number=None, description=f"Paybill {tag}", now=now,
        )  # fmt: skip
        made[f"channel_{tag}"] = channel.id
        # A collection (by its reference) and an email of each client.
        reference = f"REF{tag.upper()}{uuid.uuid4().hex[:10]}"
        session.add(
            Collection(
                client_id=client.id, mode="test", purpose="payment", reference=reference,
                checkout_request_id=f"ws_CO_{uuid.uuid4().hex}", provider="m-pesa", network_code="63902",
                phone="254711222333", amount=100_00, currency="KES", fee=150, status="SUCCESS",
                callback_token_hash=uuid.uuid4().hex + uuid.uuid4().hex, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        made[f"collection_reference_{tag}"] = reference
        made[f"refund_{tag}"] = await _refund_of(session, client.id, reference, now)
        # A transfer of each client (a client-to-client entry: no hold, no rail).
        transfer = Transfer(
            id=uuid.uuid4(), client_id=client.id, mode="test",
            reference=f"TR{tag.upper()}{uuid.uuid4().hex[:8]}",
            kind="client_mobile", account_number="+254711222333", amount=100_00, currency="KES", fee=0,
            narration="Contribution", status="COMPLETED", decision="allow", risk_score=0, flags=[],
            otp_failures=0, otp_resends=0, end_to_end_id=f"MLP{uuid.uuid4().hex[:29].upper()}",
            callback_token_hash=uuid.uuid4().hex + uuid.uuid4().hex, queries=0, created_at=now,
            updated_at=now,
        )  # fmt: skip
        session.add(transfer)
        made[f"transfer_{tag}"] = transfer.id
        # A card token and an authorisation of each client (no hold: never sent to the acquirer).
        card = CardToken(
            token=f"tok_{tag}{uuid.uuid4().hex[:20]}", client_id=client.id, mode="test", brand="visa",
            bin="424242", last4="4242", expiry_month=12, expiry_year=2030, pan_ciphertext="k1:sealed",
            key_id="k1", fingerprint=uuid.uuid4().hex, created_at=now,
        )  # fmt: skip
        session.add(card)
        await session.flush()
        card_authorization = CardAuthorization(
            id=uuid.uuid4(),
            client_id=client.id,
            mode="test",
            token_id=card.id,
            reference=f"CARD-{uuid.uuid4().hex[:20]}",
            amount=100_00,
            currency="KES",
            status="declined",
            brand="visa",
            bin="424242",
            last4="4242",
            captured_amount=0,
            refunded_amount=0,
            refunds=0,
            fee=0,
            created_at=now,
            updated_at=now,
            expires_at=now,
        )
        session.add(card_authorization)
        made[f"card_authorization_{tag}"] = card_authorization.id
        # A payment link and a checkout session of each client.
        link = PaymentLink(
            id=uuid.uuid4(), slug=f"shop-{tag}-{uuid.uuid4().hex[:8]}", client_id=client.id, mode="test",
            title="Shop", amount=None, min_amount=100, max_amount=100_000, currency="KES", is_active=True,
            created_at=now, updated_at=now,
        )  # fmt: skip
        checkout_session = CheckoutSession(
            id=uuid.uuid4(), public_id=f"cs_{tag}{uuid.uuid4().hex[:20]}", client_id=client.id, mode="test",
            amount=100_00, currency="KES", status="open", attempts=0, created_at=now, updated_at=now,
            expires_at=now,
        )  # fmt: skip
        payment_request = PaymentRequest(
            id=uuid.uuid4(), client_id=client.id, mode="test", account_reference=f"REF-{tag}", amount=100_00,
            currency="KES", paid_amount=0, overpaid_amount=0, status="open", created_at=now, updated_at=now,
            expires_at=now + timedelta(days=1),
        )  # fmt: skip
        session.add_all([link, checkout_session, payment_request])
        made[f"payment_request_{tag}"] = payment_request.id
        made[f"payment_link_{tag}"] = link.id
        disbursement = DisbursementBatch(
            id=uuid.uuid4(), client_id=client.id, mode="test", name="Payroll", status="Ready", currency="KES",
            item_count=0, total_amount=0, rejected_count=0, source="json",
            submitted_by=made[f"api_user_mighty_{tag}"], submitted_by_kind="api_user",
            approval_required=False,
            created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(disbursement)
        made[f"disbursement_batch_{tag}"] = disbursement.id
        made[f"checkout_session_{tag}"] = checkout_session.public_id
        api_user_id = made[f"api_user_mighty_{tag}"]
        mailer = Mailer(
            client_id=client.id, api_user_id=api_user_id, host="smtp.example.com", port=587,
            username="shop", password="secret", tls="starttls", created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(mailer)
        await session.flush()
        email = MerchantEmail(
            client_id=client.id, mailer_id=mailer.id, batch_id=uuid.uuid4().hex,
            sender_email="shop@example.com", sender_name=None, reply_to=None,
            recipient_email="payer@example.com", recipient_name=None,
            subject="Receipt", text_body="Thanks", html_body=None, status="queued", created_at=now,
            updated_at=now, sent_at=None,
        )  # fmt: skip
        session.add(email)
        await session.flush()
        made[f"email_{tag}"] = email.id
        made[f"email_batch_{tag}"] = email.batch_id
        # An SMS, an SMS batch and a WhatsApp batch of each client.
        for kind, object_id in (await messaging_objects(session, client.id, now)).items():
            made[f"{kind}_{tag}"] = object_id
        for label, role in (("powerless", nothing), ("mighty", everything)):
            await service.create_portal_user(
                session, email=f"op-{label}@example.com", user_name=label, password="correct horse battery",
                roles=[role], now=now,
            )  # fmt: skip
    tenant_b = {
        "client": made["client_b"],
        "api_user": made["api_user_mighty_b"],
        "portal_user": made["portal_mighty_b"],
        "sandbox_key": made["sandbox_key_mighty_b"],
        "customer": made["customer_mighty_b"],
        "channel": made["channel_b"],
        "sms": made["sms_b"],
        "sms_batch": made["sms_batch_b"],
        "whatsapp_batch": made["whatsapp_batch_b"],
        "collection_reference": made["collection_reference_b"],
        "transfer": made["transfer_b"],
        "refund": made["refund_b"],
        "card_authorization": made["card_authorization_b"],
        "checkout_session": made["checkout_session_b"],
        "payment_link": made["payment_link_b"],
        "payment_request": made["payment_request_b"],
        "disbursement_batch": made["disbursement_batch_b"],
        "email": made["email_b"],
        "email_batch": made["email_batch_b"],
        "whatsapp_session_name": "shop",
        "greeting": "hi",
        "range_from": "2026-01-01T00:00:00Z",
        "range_to": "2026-02-01T00:00:00Z",
    }
    return made, tenant_b


async def _refund_of(session: Any, client_id: uuid.UUID, reference: str, now: Any) -> uuid.UUID:
    """A pending refund of the client's collection (its hold on a funded payments wallet)."""
    await session.flush()
    collection = await session.scalar(select(Collection).where(Collection.reference == reference))
    wallet = await make_funded_wallet(session, client_id, 100_00, now=now, kind=AccountKind.PAYMENTS_WALLET)
    hold = await ledger.place_hold(session, wallet.id, 10_00, reference=f"refund:{reference}", now=now)
    refund = Refund(
        client_id=client_id, mode="test", collection_id=collection.id, reference=f"RF{uuid.uuid4().hex[:10]}",
        amount=10_00, currency="KES", reason="test", status="pending", hold_id=hold.id,
        callback_token_hash=uuid.uuid4().hex + uuid.uuid4().hex, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(refund)
    await session.flush()
    return refund.id


def _sign_in(url: str, email: str) -> Caller:
    reply = httpx.post(
        f"{url}/api/v1/account/login", json={"username": email, "password": "correct horse battery"}
    )
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return Caller(
        {"X-CSRF-Token": csrf}, {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf}
    )


@pytest.fixture
def world(settings: Settings, live_server: Any) -> World:
    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    db = Database.from_url(settings.resolved_database_url)

    async def build() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            assert settings.secret_key is not None
            return await _build(db, clock, app, settings.secret_key.get_secret_value())
        finally:
            await db.dispose()

    made, tenant_b = asyncio.run(build())
    url = live_server(app).url

    def key(raw: str) -> Caller:
        return Caller({"Authorization": f"Bearer {raw}"}, {})

    return World(
        url=url,
        powerless={
            Audience.KEY: key(made["key_powerless_a"]),
            Audience.CLIENT_ADMIN: _sign_in(url, "powerless-a@example.com"),
            Audience.OPERATOR: _sign_in(url, "op-powerless@example.com"),
            # Powerless only once the Customer role is emptied: test_matrix does that last.
            Audience.CUSTOMER: key(made["customer_token_powerless_a"]),
        },
        mighty={
            Audience.KEY: key(made["key_mighty_a"]),
            Audience.CLIENT_ADMIN: _sign_in(url, "mighty-a@example.com"),
            Audience.OPERATOR: _sign_in(url, "op-mighty@example.com"),
            Audience.CUSTOMER: key(made["customer_token_mighty_a"]),
        },
        client_b=tenant_b,
        db_url=settings.resolved_database_url,
        powerless_pair=Caller({"Authorization": _basic(*made["basic_powerless_a"])}, {}),
    )


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@functools.cache
def _app() -> Any:
    return create_app(Settings(inprocess_worker=False))


def _routes() -> list[tuple[str, str, str]]:
    return protected_routes(_app().routes)


def _route(path: str, method: str) -> Any:
    for route in effective_routes(_app().routes):
        if route.path == path and method in route.methods:
            return route
    raise AssertionError(f"no route {method} {path}")


def _callers_of(path: str, method: str) -> frozenset[Audience]:
    return route_callers(_route(path, method))


def _required_query(path: str, method: str) -> set[str]:
    dependant = _route(path, method).original.dependant
    return {q.alias for q in dependant.query_params if q.field_info.is_required()}


def _fill(path: str, values: dict[str, uuid.UUID | int | str] | None = None) -> str:
    return PARAM.sub(lambda m: str((values or {}).get(m.group(1), uuid.uuid4())), path)


def _call(
    world: World,
    method: str,
    path: str,
    caller: Caller | None,
    values: dict[str, uuid.UUID | int | str] | None = None,
):
    body = VALID_BODIES.get((method, path), {} if method in ("POST", "PUT", "PATCH") else None)
    in_path = set(PARAM.findall(path))
    query = {k: str(v) for k, v in (values or {}).items() if k not in in_path}
    return httpx.request(
        method,
        world.url + _fill(path, values),
        params=query,
        json=body,
        headers=caller.headers if caller else {},
        cookies=caller.cookies if caller else {},
    )


def _refusal(reply: httpx.Response, path: str) -> tuple[str | None, str]:
    """(the permission named, the message) of a 403, in either surface's shape."""
    body = reply.json()
    if is_payhero_path(path):
        assert set(body) == {"error_code", "error_message", "status_code"}, body
        assert body["error_code"] == "permission_denied", body
        assert body["status_code"] == 403, body
        message = body["error_message"]
        named = re.match(r"missing permission (\S+) ", message)
        return (named.group(1) if named else None), message
    return body.get("permission"), body.get("detail", "")


def test_every_route_checks_a_permission_or_is_public_for_a_reason() -> None:
    """Every route of every surface: /api/v1, /api/v2, /mailer, the callbacks and the pages."""
    routes = effective_routes(_app().routes)
    unprotected = {(m, r.path) for r in routes if not is_protected(r) for m in r.methods}
    assert unprotected == set(PUBLIC_ROUTES)
    protected = [r for r in routes if is_protected(r)]
    undeclared = [r.path for r in protected if CALLERS_KEY not in r.openapi_extra]
    assert undeclared == [], "a protected route must say who may call it (callers(...))"
    surfaces = {p for _name, _method, p in _routes()}
    for prefix in ("/api/v1/", "/api/v2/", "/mailer/", "/portal/"):
        assert any(p.startswith(prefix) for p in surfaces), prefix
    assert len(_routes()) >= 50


async def _empty_customer_role(db_url: str) -> None:
    db = Database.from_url(db_url)
    try:
        async with db.transaction() as session:
            role_id = await session.scalar(select(Role.id).where(Role.name == "Customer"))
            assert role_id is not None
            await session.execute(delete(RolePermission).where(RolePermission.role_id == role_id))
    finally:
        await db.dispose()


def test_matrix(world: World) -> None:
    problems: list[str] = []
    customer_routes: list[tuple[str, str, str]] = []
    for name, method, path in _routes():
        label = f"{method} {path}"
        anonymous = _call(world, method, path, None)
        if anonymous.status_code != 401:
            problems.append(f"{label}: anonymous got {anonymous.status_code}, not 401")

        audiences = _callers_of(path, method)
        powerless = [(a, world.powerless[a]) for a in audiences if a != Audience.CUSTOMER]
        if Audience.KEY in audiences and is_payhero_path(path):
            powerless.append((Audience.KEY, world.powerless_pair))  # Pay Hero's Basic pair too
        if Audience.CUSTOMER in audiences:  # checked last: see the module's docstring
            customer_routes.append((name, method, path))
        for audience, caller in powerless:
            reply = _call(world, method, path, caller)
            if reply.status_code != 403 or _refusal(reply, path)[0] != name:
                problems.append(
                    f"{label}: {audience.value} without {name} got {reply.status_code} {reply.text[:120]}"
                )

        # Callers the route is not for are refused by their audience, whatever they hold.
        for audience in set(Audience) - audiences:
            try:
                reply = _call(world, method, path, world.mighty[audience])
            except httpx.TimeoutException:
                problems.append(f"{label}: {audience.value} holding every permission got no answer")
                continue
            if reply.status_code != 403 or "is only for" not in _refusal(reply, path)[1]:
                problems.append(
                    f"{label}: {audience.value} holding every permission got {reply.status_code} "
                    f"{reply.text[:120]}"
                )

        names_an_object = (
            bool(PARAM.search(path)) or bool(_required_query(path, method)) or path in TENANT_OBJECTS
        )
        if not names_an_object:
            continue
        tenant_audiences = audiences - {Audience.OPERATOR}
        if not tenant_audiences:
            continue  # operator-only: operators act across clients by design
        if path in SHARED_OBJECTS:
            continue
        if path not in TENANT_OBJECTS:
            problems.append(f"{label}: names an object in its path or query; add it to TENANT_OBJECTS")
            continue
        values = {param: world.client_b[kind] for param, kind in TENANT_OBJECTS[path].items()}
        for audience in tenant_audiences:
            reply = _call(world, method, path, world.mighty[audience], values)
            if reply.status_code != 404:
                problems.append(
                    f"{label}: {audience.value} of client A reached client B's object: {reply.status_code}"
                )

    assert customer_routes, "no route is for wallet customers"
    asyncio.run(_empty_customer_role(world.db_url))
    # Changed behind the server's back, as another process would: its cached decisions
    # may stand for up to their lifetime (permission_cache.DECISION_TTL), no longer.
    time.sleep(DECISION_TTL + 0.1)
    for name, method, path in customer_routes:
        reply = _call(world, method, path, world.powerless[Audience.CUSTOMER])
        if reply.status_code != 403 or reply.json().get("permission") != name:
            problems.append(
                f"{method} {path}: cust without {name} got {reply.status_code} {reply.text[:100]}"
            )
    assert problems == [], "\n".join(problems)


async def test_overrides_grant_and_revoke_on_top_of_the_role(db: Database, settings: Settings) -> None:
    """A Developer may list sandbox keys; a revoke override takes that away, a grant gives back."""
    from malipo.seed import seed_demo

    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    from malipo.http.permissions import sync_permissions

    await sync_permissions(db, app.routes, clock.now())
    demo = await seed_demo(db, clock)
    async with db.transaction() as session:
        permission = await session.scalar(
            select(Permission).where(
                Permission.http_method == "GET", Permission.route_pattern == "/api/v1/sandbox/api-keys"
            )
        )
        key = await session.scalar(select(ApiKey).where(ApiKey.api_user_id == uuid.UUID(demo.api_user_id)))
    assert permission is not None
    assert key is not None
    from tests.fixtures.servers import LiveServer

    with LiveServer(app) as server:
        headers = {"Authorization": f"Bearer {demo.sandbox_api_key}"}
        assert httpx.get(f"{server.url}/api/v1/sandbox/api-keys", headers=headers).status_code == 200
        operator = _sign_in_with(server.url, demo.operator_email, demo.operator_password)
        put = httpx.put(
            f"{server.url}/api/v1/api-users/{demo.api_user_id}/permissions",
            json={"overrides": {str(permission.id): False}},
            headers=operator.headers,
            cookies=operator.cookies,
        )
        assert put.status_code == 200, put.text
        denied = httpx.get(f"{server.url}/api/v1/sandbox/api-keys", headers=headers)
        assert denied.status_code == 403
        assert denied.json()["permission"] == "SandboxKeys.List"
        assert "SandboxKeys.List" in denied.json()["detail"]
        unknown = httpx.put(
            f"{server.url}/api/v1/api-users/{demo.api_user_id}/permissions",
            json={"overrides": {str(uuid.uuid4()): True}},
            headers=operator.headers,
            cookies=operator.cookies,
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "overrides"


def _sign_in_with(url: str, email: str, password: str) -> Caller:
    reply = httpx.post(f"{url}/api/v1/account/login", json={"username": email, "password": password})
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return Caller(
        {"X-CSRF-Token": csrf}, {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf}
    )
