"""The request context: request id, access log, metrics, body limit, last-resort 500.

A pure ASGI middleware (no BaseHTTPMiddleware): it sits on every request, so it
must cost little.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from malipo.api.errors import internal_error_response, render_error
from malipo.api.routes import route_template
from malipo.auth.principals import Principal
from malipo.core.errors import PayloadTooLarge
from malipo.core.logging import get_logger
from malipo.identity.audit import AUDITED_PREFIXES, AuditEntry, AuditRecorder

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
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = 1_048_576) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            response = render_error(path, request_id, _too_large(self.max_body_bytes))
            await response(scope, receive, send_with_id)
            self._record(scope, path, status, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _too_large(self.max_body_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception:
            log.exception("http.unhandled_error", method=scope["method"], path=path)
            if not response_started:
                await internal_error_response(path, request_id)(scope, receive, send_with_id)
            status = 500
        finally:
            self._record(scope, path, status, started)
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def _record(scope: Scope, path: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        template = route_template(scope) or "<unmatched>"
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
