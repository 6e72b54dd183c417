"""A worker killed (SIGKILL) after it sent the STK push and before Daraja answered: the
collection still ends final, the push is never sent twice, the merchant is told exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from malipo.providers.daraja.client import STK_PUSH_PATH
from tests.collections.conftest import (
    NO_CALLBACK,
    PAYS,
    SERVICE_FUNDS,
    Faults,
    Mailbox,
    Sim,
    StartMalipo,
    World,
    eventually,
)

ROOT = Path(__file__).resolve().parents[2]


def _worker(world: World, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    settings = world.settings
    env = {
        **os.environ,
        "MALIPO_ENV": "test",
        "MALIPO_DATABASE_URL": settings.resolved_database_url,
        "MALIPO_VAR_DIR": str(settings.var_dir),
        "MALIPO_PUBLIC_URL": settings.public_url,
        "MALIPO_DARAJA_SIMULATOR_URL": settings.daraja_simulator_url or "",
        "MALIPO_STK_QUERY_AFTER_SECONDS": str(settings.stk_query_after_seconds),
        "MALIPO_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
        "MALIPO_WORKER_POLL_SECONDS": "0.05",
        "MALIPO_WORKER_LEASE_SECONDS": "1",
        "MALIPO_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "malipo.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
async def test_a_worker_killed_mid_push_still_ends_every_collection_once(
    start_malipo: StartMalipo,
    faulty_sim: tuple[Sim, Faults],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    sim, gate = faulty_sim
    sim.sim.callback_delay = 1.0  # Daraja's callback comes after the worker is killed
    gate.held.add(STK_PUSH_PATH)  # and the worker never hears the push's reply
    world = await start_malipo(sim=sim, inprocess_worker=False, stk_query_after_seconds=0.15)
    first = _worker(world, tmp_path, "first")
    second: subprocess.Popen[bytes] | None = None
    try:
        # The push with a callback goes last, so that the worker dies well before that callback.
        silent = await world.queued(400, NO_CALLBACK, mailbox, external_reference="SILENT")

        def pushed(reference: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                return sim.push_for(reference) is not None

            return check

        await eventually(pushed(silent), "the worker to send the first STK push", timeout=30)
        paid = await world.queued(400, PAYS, mailbox, external_reference="PAID")
        await eventually(pushed(paid), "the worker to send the second STK push")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        gate.release.set()
        push = sim.push_for(paid)
        assert push is not None
        assert sim.callbacks_to(push.callback_url) == [], "the worker died before Daraja's callback"
        for reference in (paid, silent):
            collection = await world.collection(reference)
            assert (collection.status, collection.provider_checkout_request_id) == ("SENT", None)

        # Daraja's callback goes to the web process; another worker takes over the rest.
        second = _worker(world, tmp_path, "second")
        assert (await world.final_status(paid, timeout=30))["status"] == "SUCCESS"
        failed = await world.final_status(silent, timeout=30)
        assert (failed["status"], failed["result_code"]) == ("FAILED", 1037)
        await world.delivered(paid, timeout=30)
        await world.delivered(silent, timeout=30)

        async def send_jobs_done() -> bool:
            jobs = await world.jobs("collection.send")
            return len(jobs) == 2 and all(job.status == "succeeded" for job in jobs)

        # The killed worker's jobs run again after their lease: they must not push again.
        await eventually(send_jobs_done, "the killed worker's jobs to be taken over", timeout=30)
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    assert sim.pushes_for(paid) == sim.pushes_for(silent) == 1, "an STK push was sent twice"
    callbacks = await mailbox.wait_for(2)
    assert len(callbacks) == 2, "the merchant is told exactly once per collection"
    assert mailbox.hits == 2
    by_reference = {c["response"]["ExternalReference"]: c for c in callbacks}
    assert by_reference["PAID"]["status"] is True
    assert by_reference["SILENT"]["status"] is False
    assert by_reference["SILENT"]["response"]["ResultCode"] == 1037
    for reference in (paid, silent):
        assert len(await world.deliveries(reference)) == 1
    balances = await world.balances()
    assert balances.payments == (400_00, 0)
    assert balances.service == (SERVICE_FUNDS - 6_00, 0)
    await world.verify_ledger()
