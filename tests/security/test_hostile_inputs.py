"""Hostile and careless input on every money route of both surfaces: refused, named, harmless.

The probe classes of the attack on issue 12 are replayed over each (route, field): booleans,
huge and negative integers, exotic numbers (``1e400``, ``NaN``, ``Infinity``, ``1_000``,
``"+5 "``, excess decimals), control characters, long strings, wrong content types, bodies
over the size limit (sized and chunked), and the same body with its keys reordered under one
Idempotency-Key. Each refusal must be a 4xx in the surface's own error shape (problem+json on
/api/v1, ``{error_code, error_message, status_code}`` on /api/v2 and /mailer) naming the
field, and must change nothing: every ledger balance and held amount, and the row count of
every table a money route writes, are the same before and after, and the books add up.

Cases are generated: a route declares its valid body and the kind of each field; each kind
has its probes. A new route or field gets every probe of its kind by being listed here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.security.conftest import Snapshot, Target

# -- probes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON literal written as is: numbers Python cannot hold as sent, and non-JSON constants."""

    text: str


Probe = tuple[str, Any]  # (id, value)

_COMMON_NUMBERS: list[Probe] = [
    ("true", True),
    ("false", False),
    ("int64-max+1", 2**63),
    ("2^64", 2**64),
    ("2^70", 2**70),
    ("int64-min-1", -(2**63) - 1),
    ("negative", -5),
    ("1e400", Raw("1e400")),
    ("-1e400", Raw("-1e400")),
    ("NaN", Raw("NaN")),
    ("Infinity", Raw("Infinity")),
    ("-Infinity", Raw("-Infinity")),
    ("NaN-string", "NaN"),
    ("Infinity-string", "Infinity"),
    ("underscore", "1_000"),
    ("plus-space", "+5 "),
    ("plus", "+5"),
    ("spaces", " 5 "),
    ("arabic-indic-digits", "\u0661\u0660"),
    ("list", [10]),
    ("object", {"value": 10}),
    ("empty-string", ""),
]

AMOUNT: list[Probe] = [
    *_COMMON_NUMBERS,
    ("zero", 0),
    ("negative-string", "-5"),
    ("excess-precision", Raw("1.0000000000000000000000001")),
    ("excess-precision-string", "1.0000000000000000000000001"),
    ("excess-decimals", Raw("10.001")),
    ("huge-float", Raw("6.592609402996187e+16")),
    ("huge-string", "12319406771007389"),
    ("null", None),
]

ID: list[Probe] = [
    *_COMMON_NUMBERS,
    ("zero", 0),
    ("fraction", 1.5),
    ("past-2^53", 2**53 + 1),
    ("letters", "abc"),
]

_CONTROL_TEXT: list[Probe] = [
    ("nul", "ab\x00cd"),
    ("escape", "\x1b[2J"),
    ("bidi-override", "\u202eevil"),
    ("zero-width-space", "a\u200bb"),
    ("long", "x" * 100_000),
    ("boolean", True),
    ("number", 5),
    ("list", ["a"]),
]

TEXT: list[Probe] = [*_CONTROL_TEXT, ("newline", "a\nb"), ("tab", "a\tb"), ("carriage-return", "a\rb")]
MESSAGE: list[Probe] = _CONTROL_TEXT  # an SMS may have line breaks and tabs

PHONE: list[Probe] = [
    ("nul-inside", "0712\x00345678"),
    ("newline-inside", "0712\n345678"),
    ("nul-after", "0712345678\x00"),
    ("bidi-override", "0712\u202e345678"),
    ("letters", "0712345abc"),
    ("arabic-indic-digits", "\u0660\u0667\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"),
    ("json-number", 254711222333),
    ("boolean", True),
    ("long", "0" * 5_000),
    ("empty", ""),
]
# Numbers M-Pesa (and Airtel Money, T-Kash) cannot pay or charge: not Kenyan mobile numbers.
MOBILE_MONEY_PHONE: list[Probe] = [
    *PHONE,
    ("us-number", "+1 202 555 0100"),
    ("uk-mobile", "+44 7911 123456"),
    ("kenyan-landline", "+254202222222"),
]

UUID: list[Probe] = [("boolean", True), ("number", 5), ("not-a-uuid", "abc"), ("long", "a" * 10_000)]

SHORT_CODE: list[Probe] = [
    ("boolean", True),
    ("int64-max+1", 2**63),
    ("arabic-indic-digits", "\u0665\u0662\u0662\u0665\u0662\u0662"),
    ("nul", "5225\x0022"),
    ("long", "5" * 10_000),
]

# -- routes ----------------------------------------------------------------------------------------


def _reference() -> str:
    return f"ref-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    caller: str
    surface: str  # "v1" (problem+json) or "payhero"
    body: Callable[[Target], dict[str, Any]]
    fields: dict[str, list[Probe]]
    idempotent: bool = True  # takes an Idempotency-Key


ROUTES = [
    Route(
        "v2-payments", "/api/v2/payments", "key_a", "payhero",
        lambda t: {
            "amount": 10, "phone_number": "254711222333", "provider": "m-pesa",
            "channel_id": t.channels["paybill_a"], "external_reference": _reference(),
            "customer_name": "Jane Wanjiru", "network_code": "63902",
        },
        {
            "amount": AMOUNT, "phone_number": MOBILE_MONEY_PHONE, "channel_id": ID,
            "external_reference": TEXT, "customer_name": TEXT, "provider": TEXT, "network_code": TEXT,
        },
    ),
    Route(
        "v2-topup", "/api/v2/topup", "key_a", "payhero",
        lambda t: {"amount": 10, "phone_number": "0711222333"},
        {"amount": AMOUNT, "phone_number": MOBILE_MONEY_PHONE},
    ),
    Route(
        "v2-withdraw", "/api/v2/withdraw", "key_a", "payhero",
        lambda t: {
            "amount": 10, "phone_number": "254711222333", "network_code": "63902", "channel": "mobile",
            "external_reference": _reference(),
        },
        {
            "amount": AMOUNT, "phone_number": MOBILE_MONEY_PHONE, "channel_id": ID,
            "external_reference": TEXT, "network_code": TEXT,
        },
    ),
    Route(
        "v2-payment-channels", "/api/v2/payment_channels", "key_a", "payhero",
        lambda t: {"channel_type": "paybill", "short_code": "522522", "description": "Shop paybill"},
        {"description": TEXT, "short_code": SHORT_CODE, "account_id": ID, "account_number": TEXT},
        idempotent=False,
    ),
    Route(
        "v1-wallet-top-up", "/api/v1/wallet/top-up", "alice", "v1",
        lambda t: {"amount": "10.00", "description": "top up"},
        {"amount": AMOUNT, "description": TEXT},
    ),
    Route(
        "v1-wallet-transfer", "/api/v1/wallet/transfer", "alice", "v1",
        lambda t: {
            "recipientCustomerId": str(t.customers["amos"][0]), "amount": "1.00", "description": "lunch",
        },
        {"amount": AMOUNT, "description": TEXT, "recipientCustomerId": UUID},
    ),
    Route(
        "v1-wallet-pay", "/api/v1/wallet/pay", "alice", "v1",
        lambda t: {"amount": "1.00", "description": "invoice", "externalReference": _reference()},
        {"amount": AMOUNT, "description": TEXT, "externalReference": TEXT},
    ),
    Route(
        "v1-channels", "/api/v1/channels", "key_a", "v1",
        lambda t: {"channelType": "paybill", "shortCode": "522522", "description": "Shop paybill"},
        {"description": TEXT, "accountNumber": TEXT, "shortCode": SHORT_CODE},
        idempotent=False,
    ),
    Route(
        "v1-sms-send", "/api/v1/sms/send", "key_a", "v1",
        lambda t: {"phoneNumber": "0712345678", "message": "Your order is ready"},
        {"phoneNumber": PHONE, "message": MESSAGE},
    ),
]  # fmt: skip

_MARKER = "\u0000probe\u0000"


def _with(body: dict[str, Any], field: str, value: Any) -> bytes:
    """``body`` with ``field`` set to ``value``, as JSON text (a :class:`Raw` value verbatim)."""
    if not isinstance(value, Raw):
        return json.dumps({**body, field: value}).encode()
    text = json.dumps({**body, field: _MARKER})
    return text.replace(json.dumps(_MARKER), value.text).encode()


def _cases() -> Iterator[Any]:
    for route in ROUTES:
        for field, probes in route.fields.items():
            for probe_id, value in probes:
                yield pytest.param(route, field, value, id=f"{route.name}:{field}:{probe_id}")


# -- what every refusal must be --------------------------------------------------------------------


def assert_refused(reply: httpx.Response, route_surface: str, field: str | None) -> None:
    """A 4xx in the surface's shape; naming ``field`` when there is one to name."""
    assert 400 <= reply.status_code < 500, f"{reply.status_code}: {reply.text[:500]}"
    body = reply.json()
    if route_surface == "payhero":
        assert set(body) == {"error_code", "error_message", "status_code"}, body
        assert body["status_code"] == reply.status_code
        if field is not None:
            assert field in body["error_message"], body
    else:
        assert reply.headers["content-type"] == "application/problem+json", reply.headers
        assert body["status"] == reply.status_code
        if field is not None:
            named = [error["field"] for error in body["errors"]]
            assert field in named or any(name.startswith(f"{field}.") for name in named), body


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    assert after.problems == [], after.problems
    assert after.counts == before.counts
    assert after.accounts == before.accounts


def refused_changing_nothing(
    target: Target, send: Callable[[], httpx.Response], surface: str, field: str | None
) -> httpx.Response:
    before = target.snapshot()
    reply = send()
    assert_refused(reply, surface, field)
    assert_unchanged(before, target.snapshot())
    return reply


# -- the valid request works (so a refusal below is the probe's doing) -----------------------------


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_the_valid_request_is_accepted(target: Target, route: Route) -> None:
    reply = target.send("POST", route.path, route.caller, json_body=route.body(target))
    assert reply.status_code in (200, 201), reply.text


# -- field by field --------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "field", "value"), list(_cases()))
def test_a_hostile_value_is_refused_naming_the_field_and_changes_nothing(
    target: Target, route: Route, field: str, value: Any
) -> None:
    content = _with(route.body(target), field, value)
    headers = {"Content-Type": "application/json"}
    refused_changing_nothing(
        target, lambda: target.send("POST", route.path, route.caller, content=content, headers=headers),
        route.surface, field,
    )  # fmt: skip


# -- whole bodies ----------------------------------------------------------------------------------

BAD_BODIES: list[Probe] = [
    ("truncated", b'{"amount": 10'),
    ("empty", b""),
    ("null", b"null"),
    ("list", b"[1, 2]"),
    ("string", b'"amount"'),
    ("deeply-nested", b"[" * 50_000 + b"]" * 50_000),
    ("not-utf8", b'{"amount": "\xff\xfe"}'),
]


@pytest.mark.parametrize(("route", "body"), [
    pytest.param(route, body, id=f"{route.name}:{probe_id}")
    for route in ROUTES for probe_id, body in BAD_BODIES
])  # fmt: skip
def test_a_body_that_is_not_the_object_asked_for_is_refused(
    target: Target, route: Route, body: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    refused_changing_nothing(
        target, lambda: target.send("POST", route.path, route.caller, content=body, headers=headers),
        route.surface, None,
    )  # fmt: skip


WRONG_TYPES = ["application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


@pytest.mark.parametrize(("route", "content_type"), [
    pytest.param(route, kind, id=f"{route.name}:{kind.split(';')[0]}")
    for route in ROUTES for kind in WRONG_TYPES
])  # fmt: skip
def test_a_valid_body_under_a_wrong_content_type_is_refused(
    target: Target, route: Route, content_type: str
) -> None:
    content = json.dumps(route.body(target)).encode()
    headers = {"Content-Type": content_type}
    refused_changing_nothing(
        target, lambda: target.send("POST", route.path, route.caller, content=content, headers=headers),
        route.surface, None,
    )  # fmt: skip


def _chunks(size: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"description": "'
    sent = 0
    while sent < size:
        yield b"x" * chunk
        sent += chunk
    yield b'"}'


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_a_body_over_the_limit_is_413_sized_or_chunked(target: Target, route: Route, chunked: bool) -> None:
    # 2 MB against the 1 MB default; a chunked body has no Content-Length to refuse it early.
    size = 2 * 1024 * 1024
    content: bytes | Iterator[bytes] = _chunks(size) if chunked else b"".join(_chunks(size))
    headers = {"Content-Type": "application/json"}
    reply = refused_changing_nothing(
        target, lambda: target.send("POST", route.path, route.caller, content=content, headers=headers),
        route.surface, None,
    )  # fmt: skip
    assert reply.status_code == 413, reply.text


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_a_chunked_body_of_another_type_over_the_limit_is_413(target: Target, route: Route) -> None:
    # Not JSON, so not read ahead of the route: the limit trips while FastAPI reads it, which
    # answered 400 "There was an error parsing the body".
    headers = {"Content-Type": "application/octet-stream"}
    body = _chunks(2 * 1024 * 1024)
    reply = refused_changing_nothing(
        target, lambda: target.send("POST", route.path, route.caller, content=body, headers=headers),
        route.surface, None,
    )  # fmt: skip
    assert reply.status_code == 413, reply.text


# -- integers in query strings and paths -----------------------------------------------------------

PAGES: list[Probe] = [
    ("int64-max+1", "9223372036854775808"),
    ("2^64", "18446744073709551616"),
    ("issue-channels", "41816677180916899840"),
    ("issue-transactions", "4611686018427387904"),
    ("issue-mail-status", "461168601842738791"),
    ("past-last-page", "1000001"),
    ("negative", "-1"),
    ("zero", "0"),
    ("underscore", "1_0"),
    ("plus", "+1"),
    ("space", " 1"),
    ("exponent", "1e3"),
    ("fraction", "1.5"),
    ("boolean", "true"),
    ("arabic-indic-digit", "\u0661"),
]


@dataclass(frozen=True)
class Listing:
    name: str
    path: str
    caller: str
    surface: str
    params: dict[str, str]
    integers: tuple[str, ...]


LISTINGS = [
    Listing("v2-payment-channels", "/api/v2/payment_channels", "key_a", "payhero", {}, ("page", "per")),
    Listing("v2-transactions", "/api/v2/transactions", "key_a", "payhero", {}, ("page", "per", "per_page")),
    Listing(
        "mailer-mail-status",
        "/mailer/mail_status",
        "basic_a",
        "payhero",
        {"batch_id": "b1"},
        ("page", "per_page"),
    ),
    Listing(
        "v2-whatsapp-batch",
        f"/api/v2/whatspp/batches/{uuid.uuid4()}",
        "key_a",
        "payhero",
        {},
        ("page", "per_page"),
    ),
    Listing("v1-channels", "/api/v1/channels", "key_a", "v1", {}, ("page", "pageSize")),
]


@pytest.mark.parametrize(("listing", "name", "value"), [
    pytest.param(listing, name, value, id=f"{listing.name}:{name}:{probe_id}")
    for listing in LISTINGS for name in listing.integers for probe_id, value in PAGES
])  # fmt: skip
def test_an_integer_out_of_range_in_a_query_is_refused_naming_it(
    target: Target, listing: Listing, name: str, value: str
) -> None:
    refused_changing_nothing(
        target,
        lambda: target.send("GET", listing.path, listing.caller, params={**listing.params, name: value}),
        listing.surface,
        name,
    )


@pytest.mark.parametrize(("path", "surface"), [
    ("/api/v2/payment_channels/{}", "payhero"), ("/api/v1/channels/{}", "v1"),
])  # fmt: skip
@pytest.mark.parametrize("value", [v for _id, v in PAGES if _id not in ("past-last-page",)])
def test_an_integer_out_of_range_in_a_path_is_refused(
    target: Target, path: str, surface: str, value: str
) -> None:
    refused_changing_nothing(target, lambda: target.send("GET", path.format(value), "key_a"), surface, None)


# -- channels: unknown and another merchant's are 404 on payments and withdrawals -------------------


@pytest.mark.parametrize("path", ["/api/v2/payments", "/api/v2/withdraw"])
@pytest.mark.parametrize("whose", ["unknown", "other-merchant"])
def test_an_unknown_or_foreign_channel_is_404_naming_channel_id(
    target: Target, path: str, whose: str
) -> None:
    route = next(r for r in ROUTES if r.path == path)
    channel_id = 999_999 if whose == "unknown" else target.channels["paybill_b"]
    body = {**route.body(target), "channel_id": channel_id}
    reply = refused_changing_nothing(
        target, lambda: target.send("POST", path, "key_a", json_body=body), "payhero", "channel_id"
    )
    assert reply.status_code == 404, reply.text


def test_a_withdrawal_from_a_channel_that_is_not_the_payments_wallet_is_refused(target: Target) -> None:
    route = next(r for r in ROUTES if r.name == "v2-withdraw")
    body = {**route.body(target), "channel_id": target.channels["paybill_a"]}
    reply = refused_changing_nothing(
        target, lambda: target.send("POST", route.path, "key_a", json_body=body), "payhero", "channel_id"
    )
    assert reply.status_code == 400, reply.text


def test_a_withdrawal_from_the_payments_wallet_channel_is_accepted(target: Target) -> None:
    listed = target.send("GET", "/api/v2/payment_channels", "key_a", params={"per": "100"})
    assert listed.status_code == 200, listed.text
    [wallet] = [c["id"] for c in listed.json()["payment_channels"] if c["channel_type"] == "wallet"]
    route = next(r for r in ROUTES if r.name == "v2-withdraw")
    reply = target.send("POST", route.path, "key_a", json_body={**route.body(target), "channel_id": wallet})
    assert reply.status_code == 201, reply.text


# -- Idempotency-Key: the same body in another key order is the same request -----------------------


@pytest.mark.parametrize("route", [r for r in ROUTES if r.idempotent], ids=lambda r: r.name)
def test_the_same_body_with_reordered_keys_replays_and_moves_nothing_again(
    target: Target, route: Route
) -> None:
    body = route.body(target)
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}", "Content-Type": "application/json"}
    first = target.send("POST", route.path, route.caller, content=json.dumps(body).encode(), headers=key)
    assert first.status_code in (200, 201), first.text
    after_first = target.snapshot()
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    again = target.send("POST", route.path, route.caller, content=reordered, headers=key)
    assert again.status_code == first.status_code, again.text
    assert again.headers.get("idempotent-replayed") == "true", again.text
    assert again.content == first.content
    assert_unchanged(after_first, target.snapshot())
