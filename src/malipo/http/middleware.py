"""The request context: request id, access log, metrics, body limit, exact JSON numbers,
last-resort 500.

A pure ASGI middleware (no BaseHTTPMiddleware): it sits on every request, so it
must cost little.

- A body over ``max_body_bytes`` is a 413, whether its size was declared (Content-Length) or
  not (chunked); a path under one of ``large_bodies``' prefixes has that prefix's limit instead
  (a disbursement batch of 100,000 items is several megabytes).
- JSON numbers are read exactly: Python (and FastAPI) read a JSON number with a fraction or
  an exponent as a float, which silently rounds ``1.0000000000000000000000001`` to ``1.0`` and
  ``1e400`` to infinity. A JSON body of the API is checked first: a number that the float it
  becomes does not carry exactly, and ``NaN`` or ``Infinity`` (not JSON, though Python reads
  them), are refused, naming the field, before any route sees the body. Every number a route
  gets is therefore exactly what the client wrote (``Money.parse`` reads a float by its
  shortest text, which is then the sent value).
- NUL characters are refused in a JSON body's strings and keys and in the query string, naming
  the field: PostgreSQL cannot store one in text, and no field of malipo's means one.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from malipo.core.errors import FieldError, PayloadTooLarge, ValidationFailed
from malipo.core.logging import get_logger
from malipo.http.errors import PAYHERO_PREFIXES, internal_error_response, is_payhero_path, render_error
from malipo.http.routes import route_template
from malipo.identity.audit import AUDITED_PREFIXES, AuditEntry, AuditRecorder
from malipo.identity.principals import Principal

log = get_logger("malipo.http")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

HTTP_REQUESTS = Counter("malipo_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "malipo_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Probes and scrapes would drown the access log.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int = 1_048_576, large_bodies: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.large_bodies = tuple((large_bodies or {}).items())

    def _limit(self, path: str) -> int:
        for prefix, limit in self.large_bodies:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        path: str = scope["path"]
        started = time.perf_counter()
        status = 500
        response_started = False
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        nul_errors = nul_query_parameters(scope.get("query_string", b""))
        if nul_errors:
            refused = ValidationFailed(
                "; ".join(f"{e.field}: {e.message}" for e in nul_errors), errors=nul_errors
            )
            await render_error(path, request_id, refused)(scope, receive, send_with_id)
            self._record(scope, path, status, started)
            structlog.contextvars.clear_contextvars()
            return

        limit = self._limit(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = render_error(path, request_id, _too_large(limit))
            await response(scope, receive, send_with_id)
            self._record(scope, path, status, started)
            return

        app_receive: Receive
        if _is_api_json(scope, path):
            # Read whole (FastAPI reads a JSON body whole anyway) and checked before the route.
            body = await self._read_body(receive, limit)
            refusal: PayloadTooLarge | ValidationFailed | None = None
            if body is None:
                refusal = _too_large(limit)
            else:
                errors = inexact_json_numbers(body)
                if errors:
                    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
                    refusal = ValidationFailed(detail, errors=errors)
            if refusal is not None:
                await render_error(path, request_id, refusal)(scope, receive, send_with_id)
                self._record(scope, path, status, started)
                structlog.contextvars.clear_contextvars()
                return
            app_receive = _replay(body or b"", receive)
        else:
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(limit)
                return message

            app_receive = limited_receive

        try:
            await self.app(scope, app_receive, send_with_id)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing, and not handled there
            if not response_started:
                await render_error(path, request_id, exc)(scope, receive, send_with_id)
        except Exception:
            log.exception("http.unhandled_error", method=scope["method"], path=path)
            if not response_started:
                await internal_error_response(path, request_id)(scope, receive, send_with_id)
            status = 500
        finally:
            self._record(scope, path, status, started)
            structlog.contextvars.clear_contextvars()

    async def _read_body(self, receive: Receive, limit: int) -> bytes | None:
        """The whole request body, or None as soon as it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to check
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _record(scope: Scope, path: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        template = route_template(scope) or _page_route(scope) or "<unmatched>"
        method = scope["method"]
        HTTP_REQUESTS.labels(method, template, str(status)).inc()
        HTTP_SECONDS.labels(method, template).observe(elapsed)
        if path.startswith(AUDITED_PREFIXES):
            _audit(scope, path, template, status, elapsed)
        if path not in _QUIET_PATHS:
            log.info(
                "http.request",
                method=method,
                route=template,
                # A provider callback's path carries its secret token: log the template instead.
                path=template if path.startswith(SECRET_PATH_PREFIXES) else path,
                status=status,
                ms=round(elapsed * 1000, 2),
            )


def _page_route(scope: Scope) -> str | None:
    """The path of the plain (non-API) route that served this request: FastAPI's own pages
    (``/docs``, ``/docs/oauth2-redirect``, ``/redoc``, ``/openapi.json``) are routes, not misses."""
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is None or app is None:
        return None
    for route in getattr(app, "routes", ()):
        if isinstance(route, Route) and not isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route.path
    return None


# Paths whose segments are secrets (per-request callback tokens), never logged as sent.
SECRET_PATH_PREFIXES = ("/callbacks/",)


def _audit(scope: Scope, path: str, template: str, status: int, elapsed: float) -> None:
    app = scope.get("app")
    recorder: AuditRecorder | None = getattr(getattr(app, "state", None), "audit", None)
    if recorder is None:
        return
    state = scope.get("state", {})
    principal: Principal | None = state.get("principal")
    client = scope.get("client")
    recorder.record(
        AuditEntry(
            at=app.state.clock.now(),  # type: ignore[union-attr]
            request_id=state.get("request_id", ""),
            method=scope["method"],
            route=template,
            path=path[:2000],
            status=status,
            latency_ms=round(elapsed * 1000, 3),
            ip=client[0] if client else None,
            principal_type=principal.kind.value if principal else None,
            principal_id=principal.id if principal else None,
            api_user_id=principal.api_user_id if principal else None,
            client_id=principal.client_id if principal else None,
            mode=principal.mode.value if principal else None,
        )
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes")


class BodyTooLarge(PayloadTooLarge, StarletteHTTPException):
    """A body found too large while the app reads it (chunked, no Content-Length).

    An HTTPException, so FastAPI's body parsing lets it through (anything else it reports as
    400 "There was an error parsing the body"); a MalipoError first, so it is rendered as the
    413 a declared size gets.
    """

    def __init__(self, limit: int) -> None:
        # Not through the two bases' __init__ (their cooperative chain would mix their arguments):
        # the attributes each one's handler reads.
        detail = f"the request body is larger than {limit} bytes"
        Exception.__init__(self, detail)
        self.detail = detail
        self.errors = []
        self.headers = {}
        self.extensions = {}
        self.status_code = self.status


# -- exact JSON numbers ---------------------------------------------------------------------------

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_API_PREFIXES = ("/api/", *PAYHERO_PREFIXES)
# Pay Hero's surface reads a body with no content type, or text/plain, as JSON (``compat``).
_PAYHERO_JSON_DEFAULTS = frozenset({b"", b"text/plain"})


def _is_api_json(scope: Scope, path: str) -> bool:
    if scope["method"] not in _BODY_METHODS or not path.startswith(_API_PREFIXES):
        return False
    media = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    if media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json")):
        return True
    return is_payhero_path(path) and media in _PAYHERO_JSON_DEFAULTS


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _Number(str):
    """A JSON number with a fraction or exponent, as written."""


class _Constant(str):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them; JSON has no such thing."""


_NUL = "\x00"
_NUL_MESSAGE = "must not contain a NUL character"


def nul_query_parameters(query: bytes) -> list[FieldError]:
    """The query parameters whose name or value holds a NUL (``%00``), each named."""
    if b"%00" not in query and b"\x00" not in query:
        return []
    text = query.decode("latin-1")
    return [
        FieldError(name.replace(_NUL, "") or "query", _NUL_MESSAGE)
        for name, value in parse_qsl(text, keep_blank_values=True)
        if _NUL in name or _NUL in value
    ] or [FieldError("query", _NUL_MESSAGE)]


def inexact_json_numbers(body: bytes) -> list[FieldError]:
    """The JSON numbers in ``body`` that would not reach a route exactly, and the strings that
    hold a NUL character, each naming its field.

    A number with a fraction or an exponent becomes a float: it must be finite and the float
    must be the number written (``0.1``, ``10.50`` and ``1e2`` are; ``1.0000000000000000000000001``
    and ``1e400`` are not). Integers are read exactly. A body that is not JSON is left to the
    route, which says so in its own words. Most bodies hold neither: they are read once, not walked.
    """
    found = False

    def number(text: str) -> _Number:
        nonlocal found
        found = True
        return _Number(text)

    def constant(text: str) -> _Constant:
        nonlocal found
        found = True
        return _Constant(text)

    try:
        document = json.loads(body, parse_float=number, parse_constant=constant)
    except (ValueError, RecursionError):
        return []
    # JSON writes a NUL only as an escape: a body without one has none.
    if not found and b"\\u0000" not in body:
        return []
    errors: list[FieldError] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            errors.extend(
                FieldError(f"{where}.{key}".lstrip(".").replace(_NUL, "\\u0000"), _NUL_MESSAGE)
                for key in value
                if _NUL in key
            )
            stack.extend((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}" if where else str(i), item) for i, item in enumerate(value))
        elif isinstance(value, _Constant):
            errors.append(FieldError(where or "body", f"{value} is not a JSON number"))
        elif isinstance(value, _Number):
            problem = _inexact(value)
            if problem is not None:
                errors.append(FieldError(where or "body", problem))
        elif isinstance(value, str) and _NUL in value:
            errors.append(FieldError(where or "body", _NUL_MESSAGE))
    errors.reverse()  # the stack read them last first
    return errors


def _inexact(text: str) -> str | None:
    number = float(text)
    if not math.isfinite(number):
        return "must be a finite number"
    try:
        exact = Decimal(text) == Decimal(repr(number))
    except InvalidOperation:  # json only hands over valid numbers; be safe all the same
        exact = False
    if not exact:
        return (
            f"{text} has more significant digits than a JSON number is read with here: "
            "send at most 15, or send the amount as a decimal string"
        )
    return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    raw = _header(scope, b"x-request-id")
    if raw is None:
        return None
    value = raw.decode("latin-1")
    # An id we cannot safely echo into logs and headers is replaced, not trusted.
    return value if _VALID_REQUEST_ID.match(value) else None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
