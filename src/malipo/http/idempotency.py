"""``Idempotency-Key``: a retried request that moves money replays the first reply.

What endpoints can rely on, when they declare ``idem: IdempotencyKey`` after their
principal and call ``await idem.complete(session, status, reply)`` with the
request's ``Session`` before returning:

- Keys are per caller (the principal, or ``request.state.idempotency_scope``) and
  live 24 hours. The reply is stored in the same transaction as the money it
  moved, so a reply exists exactly when the movement committed.
- The same key with the same method, path and body (compared as parsed JSON: another key
  order or whitespace is the same body; a multipart form without its boundary) replays the stored status and
  JSON body with ``Idempotent-Replayed: true``; with another request it is a 422
  ``idempotency_key_reused``; while the first request still runs it is a 409
  ``idempotency_key_in_flight`` with ``Retry-After: 1`` (PostgreSQL; on SQLite the
  duplicate waits for the first to finish and then replays its reply).
- A request that fails, or returns without calling ``complete``, leaves nothing:
  the client may retry with the same key.

The claim lives in the request's own transaction, not in a second one: a request
already holds a connection (authentication read through its ``Session``), so a
second transaction would, on SQLite, wait on the request's own write lock
(``BEGIN IMMEDIATE``) until the busy timeout, and on PostgreSQL, under load, leave
every pooled connection held by a request waiting for another. On PostgreSQL
concurrent duplicates are told apart by a transaction-level advisory lock on
(scope, key), released by the commit or rollback; on SQLite the single writer
already serialises them. A process that dies mid-request leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import BigInteger, Boolean, Uuid, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.errors import Conflict, MalipoError
from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.db.idempotency_models import IdempotencyRecord
from malipo.http.deps import ClockDep, Session

log = get_logger("malipo.idempotency")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_LIFETIME = timedelta(hours=24)
# How long an in-flight record found committed is respected before it counts as abandoned.
CLAIM_LEASE = timedelta(seconds=60)

IN_FLIGHT = "in_flight"
DONE = "done"

_MAX_SCOPE_LENGTH = 100  # IdempotencyRecord.scope


class IdempotencyKeyReused(MalipoError):
    status = 422
    code = "idempotency_key_reused"
    title = "The Idempotency-Key was used with a different request"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"
    title = "A request with this Idempotency-Key is still in progress"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "a request with this Idempotency-Key is still in progress; retry shortly",
            headers={"Retry-After": "1"},
        )


class IdempotentReplay(Exception):  # not an error: the stored first reply, sent again
    """Raised by the dependency to send a stored reply again; rendered verbatim by the app."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"replay of a {status_code} reply")
        self.status_code = status_code
        self.body = body


class Idempotency:
    """What an endpoint receives: the caller's key (None without the header) and how to store the reply."""

    __slots__ = ("completed", "key", "record_id")

    def __init__(self, key: str | None = None, record_id: uuid.UUID | None = None) -> None:
        if key is not None and record_id is None:
            raise ValueError("a key needs the id of its claimed record")
        self.key = key
        self.record_id = record_id
        self.completed = False

    async def complete(
        self, session: AsyncSession, status_code: int, body: BaseModel | dict[str, Any] | list[Any]
    ) -> None:
        """Store the reply in the request's transaction: it is kept only if the endpoint's work commits.

        ``session`` must be the request's ``Session`` (the claim is in its transaction).
        ``body`` is serialised as the endpoint's reply will be (a model by its aliases).
        """
        if self.key is None:
            return
        if self.completed:
            raise RuntimeError("Idempotency.complete() called twice")
        records = _RECORDS.c
        result = await session.execute(
            update(_RECORDS)
            .where(records.id == self.record_id, records.status == IN_FLIGHT)
            .values(status=DONE, response_status=status_code, response_body=reply_text(body))
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError("Idempotency.complete() needs the request's Session, where the key is claimed")
        self.completed = True


def reply_text(body: BaseModel | dict[str, Any] | list[Any]) -> str:
    """The JSON text of a reply, byte for byte as FastAPI and Starlette send it."""
    content = body.model_dump(mode="json", by_alias=True) if isinstance(body, BaseModel) else body
    return json.dumps(
        jsonable_encoder(content), ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    )


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 (hex) of method, path with query string, and the body as written (raw bytes)."""
    digest = hashlib.sha256()
    digest.update(f"{method.upper()}\n{path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _multipart_boundary(content_type: str | None) -> bytes | None:
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "boundary" and value:
            return value.encode("latin-1", errors="replace")
    return None


def canonical_body(body: bytes, content_type: str | None = None) -> bytes:
    """A JSON body as its canonical text (keys sorted, no insignificant whitespace): two bodies
    that say the same thing in another key order or layout give the same bytes. A multipart form
    is compared without its boundary (a client makes a new one each time it sends the form). Any
    other body is its own canonical form."""
    boundary = _multipart_boundary(content_type)
    if boundary is not None:
        return body.replace(b"--" + boundary, b"--<boundary>")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_fingerprint(method: str, path: str, body: bytes, content_type: str | None = None) -> str:
    """``request_fingerprint`` of the canonical body: what a key is claimed with."""
    return request_fingerprint(method, path, canonical_body(body, content_type))


def idempotency_scope(request: Request) -> str:
    """Whose keys these are: ``request.state.idempotency_scope``, else the authenticated principal."""
    scope: str | None = getattr(request.state, "idempotency_scope", None)
    if scope is None:
        principal = getattr(request.state, "principal", None)
        if principal is None:
            raise RuntimeError(
                "IdempotencyKey needs the caller: declare it after the principal parameter"
                " or set request.state.idempotency_scope"
            )
        scope = f"{principal.kind}:{principal.id}"
        mode = getattr(principal, "mode", None)
        if mode is not None and mode != "live":
            # A sandbox key must never replay (or be refused by) a live request of the same API user.
            scope = f"{scope}:{mode}"
    if len(scope) > _MAX_SCOPE_LENGTH:
        raise RuntimeError(f"idempotency scope longer than {_MAX_SCOPE_LENGTH} characters: {scope[:40]}…")
    return scope


async def idempotency(
    request: Request,
    session: Session,
    clock: ClockDep,
    key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            # Checked by FastAPI like any input: a 422 (400 on Pay Hero's surface) naming the header.
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            description="Up to 255 characters, unique per request you make: a retry with the same key"
            " and body replays the first reply (with `Idempotent-Replayed: true`) instead of moving"
            " money again. Keys expire after 24 hours.",
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    """Claim the request's ``Idempotency-Key`` for the endpoint, or answer for it (replay, 409, 422)."""
    scope = idempotency_scope(request)
    if key is None:
        yield Idempotency(None)
        return
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body()
    fingerprint = canonical_fingerprint(request.method, path, body, request.headers.get("content-type"))
    # Records claimed before bodies were compared canonically hold the raw body's fingerprint.
    raw = request_fingerprint(request.method, path, body)
    record_id = await _claim(session, scope, key, fingerprint, clock.now(), also=raw)
    idem = Idempotency(key, record_id)
    # If the endpoint raises, the request's rollback takes the claim away with everything else.
    yield idem
    if not idem.completed:  # nothing to replay: let the key be used again
        await session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id, IdempotencyRecord.status == IN_FLIGHT)
            .execution_options(synchronize_session=False)
        )


IdempotencyKey = Annotated[Idempotency, Depends(idempotency, scope="function")]


def _advisory_lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"idempotency\n{scope}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_RECORDS = IdempotencyRecord.__table__
_CLAIM_COLUMNS = ("id", "scope", "key", "request_hash", "status", "locked_until", "created_at", "expires_at")
# The columns' own types, so ids and times are bound as the ORM binds them on either backend.
_CLAIM_BINDS = [bindparam(name, type_=IdempotencyRecord.__table__.c[name].type) for name in _CLAIM_COLUMNS]

# One round trip on PostgreSQL: take the (scope, key) advisory lock, held until the
# request's transaction ends, and insert the claim if no record exists. ``got`` false:
# another request with this key is still running. ``claimed`` NULL: a committed record
# exists (the lock proves nobody is writing it) and decides the answer.
_PG_CLAIM = text(
    "WITH lock AS (SELECT pg_try_advisory_xact_lock(:lock_id) AS got),"
    " ins AS (INSERT INTO idempotency_keys"
    " (id, scope, key, request_hash, status, locked_until, created_at, expires_at)"
    " SELECT :id, :scope, :key, :request_hash, :status, :locked_until, :created_at, :expires_at"
    " FROM lock WHERE lock.got ON CONFLICT (scope, key) DO NOTHING RETURNING id)"
    " SELECT lock.got, (SELECT id FROM ins) AS claimed FROM lock"
)
_PG_CLAIM = _PG_CLAIM.bindparams(*_CLAIM_BINDS, bindparam("lock_id", type_=BigInteger)).columns(
    got=Boolean, claimed=Uuid
)
# SQLite has one writer at a time (BEGIN IMMEDIATE): a conflict means a committed record.
_SQLITE_CLAIM = (
    text(
        "INSERT INTO idempotency_keys"
        " (id, scope, key, request_hash, status, locked_until, created_at, expires_at)"
        " VALUES (:id, :scope, :key, :request_hash, :status, :locked_until, :created_at, :expires_at)"
        " ON CONFLICT (scope, key) DO NOTHING RETURNING id"
    )
    .bindparams(*_CLAIM_BINDS)
    .columns(id=Uuid)
)


async def _claim(
    session: AsyncSession, scope: str, key: str, fingerprint: str, now: datetime, *, also: str | None = None
) -> uuid.UUID:
    """Claim ``(scope, key)`` in the request's transaction, or answer for the record already there."""
    record_id = new_id()
    params = {
        "id": record_id, "scope": scope, "key": key, "request_hash": fingerprint, "status": IN_FLIGHT,
        "locked_until": now + CLAIM_LEASE, "created_at": now, "expires_at": now + KEY_LIFETIME,
    }  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        row = (await session.execute(_PG_CLAIM, {**params, "lock_id": _advisory_lock_id(scope, key)})).one()
        if not row.got:
            raise IdempotencyKeyInFlight()
        claimed = row.claimed
    else:
        claimed = await session.scalar(_SQLITE_CLAIM, params)
    if claimed is not None:
        return record_id
    existing = await session.scalar(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if existing is None:  # deleted (purged, or its request gave the key back) since the insert looked
        raise IdempotencyKeyInFlight()
    return await _decide(session, existing, fingerprint, now, also=also)


async def _decide(
    session: AsyncSession,
    record: IdempotencyRecord,
    fingerprint: str,
    now: datetime,
    *,
    also: str | None = None,
) -> uuid.UUID:
    if record.expires_at <= now:
        return await _take_over(session, record, fingerprint, now, reason="expired")
    if record.request_hash not in (fingerprint, also):
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    if record.status == DONE:
        assert record.response_status is not None
        assert record.response_body is not None
        log.info("idempotency.replayed", scope=record.scope, key=record.key, status=record.response_status)
        raise IdempotentReplay(record.response_status, record.response_body)
    # A committed in-flight record is not this module's (its claims commit only as "done"):
    # respect its lease, then treat it as left by a process that died.
    if record.locked_until > now:
        raise IdempotencyKeyInFlight()
    return await _take_over(session, record, fingerprint, now, reason="stale")


async def _take_over(
    session: AsyncSession, record: IdempotencyRecord, fingerprint: str, now: datetime, *, reason: str
) -> uuid.UUID:
    record.request_hash = fingerprint
    record.status = IN_FLIGHT
    record.response_status = None
    record.response_body = None
    record.locked_until = now + CLAIM_LEASE
    record.created_at = now
    record.expires_at = now + KEY_LIFETIME
    await session.flush()
    log.info("idempotency.taken_over", scope=record.scope, key=record.key, reason=reason)
    return record.id


async def purge_expired(db: Database, now: datetime) -> int:
    """Delete the records whose 24 hours have passed; return how many."""
    async with db.transaction() as session:
        result = await session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.expires_at <= now)
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
