"""``malipo channels register-c2b``: the operator's command line sets a channel's C2B rules and
registers its URLs with Daraja (the simulator) through the same service as the API."""

from __future__ import annotations

import asyncio
import json

from tests.c2b.helpers import OWN_PAYBILL, add_channel, collection_of, simulate
from tests.cli.helpers import malipo_env, run_malipo
from tests.fixtures.world import World


async def test_cli_registers_c2b_and_payments_then_arrive(world: World) -> None:
    channel_id = await add_channel(world, "paybill", OWN_PAYBILL)
    settings = world.settings
    assert settings.secret_key is not None
    env = malipo_env(
        settings.var_dir,
        MALIPO_DATABASE_URL=settings.resolved_database_url,
        MALIPO_SECRET_KEY=settings.secret_key.get_secret_value(),
        MALIPO_PUBLIC_URL=world.url,
        MALIPO_DARAJA_SIMULATOR_URL=world.sim.url,
    )
    done = await asyncio.to_thread(
        run_malipo, "channels", "register-c2b", str(channel_id), "--rule", "requireKnownReference",
        "--min", "10", "--response-type", "Cancelled", "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"channel_id": channel_id, "registered": True}

    found = (await world.http.get(f"/api/v1/channels/{channel_id}/c2b", headers=world.a.test)).json()
    assert (found["registrationStatus"], found["rule"], found["minAmount"]) == (
        "registered", "requireKnownReference", "10.00"
    )  # fmt: skip
    assert world.sim.sim.c2b_urls[OWN_PAYBILL].response_type == "Cancelled"

    # The URLs the command registered are the server's: a payment naming an open request arrives.
    reply = await world.http.post(
        "/api/v1/payment-requests", json={"amount": 40, "accountReference": "CLI-1"}, headers=world.a.test
    )
    assert reply.status_code == 201, reply.text
    receipt = await simulate(world, OWN_PAYBILL, 40, "CLI-1")
    assert receipt.validation == "accepted"
    assert (await collection_of(world, receipt.trans_id)).status == "SUCCESS"
    await world.verify_ledger()

    bad = await asyncio.to_thread(
        run_malipo, "channels", "register-c2b", str(channel_id), "--response-type", "Later", env=env
    )
    assert bad.returncode == 2
    assert "--response-type" in bad.stderr
    missing = await asyncio.to_thread(run_malipo, "channels", "register-c2b", "987654", env=env)
    assert missing.returncode == 1
    assert "no payment channel 987654" in missing.stderr
