"""Workers killed (SIGKILL) mid-work, in a real process:

- after it sent the STK push and before Daraja answered: the collection still ends final, the push
  is never sent twice, the merchant is told exactly once;
- after it claimed collections and before it pushed them: those end FAILED with the distinct
  "not sent" reason (the payer was never prompted), counted in /metrics;
- while a merchant callback's POST was in flight: that attempt is recorded as unknown and the
  callback is posted again with the same callback id, for the merchant to de-duplicate on."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from malipo.collections.service import NOT_SENT
from malipo.providers.daraja.client import STK_PUSH_PATH
from tests.fixtures.servers import LiveServer
from tests.fixtures.world import (
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


def _worker(world: World, tmp_path: Path, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
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
        "PYTHONUNBUFFERED": "1",  # its log lines reach the file as they are written
        **extra_env,
    }
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "malipo.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def _started(proc: subprocess.Popen[bytes], log: Path) -> Callable[[], Awaitable[bool]]:
    """Whether the worker logged that it runs (needs MALIPO_LOG_LEVEL=INFO)."""

    async def check() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        return "worker.started" in log.read_text()

    return check


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


def _collections_not_sent(metrics: str) -> int:
    found = re.search(r'^malipo_collections_not_sent_total\{mode="test"\} (\d+)', metrics, re.MULTILINE)
    assert found is not None, "the not-sent counter is in /metrics"
    return int(found.group(1))


@pytest.mark.slow
async def test_collections_claimed_by_a_killed_worker_and_never_pushed_end_not_sent(
    start_malipo: StartMalipo,
    faulty_sim: tuple[Sim, Faults],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    sim, gate = faulty_sim
    gate.held.add(STK_PUSH_PATH)  # the first push is never answered while the worker lives
    gate.limit = 300.0  # however slow this machine, not before the kill (checked at the kill below)
    # The STK queries come late enough that the kill, not the reconcile job (which gives up on a
    # claim never pushed), leaves them unpushed: checked at the kill below. Nothing after the kill
    # waits for them: the pushed one ends by Daraja's callback, the others when the killed worker's
    # send job is taken over.
    world = await start_malipo(sim=sim, inprocess_worker=False, stk_query_after_seconds=300.0)
    # Queued before any worker runs: the worker claims them together, and with one connection
    # it pushes one at a time, so it dies with the others claimed (SENT) and not pushed.
    references = [
        await world.queued(100 + index, PAYS, mailbox, external_reference=f"CLAIMED-{index}")
        for index in range(4)
    ]
    assert _collections_not_sent((await world.http.get("/metrics")).text) == 0
    first = _worker(world, tmp_path, "first", MALIPO_HTTP_CONNECTIONS="1", MALIPO_LOG_LEVEL="INFO")
    second: subprocess.Popen[bytes] | None = None
    try:
        # Its start-up alone can take long on a loaded machine: wait for it to run first.
        await eventually(_started(first, tmp_path / "first.log"), "the worker to start", timeout=180)

        async def one_pushed_and_all_claimed() -> bool:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            pushed = [r for r in references if sim.push_for(r) is not None]
            claimed = [await world.collection(r) for r in references]
            # A pushed one may be final already: Daraja's callback comes at once, to the web process.
            return len(pushed) >= 1 and all(c.status != "QUEUED" for c in claimed)

        await eventually(one_pushed_and_all_claimed, "the worker to claim all and push one", timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = {r: await world.collection(r) for r in references}
        pushed = {r for r in references if sim.pushes_for(r)}
        unpushed = {r for r, c in at_kill.items() if c.sent_at is None}
        assert unpushed, "the worker died with claimed collections it had not pushed"
        assert not unpushed & pushed, "a collection without sent_at was pushed"
        assert all(at_kill[r].status == "SENT" for r in unpushed), "the kill left them claimed, not ended"
        gate.release.set()

        second = _worker(world, tmp_path, "second")
        finals = {r: await world.final_status(r, timeout=30) for r in references}
        for reference in references:
            await world.delivered(reference, timeout=30)
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    for reference in unpushed:
        assert sim.pushes_for(reference) == 0, "a collection given up as not sent was pushed after all"
        final = finals[reference]
        assert (final["status"], final["result_code"]) == ("FAILED", NOT_SENT)
        assert final["result_desc"] == "not sent: the request never reached M-Pesa"
    for reference in set(references) - unpushed:
        assert finals[reference]["result_code"] != NOT_SENT, (
            "a push that may have been made is not 'not sent'"
        )
    callbacks = {c["response"]["ExternalReference"]: c for c in await mailbox.wait_for(len(references))}
    assert len(mailbox.bodies) == len(references), "the merchant is told exactly once per collection"
    for reference in references:
        callback = callbacks[at_kill[reference].external_reference]
        if reference in unpushed:
            assert callback["status"] is False
            assert callback["response"]["ResultCode"] == NOT_SENT
            assert callback["response"]["ResultDesc"] == "not sent: the request never reached M-Pesa"
            assert callback["response"]["MerchantRequestID"] == ""
        else:
            assert callback["response"]["ResultCode"] != NOT_SENT
    assert _collections_not_sent((await world.http.get("/metrics")).text) == len(unpushed)
    paid = sum(100 + i for i, r in enumerate(references) if finals[r]["status"] == "SUCCESS")
    assert (await world.balances()).payments == (paid * 100, 0)
    await world.verify_ledger()


class _HoldingMerchant:
    """A merchant endpoint that keeps every request's headers and body as it arrives, and holds its
    first ``hold`` replies until ``release`` is set (then answers 200 to each)."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.release = threading.Event()
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/hook", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.json()))
        if self.hold > 0:
            self.hold -= 1
            await asyncio.to_thread(self.release.wait, 30)
        return JSONResponse({"received": True})


@pytest.mark.slow
async def test_a_callback_in_flight_when_its_worker_is_killed_is_unknown_and_posted_again_with_its_id(
    start_malipo: StartMalipo, tmp_path: Path
) -> None:
    merchant = _HoldingMerchant(hold=1)
    with LiveServer(merchant.app) as endpoint:
        world = await start_malipo(inprocess_worker=False)
        reference = await world.queued(250, PAYS, callback_url=f"{endpoint.url}/hook")
        first = _worker(world, tmp_path, "first")
        second: subprocess.Popen[bytes] | None = None
        try:

            async def posted() -> bool:
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                return len(merchant.received) == 1

            await eventually(posted, "the merchant callback to be in flight", timeout=30)
            [delivery] = await world.deliveries(reference)
            in_flight = await world.attempts(delivery.id)
            assert [(a.number, a.outcome, a.duration_ms) for a in in_flight] == [(1, "in_flight", None)]
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)

            second = _worker(world, tmp_path, "second")
            [delivery] = await world.delivered(reference, timeout=30)
        finally:
            merchant.release.set()
            _stop(first)
            if second is not None:
                _stop(second)

    attempts = await world.attempts(delivery.id)
    assert [(a.number, a.outcome) for a in attempts] == [(1, "unknown"), (2, "delivered")]
    assert (attempts[0].status_code, attempts[1].status_code) == (None, 200)
    assert delivery.attempts == 2
    assert len(merchant.received) == 2, "posted again after the kill"
    (first_headers, first_body), (again_headers, again_body) = merchant.received
    assert first_headers["x-malipo-callback-id"] == again_headers["x-malipo-callback-id"] == str(delivery.id)
    assert first_body["callback_id"] == again_body["callback_id"] == str(delivery.id)
    assert first_body == again_body
    assert first_body["status"] is True
