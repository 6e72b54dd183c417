"""The outbox: jobs live and die with their transaction, retry with backoff, survive dead workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.worker.models import AttemptOutcome, Job, JobAttempt, JobStatus
from malipo.worker.registry import enqueue
from malipo.worker.runner import Worker, backoff_delay
from tests.worker import handlers  # noqa: F401  (registers the test job kinds)

ROOT = Path(__file__).resolve().parents[2]


async def _jobs(db: Database) -> list[Job]:
    async with db.transaction() as session:
        return list((await session.scalars(select(Job).order_by(Job.created_at))).all())


async def _attempts(db: Database, job_id: object) -> list[JobAttempt]:
    async with db.transaction() as session:
        rows = await session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
        )
        return list(rows.all())


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_job_enqueued_in_rolled_back_transaction_never_runs(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    out = tmp_path / "ran.txt"
    with pytest.raises(RuntimeError, match="payment failed"):
        async with db.transaction() as session:
            enqueue(session, "test.append", {"path": str(out)}, now=clock.now())
            raise RuntimeError("payment failed")

    worker = Worker(db, settings, clock=clock)
    assert await worker.run_once() == 0
    assert await _jobs(db) == []
    assert not out.exists()

    async with db.transaction() as session:
        committed = enqueue(session, "test.append", {"path": str(out)}, now=clock.now())
    assert await worker.run_once() == 1
    await worker.aclose()
    assert _lines(out) == [str(committed.id)]
    [job] = await _jobs(db)
    assert job.status == JobStatus.SUCCEEDED
    assert job.finished_at == clock.now()
    [attempt] = await _attempts(db, job.id)
    assert (attempt.number, attempt.outcome, attempt.error) == (1, AttemptOutcome.SUCCEEDED, None)


async def test_failing_job_is_retried_with_growing_delays_then_dead(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        enqueue(session, "test.fail", {}, now=clock.now())
    worker = Worker(db, settings, clock=clock)

    delays: list[float] = []
    for attempt in range(1, 5):
        assert await worker.run_once() == 1, f"attempt {attempt} should have been due"
        [job] = await _jobs(db)
        assert job.attempts == attempt
        assert job.last_error == f"RuntimeError: boom on attempt {attempt}"
        if attempt == 4:
            break
        assert job.status == JobStatus.PENDING
        delay = (job.run_at - clock.now()).total_seconds()
        delays.append(delay)
        # Not due before its delay has passed...
        clock.advance(delay - 0.01)
        assert await worker.run_once() == 0
        clock.advance(0.01)
    await worker.aclose()

    # Equal jitter: each delay lies in [step/2, step] for step = 1, 2, 4 s, so they never shrink.
    for number, delay in enumerate(delays, start=1):
        step = 2 ** (number - 1)
        assert step / 2 <= delay <= step
    assert delays == sorted(delays)

    [job] = await _jobs(db)
    assert job.status == JobStatus.DEAD
    assert job.finished_at == clock.now()
    attempts = await _attempts(db, job.id)
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert all(a.outcome == AttemptOutcome.FAILED for a in attempts)
    assert [a.error for a in attempts] == [f"RuntimeError: boom on attempt {n}" for n in range(1, 5)]
    clock.advance(timedelta(days=1))
    worker = Worker(db, settings, clock=clock)
    assert await worker.run_once() == 0, "a dead job never runs again"


async def test_permanent_error_marks_job_dead_without_retry(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        enqueue(session, "test.permanent", {}, now=clock.now())
    worker = Worker(db, settings, clock=clock)
    assert await worker.run_once() == 1
    await worker.aclose()
    [job] = await _jobs(db)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert "callback URL is not valid" in (job.last_error or "")


def test_backoff_is_capped_and_jittered() -> None:
    import random

    rng = random.Random(7)
    samples = [backoff_delay(30, base=2.0, cap=60.0, rng=rng) for _ in range(200)]
    assert all(30.0 <= s <= 60.0 for s in samples)
    assert len(set(samples)) > 150, "jitter spreads retries apart"


async def test_worker_wakes_at_commit_instead_of_waiting_for_its_poll(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "ran.txt"
    worker = Worker(db, settings, poll_seconds=60)
    db.on_jobs_committed(worker.wake)
    await worker.start()
    try:
        await asyncio.sleep(0.1)  # the worker is now waiting on its 60 s poll
        async with db.transaction() as session:
            enqueue(session, "test.append", {"path": str(out)}, now=worker.clock.now())
        for _ in range(100):
            if out.exists():
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert len(_lines(out)) == 1


async def test_on_postgresql_a_worker_in_another_process_wakes_at_commit(
    db: Database, db_url: str, settings: Settings, tmp_path: Path
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite out-of-process workers poll")
    out = tmp_path / "ran.txt"
    worker = Worker(db, settings, poll_seconds=60)  # no wake-up from this Database's own commits
    api = Database.from_url(db_url)  # as `malipo serve` without its in-process worker
    api.notify_outbox = True
    await worker.start()
    try:
        await asyncio.sleep(0.3)  # the worker is listening, then waiting on its 60 s poll
        async with api.transaction() as session:
            enqueue(session, "test.append", {"path": str(out)}, now=worker.clock.now())
        for _ in range(100):
            if out.exists():
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
        await api.dispose()
    assert len(_lines(out)) == 1, "the job ran within 5 s, long before the worker's poll"


async def test_shutdown_finishes_short_jobs_and_releases_long_ones(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "ran.txt"
    worker = Worker(db, settings, poll_seconds=0.05, shutdown_grace_seconds=0.5)
    async with db.transaction() as session:
        now = worker.clock.now()
        short = enqueue(
            session, "test.slow", {"path": str(out), "started": str(tmp_path / "s"), "seconds": 0.1}, now=now
        )
        long = enqueue(
            session, "test.slow", {"path": str(out), "started": str(tmp_path / "l"), "seconds": 60}, now=now
        )
    await worker.start()
    for _ in range(100):
        if (tmp_path / "s").exists() and (tmp_path / "l").exists():
            break
        await asyncio.sleep(0.05)
    await worker.stop()

    assert _lines(out) == [str(short.id)]
    jobs = {job.id: job for job in await _jobs(db)}
    assert jobs[short.id].status == JobStatus.SUCCEEDED
    released = jobs[long.id]
    assert released.status == JobStatus.PENDING
    assert released.attempts == 0, "an attempt cut short by shutdown does not count against the job"
    assert released.lease_token is None
    [attempt] = await _attempts(db, long.id)
    assert attempt.outcome == AttemptOutcome.RELEASED


async def test_shutdown_leaves_a_job_that_ignores_its_cancellation_to_its_lease(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    worker = Worker(db, settings, poll_seconds=0.05, shutdown_grace_seconds=0.2)
    gate = tmp_path / "gate"
    async with db.transaction() as session:
        job = enqueue(
            session,
            "test.stubborn",
            {"started": str(tmp_path / "started"), "gate": str(gate)},
            now=worker.clock.now(),
        )
    await worker.start()
    try:
        for _ in range(200):
            if (tmp_path / "started").exists():
                break
            await asyncio.sleep(0.05)
        assert (tmp_path / "started").exists(), "the worker never ran the job"
        await asyncio.wait_for(worker.stop(), 60)  # only a hang reaches the bound
        [held] = [row for row in await _jobs(db) if row.id == job.id]
        assert (held.status, held.attempts) == (JobStatus.RUNNING, 1), "left claimed, for its lease to end"
        [attempt] = await _attempts(db, job.id)
        assert attempt.outcome is None
    finally:
        gate.touch()  # let the handler end, so that it does not outlive the test
        await asyncio.gather(*worker._running, return_exceptions=True)


# -- real worker processes --------------------------------------------------------------------


def _worker_process(db_url: str, tmp_path: Path, name: str, **env: str) -> subprocess.Popen[bytes]:
    full_env = {
        **os.environ,
        "MALIPO_DATABASE_URL": db_url,
        "MALIPO_VAR_DIR": str(tmp_path / "var"),
        "MALIPO_JOB_MODULES": "tests.worker.handlers",
        "MALIPO_WORKER_POLL_SECONDS": "0.05",
        "MALIPO_LOG_LEVEL": "WARNING",
        # No periodic job (the rails' balances) among the jobs these tests count.
        "MALIPO_RAIL_BALANCE_INTERVAL_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "malipo.cli", "worker"],
        env=full_env,
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


async def _wait_for(
    predicate: object, timeout: float, what: str, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        for proc in procs:
            if proc.poll() is not None:
                logs = "\n".join(p.read_text()[-3000:] for p in tmp_path.glob("*.log"))
                raise AssertionError(f"a worker exited ({proc.returncode}) while waiting for {what}:\n{logs}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow
async def test_two_workers_never_run_one_job_twice(db: Database, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    workers = [_worker_process(db_url, tmp_path, f"w{i}", MALIPO_WORKER_CONCURRENCY="8") for i in range(2)]
    try:
        await asyncio.sleep(1.5)  # both are up and polling before the jobs appear
        from malipo.core.clock import SystemClock

        async with db.transaction() as session:
            now = SystemClock().now()
            for _ in range(1000):
                enqueue(session, "test.append", {"path": str(out)}, now=now)

        async def all_done() -> bool:
            async with db.transaction() as session:
                left = await session.scalar(
                    select(func.count()).select_from(Job).where(Job.status != JobStatus.SUCCEEDED)
                )
            return left == 0

        await _wait_for(all_done, 180, "1,000 jobs to succeed", workers, tmp_path)
    finally:
        for proc in workers:
            _stop(proc)

    lines = _lines(out)
    assert len(lines) == 1000
    assert len(set(lines)) == 1000, "a job ran twice"
    async with db.transaction() as session:
        per_job = (
            await session.execute(select(JobAttempt.job_id, func.count()).group_by(JobAttempt.job_id))
        ).all()
        by_worker = (await session.execute(select(Job.locked_by, func.count()).group_by(Job.locked_by))).all()
    assert len(per_job) == 1000
    assert all(count == 1 for _job, count in per_job)
    assert len(by_worker) == 2, f"both workers should have taken jobs: {by_worker}"


@pytest.mark.slow
async def test_job_of_a_killed_worker_runs_again_after_its_lease(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    out, started = tmp_path / "ran.txt", tmp_path / "started"
    from malipo.core.clock import SystemClock

    async with db.transaction() as session:
        job = enqueue(
            session, "test.hang_first", {"path": str(out), "started": str(started)}, now=SystemClock().now()
        )
    first = _worker_process(db_url, tmp_path, "first", MALIPO_WORKER_LEASE_SECONDS="2")
    second: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, "the first worker never started the job"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        [held] = await _jobs(db)
        assert held.status == JobStatus.RUNNING, "the killed worker still holds the job"

        second = _worker_process(db_url, tmp_path, "second", MALIPO_WORKER_LEASE_SECONDS="2")

        async def succeeded() -> bool:
            [row] = await _jobs(db)
            return row.status == JobStatus.SUCCEEDED

        await _wait_for(succeeded, 30, "the second worker to take the job over", [second], tmp_path)
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    assert _lines(out) == [str(job.id)]
    attempts = await _attempts(db, job.id)
    assert [(a.number, a.outcome) for a in attempts] == [
        (1, AttemptOutcome.LEASE_EXPIRED),
        (2, AttemptOutcome.SUCCEEDED),
    ]
    assert attempts[0].worker != attempts[1].worker


async def test_a_batch_handler_gets_every_job_of_its_kind_at_once_and_each_ends_on_its_own(
    db: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    out = tmp_path / "batches.txt"
    async with db.transaction() as session:
        ok = [enqueue(session, "test.batch", {"path": str(out)}, now=clock.now()) for _ in range(3)]
        retried = enqueue(session, "test.batch", {"path": str(out), "fail": True}, now=clock.now())
        dead = enqueue(session, "test.batch", {"path": str(out), "permanent": True}, now=clock.now())
        single = enqueue(session, "test.append", {"path": str(tmp_path / "single.txt")}, now=clock.now())
    worker = Worker(db, settings, clock=clock)
    assert await worker.run_once() == 6
    # One call for the five batch jobs; the plain job ran on its own.
    assert _lines(out) == [" ".join(sorted(str(job.id) for job in [*ok, retried, dead]))]
    assert _lines(tmp_path / "single.txt") == [str(single.id)]
    jobs = {job.id: job for job in await _jobs(db)}
    assert all(jobs[job.id].status == JobStatus.SUCCEEDED for job in [*ok, single])
    assert jobs[dead.id].status == JobStatus.DEAD
    assert jobs[dead.id].last_error == "PermanentJobError: never valid"
    assert jobs[retried.id].status == JobStatus.PENDING
    assert jobs[retried.id].last_error == "RuntimeError: failed on attempt 1"
    [attempt] = await _attempts(db, retried.id)
    assert attempt.outcome == AttemptOutcome.FAILED
    [attempt] = await _attempts(db, ok[0].id)
    assert attempt.outcome == AttemptOutcome.SUCCEEDED

    # The retry comes after its backoff, alone in its batch, and its last failure kills it.
    clock.advance(timedelta(hours=1))
    assert await worker.run_once() == 1
    await worker.aclose()
    assert _lines(out)[-1] == str(retried.id)
    [job] = [job for job in await _jobs(db) if job.id == retried.id]
    assert (job.status, job.attempts) == (JobStatus.DEAD, 2)


async def test_batched_kinds_run_while_slow_single_jobs_fill_the_concurrency(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """Single jobs are limited by the concurrency, batched kinds by the batch size, each apart:
    slow SMTP sends (say) never hold up STK pushes or merchant callbacks."""
    worker = Worker(db, settings, concurrency=2, poll_seconds=0.05, shutdown_grace_seconds=0.2)
    out = tmp_path / "batches.txt"
    async with db.transaction() as session:
        now = worker.clock.now()
        for n in range(3):
            payload = {"path": str(tmp_path / "slow.txt"), "started": str(tmp_path / f"s{n}"), "seconds": 60}
            enqueue(session, "test.slow", payload, now=now)
    await worker.start()
    try:
        for _ in range(100):  # two slow jobs take both single slots; the third waits
            if (tmp_path / "s0").exists() and (tmp_path / "s1").exists():
                break
            await asyncio.sleep(0.02)
        async with db.transaction() as session:
            batch = [
                enqueue(session, "test.batch", {"path": str(out)}, now=worker.clock.now()) for _ in range(5)
            ]
        for _ in range(200):
            if _lines(out):
                break
            await asyncio.sleep(0.02)
        assert _lines(out) == [" ".join(sorted(str(job.id) for job in batch))]
        assert not (tmp_path / "s2").exists(), "the concurrency of single jobs still holds"
    finally:
        await worker.stop()


async def test_a_starting_worker_queues_each_periodic_job_once(db: Database) -> None:
    from malipo.config import Settings
    from malipo.core.clock import SystemClock
    from malipo.worker.registry import ensure_periodic, load_job_modules

    load_job_modules()
    now = SystemClock().now()
    settings = Settings(rail_balance_interval_seconds=60)
    async with db.transaction() as session:
        assert await ensure_periodic(session, settings, now) == ["rail_balance.refresh"]
    async with db.transaction() as session:
        assert await ensure_periodic(session, settings, now) == [], "one is waiting already"
        [job] = (await session.scalars(select(Job).where(Job.kind == "rail_balance.refresh"))).all()
    assert (job.run_at - now).total_seconds() == 60, "its first run after one interval"
    async with db.transaction() as session:
        assert await ensure_periodic(session, Settings(rail_balance_interval_seconds=0), now) == []
