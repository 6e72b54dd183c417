"""The OpenAPI document says truthfully which credentials each operation takes.

Checked against the running server, operation by operation: one that answers 401 to
a caller without credentials declares security, a public one declares none; every
credential it declares gets the caller in, and every other one is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from malipo.api.openapi import API_KEY, CUSTOMER_JWT, PAYHERO_BASIC, PORTAL_SESSION, SECURITY_SCHEMES
from malipo.app import create_app
from malipo.config import Settings
from tests.api.credentials import Credentials, Request, operations, seed
from tests.fixtures.servers import LiveServer

# Every credential alone, as a client would send it (a session with its CSRF token).
_EVERY_WAY_IN = {
    API_KEY: {API_KEY: []},
    PAYHERO_BASIC: {PAYHERO_BASIC: []},
    CUSTOMER_JWT: {CUSTOMER_JWT: []},
    PORTAL_SESSION: {PORTAL_SESSION: [], "CsrfCookie": [], "CsrfToken": []},
}


PUBLIC = {
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "POST /api/v1/account/login",
    "POST /api/v1/account/forgot-password",
    "POST /api/v1/account/reset-password",
    "POST /api/v1/clients",
}


def _example(parameter: dict[str, Any]) -> str:
    schema = parameter.get("schema", {})
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("type") == "integer":
        return "1"
    return "x"


def _url(base: str, path: str, operation: dict[str, Any]) -> str:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", _example(parameter))
    return base + path


def _signing_out_last(found: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    return sorted(found, key=lambda op: op[1] == "/api/v1/account/logout")


@pytest.fixture
def served(settings: Settings, live_server: Callable[[object], LiveServer]) -> tuple[str, dict[str, Any]]:
    app = create_app(settings)
    return live_server(app).url, app.openapi()


_CLIENT = httpx.Client()  # one client: making one costs more than a request to loopback


def _send(url: str, method: str, sent: Request | None = None) -> httpx.Response:
    sent = sent or Request()
    headers = dict(sent.headers)
    if sent.cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in sent.cookies.items())
    reply = _CLIENT.request(method, url, headers=headers)
    _CLIENT.cookies.clear()  # what a reply sets is not sent with the next request
    return reply


def test_the_document_declares_each_way_in(served: tuple[str, dict[str, Any]]) -> None:
    _url_base, document = served
    schemes = document["components"]["securitySchemes"]
    assert schemes == SECURITY_SCHEMES
    assert schemes[API_KEY] == {**schemes[API_KEY], "type": "http", "scheme": "bearer"}
    assert schemes[PAYHERO_BASIC]["scheme"] == "basic"
    assert schemes[CUSTOMER_JWT]["bearerFormat"] == "JWT"
    assert (schemes[PORTAL_SESSION]["in"], schemes[PORTAL_SESSION]["name"]) == ("cookie", "malipo_session")
    for method, path, operation in operations(document):
        for requirement in operation.get("security", []):
            assert set(requirement) <= set(schemes), f"{method} {path} names an undeclared scheme"


def test_an_operation_declares_security_exactly_when_it_refuses_anonymous_callers(
    served: tuple[str, dict[str, Any]],
) -> None:
    base, document = served
    problems = []
    public = set()
    for method, path, operation in operations(document):
        reply = _send(_url(base, path, operation), method)
        declared = bool(operation.get("security"))
        if not declared:
            public.add(f"{method} {path}")
        if declared and reply.status_code != 401:
            problems.append(f"{method} {path} declares security but answers {reply.status_code} to no one")
        if not declared and reply.status_code == 401:
            problems.append(f"{method} {path} answers 401 to no one but declares no security")
    assert problems == [], "\n".join(problems)
    # A route open to anyone is a decision: add it here when you make one.
    assert public == PUBLIC


def test_every_declared_credential_gets_in_and_no_other_does(
    served: tuple[str, dict[str, Any]], settings: Settings
) -> None:
    base, document = served
    credentials: Credentials = seed(base, settings.resolved_database_url)
    problems = []
    for method, path, operation in _signing_out_last(operations(document)):
        requirements = operation.get("security", [])
        if not requirements:
            continue
        url, callers = _url(base, path, operation), operation.get("x-callers")
        declared = set()
        for requirement in requirements:
            declared |= set(requirement)
            reply = _send(url, method, credentials.present(requirement, callers))
            if reply.status_code in (401, 403):
                problems.append(
                    f"{method} {path} refuses its declared {sorted(requirement)}: {reply.text[:120]}"
                )
        for scheme, requirement in _EVERY_WAY_IN.items():
            if scheme in declared:
                continue
            sessions = ["op", "ca"] if scheme == PORTAL_SESSION else [None]
            for who in sessions:
                reply = _send(url, method, credentials.present(requirement, [who] if who else None))
                if reply.status_code not in (401, 403):
                    problems.append(
                        f"{method} {path} lets in {scheme} ({who or ''}), which it does not declare"
                    )
    assert problems == [], "\n".join(problems)
