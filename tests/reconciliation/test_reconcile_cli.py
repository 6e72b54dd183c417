"""``malipo reconcile`` in a process of its own, as an operator runs it: over the served malipo's
database and its Daraja simulator; a rerun books nothing twice; a day past 48 hours says so."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx

from malipo.ledger.models import AccountKind
from tests.cli.helpers import malipo_env, run_malipo
from tests.fixtures.world import PAYS, Sim, StartMalipo, World
from tests.reconciliation.helpers import reconciling_world, system_balance, today


def _env(world: World, sim: Sim) -> dict[str, str]:
    settings = world.settings
    assert settings.secret_key is not None
    assert settings.encryption_key is not None
    return malipo_env(
        settings.var_dir,
        MALIPO_DATABASE_URL=settings.resolved_database_url,
        MALIPO_SECRET_KEY=settings.secret_key.get_secret_value(),
        MALIPO_ENCRYPTION_KEY=settings.encryption_key.get_secret_value(),
        MALIPO_DARAJA_SIMULATOR_URL=sim.url,
        MALIPO_PUBLIC_URL=world.url,
    )  # fmt: skip


async def test_the_command_reconciles_a_day_and_a_rerun_books_nothing_twice(
    start_malipo: StartMalipo, own_sim: Sim
) -> None:
    world = await reconciling_world(start_malipo, own_sim)
    reference = await world.queued(100, PAYS)
    assert (await world.final_status(reference))["status"] == "SUCCESS"
    async with httpx.AsyncClient(base_url=own_sim.url) as http:
        planted = await http.post(
            "/_sim/statement/extra",
            json={"ShortCode": world.settings.daraja_shortcode, "Amount": 77, "MSISDN": "254711000003"},
        )
    receipt = planted.json()["TransactionID"]
    day = today(world).isoformat()
    env = _env(world, own_sim)

    for _run in range(2):
        done = await asyncio.to_thread(
            run_malipo, "reconcile", "--date", day, "--mode", "test", "--json", env=env
        )
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["status"] == "complete"
        assert [(e["kind"], e["receipt"]) for e in report["exceptions"]] == [("missing_in_malipo", receipt)]
        assert report["totals"]["KES"]["ledger"]["ties"] is True
        assert await system_balance(world, AccountKind.SUSPENSE) == 77_00
    assert len(await world.journals(kind="reconciliation_suspense")) == 1
    await world.verify_ledger()

    old = (today(world) - timedelta(days=3)).isoformat()
    done = await asyncio.to_thread(run_malipo, "reconcile", "--date", old, "--mode", "test", env=env)
    assert done.returncode == 1
    assert "48 hours" in done.stdout + done.stderr
    bad = await asyncio.to_thread(run_malipo, "reconcile", "--date", "yesterday", env=env)
    assert bad.returncode == 2
    assert "--date" in bad.stdout + bad.stderr
