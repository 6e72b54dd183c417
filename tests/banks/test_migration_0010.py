"""Migration 0010 creates and seeds the banks table, and its downgrade removes it, on both databases
(the other engineer's 0011 goes on top of it: its revision ids are fixed)."""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from malipo.banks.seed import SEED_BANKS
from malipo.db import create_engine
from malipo.migrate import current_revision, downgrade, upgrade


async def _banks(engine: AsyncEngine) -> list[tuple[object, ...]] | None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        if "banks" not in tables:
            return None
        rows = await conn.execute(
            sa.text(
                "SELECT code, name, swift, country, kind, rail, payhero_code, active FROM banks ORDER BY code"
            )
        )
        return [tuple(row) for row in rows]


def test_0010_follows_0009() -> None:
    migration = importlib.import_module("malipo.migrations.versions.0010_banks")
    assert (migration.revision, migration.down_revision) == ("0010", "0009")


async def test_0010_creates_the_seeded_table_and_its_downgrade_drops_it(databases: object) -> None:
    engine = create_engine(databases.empty())  # type: ignore[attr-defined]
    seeded = sorted(
        (b.code, b.name, b.swift, b.country.value, b.kind.value, b.rail.value, b.payhero_code, True)
        for b in SEED_BANKS
    )
    try:
        await upgrade(engine, "0009")
        assert await _banks(engine) is None
        await upgrade(engine, "0010")
        assert await current_revision(engine) == "0010"
        assert [(*row[:7], bool(row[7])) for row in await _banks(engine) or []] == seeded
        await downgrade(engine, "0009")
        assert await current_revision(engine) == "0009"
        assert await _banks(engine) is None
        await upgrade(engine, "0010")
        assert len(await _banks(engine) or []) == len(SEED_BANKS)
    finally:
        await engine.dispose()
