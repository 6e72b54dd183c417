"""Idempotency-Key on money-moving requests: replay, refusal, races, failures, expiry.

A test-only route under /api/v1/_test moves money with the ledger service, so
"exactly once" is checked where it matters: the number of journals.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.core.errors import MalipoError
from malipo.db import Database
from malipo.db.idempotency_models import IdempotencyRecord
from malipo.http.deps import ClockDep, Session
from malipo.http.idempotency import (
    CLAIM_LEASE,
    DONE,
    IN_FLIGHT,
    KEY_LIFETIME,
    IdempotencyKey,
    idempotency_scope,
    purge_expired,
    request_fingerprint,
)
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal, PrincipalKind
from malipo.ledger.models import AccountKind, Journal
from malipo.ledger.service import Leg, open_account, post_journal, system_account, verify_ledger

MOVE_PATH = "/api/v1/_test/move"


class MoveIn(BaseModel):
    amount: int = Field(gt=0)
    note: str = ""


class MoveOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    journal_id: uuid.UUID = Field(alias="journalId")
    reference: str
    amount: int
    note: str


class MoveRefused(MalipoError):
    status = 422
    code = "move_refused"
    title = "The move was refused"


async def _caller(request: Request, session: Session, x_test_caller: Annotated[str, Header()]) -> str:
    # Like authorize: it reads through the request's session first (on SQLite, that takes the write lock).
    await session.execute(select(1))
    request.state.idempotency_scope = f"test:{x_test_caller}"
    return x_test_caller


Caller = Annotated[str, Depends(_caller)]


def _routes() -> APIRouter:
    router = APIRouter(prefix="/api/v1/_test")

    @router.post("/move", status_code=201)
    async def move(
        body: MoveIn,
        request: Request,
        caller: Caller,
        idem: IdempotencyKey,
        session: Session,
        clock: ClockDep,
        x_test_delay: Annotated[float, Header()] = 0,
        x_test_fail: Annotated[str | None, Header()] = None,
    ) -> MoveOut:
        if x_test_fail == "no-complete":  # a reply that moves nothing and is not stored
            return MoveOut(journal_id=uuid.UUID(int=0), reference="-", amount=body.amount, note=body.note)
        if x_test_delay:
            await asyncio.sleep(x_test_delay)  # so that concurrent duplicates overlap
        source, target = request.app.state.test_accounts
        journal = (
            await post_journal(
                session,
                [Leg(source, -body.amount, "KES"), Leg(target, body.amount, "KES")],
                kind="test_move",
                description=f"test move for {caller}",
                mode="test",
                now=clock.now(),
            )
        ).journal
        if x_test_fail == "before-complete":
            raise MoveRefused("refused before the reply was stored")
        reply = MoveOut(
            journal_id=journal.id, reference=journal.reference, amount=body.amount, note=body.note
        )
        await idem.complete(session, 201, reply)
        if x_test_fail == "after-complete":
            raise MoveRefused("refused after the reply was stored")
        return reply

    return router


@dataclass
class Gateway:
    url: str
    db: Database
    clock: FrozenClock

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)


@pytest.fixture
async def gateway(
    settings: Settings, live_server: Any, db: Database, clock: FrozenClock
) -> AsyncIterator[Gateway]:
    now = clock.now()
    async with db.transaction() as session:
        source = await system_account(session, AccountKind.SANDBOX_FUNDING, "KES", "test", now)
        target = await open_account(
            session,
            owner="customer:idempotency-test",
            kind=AccountKind.CUSTOMER_WALLET,
            currency="KES",
            mode="test",
            now=now,
        )
    app = create_app(settings, clock=clock)
    app.state.test_accounts = (source.id, target.id)
    app.include_router(_routes())
    server = live_server(app)
    yield Gateway(server.url, db, clock)
    async with db.transaction() as session:
        assert await verify_ledger(session) == []


def _body(amount: int = 500, note: str = "") -> bytes:
    return json.dumps({"amount": amount, "note": note}).encode()


async def _move(
    client: httpx.AsyncClient,
    key: str | None,
    body: bytes,
    *,
    caller: str = "alice",
    delay: float = 0,
    fail: str | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json", "x-test-caller": caller}
    if key is not None:
        headers["idempotency-key"] = key
    if delay:
        headers["x-test-delay"] = str(delay)
    if fail:
        headers["x-test-fail"] = fail
    return await client.post(MOVE_PATH, content=body, headers=headers)


async def _count(db: Database, model: type[Journal] | type[IdempotencyRecord]) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _records(db: Database) -> list[IdempotencyRecord]:
    async with db.transaction() as session:
        return list((await session.scalars(select(IdempotencyRecord))).all())


async def test_same_key_and_body_replays_the_first_reply_and_moves_money_once(gateway: Gateway) -> None:
    async with gateway.client() as client:
        first = await _move(client, "key-1", _body())
        second = await _move(client, "key-1", _body())
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content, "the stored body is the reply, byte for byte"
    assert second.headers["content-type"] == "application/json"
    assert "journalId" in first.json(), "the reply is stored by its aliases"
    assert await _count(gateway.db, Journal) == 1
    [record] = await _records(gateway.db)
    assert (record.scope, record.key, record.status) == ("test:alice", "key-1", DONE)
    assert record.response_status == 201
    assert record.expires_at == gateway.clock.now() + KEY_LIFETIME


async def test_same_key_with_a_different_body_is_422_and_moves_nothing(gateway: Gateway) -> None:
    async with gateway.client() as client:
        first = await _move(client, "key-1", _body(500))
        other = await _move(client, "key-1", _body(501))
    assert first.status_code == 201
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["code"] == "idempotency_key_reused"
    assert problem["detail"] == "this Idempotency-Key was used with a different request"
    assert await _count(gateway.db, Journal) == 1


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param(b'{"note": "", "amount": 500}', id="keys-reordered"),
        pytest.param(b'{\n  "amount" : 500,\n  "note" : ""\n}', id="pretty-printed"),
        pytest.param(b'{"amount":500,"note":""}', id="compact"),
    ],
)
async def test_the_same_body_written_differently_replays(gateway: Gateway, retry: bytes) -> None:
    # A client library may serialise a dict in another key order or layout on a retry: it is
    # still the same request, and must not be refused as another one (nor move money again).
    async with gateway.client() as client:
        first = await _move(client, "key-1", _body(500))
        again = await _move(client, "key-1", retry)
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await _count(gateway.db, Journal) == 1


async def test_a_retry_of_a_key_claimed_with_the_raw_body_still_replays(gateway: Gateway) -> None:
    # Keys stored before bodies were compared canonically carry the raw body's fingerprint.
    body = b'{"note": "", "amount": 500}'
    async with gateway.client() as client:
        first = await _move(client, "old-style", body)
    assert first.status_code == 201, first.text
    async with gateway.db.transaction() as session:
        record = await session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == "old-style"))
        assert record is not None
        record.request_hash = request_fingerprint("POST", MOVE_PATH, body)
    async with gateway.client() as client:
        again = await _move(client, "old-style", body)
    assert again.headers.get("idempotent-replayed") == "true", again.text
    assert await _count(gateway.db, Journal) == 1


async def test_keys_are_per_caller(gateway: Gateway) -> None:
    async with gateway.client() as client:
        alice = await _move(client, "shared-key", _body(), caller="alice")
        bob = await _move(client, "shared-key", _body(), caller="bob")
    assert alice.status_code == bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert alice.json()["journalId"] != bob.json()["journalId"]
    assert await _count(gateway.db, Journal) == 2


async def test_concurrent_duplicates_move_money_once(gateway: Gateway) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, limits=limits) as client:
        replies = await asyncio.gather(
            *(_move(client, "race-key", _body(700), delay=0.2) for _ in range(100))
        )
        statuses = [r.status_code for r in replies]
        fresh = [r for r in replies if r.status_code == 201 and "idempotent-replayed" not in r.headers]
        assert len(fresh) == 1, statuses
        for reply in replies:
            if reply.status_code == 201:
                assert reply.content == fresh[0].content
            else:
                assert reply.status_code == 409, reply.text
                assert reply.json()["code"] == "idempotency_key_in_flight"
                assert reply.headers["retry-after"] == "1"
        if gateway.db.dialect == "postgresql":  # SQLite queues the duplicates on its lock: they replay
            assert 409 in statuses, "the duplicates overlapped the first request"
        after = await _move(client, "race-key", _body(700))
    assert after.status_code == 201
    assert after.headers["idempotent-replayed"] == "true"
    assert after.content == fresh[0].content
    assert await _count(gateway.db, Journal) == 1


async def test_a_failed_request_leaves_no_claim_and_may_be_retried(gateway: Gateway) -> None:
    done: list[str] = []
    async with gateway.client() as client:
        # The second one fails after complete(): its stored reply must be rolled back with the money.
        for key, fail in (("key-before", "before-complete"), ("key-after", "after-complete")):
            failed = await _move(client, key, _body(), fail=fail)
            assert failed.status_code == 422
            assert failed.json()["code"] == "move_refused"
            assert [r.key for r in await _records(gateway.db)] == done, "no claim is left behind"
            assert await _count(gateway.db, Journal) == len(done)
            retried = await _move(client, key, _body())
            assert retried.status_code == 201, retried.text
            assert "idempotent-replayed" not in retried.headers
            done.append(key)
    assert await _count(gateway.db, Journal) == 2
    assert sorted((r.key, r.status) for r in await _records(gateway.db)) == [
        ("key-after", DONE),
        ("key-before", DONE),
    ]


@pytest.mark.parametrize(
    ("mode", "suffix"), [(KeyMode.LIVE, ""), (KeyMode.TEST, ":test")], ids=["live", "sandbox"]
)
def test_keys_belong_to_the_principal_and_its_mode(mode: KeyMode, suffix: str) -> None:
    user_id = uuid.uuid4()
    request = Request({"type": "http", "method": "POST", "path": MOVE_PATH, "headers": []})
    with pytest.raises(RuntimeError, match="principal"):
        idempotency_scope(request)  # declared before the principal: a programming error
    request.state.principal = Principal(
        kind=PrincipalKind.API_KEY, id=user_id, client_id=None, role_ids=(), role_names=frozenset(), mode=mode
    )
    assert idempotency_scope(request) == f"api_key:{user_id}{suffix}"
    request.state.idempotency_scope = "customer:42"
    assert idempotency_scope(request) == "customer:42"


async def test_a_reply_that_is_not_stored_leaves_no_claim(gateway: Gateway) -> None:
    async with gateway.client() as client:
        unstored = await _move(client, "key-1", _body(), fail="no-complete")
        assert unstored.status_code == 201
        assert await _count(gateway.db, IdempotencyRecord) == 0
        stored = await _move(client, "key-1", _body())
    assert stored.status_code == 201
    assert "idempotent-replayed" not in stored.headers
    assert stored.json()["journalId"] != unstored.json()["journalId"]
    assert await _count(gateway.db, Journal) == 1


async def test_without_a_key_every_request_moves_money(gateway: Gateway) -> None:
    async with gateway.client() as client:
        first = await _move(client, None, _body())
        second = await _move(client, None, _body())
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert await _count(gateway.db, Journal) == 2
    assert await _count(gateway.db, IdempotencyRecord) == 0


async def test_a_key_older_than_24_hours_is_new_again(gateway: Gateway) -> None:
    async with gateway.client() as client:
        first = await _move(client, "old-key", _body())
        gateway.clock.advance(KEY_LIFETIME - timedelta(seconds=1))
        still = await _move(client, "old-key", _body())
        gateway.clock.advance(timedelta(seconds=1))
        again = await _move(client, "old-key", _body(999))
    assert still.headers["idempotent-replayed"] == "true"
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["journalId"] != first.json()["journalId"]
    assert await _count(gateway.db, Journal) == 2
    [record] = await _records(gateway.db)
    assert record.expires_at == gateway.clock.now() + KEY_LIFETIME


async def _insert_in_flight(gateway: Gateway, key: str, body: bytes, *, locked_for: timedelta) -> None:
    now = gateway.clock.now()
    async with gateway.db.transaction() as session:
        session.add(
            IdempotencyRecord(
                scope="test:alice",
                key=key,
                request_hash=request_fingerprint("POST", MOVE_PATH, body),
                status=IN_FLIGHT,
                locked_until=now + locked_for,
                created_at=now - timedelta(minutes=5),
                expires_at=now + KEY_LIFETIME - timedelta(minutes=5),
            )
        )


async def test_a_stale_in_flight_claim_is_taken_over(gateway: Gateway) -> None:
    await _insert_in_flight(gateway, "orphan", _body(), locked_for=-timedelta(seconds=1))
    async with gateway.client() as client:
        reply = await _move(client, "orphan", _body())
    assert reply.status_code == 201, reply.text
    assert "idempotent-replayed" not in reply.headers
    assert await _count(gateway.db, Journal) == 1
    [record] = await _records(gateway.db)
    assert record.status == DONE


async def test_a_key_still_in_flight_is_409_with_retry_after(gateway: Gateway) -> None:
    await _insert_in_flight(gateway, "busy", _body(), locked_for=timedelta(seconds=30))
    async with gateway.client() as client:
        reply = await _move(client, "busy", _body())
    assert reply.status_code == 409
    assert reply.json()["code"] == "idempotency_key_in_flight"
    assert reply.headers["retry-after"] == "1"
    assert await _count(gateway.db, Journal) == 0


async def test_a_slow_first_request_is_not_duplicated_even_past_the_lease(gateway: Gateway) -> None:
    async with gateway.client() as client:
        slow = asyncio.create_task(_move(client, "slow-key", _body(), delay=0.6))
        await asyncio.sleep(0.2)
        gateway.clock.advance(CLAIM_LEASE + timedelta(seconds=1))
        # PostgreSQL: the slow request still holds its claim, so this one is told to retry.
        # SQLite: it queues behind the slow one's write lock, then replays its reply.
        duplicate = await _move(client, "slow-key", _body())
        first = await slow
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    if duplicate.status_code == 409:
        assert duplicate.json()["code"] == "idempotency_key_in_flight"
    else:
        assert duplicate.status_code == 201, duplicate.text
        assert duplicate.headers["idempotent-replayed"] == "true"
        assert duplicate.content == first.content
    assert await _count(gateway.db, Journal) == 1


async def test_key_must_be_1_to_255_characters(gateway: Gateway) -> None:
    async with gateway.client() as client:
        for key in ("k" * 256, ""):
            reply = await _move(client, key, _body())
            assert reply.status_code == 422, reply.text
            problem = reply.json()
            assert problem["code"] == "validation_failed"
            assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
            assert ("255" if key else "1 character") in problem["errors"][0]["message"]
        assert await _count(gateway.db, Journal) == 0
        assert await _count(gateway.db, IdempotencyRecord) == 0
        longest = await _move(client, "k" * 255, _body())
    assert longest.status_code == 201, longest.text
    assert await _count(gateway.db, Journal) == 1


async def test_purge_expired_deletes_only_records_past_24_hours(db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    async with db.transaction() as session:
        for key, age in (("old", KEY_LIFETIME + timedelta(seconds=1)), ("young", timedelta(hours=23))):
            session.add(
                IdempotencyRecord(
                    scope="test:alice", key=key, request_hash="0" * 64, status=DONE, response_status=201,
                    response_body="{}", locked_until=now - age + CLAIM_LEASE, created_at=now - age,
                    expires_at=now - age + KEY_LIFETIME,
                )
            )  # fmt: skip
    assert await purge_expired(db, now) == 1
    assert [r.key for r in await _records(db)] == ["young"]
