"""``malipo serve`` stopped by SIGTERM under load, as a real process on SQLite and PostgreSQL.

A clean stop: the requests in flight finish (one of them held open across the signal), every
request that was answered 2xx has its rows and its audit entry, the worker finishes the job it can
and puts the other back in the queue, and the process exits 0. A request that never ends is cut
short at the grace period and the process still exits; a job that ignores its cancellation cannot
hold the process either: it is forced out (exit 1), keeping what was committed.

The bounds given to ``wait`` below only keep a hanging server from hanging the suite; nothing here
measures how fast anything is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from malipo.collections.models import Collection
from malipo.core.clock import SystemClock
from malipo.db import Database
from malipo.identity.models import AuditLog
from malipo.worker.models import AttemptOutcome, Job, JobAttempt, JobStatus
from malipo.worker.registry import enqueue
from tests.cli.helpers import ROOT, malipo_env, run_malipo, wait_until_serving
from tests.fixtures.servers import free_port
from tests.fixtures.world import eventually
from tests.worker import handlers  # noqa: F401  (registers the test job kinds)

HANG_GUARD_SECONDS = 90  # far above any grace period used here: only a hang reaches it
CLIENTS = 6


@dataclass
class Serving:
    proc: subprocess.Popen[bytes]
    base: str
    port: int
    log: Path
    key: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def logged(self, event: str) -> bool:
        return any(e["event"] == event for e in self.events())

    def output(self) -> str:
        return self.log.read_text()[-6000:]

    async def stopped(self) -> int:
        """SIGTERM, then the exit code (a server still running after the hang guard fails)."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.exited()

    async def exited(self) -> int:
        try:
            return await asyncio.to_thread(self.proc.wait, HANG_GUARD_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"malipo serve did not exit after SIGTERM:\n{self.output()}")


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start ``malipo serve`` on ``db_url`` with the test job kinds and the given settings."""
    started: list[Serving] = []

    def start(**settings: str) -> Serving:
        env = malipo_env(
            tmp_path / "var",
            MALIPO_DATABASE_URL=db_url,
            MALIPO_LOG_JSON="true",
            MALIPO_LOG_LEVEL="INFO",
            MALIPO_JOB_MODULES="tests.worker.handlers",
            MALIPO_WORKER_POLL_SECONDS="0.05",
            MALIPO_RAIL_BALANCE_INTERVAL_SECONDS="0",
            # Audit entries are written only by the shutdown's flush: the test sees whether it ran.
            MALIPO_AUDIT_FLUSH_SECONDS="3600",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            **settings,
        )
        seeded = run_malipo("seed-demo", "--json", env=env)
        assert seeded.returncode == 0, seeded.stderr
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        serving = Serving(
            proc, f"http://127.0.0.1:{port}", port, log, json.loads(seeded.stdout)["sandbox_api_key"]
        )
        started.append(serving)
        wait_until_serving(proc, serving.base, serving.output)
        return serving

    yield start
    for serving in started:
        if serving.proc.poll() is None:
            serving.proc.kill()
            serving.proc.wait()


async def _true(value: bool) -> bool:
    """``eventually`` polls coroutines: this one for a condition checked at the call."""
    return value


def _payment(reference: str) -> dict[str, Any]:
    return {
        "amount": 100,
        "phone_number": "0708374149",
        "provider": "m-pesa",
        "network_code": "63902",
        "external_reference": reference,
        "customer_name": "Jane",
    }


@dataclass
class Load:
    """Clients paying in a loop, each on its own keep-alive connection, until the server is gone."""

    serving: Serving
    answered: dict[str, str] = field(default_factory=dict)  # external reference -> request id, 2xx only
    other: list[int] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._client(n)) for n in range(CLIENTS)]

    async def _client(self, n: int) -> None:
        async with httpx.AsyncClient(
            base_url=self.serving.base, auth=(self.serving.key, ""), timeout=60
        ) as http:
            while True:
                reference = f"LOAD-{n}-{uuid.uuid4().hex[:10]}"
                try:
                    reply = await http.post("/api/v2/payments", json=_payment(reference))
                except httpx.TransportError:
                    return  # the server stopped listening or closed this connection
                if reply.is_success:
                    self.answered[reference] = reply.headers["x-request-id"]
                else:
                    self.other.append(reply.status_code)

    async def stopped(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks), HANG_GUARD_SECONDS)


class HeldRequest:
    """A payment whose body is sent in two parts: the request is in flight until the second."""

    def __init__(self, serving: Serving, reference: str) -> None:
        self.serving = serving
        self.reference = reference
        body = json.dumps(_payment(reference)).encode()
        self._head, self._rest = body[:10], body[10:]
        self._auth = "Basic " + base64.b64encode(f"{serving.key}:".encode()).decode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def begin(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.serving.port)
        headers = (
            "POST /api/v2/payments HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.serving.port}\r\n"
            f"Authorization: {self._auth}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(self._head) + len(self._rest)}\r\n\r\n"
        )
        self._writer.write(headers.encode() + self._head)
        await self._writer.drain()
        # Another request answered after this one was sent: the server has read its headers.
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{self.serving.base}/healthz")).status_code == 200

    async def finish(self) -> tuple[int, dict[str, str]]:
        assert self._writer is not None
        self._writer.write(self._rest)
        await self._writer.drain()
        return await self.reply()

    async def reply(self) -> tuple[int, dict[str, str]]:
        """The reply's status code and headers; 0 if the connection closed without one."""
        assert self._reader is not None
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), HANG_GUARD_SECONDS)
        status, *lines = head.decode("latin-1").strip().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        return int(status.split()[1]), headers

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def _jobs(db: Database, *ids: uuid.UUID) -> dict[uuid.UUID, Job]:
    async with db.transaction() as session:
        query = select(Job)
        if ids:
            query = query.where(Job.id.in_(ids))
        return {job.id: job for job in (await session.scalars(query)).all()}


async def _enqueue(db: Database, kind: str, payload: dict[str, Any]) -> uuid.UUID:
    async with db.transaction() as session:
        return enqueue(session, kind, payload, now=SystemClock().now()).id


async def _stored(db: Database, load: Load, *also: str) -> tuple[set[str], set[str]]:
    """Which answered references have their collection, and which request ids their audit entry."""
    references = [*load.answered, *also]
    async with db.transaction() as session:
        collections = set(
            (
                await session.scalars(
                    select(Collection.external_reference).where(Collection.external_reference.in_(references))
                )
            ).all()
        )
        audited = set(
            (
                await session.scalars(
                    select(AuditLog.request_id).where(AuditLog.request_id.in_(list(load.answered.values())))
                )
            ).all()
        )
    return collections, audited


@pytest.mark.slow
async def test_sigterm_under_load_finishes_requests_and_jobs_then_exits_0(
    serve: Any, db: Database, tmp_path: Path
) -> None:
    serving: Serving = serve(MALIPO_SHUTDOWN_GRACE_SECONDS="60", MALIPO_WORKER_SHUTDOWN_GRACE_SECONDS="8")
    started, out = tmp_path / "started", tmp_path / "ran.txt"
    started.mkdir()
    finishing = await _enqueue(
        db, "test.gated", {"started": str(started), "gate": str(tmp_path / "open"), "path": str(out)}
    )
    unfinished = await _enqueue(
        db, "test.gated", {"started": str(started), "gate": str(tmp_path / "never"), "path": str(out)}
    )

    async def both_running() -> bool:
        assert serving.proc.poll() is None, serving.output()
        return (started / str(finishing)).exists() and (started / str(unfinished)).exists()

    await eventually(both_running, "the worker to run both jobs", timeout=60)
    load = Load(serving)
    load.start()
    await eventually(lambda: _true(len(load.answered) >= 20), "the load to be answered", timeout=60)
    held = HeldRequest(serving, "HELD-ACROSS-SIGTERM")
    await held.begin()
    try:
        serving.proc.send_signal(signal.SIGTERM)
        (tmp_path / "open").touch()  # the job running at SIGTERM may now finish
        # uvicorn's line once it stopped listening and closed the idle connections, not this one.
        draining = "Waiting for connections to close. (CTRL+C to force quit)"
        await eventually(lambda: _true(serving.logged(draining)), "the server to drain", timeout=60)
        status, headers = await held.finish()
        assert status == 201, "a request in flight at SIGTERM is answered"
        load.answered[held.reference] = headers["x-request-id"]
        await load.stopped()
        code = await serving.exited()
    finally:
        held.close()

    assert code == 0, serving.output()
    assert held.reference in load.answered
    collections, audited = await _stored(db, load)
    assert collections == set(load.answered), "every 2xx reply's collection is stored"
    assert audited == set(load.answered.values()), "the buffered audit entries were written"
    jobs = await _jobs(db)
    assert jobs[finishing].status == JobStatus.SUCCEEDED, "the job running at SIGTERM finished"
    assert out.read_text().split() == [str(finishing)]
    released = jobs[unfinished]
    assert (released.status, released.attempts, released.lease_token) == (JobStatus.PENDING, 0, None)
    async with db.transaction() as session:
        [attempt] = (await session.scalars(select(JobAttempt).where(JobAttempt.job_id == unfinished))).all()
    assert attempt.outcome == AttemptOutcome.RELEASED
    stuck = [job.kind for job in jobs.values() if job.status == JobStatus.RUNNING or job.lease_token]
    assert stuck == [], "no job is left claimed"
    events = serving.events()
    assert not [e for e in events if e["level"] in ("error", "critical")], "a clean stop logs no error"


@pytest.mark.slow
async def test_a_request_that_never_ends_is_cut_short_at_the_grace_period(
    serve: Any, db: Database, tmp_path: Path
) -> None:
    serving: Serving = serve(MALIPO_SHUTDOWN_GRACE_SECONDS="1")
    started = tmp_path / "started"
    started.mkdir()
    job = await _enqueue(
        db,
        "test.gated",
        {"started": str(started), "gate": str(tmp_path / "never"), "path": str(tmp_path / "o")},
    )
    await eventually(lambda: _true((started / str(job)).exists()), "the worker to run the job", timeout=60)
    load = Load(serving)
    load.start()
    await eventually(lambda: _true(len(load.answered) >= 10), "the load to be answered", timeout=60)
    stalled = HeldRequest(serving, "NEVER-FINISHED")
    await stalled.begin()  # and never sends the rest of its body
    try:
        code = await serving.stopped()
        try:
            status, _headers = await stalled.reply()
        except asyncio.IncompleteReadError:
            status = 0  # closed without a reply
        await load.stopped()
    finally:
        stalled.close()

    assert code == 0, serving.output()
    assert not 200 <= status < 300, "the request cut short is not answered as a success"
    assert any("timeout graceful shutdown exceeded" in e["event"] for e in serving.events())
    collections, audited = await _stored(db, load, stalled.reference)
    assert collections == set(load.answered), "every 2xx reply's collection is stored, and no other"
    assert audited == set(load.answered.values())
    released = (await _jobs(db, job))[job]
    assert (released.status, released.attempts, released.lease_token) == (JobStatus.PENDING, 0, None)


@pytest.mark.slow
async def test_a_job_that_ignores_its_cancellation_cannot_hold_the_process(
    serve: Any, db: Database, tmp_path: Path
) -> None:
    serving: Serving = serve(MALIPO_SHUTDOWN_GRACE_SECONDS="1")
    job = await _enqueue(
        db, "test.stubborn", {"started": str(tmp_path / "started"), "gate": str(tmp_path / "no")}
    )
    await eventually(lambda: _true((tmp_path / "started").exists()), "the worker to run the job", timeout=60)
    load = Load(serving)
    load.start()
    await eventually(lambda: _true(len(load.answered) >= 10), "the load to be answered", timeout=60)
    code = await serving.stopped()
    await load.stopped()

    assert code == 1, serving.output()
    collections, audited = await _stored(db, load)
    assert collections == set(load.answered), "what was committed is kept"
    assert audited == set(load.answered.values()), "the audit entries were written before the forced exit"
    left = (await _jobs(db, job))[job]
    assert (left.status, left.attempts) == (JobStatus.RUNNING, 1), "left to its lease's end"
    assert serving.logged("worker.jobs_not_released"), "the worker's stop did not wait for the job"
    assert serving.logged("serve.shutdown_forced"), serving.output()
