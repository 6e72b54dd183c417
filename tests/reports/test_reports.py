"""The card and checkout reports over real HTTP against a served malipo: card payments made through
the API with the acquirer simulator (captured in part, declined, refunded in part and in full, left
authorised, one in USD) and checkout sessions (paid by M-Pesa, open, expired, live, in USD), then
read back by a client's portal user and by operator staff: exact counts and totals per currency
(the captured total is what the ledger's card_capture journals moved), newest first, paging,
status, mode and date range filters, CSV, tenancy, and bad input named by field."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from malipo.checkout import repository, service
from malipo.core.clock import SystemClock
from malipo.ledger.models import AccountKind, Journal, LedgerAccount, Posting
from tests.cards.helpers import DECLINED, VISA
from tests.fixtures.world import PAYS, World, eventually
from tests.reviews.helpers import Portal, call, portal_user

CARDS = "/api/v1/reports/cards"
EAT = timezone(timedelta(hours=3))  # Nairobi
SESSIONS = "/api/v1/reports/checkout/sessions"


def _key(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


async def _card_payment(
    world: World, amount: str, *, currency: str = "KES", pan: str = VISA,
    headers: dict[str, str] | None = None, capture: str | None = None, refunds: tuple[str, ...] = (),
) -> dict[str, Any]:  # fmt: skip
    """Tokenise, authorise, then capture and refund as asked: the last reply."""
    headers = headers or world.a.headers
    card = {"cardNumber": pan, "expiryMonth": 12, "expiryYear": 2030, "cvv": "123"}
    token = await world.http.post("/api/v1/cards/tokenize", json=card, headers=headers)
    assert token.status_code == 201, token.text
    body = {"token": token.json()["token"], "amount": amount, "currency": currency, "orderId": "ORD-1"}
    reply = await world.http.post("/api/v1/cards/authorize", json=body, headers=_key(headers))
    assert reply.status_code == 201, reply.text
    auth: dict[str, Any] = reply.json()
    steps = ([("capture", capture)] if capture else []) + [("refund", r) for r in refunds]
    for action, value in steps:
        reply = await world.http.post(
            f"/api/v1/cards/{action}", json={"authorizationId": auth["authorizationId"], "amount": value},
            headers=_key(headers),
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        auth = reply.json()
    return auth


async def _session(
    world: World, amount: str, *, currency: str = "KES", headers: dict[str, str] | None = None
) -> str:
    reply = await world.http.post(
        "/api/v1/checkout/sessions", json={"amount": amount, "currency": currency},
        headers=headers or world.a.headers,
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    return str(reply.json()["sessionId"])


async def _paid_by_mpesa(world: World, sid: str) -> None:
    sent = await world.http.post(f"/checkout/{sid}/mpesa", json={"phone": PAYS})
    assert sent.status_code == 200, sent.text

    async def done() -> bool:
        return bool((await world.http.get(f"/checkout/{sid}/status")).json()["status"] == "completed")

    await eventually(done, f"checkout session {sid} to be paid")


async def _expired(world: World, sid: str) -> None:
    async with world.db.transaction() as session:
        cs = await repository.session_by_public_id(session, sid)
        assert cs is not None
        cs.expires_at = SystemClock().now() - timedelta(seconds=1)
    async with world.db.transaction() as session:
        assert await service.expire(session, cs.id, now=SystemClock().now()) is None


async def _get(world: World, path: str, who: Portal | dict[str, str], **params: Any) -> dict[str, Any]:
    reply = await call(world, "GET", path, who, params=params)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _money(text: str) -> Decimal:
    return Decimal(text)


@dataclass
class Callers:
    a: Portal  # merchant A's ClientAdmin
    b: Portal  # merchant B's ClientAdmin
    operator: Portal  # CompanyAdmin


async def _callers(world: World) -> Callers:
    return Callers(
        await portal_user(world, "ClientAdmin", world.a.client_id),
        await portal_user(world, "ClientAdmin", world.b.client_id),
        await portal_user(world, "CompanyAdmin"),
    )


@dataclass
class CardWorld:
    before: list[str] = field(default_factory=list)  # made before ``cutoff``, oldest first
    after: list[str] = field(default_factory=list)  # made after it, oldest first
    fees: dict[str, Decimal] = field(default_factory=dict)  # per currency
    cutoff: Any = None
    b_id: str = ""


async def _card_world(world: World) -> CardWorld:
    made = CardWorld()
    made.fees = {"KES": Decimal(0), "USD": Decimal(0)}
    captured = await _card_payment(world, "1250.00", capture="1000.00")  # in part
    made.fees["KES"] += _money(captured["fee"])
    declined = await _card_payment(world, "300.00", pan=DECLINED)
    assert declined["status"] == "declined"
    made.before = [captured["authorizationId"], declined["authorizationId"]]
    made.cutoff = SystemClock().now()
    part = await _card_payment(world, "500.00", capture="500.00", refunds=("200.00",))
    assert part["status"] == "partially_refunded"
    full = await _card_payment(world, "400.00", capture="400.00", refunds=("150.00", "250.00"))
    assert full["status"] == "refunded"
    held = await _card_payment(world, "200.00")
    assert held["status"] == "authorized"
    usd = await _card_payment(world, "10.00", currency="USD", capture="10.00")
    assert (usd["status"], usd["currency"]) == ("captured", "USD")
    for auth in (part, full):
        made.fees["KES"] += _money(auth["fee"])
    made.fees["USD"] += _money(usd["fee"])
    made.after = [a["authorizationId"] for a in (part, full, held, usd)]
    theirs = await _card_payment(world, "700.00", headers=world.b.headers, capture="700.00")
    made.b_id = theirs["authorizationId"]
    return made


async def _captured_by_the_ledger(world: World, client_id: uuid.UUID) -> dict[str, int]:
    """Per currency: what the client's card_capture journals moved out of card clearing (cents)."""
    async with world.db.transaction() as session:
        rows = await session.execute(
            select(Posting.currency, func.sum(Posting.amount))
            .join(Journal, Journal.id == Posting.journal_id)
            .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
            .where(Journal.kind == "card_capture", Journal.client_id == client_id)
            .where(LedgerAccount.kind == AccountKind.CARD_CLEARING)
            .group_by(Posting.currency)
        )
        return {currency: -int(total) for currency, total in rows.all()}


async def test_card_reports_count_and_sum_per_currency_for_the_caller_s_client(world: World) -> None:
    made = await _card_world(world)
    who = await _callers(world)
    mine = made.before + made.after

    listed = await _get(world, CARDS, who.a)
    assert listed["total"] == 6
    assert [row["authorizationId"] for row in listed["items"]] == mine[::-1]  # newest first
    assert made.b_id not in {row["authorizationId"] for row in listed["items"]}
    first = listed["items"][-1]
    assert (first["status"], first["amount"], first["capturedAmount"], first["currency"]) == (
        "captured", "1250.00", "1000.00", "KES",
    )  # fmt: skip
    assert (first["mode"], first["clientId"], first["last4"]) == ("test", str(world.a.client_id), "4242")

    # Paging: every row once, in the same order.
    pages = [await _get(world, CARDS, who.a, page=n, pageSize=4) for n in (1, 2, 3)]
    assert [p["total"] for p in pages] == [6, 6, 6]
    assert [len(p["items"]) for p in pages] == [4, 2, 0]
    assert [r["authorizationId"] for p in pages for r in p["items"]] == mine[::-1]

    # A status.
    declined = await _get(world, CARDS, who.a, status="declined")
    assert [r["authorizationId"] for r in declined["items"]] == [made.before[1]]
    assert declined["items"][0]["responseCode"] == "05"
    assert (await _get(world, CARDS, who.a, status="voided"))["total"] == 0

    summary = await _get(world, f"{CARDS}/summary", who.a)
    assert (summary["clientId"], summary["mode"], summary["from"], summary["to"]) == (
        str(world.a.client_id), None, None, None,
    )  # fmt: skip
    kes, usd = summary["currencies"]
    assert (kes["currency"], kes["count"]) == ("KES", 5)
    assert kes["authorized"] == "2350.00"  # 1250 + 500 + 400 + 200: not the declined 300
    assert kes["captured"] == "1900.00"
    assert kes["refunded"] == "600.00"
    assert _money(kes["fees"]) == made.fees["KES"] > 0
    counts = {status: total["count"] for status, total in kes["byStatus"].items() if total["count"]}
    assert counts == {"captured": 1, "declined": 1, "partially_refunded": 1, "refunded": 1, "authorized": 1}
    assert kes["byStatus"]["declined"]["amount"] == "300.00"
    assert kes["byStatus"]["voided"] == {"count": 0, "amount": "0.00"}
    assert (usd["currency"], usd["count"], usd["authorized"], usd["captured"], usd["refunded"]) == (
        "USD", 1, "10.00", "10.00", "0.00",
    )  # fmt: skip
    assert _money(usd["fees"]) == made.fees["USD"]
    # The captured totals are what the ledger moved, currency by currency.
    assert await _captured_by_the_ledger(world, world.a.client_id) == {"KES": 1900_00, "USD": 10_00}
    await world.verify_ledger()

    # B's portal user sees B's only; naming A is a 404 that names the field.
    theirs = await _get(world, CARDS, who.b)
    assert [r["authorizationId"] for r in theirs["items"]] == [made.b_id]
    refused = await call(world, "GET", CARDS, who.b, params={"clientId": str(world.a.client_id)})
    assert refused.status_code == 404, refused.text
    assert refused.json()["errors"][0]["field"] == "clientId"
    own = await _get(world, f"{CARDS}/summary", who.b, clientId=str(world.b.client_id))
    assert [(c["currency"], c["count"], c["captured"]) for c in own["currencies"]] == [("KES", 1, "700.00")]

    # The operator: every client's, or one client's.
    everyone = await _get(world, CARDS, who.operator)
    assert everyone["total"] == 7
    assert {r["clientId"] for r in everyone["items"]} == {str(world.a.client_id), str(world.b.client_id)}
    only_b = await _get(world, CARDS, who.operator, clientId=str(world.b.client_id))
    assert [r["authorizationId"] for r in only_b["items"]] == [made.b_id]
    total = await _get(world, f"{CARDS}/summary", who.operator)
    assert [(c["currency"], c["count"], c["captured"]) for c in total["currencies"]] == [
        ("KES", 6, "2600.00"), ("USD", 1, "10.00"),
    ]  # fmt: skip
    unknown = await call(
        world, "GET", f"{CARDS}/summary", who.operator, params={"clientId": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404

    # A date range: [from, to), in any zone.
    since = made.cutoff.isoformat()
    later = (SystemClock().now() + timedelta(hours=3)).astimezone(EAT).isoformat()
    ranged = await _get(world, f"{CARDS}/range", who.a, **{"from": since, "to": later})
    assert [r["authorizationId"] for r in ranged["items"]] == made.after[::-1]
    until_cutoff = await _get(
        world, f"{CARDS}/range", who.a, **{"from": (made.cutoff - timedelta(days=1)).isoformat(), "to": since}
    )
    assert [r["authorizationId"] for r in until_cutoff["items"]] == made.before[::-1]
    ranged_summary = await _get(world, f"{CARDS}/summary", who.a, **{"from": since, "to": later})
    assert [(c["currency"], c["count"], c["captured"]) for c in ranged_summary["currencies"]] == [
        ("KES", 3, "900.00"), ("USD", 1, "10.00"),
    ]  # fmt: skip
    # Sandbox only, live only (nothing live here).
    assert (await _get(world, CARDS, who.a, mode="test"))["total"] == 6
    assert (await _get(world, CARDS, who.a, mode="live"))["total"] == 0
    assert (await _get(world, f"{CARDS}/summary", who.a, mode="live"))["currencies"] == []

    # CSV: the same page, a header row first.
    sheet = await call(world, "GET", CARDS, who.a, params={"format": "csv", "status": "captured"})
    assert sheet.status_code == 200, sheet.text
    assert sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    assert [(r["authorizationId"], r["currency"]) for r in rows] == [
        (made.after[3], "USD"),
        (made.before[0], "KES"),
    ]
    assert rows[1]["capturedAmount"] == "1000.00"


async def test_checkout_reports_count_sessions_and_conversion_per_currency(world: World) -> None:
    who = await _callers(world)
    paid = await _session(world, "1500")
    await _paid_by_mpesa(world, paid)
    waiting = await _session(world, "250")
    late = await _session(world, "700")
    await _expired(world, late)
    cutoff = SystemClock().now()
    dollars = await _session(world, "20.00", currency="USD")
    live = await _session(world, "999", headers=world.a.live)
    theirs = await _session(world, "1000", headers=world.b.headers)
    mine = [paid, waiting, late, dollars, live]

    listed = await _get(world, SESSIONS, who.a)
    assert listed["total"] == 5
    assert [r["sessionId"] for r in listed["items"]] == mine[::-1]
    by_id = {r["sessionId"]: r for r in listed["items"]}
    assert (by_id[paid]["status"], by_id[paid]["method"], by_id[paid]["amount"]) == (
        "completed",
        "mpesa",
        "1500.00",
    )
    assert by_id[paid]["completedAt"]
    assert (by_id[late]["status"], by_id[waiting]["status"]) == ("expired", "open")
    assert (by_id[live]["mode"], by_id[waiting]["mode"]) == ("live", "test")
    assert (by_id[dollars]["amount"], by_id[dollars]["currency"]) == ("20.00", "USD")
    pages = [await _get(world, SESSIONS, who.a, page=n, pageSize=2) for n in (1, 2, 3)]
    assert [r["sessionId"] for p in pages for r in p["items"]] == mine[::-1]
    assert (pages[0]["page"], pages[0]["pageSize"], pages[0]["total"]) == (1, 2, 5)
    assert [r["sessionId"] for r in (await _get(world, SESSIONS, who.a, status="completed"))["items"]] == [
        paid
    ]
    assert [r["sessionId"] for r in (await _get(world, SESSIONS, who.a, mode="live"))["items"]] == [live]
    after = await _get(world, SESSIONS, who.a, **{"from": cutoff.isoformat()})
    assert [r["sessionId"] for r in after["items"]] == [live, dollars]

    summary = await _get(world, "/api/v1/reports/checkout/summary", who.a)
    assert (summary["count"], summary["completed"], summary["conversion"]) == (5, 1, 0.2)
    kes, usd = summary["currencies"]
    assert (kes["currency"], kes["count"], kes["total"], kes["completed"], kes["volume"]) == (
        "KES", 4, "3449.00", 1, "1500.00",
    )  # fmt: skip
    assert kes["conversion"] == 0.25
    assert {s: t["count"] for s, t in kes["byStatus"].items()} == {
        "open": 2, "pending": 0, "completed": 1, "expired": 1,
    }  # fmt: skip
    assert kes["byStatus"]["expired"]["amount"] == "700.00"
    assert (usd["currency"], usd["count"], usd["total"], usd["volume"], usd["conversion"]) == (
        "USD", 1, "20.00", "0.00", 0.0,
    )  # fmt: skip
    sandbox = await _get(world, "/api/v1/reports/checkout/summary", who.a, mode="test")
    assert sandbox["currencies"][0]["count"] == 3
    assert sandbox["currencies"][0]["conversion"] == 0.3333
    before = await _get(
        world,
        "/api/v1/reports/checkout/summary",
        who.a,
        **{"from": (cutoff - timedelta(days=30)).isoformat(), "to": cutoff.isoformat()},
    )
    assert (before["count"], before["completed"], before["conversion"]) == (3, 1, 0.3333)
    assert [c["currency"] for c in before["currencies"]] == ["KES"]

    # Tenancy: B sees its own; the operator sees both, or one client by clientId.
    assert [r["sessionId"] for r in (await _get(world, SESSIONS, who.b))["items"]] == [theirs]
    refused = await call(
        world, "GET", "/api/v1/reports/checkout/summary", who.a, params={"clientId": str(world.b.client_id)}
    )
    assert refused.status_code == 404
    everyone = await _get(world, "/api/v1/reports/checkout/summary", who.operator)
    assert (everyone["count"], everyone["clientId"]) == (6, None)
    assert everyone["currencies"][0]["total"] == "4449.00"
    only_b = await _get(world, SESSIONS, who.operator, clientId=str(world.b.client_id))
    assert [r["sessionId"] for r in only_b["items"]] == [theirs]

    sheet = await call(world, "GET", SESSIONS, who.a, params={"format": "csv", "mode": "test"})
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    assert [r["sessionId"] for r in rows] == [dollars, late, waiting, paid]
    assert rows[-1]["status"] == "completed"


async def test_bad_input_is_a_4xx_naming_the_field(world: World) -> None:
    who = await _callers(world)
    cases: list[tuple[str, dict[str, str], str]] = [
        (CARDS, {"status": "approved"}, "status"),
        (SESSIONS, {"status": "paid"}, "status"),
        (CARDS, {"mode": "prod"}, "mode"),
        (CARDS, {"clientId": "client-b"}, "clientId"),
        (CARDS, {"pageSize": "201"}, "pageSize"),
        (CARDS, {"page": "0"}, "page"),
        (CARDS, {"format": "xlsx"}, "format"),
        (f"{CARDS}/range", {"to": "2026-02-01T00:00:00Z"}, "from"),
        (f"{CARDS}/range", {"from": "2026-01-01", "to": "2026-02-01T00:00:00Z"}, "from"),
        (f"{CARDS}/range", {"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00Z"}, "from"),
        (f"{CARDS}/range", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        (f"{CARDS}/range", {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        (f"{CARDS}/range", {"from": "2025-01-01T00:00:00Z", "to": "2026-01-02T00:00:01Z"}, "to"),
        (f"{CARDS}/summary", {"from": "0001-01-01T00:00:00+23:59"}, "from"),
        (
            "/api/v1/reports/checkout/summary",
            {"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00+03:00"},
            "from",
        ),
    ]
    for path, params, named in cases:
        reply = await call(world, "GET", path, who.a, params=params)
        assert reply.status_code == 422, (path, params, reply.text)
        assert [e["field"] for e in reply.json()["errors"]] == [named], (path, params, reply.text)
    # 366 days exactly is allowed (2024 is a leap year).
    year = await call(
        world,
        "GET",
        f"{CARDS}/range",
        who.a,
        params={"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
    )
    assert year.status_code == 200, year.text
    # Reports are for portal users: a merchant's API key is refused by its audience.
    key = await call(world, "GET", CARDS, world.a.headers)
    assert key.status_code == 403
    assert "is only for" in key.json()["detail"]
    anonymous = await call(world, "GET", CARDS, {})
    assert anonymous.status_code == 401
