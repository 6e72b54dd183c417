"""A merchant's life, end to end over real HTTP, with its emails delivered through a real SMTP server.

Register (Pending, credentials emailed) → the operator approves (an Individual gets exactly one API
user, its key emailed), rejects (the client is told why) or later deactivates; every credential of
a client that is not Active is refused with 403 ``client_not_active`` saying why.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import SystemClock
from malipo.db import Database
from malipo.seed import DemoCredentials, seed_demo
from tests.fixtures.smtp import SmtpServer

CSRF_COOKIE = "malipo_csrf"
CSRF_HEADER = "X-CSRF-Token"

SUBJECT_REGISTERED = "Your malipo portal account"
SUBJECT_APPROVED = "Your malipo account is approved"
SUBJECT_API_KEY = "API key"
SUBJECT_REJECTED = "Your malipo application was not approved"
SUBJECT_DEACTIVATED = "Your malipo account has been deactivated"

# The test server takes AUTH over plain text on loopback, which aiosmtpd rightly warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


# -- a real SMTP server that requires AUTH ---------------------------------------------------------


@pytest.fixture
def mailbox(smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    return smtp_server()


# -- the gateway --------------------------------------------------------------------------------


def _seed(db_url: str) -> DemoCredentials:
    async def run() -> DemoCredentials:
        db = Database.from_url(db_url)
        try:
            return await seed_demo(db, SystemClock())
        finally:
            await db.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:  # safe also if a loop runs in this thread
        return pool.submit(asyncio.run, run()).result()


@dataclass
class Gateway:
    url: str
    mail: SmtpServer
    demo: DemoCredentials
    stack: ExitStack

    def http(self, **kwargs: Any) -> httpx.Client:
        return self.stack.enter_context(httpx.Client(base_url=self.url, timeout=15, **kwargs))

    def sign_in(self, email_address: str, password: str) -> httpx.Client:
        """A portal session: the session cookie, and the CSRF cookie's value sent in X-CSRF-Token."""
        http = self.http()
        reply = http.post("/api/v1/account/login", json={"username": email_address, "password": password})
        assert reply.status_code == 200, reply.text
        assert reply.json()["email"] == email_address
        csrf = http.cookies.get(CSRF_COOKIE)
        assert csrf, "the sign-in set no CSRF cookie"
        assert reply.json()["csrfToken"] == csrf
        http.headers[CSRF_HEADER] = csrf
        return http

    def operator(self) -> httpx.Client:
        return self.sign_in(self.demo.operator_email, self.demo.operator_password)


@pytest.fixture
def gateway(mailbox: SmtpServer, settings: Settings, db_url: str, live_server: Any) -> Iterator[Gateway]:
    demo = _seed(db_url)
    settings.inprocess_worker = True
    settings.worker_poll_seconds = 0.05
    settings.smtp_url = SecretStr(mailbox.url())
    server = live_server(create_app(settings))
    with ExitStack() as stack:
        yield Gateway(server.url, mailbox, demo, stack)


# -- helpers ------------------------------------------------------------------------------------


def _problem(reply: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, f"expected {status}, got {reply.status_code}: {reply.text}"
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.headers
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == status
    if code is not None:
        assert problem["code"] == code, problem
    return problem


def _fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem["errors"]}


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _one(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not found in:\n{text}"
    return found.group(1)


def _register(gateway: Gateway, **overrides: Any) -> dict[str, Any]:
    body = {
        "clientType": "Company",
        "name": "Savanna Traders Ltd",
        "contactPerson": "Achieng Otieno",
        "phoneNumber": "+254712345678",
        "emailAddress": "owner@savanna.example",
        "country": "Kenya",
        **overrides,
    }
    reply = gateway.http().post("/api/v1/clients", json=body)
    assert reply.status_code == 201, reply.text
    client: dict[str, Any] = reply.json()
    assert client["status"] == "Pending"
    assert client["emailAddress"] == body["emailAddress"].lower()
    assert client["rejectionReason"] is None
    return client


def _temporary_password(gateway: Gateway, address: str, client_name: str) -> str:
    """The registration email's temporary password, after checking whom it is for."""
    mail = gateway.mail.wait_for(address, SUBJECT_REGISTERED)
    assert mail.message["To"] == address
    text = mail.text
    assert client_name in text
    assert _one(r"Email:\s+(\S+)", text) == address
    assert "pending approval" in text
    return _one(r"Temporary password:\s+(\S+)", text)


def _api_user_count(http: httpx.Client, client_id: str) -> int:
    reply = http.get(f"/api/v1/clients/{client_id}/api-users/count")
    assert reply.status_code == 200, reply.text
    assert reply.json()["clientId"] == client_id
    count: int = reply.json()["count"]
    return count


def _client_ids(operator: httpx.Client, path: str = "/api/v1/clients") -> list[str]:
    reply = operator.get(path)
    assert reply.status_code == 200, reply.text
    return [c["id"] for c in reply.json()]


# -- the tests ----------------------------------------------------------------------------------


def test_individual_client_lifecycle_with_emails(gateway: Gateway) -> None:
    address = "wanjiku@kamau.example"
    client = _register(
        gateway,
        clientType="Individual",
        name="Wanjiku Kamau",
        contactPerson="Wanjiku Kamau",
        emailAddress=address,
    )
    client_id = client["id"]
    assert (client["clientType"], client["country"], client["currency"]) == ("Individual", "KE", "KES")

    # The admin's credentials arrive by email; they sign in, but the client is not active yet.
    password = _temporary_password(gateway, address, "Wanjiku Kamau")
    admin = gateway.sign_in(address, password)
    problem = _problem(admin.get(f"/api/v1/clients/{client_id}"), 403, "client_not_active")
    assert "awaiting approval" in problem["detail"]
    assert problem["clientStatus"] == "Pending"

    # The operator sees it waiting and approves it (a state change needs the CSRF header).
    operator = gateway.operator()
    reply = operator.get("/api/v1/clients/pending")
    assert reply.status_code == 200, reply.text
    [pending] = [c for c in reply.json() if c["id"] == client_id]
    assert (pending["status"], pending["apiUserCount"], pending["apiUsers"]) == ("Pending", 0, [])
    assert gateway.demo.merchant_id not in [c["id"] for c in reply.json()], "the demo merchant is Active"

    unprotected = operator.post(f"/api/v1/clients/{client_id}/approve", headers={CSRF_HEADER: ""})
    assert "CSRF" in _problem(unprotected, 403, "forbidden")["detail"]
    reply = operator.post(f"/api/v1/clients/{client_id}/approve")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "Active"

    # Approval mail, then the one API user's key and Pay Hero pair by email.
    approved = gateway.mail.wait_for(address, SUBJECT_APPROVED)
    assert "approved and is now active" in approved.text
    key_mail = gateway.mail.wait_for(address, SUBJECT_API_KEY)
    assert "live" in key_mail.subject
    api_key = _one(r"API key:\s+(mk_live_\S+)", key_mail.text)
    api_username = _one(r"API username:\s+(\S+)", key_mail.text)
    api_password = _one(r"API password:\s+(\S+)", key_mail.text)

    assert _api_user_count(operator, client_id) == 1
    [listed] = [c for c in operator.get("/api/v1/clients").json() if c["id"] == client_id]
    assert listed["apiUserCount"] == 1
    [api_user] = listed["apiUsers"]
    assert (api_user["developerName"], api_user["developerEmail"]) == ("Wanjiku Kamau", address)

    # Approving twice is a conflict and provisions nothing more.
    again = _problem(operator.post(f"/api/v1/clients/{client_id}/approve"), 409, "client_state_conflict")
    assert again["clientStatus"] == "Active"
    assert _api_user_count(operator, client_id) == 1
    assert [m.subject for m in gateway.mail.to(address)].count(key_mail.subject) == 1

    # The admin's same session now works.
    reply = admin.get(f"/api/v1/clients/{client_id}")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "Active"
    assert _api_user_count(admin, client_id) == 1

    # The emailed credentials work: Bearer key, Basic key-as-username, Basic Pay Hero pair.
    api = gateway.http()
    for headers in (_bearer(api_key), _basic(api_key, ""), _basic(api_username, api_password)):
        reply = api.get("/api/v1/sandbox/api-keys", headers=headers)
        assert reply.status_code == 200, f"{headers}: {reply.text}"
        assert reply.json() == []
    wrong = api.get("/api/v1/sandbox/api-keys", headers=_basic(api_username, api_password + "x"))
    _problem(wrong, 401, "unauthorized")

    # Deactivation: an email, and every credential of the client is refused, saying why.
    reply = operator.post(f"/api/v1/clients/{client_id}/deactivate")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "Deactivated"
    deactivated = gateway.mail.wait_for(address, SUBJECT_DEACTIVATED)
    assert "Wanjiku Kamau" in deactivated.text

    for headers in (_bearer(api_key), _basic(api_key, ""), _basic(api_username, api_password)):
        refused = _problem(api.get("/api/v1/sandbox/api-keys", headers=headers), 403, "client_not_active")
        assert "deactivated" in refused["detail"], refused
        assert refused["clientStatus"] == "Deactivated"
    refused = _problem(admin.get(f"/api/v1/clients/{client_id}"), 403, "client_not_active")
    assert "deactivated" in refused["detail"]

    again = _problem(operator.post(f"/api/v1/clients/{client_id}/deactivate"), 409, "client_state_conflict")
    assert again["clientStatus"] == "Deactivated"

    subjects = sorted(m.subject for m in gateway.mail.to(address))
    assert subjects == sorted(
        [SUBJECT_REGISTERED, SUBJECT_APPROVED, key_mail.subject, SUBJECT_DEACTIVATED]
    ), subjects
    for mail in gateway.mail.to(address):
        assert mail.mail_from == "no-reply@malipo.local"


def test_rejected_client_is_told_why(gateway: Gateway) -> None:
    address = "owner@savanna.example"
    reason = "Incomplete KYC documents"
    client = _register(gateway, clientType="Company", emailAddress=address)
    client_id = client["id"]
    password = _temporary_password(gateway, address, "Savanna Traders Ltd")

    operator = gateway.operator()
    reply = operator.post(f"/api/v1/clients/{client_id}/reject?reason=Incomplete%20KYC%20documents")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["rejectionReason"]) == ("Rejected", reason)
    shown = operator.get(f"/api/v1/clients/{client_id}").json()
    assert (shown["status"], shown["rejectionReason"]) == ("Rejected", reason)
    assert client_id not in _client_ids(operator, "/api/v1/clients/pending")

    rejected = gateway.mail.wait_for(address, SUBJECT_REJECTED)
    assert f"Reason: {reason}" in rejected.text

    admin = gateway.sign_in(address, password)
    problem = _problem(admin.get(f"/api/v1/clients/{client_id}"), 403, "client_not_active")
    assert reason in problem["detail"]
    assert "rejected" in problem["detail"]
    assert problem["clientStatus"] == "Rejected"

    for action in ("reject?reason=Changed", "approve"):
        reply = operator.post(f"/api/v1/clients/{client_id}/{action}")
        conflict = _problem(reply, 409, "client_state_conflict")
        assert conflict["clientStatus"] == "Rejected"
    for path in (f"/api/v1/clients/{client_id}/reject", f"/api/v1/clients/{client_id}/reject?reason="):
        assert _fields(_problem(operator.post(path), 422, "validation_failed")) == {"reason"}

    shown = operator.get(f"/api/v1/clients/{client_id}").json()
    assert (shown["status"], shown["rejectionReason"]) == ("Rejected", reason)
    assert _api_user_count(operator, client_id) == 0
    assert [m.subject for m in gateway.mail.to(address)] == [SUBJECT_REGISTERED, SUBJECT_REJECTED]


def test_company_approval_provisions_no_api_user_until_admin_creates_one(gateway: Gateway) -> None:
    address = "admin@mkulima.example"
    client = _register(gateway, clientType="Company", name="Mkulima Supplies Ltd", emailAddress=address)
    client_id = client["id"]
    password = _temporary_password(gateway, address, "Mkulima Supplies Ltd")

    operator = gateway.operator()
    reply = operator.post(f"/api/v1/clients/{client_id}/approve")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "Active"
    gateway.mail.wait_for(address, SUBJECT_APPROVED)
    assert _api_user_count(operator, client_id) == 0

    admin = gateway.sign_in(address, password)
    assert _api_user_count(admin, client_id) == 0
    reply = admin.get("/api/v1/roles")
    assert reply.status_code == 200, reply.text
    roles = {r["name"]: r["id"] for r in reply.json()}
    developer = {
        "developerName": "Baraka Mwangi",
        "developerEmail": "baraka@mkulima.example",
        "developerPhoneNumber": "+254722000111",
    }

    for operator_role in ("SuperAdmin", "CompanyAdmin"):
        refused = admin.post("/api/v1/api-users", json={**developer, "roleId": roles[operator_role]})
        assert _fields(_problem(refused, 422, "validation_failed")) == {"roleId"}
    assert _api_user_count(admin, client_id) == 0

    reply = admin.post("/api/v1/api-users", json={**developer, "roleId": roles["Developer"]})
    assert reply.status_code == 201, reply.text
    created = reply.json()
    api_user, credentials = created["apiUser"], created["credentials"]
    assert api_user["clientId"] == client_id
    assert api_user["roleId"] == roles["Developer"]
    assert api_user["developerName"] == "Baraka Mwangi"
    assert api_user["developerEmail"] == "baraka@mkulima.example"
    assert credentials["apiKey"].startswith("mk_live_")
    assert credentials["apiKeyMode"] == "live"
    assert credentials["apiUsername"] == api_user["apiUsername"]
    assert credentials["apiPassword"]

    # Listed without any secret, for the admin and the operator alike.
    reply = admin.get("/api/v1/api-users")
    assert reply.status_code == 200, reply.text
    [listed] = reply.json()
    assert listed == api_user
    assert not {"apiKey", "apiPassword", "apiPasswordHash", "credentials"} & set(listed)
    assert credentials["apiKey"] not in reply.text
    assert credentials["apiPassword"] not in reply.text
    assert _api_user_count(admin, client_id) == 1
    assert _api_user_count(operator, client_id) == 1

    # Shown once, and they work.
    api = gateway.http()
    payhero = _basic(credentials["apiUsername"], credentials["apiPassword"])
    for headers in (_bearer(credentials["apiKey"]), _basic(credentials["apiKey"], ""), payhero):
        reply = api.get("/api/v1/sandbox/api-keys", headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.json() == []
    assert not [m for m in gateway.mail.to(address) if SUBJECT_API_KEY in m.subject]


def test_duplicate_registration_email_is_409(gateway: Gateway) -> None:
    operator = gateway.operator()
    before = _client_ids(operator)
    assert before == [gateway.demo.merchant_id]

    first = _register(gateway, emailAddress="owner@savanna.example")
    public = gateway.http()
    base = {
        "clientType": "Company",
        "name": "Another Savanna Ltd",
        "contactPerson": "Juma Hassan",
        "phoneNumber": "+254733444555",
        "emailAddress": "someone@else.example",
        "country": "Kenya",
    }
    for taken in ("owner@savanna.example", "OWNER@Savanna.example", gateway.demo.merchant_admin_email):
        reply = public.post("/api/v1/clients", json={**base, "emailAddress": taken})
        problem = _problem(reply, 409, "conflict")
        assert _fields(problem) == {"emailAddress"}, problem

    missing_name = {k: v for k, v in base.items() if k != "name"}
    for body, field_name in (
        ({**base, "emailAddress": "not-an-email"}, "emailAddress"),
        (missing_name, "name"),
        ({**base, "name": "   "}, "name"),
        ({**base, "country": "Atlantis"}, "country"),
    ):
        problem = _problem(public.post("/api/v1/clients", json=body), 422, "validation_failed")
        assert _fields(problem) == {field_name}, problem

    assert _client_ids(operator) == [*before, first["id"]]
    assert _client_ids(operator, "/api/v1/clients/pending") == [first["id"]]
    gateway.mail.wait_for("owner@savanna.example", SUBJECT_REGISTERED)
    assert gateway.mail.to("someone@else.example") == []
    assert len(gateway.mail.to("owner@savanna.example")) == 1
