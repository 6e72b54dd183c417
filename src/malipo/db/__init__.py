"""Engine, session factory and the transaction scope of a request or a job.

SQLite runs in WAL mode with foreign keys on, ``synchronous=FULL`` and a busy
timeout; every transaction starts with ``BEGIN IMMEDIATE`` so that writers
queue on the lock instead of failing when a read turns into a write (SQLite's
single writer is how money movements serialise there). PostgreSQL runs on
asyncpg with a connection pool.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, DateTime, MetaData, Text, TypeDecorator, Uuid, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session

from malipo.core import crypto

if TYPE_CHECKING:
    from malipo.config import Settings

# Stable constraint names, identical on both backends, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on both backends.

    SQLite has no time zones and hands back naive values; this type stores UTC
    and re-attaches the zone, so comparisons with ``Clock.now()`` never mix the two.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EncryptedText(TypeDecorator[str]):
    """Text kept encrypted at rest (AES-GCM, the settings' key); plain text in Python."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.encryptor().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.encryptor().decrypt(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONType,
        int: BigInteger(),
    }


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 20,
    echo: bool = False,
    sqlite_busy_timeout_ms: int = 10_000,
) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            parsed, echo=echo, connect_args={"timeout": sqlite_busy_timeout_ms / 1000}
        )
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
    )


class Database:
    """An engine and its session factory; one per process (and per test)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._commit_listeners: list[Callable[[], None]] = []
        # PostgreSQL: send NOTIFY on OUTBOX_CHANNEL with every commit that enqueued jobs, so
        # that workers in other processes wake at once (they LISTEN) instead of at their poll.
        self.notify_outbox = False
        # Per-database caches of derived facts (e.g. permission decisions), by name.
        self.caches: dict[str, Any] = {}
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False, info={"database": self})

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_engine(url, **kwargs))

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls.from_url(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            echo=settings.db_echo,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on exit, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    def on_jobs_committed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after any commit that enqueued outbox jobs (wakes the worker)."""
        self._commit_listeners.append(listener)

    def _jobs_committed(self) -> None:
        for listener in self._commit_listeners:
            listener()

    async def dispose(self) -> None:
        await self.engine.dispose()


OUTBOX_FLAG = "outbox_enqueued"
OUTBOX_CHANNEL = "malipo_outbox"
_PENDING_CACHE = "cache_after_commit"


def cached(session: AsyncSession | Session, name: str, key: Any) -> Any:
    """What ``cache_after_commit`` stored under ``name``/``key`` in this session's database, or None."""
    database = session.info.get("database")
    return None if database is None else database.caches.get(name, {}).get(key)


def cache_after_commit(session: AsyncSession | Session, name: str, key: Any, value: Any) -> None:
    """Cache ``value`` once this session's transaction commits (dropped if it, or a savepoint in
    it, rolls back). For facts that never change once committed, such as an account's id."""
    session.info.setdefault(_PENDING_CACHE, []).append((name, key, value))


def forget_cached(session: AsyncSession | Session, *names: str) -> None:
    """Drop what ``cache_after_commit`` stored under ``names`` in this session's database: for a
    writer that a foreign key refused, in case a cached id names a row that is not there."""
    database = session.info.get("database")
    if database is not None:
        for name in names:
            database.caches.pop(name, None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.info.get(OUTBOX_FLAG):
        database = session.info.get("database")
        if database is not None and database.notify_outbox:
            session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))  # delivered when the commit is


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    database = session.info.get("database")
    pending = session.info.pop(_PENDING_CACHE, None)
    if pending and database is not None:
        for name, key, value in pending:
            database.caches.setdefault(name, {})[key] = value
    if session.info.pop(OUTBOX_FLAG, False) and database is not None:
        database._jobs_committed()


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(OUTBOX_FLAG, None)
    session.info.pop(_PENDING_CACHE, None)
