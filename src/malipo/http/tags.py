"""The API reference's tags, and the line on each operation saying who may call it.

Every operation in ``/openapi.json`` carries one tag of :data:`TAGS`. The Pay Hero-compatible
surface's tags start with ``Pay Hero · `` so that the two surfaces are told apart at a glance.

Each route declares its own summary and description (its docstring); the line naming its
permission and its callers is written here, from the route's ``name`` (its permission) and
``callers(...)``, so that it always says what the gateway checks.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from malipo.auth.permissions import default_roles_for
from malipo.http.permissions import is_protected, route_callers
from malipo.http.routes import EffectiveRoute, effective_routes
from malipo.identity.principals import Audience

PAYHERO_PREFIX = "Pay Hero · "

# -- the native API (/api/v1) ---------------------------------------------------------------------
ACCOUNT = "Account"
CLIENTS = "Clients"
API_USERS = "API users"
ROLES = "Roles"
PERMISSIONS = "Permissions"
PORTAL_USERS = "Portal users"
SANDBOX_KEYS = "Sandbox keys"
CUSTOMERS = "Customers"
WALLET = "Customer wallet"
CHANNELS = "Channels"
SMS = "SMS"
WHATSAPP = "WhatsApp"
PRICING = "Pricing"
BANKS = "Banks"
REVIEW = "Operator review"
PAYMENTS = "Payments"
FRAUD = "Fraud rules"
CARDS = "Cards"
CHECKOUT = "Hosted checkout"
PAYMENT_LINKS = "Payment links"
REPORTS = "Reports"
REFUNDS = "Refunds"
RAIL_BALANCES = "Rail balances"
RECONCILIATION = "Reconciliation"
DISBURSEMENTS = "Disbursement batches"
# -- the Pay Hero-compatible API (/api/v2, /mailer) -----------------------------------------------
PAYHERO_PAYMENTS = PAYHERO_PREFIX + "Payments"
PAYHERO_WALLETS = PAYHERO_PREFIX + "Wallets"
PAYHERO_CHANNELS = PAYHERO_PREFIX + "Payment channels"
PAYHERO_WITHDRAWALS = PAYHERO_PREFIX + "Withdrawals"
PAYHERO_EMAIL = PAYHERO_PREFIX + "Email"
PAYHERO_WHATSAPP = PAYHERO_PREFIX + "WhatsApp"
# -- neither: for machines ------------------------------------------------------------------------
HEALTH = "Health"
PROVIDER_CALLBACKS = "Provider callbacks"

_PAYHERO = (
    " Pay Hero-compatible: snake_case JSON, Pay Hero's error object, the Pay Hero pair "
    "(`api_username:api_password`) as HTTP Basic, or an API key."
)

TAGS: list[dict[str, str]] = [
    {
        "name": ACCOUNT,
        "description": "Portal sign-in (a session cookie and its CSRF token), sign-out and password resets.",
    },
    {
        "name": CLIENTS,
        "description": "Merchants (clients): registration, approval by operator staff, their API users.",
    },
    {
        "name": API_USERS,
        "description": "A client's API users, the developers and systems that call the API: each has an "
        "API key and a Pay Hero pair, a role, and its own permission overrides.",
    },
    {"name": ROLES, "description": "Roles: named sets of permissions that users hold."},
    {
        "name": PERMISSIONS,
        "description": "One permission per protected route (its name, HTTP method and path), granted "
        "through roles and per-API-user overrides.",
    },
    {
        "name": PORTAL_USERS,
        "description": "People who sign in to the portal: operator staff, or a client's own users.",
    },
    {
        "name": SANDBOX_KEYS,
        "description": "Sandbox API keys (`mk_test_…`): the same API, against simulated rails and "
        "sandbox wallets that start funded.",
    },
    {
        "name": CUSTOMERS,
        "description": "A merchant's wallet customers: registration, sign-in (a customer token), details.",
    },
    {
        "name": WALLET,
        "description": "A wallet customer's own wallet, with the customer token: balance, top-up, "
        "transfer, payment, statement.",
    },
    {
        "name": CHANNELS,
        "description": "Where collections pay into: your paybill, till or bank account, or your payments "
        "wallet in malipo.",
    },
    {"name": SMS, "description": "Text messages, charged to your service wallet per segment."},
    {
        "name": WHATSAPP,
        "description": "WhatsApp sessions (Meta's Cloud API or the built-in simulator), bulk sends from "
        "a CSV file, and their status.",
    },
    {"name": PRICING, "description": "Each client's collection and payout fees."},
    {
        "name": BANKS,
        "description": "The banks and mobile-money operators malipo pays, by 3-digit code: an account "
        "number's first 3 digits are its bank's code.",
    },
    {
        "name": REVIEW,
        "description": "Collections and payouts whose provider result differs from what was asked, held "
        "for operator staff to accept or reject.",
    },
    {
        "name": PAYMENTS,
        "description": "Transfers out of your payments wallet to a bank account: fraud checks, a one-time "
        "code to your API user's phone and email, then the bank rail; and their status.",
    },
    {
        "name": CARDS,
        "description": "Card payments: a vault that turns a card into a token (the number encrypted, the "
        "CVV never stored), authorisations with 3-D Secure, capture, void and refund.",
    },
    {
        "name": CHECKOUT,
        "description": "A hosted payment page per payment: create a session, send the payer to its URL, "
        "where they pay by M-Pesa (STK push) or card (with 3-D Secure), then return to your site. "
        "Paid once; a webhook tells you the outcome.",
    },
    {
        "name": PAYMENT_LINKS,
        "description": "Standing payment pages (`/pay/{slug}`) anyone can pay by M-Pesa, for a fixed "
        "amount or one the payer chooses, and a Pay button (`/button.js`) for your own site.",
    },
    {
        "name": REPORTS,
        "description": "Card payments and checkout sessions for a client's portal users (their own client's) "
        "and operator staff (every client's, or one by `clientId`): lists by status and date, and summaries "
        "per currency. Amounts are decimal strings beside their currency.",
    },
    {
        "name": DISBURSEMENTS,
        "description": "Bulk payouts as batches of up to 100,000 items (JSON, a CSV body, or a CSV or Excel "
        "upload): each item checked on its own, then processed (held and paid through M-Pesa, to phones or "
        "to banks' paybills), followed item by item, retried, approved by a second person above a threshold, "
        "and reconciled against the ledger (the reports under Reports).",
    },
    {
        "name": RECONCILIATION,
        "description": "Each day's reconciliation of malipo's books against the rails' own records (M-Pesa's "
        "Pull Transactions, Airtel's enquiry): matched items and exceptions, totals that tie to the "
        "ledger, and resolving an exception (attach, write off, refund). Operator staff only.",
    },
    {
        "name": FRAUD,
        "description": "Each client's fraud rules (limits, velocity, duplicates, new destinations, the "
        "scores that need a code or block) and its block list, set by operator staff.",
    },
    {
        "name": PAYHERO_PAYMENTS,
        "description": "M-Pesa STK push collections, their status and the transaction list." + _PAYHERO,
    },
    {
        "name": PAYHERO_WALLETS,
        "description": "Service and payments wallet balances; service wallet top-up by STK push." + _PAYHERO,
    },
    {
        "name": PAYHERO_CHANNELS,
        "description": "Your paybills, tills and bank accounts that collections pay into." + _PAYHERO,
    },
    {
        "name": PAYHERO_WITHDRAWALS,
        "description": "Pay out from your payments wallet to a phone (M-Pesa) or a bank account." + _PAYHERO,
    },
    {
        "name": PAYHERO_EMAIL,
        "description": "Send email through your own SMTP server, and follow each message." + _PAYHERO,
    },
    {
        "name": PAYHERO_WHATSAPP,
        "description": "Send WhatsApp texts, images and documents, one or many at a time." + _PAYHERO,
    },
    {
        "name": REFUNDS,
        "description": "Refund a collection (all or part) to the payer by M-Pesa's reversal, and follow it.",
    },
    {
        "name": RAIL_BALANCES,
        "description": "The float at each rail (M-Pesa shortcodes, Airtel) as the rail last reported it; "
        "operator staff only.",
    },
    {
        "name": HEALTH,
        "description": "Liveness, readiness and Prometheus metrics, for load balancers and monitoring. "
        "No credentials.",
    },
    {
        "name": PROVIDER_CALLBACKS,
        "description": "Where M-Pesa (Daraja), Africa's Talking and WhatsApp report results; not for "
        "merchants, and not in this reference.",
    },
]

TAG_NAMES = frozenset(tag["name"] for tag in TAGS)

# Who each audience is, in the words of the reference.
WHO = {
    Audience.OPERATOR: "operator staff",
    Audience.CLIENT_ADMIN: "a client's portal users",
    Audience.KEY: "API users (an API key, or the Pay Hero pair)",
    Audience.CUSTOMER: "wallet customers (their customer token)",
}
PUBLIC = "Public: no credentials needed."
# Who holds each system role: operator roles are for operator staff, the customer role for wallet
# customers, the others for a client's portal users and API users.
_OPERATOR_ROLES = frozenset({"SuperAdmin", "CompanyAdmin"})
_CUSTOMER_ROLES = frozenset({"Customer"})


def _holders(role: str) -> frozenset[Audience]:
    if role in _OPERATOR_ROLES:
        return frozenset({Audience.OPERATOR})
    if role in _CUSTOMER_ROLES:
        return frozenset({Audience.CUSTOMER})
    return frozenset({Audience.CLIENT_ADMIN, Audience.KEY})


_METHODS = {"get", "put", "post", "delete", "patch"}


def access_line(route: EffectiveRoute) -> str:
    """The paragraph that says which permission a route checks and who may call it."""
    if not is_protected(route):
        return PUBLIC
    audiences = route_callers(route)
    who = [WHO[audience] for audience in Audience if audience in audiences]
    line = f"Permission: `{route.name}`. Who: {_join(who)}."
    # The roles that grant it by default, among those its callers can hold.
    roles = [role for role in default_roles_for(route.name) if _holders(role) & audiences]
    if roles:
        named = _join([f"`{role}`" for role in roles])
        line += f" Granted by default to the role{'s' if len(roles) > 1 else ''} {named}."
    return line


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(app: FastAPI, doc: dict[str, Any]) -> dict[str, Any]:
    """Declare the tags in use, and end each operation's description with its access line."""
    routes = {
        (route.path, method.lower()): route
        for route in effective_routes(app.routes)
        for method in route.methods
    }
    used: set[str] = set()
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            used.update(operation.get("tags", ()))
            route = routes.get((path, method))
            if route is None:
                continue
            line = access_line(route)
            own = (operation.get("description") or "").strip()
            operation["description"] = f"{own}\n\n{line}" if own else line
    doc["tags"] = [tag for tag in TAGS if tag["name"] in used]
    return doc
