"""The outbox worker: claims due jobs, runs their handlers, records every attempt.

Guarantees:
- A job is claimed by one worker at a time (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL; SQLite's single writer elsewhere) under a lease that the worker
  renews while the handler runs. If the worker dies, the lease runs out and
  another worker takes the job again: jobs run at least once.
- Every outcome is written with the claim's lease token as a fence, so a worker
  that lost its lease cannot overwrite what the new holder recorded.
- A failing job is retried with exponential backoff and jitter up to its kind's
  limit, then marked dead. ``PermanentJobError`` marks it dead at once.
- On shutdown the worker stops claiming, lets running jobs finish within a
  grace period, and puts the rest back in the queue (one whose handler ignores
  its cancellation is left to its lease, so that it cannot hold the shutdown).
- Successes are written in batches (every few milliseconds, one transaction for
  all the jobs that finished meanwhile), and claims wait a few milliseconds after
  a wake-up to take several jobs at once. A worker that dies between a handler's
  end and that write runs the job again: the same at-least-once promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import Counter, Histogram
from sqlalchemy import and_, insert, select, update

from malipo.config import Settings
from malipo.core.clock import Clock, SystemClock
from malipo.core.http_client import http_client
from malipo.core.ids import new_id
from malipo.core.logging import get_logger, redact_text
from malipo.db import OUTBOX_CHANNEL, Database
from malipo.worker.models import AttemptOutcome, Job, JobAttempt, JobStatus
from malipo.worker.registry import (
    BatchContext,
    BatchItem,
    JobContext,
    PermanentJobError,
    UnknownJobKind,
    batched_kinds,
    ensure_periodic,
    get_kind,
)

log = get_logger("malipo.worker")


class GaveUp(Exception):
    """What a batch handler returns for a job that did its work and whose outcome is a failure
    (a merchant callback refused for the last time): the job is finished, not retried nor dead,
    and ``jobs.done`` counts it among the failed."""


JOBS_FINISHED = Counter("malipo_jobs_total", "Outbox job attempts by kind and outcome", ["kind", "outcome"])
JOB_SECONDS = Histogram("malipo_job_seconds", "Time spent in outbox job handlers", ["kind"])

MAX_ERROR_CHARS = 2000
# How long a woken worker waits before claiming, so that one claim takes what several commits
# queued; and how often finished jobs are written (one transaction per batch).
CLAIM_WINDOW_SECONDS = 0.005
SUCCESS_FLUSH_SECONDS = 0.01
# How long a stopping worker waits for its cancelled jobs to put their claims back.
RELEASE_SECONDS = 2.0


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with equal jitter.

    Half of the exponential step is fixed, half random, so delays always grow
    on average while workers that failed together do not retry in lockstep.
    """
    step = min(cap, base * (2 ** (attempt - 1)))
    return step / 2 + (rng or random).uniform(0, step / 2)


@dataclass(slots=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Clock | None = None,
        name: str | None = None,
        concurrency: int | None = None,
        poll_seconds: float | None = None,
        lease_seconds: float | None = None,
        shutdown_grace_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or SystemClock()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency or settings.worker_concurrency
        self.batch_size = settings.worker_batch_size
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.worker_poll_seconds
        self.lease = timedelta(seconds=lease_seconds or settings.worker_lease_seconds)
        self.grace = (
            shutdown_grace_seconds
            if shutdown_grace_seconds is not None
            else settings.worker_shutdown_grace_seconds
        )
        self._running: dict[asyncio.Task[None], tuple[ClaimedJob, uuid.UUID]] = {}
        self._running_batches: dict[asyncio.Task[None], list[tuple[ClaimedJob, uuid.UUID]]] = {}
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._http: httpx.AsyncClient | None = None
        self._loop_task: asyncio.Task[None] | None = None
        # Jobs whose handler succeeded, waiting for ``_flush_successes`` to record them.
        self._succeeded: list[tuple[ClaimedJob, uuid.UUID]] = []
        self._succeeded_event = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------

    def wake(self) -> None:
        """Look for due jobs now rather than at the next poll (called after commits)."""
        self._wakeup.set()

    async def start(self) -> None:
        """Run the loop in the background (inside ``malipo serve``)."""
        self._loop_task = asyncio.create_task(self.run(), name=f"worker {self.name}")

    def request_stop(self) -> None:
        """Stop claiming; ``run()`` then finishes or releases what it holds and returns."""
        self._stopping.set()
        self._wakeup.set()

    async def stop(self) -> None:
        self.request_stop()
        if self._loop_task is not None:
            await self._loop_task

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; then finish or release what is running."""
        log.info("worker.started", worker=self.name, concurrency=self.concurrency)
        try:
            async with self.db.transaction() as session:
                await ensure_periodic(session, self.settings, self.clock.now())
        except Exception:  # the database is away: the next worker start tries again
            log.exception("worker.periodic_not_scheduled")
        self._http = http_client(
            httpx.Timeout(30.0, connect=10.0), connections=self.settings.http_connections
        )
        renewer = asyncio.create_task(self._renew_leases())
        recorder = asyncio.create_task(self._record_successes())
        listener = await self._listen()
        try:
            while not self._stopping.is_set():
                # Single jobs up to the concurrency, jobs of batched kinds up to the batch size.
                full = False
                for batched, free in (
                    (True, self.batch_size - self._batched()),
                    (False, self.concurrency - len(self._running)),
                ):
                    if free <= 0:
                        continue
                    try:
                        claimed, token = await self._claim(free, batched=batched)
                    except Exception:
                        log.exception("worker.claim_failed", worker=self.name)
                        claimed, token = [], uuid.uuid4()
                    self._start(claimed, token)
                    full = full or len(claimed) == free
                if full:
                    continue  # there may be more due; slots free up as tasks finish
                woken = False
                with contextlib.suppress(TimeoutError):
                    woken = await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_seconds)
                if woken and not self._stopping.is_set():
                    await asyncio.sleep(CLAIM_WINDOW_SECONDS)  # let more commits and finishes gather
                self._wakeup.clear()
        finally:
            await self._drain()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            await self._flush_successes()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close(timeout=RELEASE_SECONDS)
            renewer.cancel()
            await self._http.aclose()
            log.info("worker.stopped", worker=self.name)

    async def _listen(self) -> Any:
        """On PostgreSQL, LISTEN for commits that enqueued jobs in other processes (see
        ``Database.notify_outbox``): they wake this worker at once. Polling still runs, so a
        lost connection only costs latency."""
        if self.db.dialect != "postgresql":
            return None
        import asyncpg

        url = self.db.engine.url.set(drivername="postgresql")
        try:
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_args: self.wake())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("worker.listen_failed", worker=self.name, error=str(exc))
            return None
        return conn

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now, run it to the end, return how many ran. For tests and tools."""
        if self._http is None:
            self._http = http_client(30.0, connections=self.settings.http_connections)
        claimed, token = await self._claim(limit or self.concurrency)
        await asyncio.gather(*self._start(claimed, token))
        await self._flush_successes()
        return len(claimed)

    def _start(self, claimed: list[ClaimedJob], token: uuid.UUID) -> list[asyncio.Task[None]]:
        """A task per job, or one per kind for kinds with a batch handler (each job keeps its slot)."""
        batches: dict[str, list[ClaimedJob]] = {}
        started: list[asyncio.Task[None]] = []
        for job in claimed:
            try:
                batched = get_kind(job.kind).batch_handler is not None
            except UnknownJobKind:
                batched = False
            if batched:
                batches.setdefault(job.kind, []).append(job)
                continue
            task = asyncio.create_task(self._execute(job, token), name=f"job {job.id}")
            self._running[task] = (job, token)
            task.add_done_callback(self._job_done)
            started.append(task)
        for kind, jobs in batches.items():
            task = asyncio.create_task(self._execute_batch(jobs, token), name=f"jobs {kind} x{len(jobs)}")
            self._running_batches[task] = [(job, token) for job in jobs]
            task.add_done_callback(self._batch_done)
            started.append(task)
        return started

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wakeup.set()

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running_batches.pop(task, None)
        self._wakeup.set()

    def _batched(self) -> int:
        return sum(len(jobs) for jobs in self._running_batches.values())

    def _held(self) -> list[tuple[ClaimedJob, uuid.UUID]]:
        held = list(self._running.values())
        for jobs in self._running_batches.values():
            held += jobs
        return held

    async def _drain(self) -> None:
        tasks = [*self._running, *self._running_batches]
        if not tasks:
            return
        log.info("worker.draining", worker=self.name, running=len(tasks), grace_seconds=self.grace)
        _done, pending = await asyncio.wait(tasks, timeout=self.grace)
        for task in pending:
            task.cancel()
        if not pending:
            return
        # A cancelled job releases its claim; one that ignores its cancellation is left running
        # rather than holding the shutdown: its lease, no longer renewed, runs out.
        _released, stuck = await asyncio.wait(pending, timeout=RELEASE_SECONDS)
        if stuck:
            log.error("worker.jobs_not_released", worker=self.name, jobs=len(stuck))

    # -- claiming ----------------------------------------------------------------

    async def _claim(self, limit: int, *, batched: bool | None = None) -> tuple[list[ClaimedJob], uuid.UUID]:
        """Claim up to ``limit`` due jobs: of batched kinds only, of the others only, or (None) any."""
        now = self.clock.now()
        token = uuid.uuid4()
        due = select(Job.id).where(Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]), Job.run_at <= now)
        if batched is not None:
            kinds = Job.kind.in_(batched_kinds())
            due = due.where(kinds if batched else ~kinds)
        due = due.order_by(Job.run_at).limit(limit).with_for_update(skip_locked=True)
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    update(Job)
                    .where(Job.id.in_(due))
                    .values(
                        status=JobStatus.RUNNING,
                        attempts=Job.attempts + 1,
                        lease_token=token,
                        locked_by=self.name,
                        run_at=now + self.lease,
                        updated_at=now,
                    )
                    .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            if not rows:
                return [], token
            retried = [row.id for row in rows if row.attempts > 1]
            if retried:
                # An attempt still open here belonged to a worker whose lease ran out.
                await session.execute(
                    update(JobAttempt)
                    .where(JobAttempt.job_id.in_(retried), JobAttempt.outcome.is_(None))
                    .values(outcome=AttemptOutcome.LEASE_EXPIRED, finished_at=now, error="lease expired")
                    .execution_options(synchronize_session=False)
                )
            claimed: list[ClaimedJob] = []
            attempts: list[dict[str, Any]] = []
            for row in rows:
                if row.attempts > row.max_attempts:
                    # Its last attempt died with its worker: nothing left to try.
                    await session.execute(
                        update(Job)
                        .where(Job.id == row.id)
                        .values(
                            status=JobStatus.DEAD,
                            attempts=row.max_attempts,
                            lease_token=None,
                            finished_at=now,
                            last_error="lease expired on the last attempt",
                        )
                        .execution_options(synchronize_session=False)
                    )
                    log.error("job.dead", job_id=str(row.id), kind=row.kind, reason="lease expired")
                    continue
                attempts.append(
                    {
                        "id": new_id(),
                        "job_id": row.id,
                        "number": row.attempts,
                        "worker": self.name,
                        "lease_token": token,
                        "started_at": now,
                    }
                )
                claimed.append(
                    ClaimedJob(row.id, row.kind, dict(row.payload), row.attempts, row.max_attempts)
                )
            if attempts:
                await session.execute(insert(JobAttempt), attempts)
        return claimed, token

    async def _renew_leases(self) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            held = self._held()
            if not held:
                continue
            try:
                async with self.db.transaction() as session:
                    for token in {tok for _job, tok in held}:
                        await session.execute(
                            update(Job)
                            .where(
                                Job.lease_token == token,
                                Job.status == JobStatus.RUNNING,
                                Job.id.in_([job.id for job, tok in held if tok == token]),
                            )
                            .values(run_at=self.clock.now() + self.lease)
                            .execution_options(synchronize_session=False)
                        )
            except Exception:
                log.exception("worker.lease_renewal_failed", worker=self.name)

    # -- running -----------------------------------------------------------------

    async def _execute(self, job: ClaimedJob, token: uuid.UUID) -> None:
        started = time.perf_counter()
        bound = log.bind(job_id=str(job.id), kind=job.kind, attempt=job.attempts, worker=self.name)
        try:
            spec = get_kind(job.kind)
            assert self._http is not None
            ctx = JobContext(
                job.id,
                job.kind,
                job.attempts,
                job.max_attempts,
                self.db,
                self.clock,
                self.settings,
                self._http,
            )
            if spec.handler is None:
                raise PermanentJobError(f"job kind {job.kind!r} only runs in batches")
            await spec.handler(ctx, job.payload)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job, token))
            bound.warning("job.released")
            raise
        except (PermanentJobError, UnknownJobKind) as exc:
            bound.exception("job.failed_permanently")
            await self._record_failure(job, token, exc, retry=False)
        except Exception as exc:
            bound.exception("job.failed")
            await self._record_failure(job, token, exc, retry=True)
        else:
            self._succeeded.append((job, token))
            self._succeeded_event.set()
            bound.info("job.succeeded", ms=round((time.perf_counter() - started) * 1000, 1))
        finally:
            JOB_SECONDS.labels(job.kind).observe(time.perf_counter() - started)

    async def _execute_batch(self, jobs: list[ClaimedJob], token: uuid.UUID) -> None:
        kind = jobs[0].kind
        started = time.perf_counter()
        bound = log.bind(kind=kind, jobs=len(jobs), worker=self.name)
        assert self._http is not None
        items = [BatchItem(job.id, job.payload, job.attempts, job.max_attempts) for job in jobs]
        ctx = BatchContext(self.db, self.clock, self.settings, self._http)
        try:
            handler = get_kind(kind).batch_handler
            assert handler is not None
            failed = await handler(ctx, items)
        except asyncio.CancelledError:
            for job in jobs:
                await asyncio.shield(self._release(job, token))
            bound.warning("jobs.released")
            raise
        except Exception as exc:  # the batch as a whole failed: every job tries again
            bound.exception("jobs.failed")
            failed = {job.id: exc for job in jobs}
        finally:
            JOB_SECONDS.labels(kind).observe(time.perf_counter() - started)
        for job in jobs:
            exc = failed.get(job.id)
            if exc is None or isinstance(exc, GaveUp):  # done: a given-up job is finished, not retried
                self._succeeded.append((job, token))
                continue
            permanent = isinstance(exc, PermanentJobError)
            log.warning("job.failed", job_id=str(job.id), kind=kind, error=str(exc), permanent=permanent)
            await self._record_failure(job, token, exc, retry=not permanent)
        self._succeeded_event.set()
        # A job that gave up (a merchant callback refused for the last time) counts as failed here.
        bound.info("jobs.done", failed=len(failed), ms=round((time.perf_counter() - started) * 1000, 1))

    def _fence(self, job: ClaimedJob, token: uuid.UUID) -> Any:
        return and_(Job.id == job.id, Job.lease_token == token, Job.status == JobStatus.RUNNING)

    async def _finish(
        self,
        job: ClaimedJob,
        token: uuid.UUID,
        job_values: dict[str, Any],
        outcome: AttemptOutcome,
        error: str | None,
    ) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Job)
                .where(self._fence(job, token))
                .values(updated_at=now, **job_values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                log.warning("job.lease_lost", job_id=str(job.id), kind=job.kind, worker=self.name)
                return
            await session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == job.id, JobAttempt.lease_token == token)
                .values(outcome=outcome, finished_at=now, error=error)
                .execution_options(synchronize_session=False)
            )
        JOBS_FINISHED.labels(job.kind, outcome.value).inc()

    async def _record_successes(self) -> None:
        """Write finished jobs in batches until cancelled (``run`` flushes the rest after)."""
        while True:
            await self._succeeded_event.wait()
            await asyncio.sleep(SUCCESS_FLUSH_SECONDS)
            try:
                await self._flush_successes()
            except Exception:  # the database is away: keep them and try again
                log.exception("worker.record_failed", worker=self.name)
                await asyncio.sleep(self.poll_seconds)

    async def _flush_successes(self) -> None:
        """Mark every job in ``_succeeded`` succeeded, fenced by its claim's lease token."""
        batch, self._succeeded = self._succeeded, []
        self._succeeded_event.clear()
        if not batch:
            return
        recorded: list[ClaimedJob] = []
        by_token: dict[uuid.UUID, list[ClaimedJob]] = {}
        for job, token in batch:
            by_token.setdefault(token, []).append(job)
        now = self.clock.now()
        try:
            async with self.db.transaction() as session:
                for token, jobs in by_token.items():
                    ids = [job.id for job in jobs]
                    done = (
                        (
                            await session.execute(
                                update(Job)
                                .where(
                                    Job.id.in_(ids), Job.lease_token == token, Job.status == JobStatus.RUNNING
                                )
                                .values(
                                    status=JobStatus.SUCCEEDED,
                                    lease_token=None,
                                    finished_at=now,
                                    updated_at=now,
                                )
                                .returning(Job.id)
                                .execution_options(synchronize_session=False)
                            )
                        )
                        .scalars()
                        .all()
                    )
                    done_ids = set(done)
                    for job in jobs:
                        if job.id in done_ids:
                            recorded.append(job)
                        else:  # its lease ran out and another worker holds it now
                            log.warning("job.lease_lost", job_id=str(job.id), kind=job.kind, worker=self.name)
                    if done:
                        await session.execute(
                            update(JobAttempt)
                            .where(JobAttempt.job_id.in_(done), JobAttempt.lease_token == token)
                            .values(outcome=AttemptOutcome.SUCCEEDED, finished_at=now)
                            .execution_options(synchronize_session=False)
                        )
        except BaseException:
            self._succeeded[:0] = batch  # not written: the next flush tries again
            self._succeeded_event.set()
            raise
        for job in recorded:
            JOBS_FINISHED.labels(job.kind, AttemptOutcome.SUCCEEDED.value).inc()

    async def _record_failure(
        self, job: ClaimedJob, token: uuid.UUID, exc: BaseException, *, retry: bool
    ) -> None:
        error = redact_text(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        now = self.clock.now()
        values: dict[str, Any] = {"lease_token": None, "last_error": error}
        if retry and job.attempts < job.max_attempts:
            try:
                spec = get_kind(job.kind)
                base, cap = spec.base_delay, spec.max_delay
            except UnknownJobKind:
                base, cap = 2.0, 3600.0
            delay = backoff_delay(job.attempts, base, cap)
            # A rail that asked to be left alone for a while (a rate limit) is: never sooner.
            asked = getattr(exc, "retry_after", None)
            if isinstance(asked, int | float) and asked > delay:
                delay = float(asked)
            values.update(status=JobStatus.PENDING, run_at=now + timedelta(seconds=delay))
            log.info("job.retry_scheduled", job_id=str(job.id), kind=job.kind, delay_seconds=round(delay, 3))
        else:
            values.update(status=JobStatus.DEAD, finished_at=now)
            log.error("job.dead", job_id=str(job.id), kind=job.kind, attempts=job.attempts, error=error)
        await self._finish(job, token, values, AttemptOutcome.FAILED, error)

    async def _release(self, job: ClaimedJob, token: uuid.UUID) -> None:
        # An interrupted attempt is not the job's fault: it does not count against its limit.
        values = {
            "status": JobStatus.PENDING,
            "lease_token": None,
            "run_at": self.clock.now(),
            "attempts": Job.attempts - 1,
        }
        await self._finish(job, token, values, AttemptOutcome.RELEASED, "worker shut down")
