"""The OpenAPI document, with each surface's real error shape and credentials declared on every route.

FastAPI declares its own 422 body; malipo replies with problem+json on /api/v1
and Pay Hero's error object (400 for bad input) on /api/v2 and /mailer, so the
document says that instead, and a ``default`` response covers every other error.

Every route that authenticates its caller declares the credentials it takes
(``security``), derived from the audiences it declares (``callers(...)``): an API
key, the Pay Hero Basic pair, a wallet customer's token, the portal session with
its CSRF token. Public routes declare none. ``/docs`` gets an Authorize button.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from malipo.auth.authenticate import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from malipo.http.errors import PROBLEM_MEDIA_TYPE, PayHeroError, Problem, is_payhero_path
from malipo.http.routes import EffectiveRoute, effective_routes
from malipo.http.tags import describe
from malipo.identity.principals import Audience

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_SAFE_METHODS = {"get", "head", "options"}

# Security scheme names, as /docs and the document's ``security`` requirements show them.
API_KEY = "ApiKey"
PAYHERO_BASIC = "PayHeroBasic"
CUSTOMER_JWT = "CustomerToken"
PORTAL_SESSION = "PortalSession"
CSRF_COOKIE_SCHEME = "CsrfCookie"
CSRF_HEADER_SCHEME = "CsrfToken"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    API_KEY: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "mk_live_… / mk_test_…",
        "description": "An API user's key: `Authorization: Bearer mk_live_…` (`mk_test_…` for the sandbox).",
    },
    PAYHERO_BASIC: {
        "type": "http",
        "scheme": "basic",
        "description": "An API user's Pay Hero pair `api_username:api_password`; "
        "or an API key as the username with an empty password.",
    },
    CUSTOMER_JWT: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A wallet customer's token, from `POST /api/v1/customers/login`.",
    },
    PORTAL_SESSION: {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The portal session cookie `POST /api/v1/account/login` sets.",
    },
    CSRF_COOKIE_SCHEME: {
        "type": "apiKey",
        "in": "cookie",
        "name": CSRF_COOKIE,
        "description": "The CSRF cookie `POST /api/v1/account/login` sets (its `csrfToken`).",
    },
    CSRF_HEADER_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "With a portal session, every request that changes something sends the login's "
        f"`csrfToken` in this header as well as in the `{CSRF_COOKIE}` cookie.",
    },
}


def _authenticators() -> frozenset[Callable[..., Any]]:
    """The dependencies that authenticate a caller: a route depending on one of them is protected."""
    # Imported here: these modules import much of the app, which imports this one.
    from malipo.api.payhero.deps import payhero_caller, payhero_principal
    from malipo.api.payhero.mailer import mailer_caller
    from malipo.http.permissions import authorize

    return frozenset({authorize, payhero_principal, payhero_caller, mailer_caller})


def _depends_on(dependant: Dependant, calls: frozenset[Callable[..., Any]]) -> bool:
    return any(d.call in calls or _depends_on(d, calls) for d in dependant.dependencies)


def is_protected(route: EffectiveRoute, authenticators: frozenset[Callable[..., Any]]) -> bool:
    """Whether the route takes credentials: it declares its callers, or depends on an authenticator."""
    from malipo.http.permissions import CALLERS_KEY

    if CALLERS_KEY in route.openapi_extra:
        return True
    dependant = getattr(route.original, "dependant", None)
    return dependant is not None and _depends_on(dependant, authenticators)


def security_requirements(
    path: str, method: str, audiences: frozenset[Audience]
) -> list[dict[str, list[str]]]:
    """The credentials a protected route takes, as OpenAPI security requirements (any one of them).

    The first listed is the one a client (and schemathesis) uses when it holds several.
    """
    if is_payhero_path(path):
        # Pay Hero's surface is for API users only, whatever else the route declares.
        return [{PAYHERO_BASIC: []}, {API_KEY: []}]
    found: list[dict[str, list[str]]] = []
    if Audience.KEY in audiences:
        found += [{API_KEY: []}, {PAYHERO_BASIC: []}]
    if Audience.CUSTOMER in audiences:
        found.append({CUSTOMER_JWT: []})
    if audiences & {Audience.OPERATOR, Audience.CLIENT_ADMIN}:
        if method.lower() in _SAFE_METHODS:
            found.append({PORTAL_SESSION: []})
        else:
            found.append({PORTAL_SESSION: [], CSRF_COOKIE_SCHEME: [], CSRF_HEADER_SCHEME: []})
    return found


def _operation_security(app: FastAPI) -> dict[tuple[str, str], list[dict[str, list[str]]]]:
    """``(path, method)`` of every protected operation, with its security requirements."""
    from malipo.http.permissions import route_callers

    authenticators = _authenticators()
    found = {}
    for route in effective_routes(app.routes):
        if not is_protected(route, authenticators):
            continue
        audiences = route_callers(route)
        for method in route.methods:
            found[(route.path, method.lower())] = security_requirements(route.path, method, audiences)
    return found


def _schema(model: type[Problem] | type[PayHeroError]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, PayHeroError):
        schema = _schema(model)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    problem = {
        "description": "Error (RFC 9457 problem details)",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    payhero = {
        "description": "Error (Pay Hero error object)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PayHeroError"}}},
    }
    security = _operation_security(app)
    for path, item in doc.get("paths", {}).items():
        error = payhero if is_payhero_path(path) else problem
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            if (path, method) in security:
                operation["security"] = security[(path, method)]
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                del responses["422"]
                responses["400" if is_payhero_path(path) else "422"] = {
                    **error,
                    "description": "The request is not valid; the reply names each field and why",
                }
            responses.setdefault("default", error)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    describe(app, doc)  # the tags, and each operation's permission and callers
    app.openapi_schema = doc
    return doc
