"""``malipo rail-balances``: the real command asks every rail now, Daraja's answer reaches the
running gateway over HTTP, and the command prints the newest balances from the database."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from malipo.railbalances.models import RailBalance
from tests.cli.helpers import malipo_env, run_malipo
from tests.fixtures.world import World


async def test_the_command_refreshes_and_prints_every_rails_balance(world: World) -> None:
    settings = world.settings
    env = malipo_env(
        settings.var_dir,
        MALIPO_DATABASE_URL=settings.resolved_database_url,
        MALIPO_PUBLIC_URL=world.url,
        MALIPO_DARAJA_SIMULATOR_URL=world.sim.url,
        MALIPO_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        MALIPO_ENCRYPTION_KEY=settings.encryption_key.get_secret_value() if settings.encryption_key else "",
        COLUMNS="200",
    )
    done = await asyncio.to_thread(run_malipo, "rail-balances", "--wait", "15", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Utility Account KES" in out
    assert "174379" in out
    assert "disbursement" in out
    async with world.db.transaction() as session:
        rows = (await session.scalars(select(RailBalance))).all()
    assert len(rows) == 4
    assert all(row.status == "answered" for row in rows), [(r.rail, r.mode, r.result_desc) for r in rows]
