"""Migrations produce exactly the models' schema on SQLite and PostgreSQL; the database is set up right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import malipo.models  # noqa: F401  (every table)
from malipo.core.ids import new_id
from malipo.db import Base, Database, create_engine
from malipo.migrate import current_revision, downgrade, head_revision, upgrade
from malipo.worker.models import Job, JobStatus


async def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


async def test_migrations_produce_exactly_the_models_schema(db_url: str) -> None:
    assert await _diff(db_url) == []


async def test_migrations_go_down_to_nothing_and_back_up(databases: object) -> None:
    url = databases.empty()  # type: ignore[attr-defined]
    engine = create_engine(url)
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        await downgrade(engine, "base")
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
    assert await _diff(url) == []


async def test_sqlite_runs_in_wal_with_foreign_keys_and_full_sync(sqlite_databases: object) -> None:
    db = Database.from_url(sqlite_databases.new())  # type: ignore[attr-defined]
    try:
        async with db.engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    finally:
        await db.dispose()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2, "busy_timeout": 10_000}


async def test_timestamps_come_back_as_aware_utc(db: Database) -> None:
    nairobi = timezone(timedelta(hours=3))
    written = datetime(2026, 3, 1, 12, 0, tzinfo=nairobi)
    async with db.transaction() as session:
        job = Job(
            id=new_id(),
            kind="k",
            payload={"amount": 100},
            status=JobStatus.PENDING,
            attempts=0,
            max_attempts=1,
            run_at=written,
            created_at=written,
            updated_at=written,
        )
        session.add(job)
    async with db.transaction() as session:
        loaded = await session.get(Job, job.id, populate_existing=True)
    assert loaded is not None
    assert loaded.run_at == written
    assert loaded.run_at.tzinfo is not None
    assert loaded.run_at.utcoffset() == timedelta(0)
    assert loaded.run_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
