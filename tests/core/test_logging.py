"""malipo.core.logging: JSON lines from structlog and stdlib logging, with secrets scrubbed."""

from __future__ import annotations

import copy
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from malipo.core.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    is_sensitive_key,
    redact,
    redact_text,
    redact_value,
)

VISA = "4111111111111111"
VISA_MASKED = "411111******1111"
MASTERCARD_DASHED = "5500-0000-0000-0004"
AMEX = "378282246310005"
PHONE = "254712345678"
NOT_LUHN = "12345678901234"  # 14 digits, fails the Luhn check: a reference, not a card
API_KEY = "mk_live_AbCd7f3K9xQ2LmNpRsTuVwXyZ012"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def luhn_check_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def is_luhn(number: str) -> bool:
    return luhn_check_digit(number[:-1]) == number[-1]


def test_the_fixture_numbers_are_what_they_claim() -> None:
    assert is_luhn(VISA)
    assert is_luhn(MASTERCARD_DASHED.replace("-", ""))
    assert is_luhn(AMEX)
    assert not is_luhn(NOT_LUHN)
    assert not is_luhn(PHONE)


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """Logging configured as JSON into a buffer; global logging state restored afterwards."""
    root = logging.getLogger()
    root_level = root.level
    libraries = {name: logging.getLogger(name) for name in UVICORN_LOGGERS}
    saved = {name: (list(lg.handlers), lg.propagate) for name, lg in libraries.items()}
    stream = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=stream)
    yield stream
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)
    root.setLevel(root_level)
    for name, (handlers, propagate) in saved.items():
        libraries[name].handlers[:] = handlers
        libraries[name].propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, each of which must be one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def only_line(stream: io.StringIO) -> dict[str, Any]:
    [line] = lines(stream)
    return line


# ------------------------------------------------------------------ the line itself


def test_a_line_has_level_logger_timestamp_and_event(out: io.StringIO) -> None:
    get_logger("malipo.test").info("payment.created", amount=1500, currency="KES")

    line = only_line(out)
    assert line["event"] == "payment.created"
    assert line["level"] == "info"
    assert line["logger"] == "malipo.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["ts"])
    assert line["amount"] == 1500
    assert line["currency"] == "KES"


def test_request_id_bound_in_contextvars_is_on_every_line(out: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="req_01HX")
    get_logger("malipo.api").info("request.started")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /health HTTP/1.1" 200')
    structlog.contextvars.clear_contextvars()
    get_logger("malipo.api").info("outside")

    first, second, third = lines(out)
    assert first["request_id"] == "req_01HX"
    assert second["request_id"] == "req_01HX"
    assert "request_id" not in third


def test_configuring_twice_does_not_duplicate_lines(out: io.StringIO) -> None:
    configure_logging(json=True, level="DEBUG", stream=out)
    configure_logging(json=True, level="DEBUG", stream=out)

    get_logger("malipo.test").info("once")
    logging.getLogger("some.library").warning("once too")

    assert [line["event"] for line in lines(out)] == ["once", "once too"]


def test_level_filters_structlog_and_stdlib(out: io.StringIO) -> None:
    configure_logging(json=True, level="warning", stream=out)

    get_logger("malipo.test").info("dropped")
    logging.getLogger("some.library").info("dropped too")
    get_logger("malipo.test").warning("kept")

    assert [line["event"] for line in lines(out)] == ["kept"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="LOUD", stream=io.StringIO())


def test_a_logger_made_before_configuring_follows_the_configuration(out: io.StringIO) -> None:
    early = get_logger("malipo.early")
    later = io.StringIO()
    configure_logging(json=True, level="INFO", stream=later)

    early.info("hello", password="hunter2")

    assert out.getvalue() == ""
    assert only_line(later)["password"] == REDACTED


def test_console_mode_is_readable_and_redacted(out: io.StringIO) -> None:
    configure_logging(json=False, level="INFO", stream=out)

    get_logger("malipo.test").warning("card.seen", card=VISA, password="hunter2")

    text = out.getvalue()
    assert "card.seen" in text
    assert VISA_MASKED in text
    assert VISA not in text
    assert "hunter2" not in text
    assert not text.lstrip().startswith("{")


# ------------------------------------------------------------------ sensitive keys


def test_values_under_sensitive_keys_are_redacted(out: io.StringIO) -> None:
    get_logger("malipo.test").info(
        "callback.received",
        password="hunter2",
        api_key="raw-api-key-value",
        mpesa_pin="4321",
        userPin="8765",
        SecurityCredential="c2VjdXJpdHktY3JlZA==",
        token_type="bearer-type-value",
        headers={"Authorization": "opaque-auth-value", "Set-Cookie": "sid=cookie-value", "X-Api-Key": "xak"},
        body={"card": {"cvv": "123", "cardNumber": "raw-card-value"}, "Consumer_Secret": "cs-value"},
        attempts=[{"passkey": "pk-value"}, {"access_token": "at-value"}],
        shipping="express",
        spinner="on",
        company="Duka Ltd",
    )

    line = only_line(out)
    raw = out.getvalue()
    for secret in (
        "hunter2",
        "raw-api-key-value",
        "4321",
        "8765",
        "c2VjdXJpdHktY3JlZA",
        "bearer-type-value",
        "opaque-auth-value",
        "cookie-value",
        "xak",
        "raw-card-value",
        "cs-value",
        "pk-value",
        "at-value",
    ):
        assert secret not in raw
    assert line["password"] == REDACTED
    assert line["mpesa_pin"] == REDACTED
    assert line["userPin"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Set-Cookie": REDACTED, "X-Api-Key": REDACTED}
    assert line["body"]["card"] == {"cvv": REDACTED, "cardNumber": REDACTED}
    assert line["attempts"] == [{"passkey": REDACTED}, {"access_token": REDACTED}]
    assert line["shipping"] == "express"
    assert line["spinner"] == "on"
    assert line["company"] == "Duka Ltd"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "new_password",
        "passwd",
        "db-pwd",
        "client_secret",
        "consumer_secret",
        "token",
        "refresh_token",
        "token_type",
        "api_key",
        "apiKey",
        "x-api-key",
        "access_token",
        "Authorization",
        "cvv",
        "CVV2",
        "cvc",
        "pin",
        "mpesa_pin",
        "userPin",
        "PINCode",
        "pan",
        "card_pan",
        "PANNumber",
        "card_number",
        "cardNumber",
        "SecurityCredential",
        "security_credential",
        "passkey",
        "Passkey",
        "cookie",
        "set-cookie",
        "private_key",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "shipping",
        "spinner",
        "company",
        "spanish",
        "expand",
        "pinned_at",
        "phone",
        "amount",
        "reference",
        "event",
        "request_id",
        "keyboard",
        "description",
    ],
)
def test_harmless_keys(key: str) -> None:
    assert not is_sensitive_key(key)


# ------------------------------------------------------------------ card numbers


def test_card_numbers_are_masked_everywhere(out: io.StringIO) -> None:
    get_logger("malipo.test").info(
        f"charging card {VISA} for order {NOT_LUHN}",
        source=AMEX,
        payload={"customer": {"cards": [f"on file: {MASTERCARD_DASHED}", ("spaced", "4111 1111 1111 1111")]}},
        phone=PHONE,
        reference=NOT_LUHN,
        amount=1500,
    )

    line = only_line(out)
    raw = out.getvalue()
    assert VISA not in raw
    assert AMEX not in raw
    assert MASTERCARD_DASHED not in raw
    assert "4111 1111 1111 1111" not in raw
    assert line["event"] == f"charging card {VISA_MASKED} for order {NOT_LUHN}"
    assert line["source"] == "378282*****0005"
    assert line["payload"]["customer"]["cards"] == [
        "on file: 5500-00**-****-0004",
        ["spaced", "4111 11** **** 1111"],
    ]
    assert line["phone"] == PHONE
    assert line["reference"] == NOT_LUHN
    assert line["amount"] == 1500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VISA, VISA_MASKED),
        (f"paid 100 {VISA} today", f"paid 100 {VISA_MASKED} today"),
        ("1000 4111 1111 1111 1111", "1000 4111 11** **** 1111"),
        (f"card={VISA},exp=12/29", f"card={VISA_MASKED},exp=12/29"),
        (f"+{PHONE}", f"+{PHONE}"),
        (f"{PHONE} {PHONE}", f"{PHONE} {PHONE}"),
        (NOT_LUHN, NOT_LUHN),
        ("41111111111111111111", "41111111111111111111"),  # 20 digits: too long to be a card
        ("2024-05-17 10:30:00", "2024-05-17 10:30:00"),
    ],
)
def test_card_masking(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@given(
    body=st.text(alphabet="0123456789", min_size=12, max_size=18),
    before=st.text(max_size=30).filter(lambda s: not s[-1:].isascii() or not s[-1:].isdigit()),
    after=st.text(max_size=30).filter(lambda s: not s[:1].isascii() or not s[:1].isdigit()),
)
def test_a_valid_card_never_survives_redact_text(body: str, before: str, after: str) -> None:
    card = body + luhn_check_digit(body)
    assert card not in redact_text(before + card + after)


# ------------------------------------------------------------------ other secrets in text


def test_api_keys_are_masked(out: io.StringIO) -> None:
    get_logger("malipo.test").info(
        f"key {API_KEY} used", key_prefix="mk_live_AbCd", detail={"used": [f"with mk_test_{'Z' * 20}"]}
    )

    line = only_line(out)
    raw = out.getvalue()
    assert API_KEY not in raw
    assert "Z" * 20 not in raw
    assert line["event"] == "key mk_live_AbCd…[REDACTED] used"
    assert line["detail"] == {"used": ["with mk_test_ZZZZ…[REDACTED]"]}
    assert line["key_prefix"] == "mk_live_AbCd"


def test_http_credentials_in_text_are_masked(out: io.StringIO) -> None:
    get_logger("malipo.test").warning(
        "upstream said: Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.sig-nature_x failed",
        sent={"raw_headers": "Authorization: Basic dXNlcjpwYXNzd29yZA=="},
        note="basic plan, Bearer of news",
    )

    line = only_line(out)
    raw = out.getvalue()
    assert "eyJhbGciOi" not in raw
    assert "sig-nature" not in raw
    assert "dXNlcjpwYXNzd29yZA" not in raw
    assert line["event"] == "upstream said: Authorization: Bearer [REDACTED] failed"
    assert line["sent"] == {"raw_headers": "Authorization: Basic [REDACTED]"}
    assert line["note"].startswith("basic plan, ")


def test_url_passwords_are_masked(out: io.StringIO) -> None:
    get_logger("malipo.test").error(
        "cannot connect to postgresql+asyncpg://malipo:s3cr3t-pw@db:5432/malipo",
        broker="redis://:r3dis-pw@cache:6379/0",
        callback="https://shop.example:8443/hooks?email=a@b.example",
    )

    line = only_line(out)
    raw = out.getvalue()
    assert "s3cr3t-pw" not in raw
    assert "r3dis-pw" not in raw
    assert line["event"] == "cannot connect to postgresql+asyncpg://malipo:[REDACTED]@db:5432/malipo"
    assert line["broker"] == "redis://:[REDACTED]@cache:6379/0"
    assert line["callback"] == "https://shop.example:8443/hooks?email=a@b.example"


def test_redact_text_is_idempotent() -> None:
    text = f"{VISA} {API_KEY} Bearer abc Basic dXNlcjpwYXNz postgres://u:p@h {PHONE}"
    once = redact_text(text)
    assert redact_text(once) == once


# ------------------------------------------------------------------ stdlib and exceptions


def test_uvicorn_lines_come_out_as_redacted_json(out: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").error(
        "rejected header Authorization: Bearer abc123secret from %s", "10.0.0.1"
    )

    line = only_line(out)
    assert "abc123secret" not in out.getvalue()
    assert line["event"] == "rejected header Authorization: Bearer [REDACTED] from 10.0.0.1"
    assert line["level"] == "error"
    assert line["logger"] == "uvicorn.error"
    assert "ts" in line


def test_uvicorn_own_handlers_are_replaced_by_ours(out: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(io.StringIO()))
    access.propagate = False

    configure_logging(json=True, level="INFO", stream=out)
    access.info('1.2.3.4 - "GET /v1/payments HTTP/1.1" 200')

    assert access.handlers == []
    assert only_line(out)["logger"] == "uvicorn.access"


def test_exception_carries_the_redacted_traceback(out: io.StringIO) -> None:
    log = get_logger("malipo.test")
    try:
        raise ValueError(f"card {VISA} declined")
    except ValueError:
        log.exception("boom")

    line = only_line(out)
    assert line["event"] == "boom"
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "test_exception_carries_the_redacted_traceback" in line["exception"]
    assert f"ValueError: card {VISA_MASKED} declined" in line["exception"]
    assert VISA not in out.getvalue()


def test_stdlib_exception_carries_the_traceback(out: io.StringIO) -> None:
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    line = only_line(out)
    assert "Traceback (most recent call last):" in line["exception"]
    assert "KeyError: 'missing'" in line["exception"]


# ------------------------------------------------------------------ redact as a function


def test_redact_does_not_mutate_its_input() -> None:
    event = {
        "event": f"paid {VISA}",
        "password": "hunter2",
        "nested": {"list": [VISA, {"token": "t"}], "tuple": (VISA, 1)},
    }
    before = copy.deepcopy(event)

    result = redact(None, "info", event)

    assert event == before
    assert result["event"] == f"paid {VISA_MASKED}"
    assert result["password"] == REDACTED
    assert result["nested"] == {"list": [VISA_MASKED, {"token": REDACTED}], "tuple": (VISA_MASKED, 1)}


class Pair(NamedTuple):
    label: str
    count: int


class Card:
    def __init__(self, number: str) -> None:
        self.number = number

    def __repr__(self) -> str:
        return f"Card(number={self.number!r})"


def test_redact_value_keeps_shapes_and_scalars() -> None:
    marker = object()
    value = {
        "ints": [1, 2**70, -3],
        "flags": (True, False, None),
        "ratio": 0.5,
        "pair": Pair(VISA, 2),
        "tags": {VISA, "plain"},
        "object": marker,
        "card_object": Card(VISA),
        7: "non-string key",
        VISA: "card as a key",
    }

    result = redact_value(value)

    assert result["ints"] == [1, 2**70, -3]
    assert result["flags"] == (True, False, None)
    assert result["ratio"] == 0.5
    assert result["pair"] == Pair(VISA_MASKED, 2)
    assert isinstance(result["pair"], Pair)
    assert result["tags"] == {VISA_MASKED, "plain"}
    assert result["object"] is marker
    assert result["card_object"] == f"Card(number='{VISA_MASKED}')"
    assert result[7] == "non-string key"
    assert result[VISA_MASKED] == "card as a key"
    assert VISA not in result


def test_redact_value_survives_deep_and_circular_structures() -> None:
    deep: dict[str, Any] = {"card": VISA}
    for _ in range(200):
        deep = {"inner": deep}
    loop: list[Any] = [VISA]
    loop.append(loop)

    scrubbed_deep = redact_value(deep)
    scrubbed_loop = redact_value(loop)

    for _ in range(200):
        scrubbed_deep = scrubbed_deep["inner"]
    assert scrubbed_deep == {"card": VISA_MASKED}
    assert scrubbed_loop == [VISA_MASKED, "[CIRCULAR]"]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connect failed: password=hunter2 host=db", "hunter2"),
        ('{"secret": "s3cr3t-value", "amount": 1}', "s3cr3t-value"),
        ("{'api_key': 'k9k9k9'}", "k9k9k9"),
        ("mpesa_pin=1234 sent", "1234"),
    ],
)
def test_secret_assignments_in_free_text_are_masked(text: str, secret: str) -> None:
    masked = redact_text(text)
    assert secret not in masked
    assert REDACTED in masked


def test_harmless_assignments_survive() -> None:
    for text in ("time: 12:30 ok", "spinner=3", "amount=100 phone=254712345678"):
        assert redact_text(text) == text
