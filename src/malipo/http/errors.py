"""Rendering of errors, one shape per surface.

- ``/api/v1`` and everything else: RFC 9457 ``application/problem+json``.
- ``/api/v2`` and ``/mailer`` (Pay Hero compatible): ``{error_code, error_message,
  status_code}``, with Pay Hero's gRPC-style codes; its validation errors are 400.

No exception text of an unexpected error ever reaches a client: it gets a
generic reply carrying the request id, and the log gets the trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from malipo.core.errors import (
    Conflict,
    FieldError,
    HTTPStatusError,
    InternalError,
    MalipoError,
    MethodNotAllowed,
    NotFound,
    ValidationFailed,
)
from malipo.core.logging import get_logger, redact_text
from malipo.http.idempotency import REPLAYED_HEADER, IdempotentReplay
from malipo.http.routes import allowed_methods

log = get_logger("malipo.http")

PAYHERO_PREFIXES = ("/api/v2", "/mailer")
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Pay Hero speaks gRPC status names; these are what its clients see.
_PAYHERO_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "unimplemented",
    409: "already_exists",
    413: "invalid_argument",
    422: "invalid_argument",
    429: "resource_exhausted",
    500: "INTERNAL",
    502: "unavailable",
    503: "unavailable",
}


class ProblemFieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with malipo's extensions."""

    model_config = ConfigDict(populate_by_name=True)

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    request_id: str | None = Field(default=None, alias="requestId")
    errors: list[ProblemFieldError] = Field(default_factory=list)


class PayHeroError(BaseModel):
    error_code: str
    error_message: str
    status_code: int


def is_payhero_path(path: str) -> bool:
    return path.startswith(PAYHERO_PREFIXES)


def render_error(path: str, request_id: str | None, exc: MalipoError) -> JSONResponse:
    headers = dict(exc.headers)  # X-Request-ID is added by the request middleware
    if is_payhero_path(path):
        status = 400 if exc.status == 422 else exc.status
        message = exc.detail
        if exc.errors and len(exc.errors) > 1:
            message = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        body: dict[str, Any] = {
            "error_code": _PAYHERO_CODES.get(status, "unknown"),
            "error_message": message,
            "status_code": status,
        }
        return JSONResponse(body, status_code=status, headers=headers)
    problem: dict[str, Any] = {
        "type": f"urn:malipo:problem:{exc.code}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": path,
        "code": exc.code,
        "requestId": request_id,
        "errors": [e.as_dict() for e in exc.errors],
        **exc.extensions,
    }
    return JSONResponse(problem, status_code=exc.status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        # "body.amount" reads as "amount"; query and path parameters keep their name alone.
        field = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else "request")
        message = str(err.get("msg", "is not valid"))
        if err.get("type") == "json_invalid":
            field, message = "body", "is not valid JSON"
        errors.append(FieldError(field, redact_text(message)))
    return errors


async def _on_malipo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MalipoError)
    return render_error(request.url.path, _request_id(request), exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "the request is not valid"
    return render_error(request.url.path, _request_id(request), ValidationFailed(detail, errors=errors))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error: MalipoError
    if exc.status_code == 404:
        error = NotFound(
            f"no route {request.method} {request.url.path}" if exc.detail == "Not Found" else exc.detail
        )
    elif exc.status_code == 405:
        allowed = allowed_methods(request.app, request.url.path)
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
        exc.headers = None  # Starlette's Allow names one router's methods only
    else:
        error = HTTPStatusError(exc.status_code, str(exc.detail))
    if exc.headers:
        error.headers.update(exc.headers)
    return render_error(request.url.path, _request_id(request), error)


def internal_error_response(path: str, request_id: str | None) -> JSONResponse:
    detail = "Something went wrong on our side. Quote the request id to support."
    return render_error(path, request_id, InternalError(detail))


async def _on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A unique or foreign-key rule the service did not foresee: the client's request
    # conflicts with stored data. Never a 500, and never the constraint's text.
    log.warning("http.integrity_conflict", path=request.url.path, error=type(exc.__cause__ or exc).__name__)
    return render_error(
        request.url.path, _request_id(request), Conflict("the request conflicts with existing data")
    )


# -- idempotent replays: not an error, the stored first reply sent again -------------


async def _on_idempotent_replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    return Response(
        exc.body.encode(),
        status_code=exc.status_code,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(MalipoError, _on_malipo_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(IdempotentReplay, _on_idempotent_replay)
