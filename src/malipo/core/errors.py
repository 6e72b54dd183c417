"""The one exception hierarchy of malipo.

Services raise these; each HTTP surface renders them in its own shape
(RFC 9457 problem+json on /api/v1, Pay Hero's ``{error_code, error_message,
status_code}`` on /api/v2 and /mailer). Endpoints never build error replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input field: ``field`` is a dotted path (``body.amount``)."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class MalipoError(Exception):
    """Base of every error a client may see. Carries its own HTTP status and code."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers or {}
        self.extensions = extensions
        super().__init__(self.detail)

    @classmethod
    def for_field(cls, field: str, message: str) -> MalipoError:
        """This error about one input field, named in the reply."""
        return cls(f"{field}: {message}", errors=[FieldError(field, message)])


class ValidationFailed(MalipoError):
    status = 422
    code = "validation_failed"
    title = "The request is not valid"


class InvalidAmount(ValidationFailed):
    code = "invalid_amount"
    title = "The amount is not valid"

    def __init__(self, message: str, *, field: str = "amount") -> None:
        super().__init__(f"{field}: {message}", errors=[FieldError(field, message)])


class UnknownCurrency(InvalidAmount):
    code = "unknown_currency"
    title = "The currency is not supported"

    def __init__(self, currency: str, *, field: str = "currency") -> None:
        super().__init__(f"unsupported currency {currency!r}", field=field)


class CurrencyMismatch(MalipoError):
    status = 422
    code = "currency_mismatch"
    title = "The currencies do not match"


class Unauthorized(MalipoError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(MalipoError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(MalipoError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(MalipoError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class Conflict(MalipoError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(MalipoError):
    status = 413
    code = "payload_too_large"
    title = "The request body is too large"


class RateLimited(MalipoError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(MalipoError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class HTTPStatusError(MalipoError):
    """A bare HTTP status raised by the framework itself (not by a service)."""

    code = "http_error"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status  # type: ignore[misc]  # per instance: the framework chose it


class InternalError(MalipoError):
    """What a client sees for any unexpected exception: nothing of its cause."""

    status = 500
    code = "internal_error"
    title = "Internal server error"
