"""Both error shapes, for bad input, unknown routes and unexpected exceptions; request ids in and out."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.errors import MalipoError
from malipo.core.logging import configure_logging


class InsufficientFundsForTest(MalipoError):
    status = 402
    code = "insufficient_funds"
    title = "Insufficient funds"


class Payment(BaseModel):
    amount: int = Field(gt=0)
    phone_number: str


def _routes(prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix)

    @router.post("/echo")
    async def echo(body: Payment) -> Payment:
        return body

    @router.get("/explode")
    async def explode() -> None:
        raise RuntimeError("database password=hunter2 leaked into an exception")

    @router.get("/refuse")
    async def refuse() -> None:
        raise InsufficientFundsForTest("the service wallet cannot cover the fee", balance="10.00")

    return router


@pytest.fixture
def server(settings: Settings, live_server: object) -> Iterator[tuple[str, io.StringIO]]:
    logs = io.StringIO()
    configure_logging(json=True, level="INFO", stream=logs)
    app: FastAPI = create_app(settings)
    for prefix in ("/api/v1/_test", "/api/v2/_test", "/mailer/_test"):
        app.include_router(_routes(prefix))
    running = live_server(app)  # type: ignore[operator]
    yield running.url, logs
    configure_logging(json=True, level="INFO")


def test_native_validation_error_is_problem_json_naming_each_field(server: tuple[str, io.StringIO]) -> None:
    url, _ = server
    reply = httpx.post(f"{url}/api/v1/_test/echo", json={"amount": 0})
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["type"] == "urn:malipo:problem:validation_failed"
    assert problem["status"] == 422
    assert problem["instance"] == "/api/v1/_test/echo"
    assert problem["requestId"] == reply.headers["x-request-id"]
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(fields) == {"amount", "phone_number"}
    assert "greater than 0" in fields["amount"]
    assert "required" in fields["phone_number"].lower()


def test_payhero_validation_error_is_400_invalid_argument(server: tuple[str, io.StringIO]) -> None:
    url, _ = server
    for prefix in ("/api/v2", "/mailer"):
        reply = httpx.post(f"{url}{prefix}/_test/echo", json={"amount": 5})
        assert reply.status_code == 400
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == {
            "error_code": "invalid_argument",
            "error_message": "phone_number: Field required",
            "status_code": 400,
        }


def test_malformed_json_is_a_clear_client_error(server: tuple[str, io.StringIO]) -> None:
    url, _ = server
    reply = httpx.post(
        f"{url}/api/v1/_test/echo", content=b'{"amount": ', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == "body"


def test_unknown_route_is_404_in_each_surface_shape(server: tuple[str, io.StringIO]) -> None:
    url, _ = server
    native = httpx.get(f"{url}/api/v1/no-such-thing")
    assert native.status_code == 404
    assert native.json()["code"] == "not_found"
    assert native.headers["content-type"] == "application/problem+json"
    payhero = httpx.get(f"{url}/api/v2/no-such-thing")
    assert payhero.status_code == 404
    assert payhero.json() == {
        "error_code": "not_found",
        "error_message": "no route GET /api/v2/no-such-thing",
        "status_code": 404,
    }


def test_wrong_method_is_405(server: tuple[str, io.StringIO]) -> None:
    url, _ = server
    reply = httpx.delete(f"{url}/api/v1/_test/echo")
    assert reply.status_code == 405
    assert reply.json()["code"] == "method_not_allowed"


def test_service_errors_carry_their_status_code_and_extensions(server: tuple[str, io.StringIO]) -> None:
    url, _ = server
    native = httpx.get(f"{url}/api/v1/_test/refuse")
    assert native.status_code == 402
    assert native.json()["code"] == "insufficient_funds"
    assert native.json()["balance"] == "10.00"
    payhero = httpx.get(f"{url}/api/v2/_test/refuse")
    assert payhero.status_code == 402
    assert payhero.json()["error_message"] == "the service wallet cannot cover the fee"


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v2"])
def test_unexpected_exception_is_generic_and_the_log_has_the_trace(
    server: tuple[str, io.StringIO], prefix: str
) -> None:
    url, logs = server
    reply = httpx.get(f"{url}{prefix}/_test/explode", headers={"X-Request-ID": "trace-me-123"})
    assert reply.status_code == 500
    assert reply.headers["x-request-id"] == "trace-me-123"
    text = reply.text
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    assert "Traceback" not in text
    body = reply.json()
    if prefix == "/api/v1":
        assert body["code"] == "internal_error"
        assert body["requestId"] == "trace-me-123"
    else:
        assert body["error_code"] == "INTERNAL"
        assert body["status_code"] == 500
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    [error] = [line for line in lines if line["event"] == "http.unhandled_error"]
    assert error["request_id"] == "trace-me-123"
    assert "Traceback" in error["exception"]
    assert "RuntimeError" in error["exception"]
    assert "hunter2" not in logs.getvalue(), "the password in the exception text is redacted in the log"


def test_request_id_is_echoed_or_generated(server: tuple[str, io.StringIO]) -> None:
    url, logs = server
    given = httpx.get(f"{url}/api/v1/nope", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = httpx.get(f"{url}/api/v1/nope")
    assert len(made.headers["x-request-id"]) == 32
    unsafe = httpx.get(f"{url}/api/v1/nope", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    access = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert any(line.get("request_id") == "abc-123" and line["event"] == "http.request" for line in access)


def test_oversized_body_is_413_and_never_read(server: tuple[str, io.StringIO], settings: Settings) -> None:
    url, _ = server
    big = b"x" * (settings.max_body_bytes + 1)
    reply = httpx.post(f"{url}/api/v2/_test/echo", content=big, headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["status_code"] == 413
