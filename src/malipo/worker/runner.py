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
  grace period, and puts the rest back in the queue.
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
from sqlalchemy import and_, select, update

from malipo.config import Settings
from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import get_logger, redact_text
from malipo.db import Database
from malipo.worker.models import AttemptOutcome, Job, JobAttempt, JobStatus
from malipo.worker.registry import JobContext, PermanentJobError, UnknownJobKind, get_kind

log = get_logger("malipo.worker")

JOBS_FINISHED = Counter("malipo_jobs_total", "Outbox job attempts by kind and outcome", ["kind", "outcome"])
JOB_SECONDS = Histogram("malipo_job_seconds", "Time spent in outbox job handlers", ["kind"])

MAX_ERROR_CHARS = 2000


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
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.worker_poll_seconds
        self.lease = timedelta(seconds=lease_seconds or settings.worker_lease_seconds)
        self.grace = (
            shutdown_grace_seconds
            if shutdown_grace_seconds is not None
            else settings.worker_shutdown_grace_seconds
        )
        self._running: dict[asyncio.Task[None], tuple[ClaimedJob, uuid.UUID]] = {}
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._http: httpx.AsyncClient | None = None
        self._loop_task: asyncio.Task[None] | None = None

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
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        renewer = asyncio.create_task(self._renew_leases())
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._running)
                claimed: list[ClaimedJob] = []
                if free > 0:
                    try:
                        claimed, token = await self._claim(free)
                    except Exception:
                        log.exception("worker.claim_failed", worker=self.name)
                        claimed, token = [], uuid.uuid4()
                    for job in claimed:
                        task = asyncio.create_task(self._execute(job, token), name=f"job {job.id}")
                        self._running[task] = (job, token)
                        task.add_done_callback(self._job_done)
                if free > 0 and len(claimed) == free:
                    continue  # there may be more due; slots free up as tasks finish
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_seconds)
                self._wakeup.clear()
        finally:
            await self._drain()
            renewer.cancel()
            await self._http.aclose()
            log.info("worker.stopped", worker=self.name)

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now, run it to the end, return how many ran. For tests and tools."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0)
        claimed, token = await self._claim(limit or self.concurrency)
        await asyncio.gather(*(self._execute(job, token) for job in claimed))
        return len(claimed)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wakeup.set()

    async def _drain(self) -> None:
        if not self._running:
            return
        tasks = list(self._running)
        log.info("worker.draining", worker=self.name, running=len(tasks), grace_seconds=self.grace)
        _done, pending = await asyncio.wait(tasks, timeout=self.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # -- claiming ----------------------------------------------------------------

    async def _claim(self, limit: int) -> tuple[list[ClaimedJob], uuid.UUID]:
        now = self.clock.now()
        token = uuid.uuid4()
        due = (
            select(Job.id)
            .where(Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]), Job.run_at <= now)
            .order_by(Job.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
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
            ids = [row.id for row in rows]
            # An attempt still open here belonged to a worker whose lease ran out.
            await session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id.in_(ids), JobAttempt.outcome.is_(None))
                .values(outcome=AttemptOutcome.LEASE_EXPIRED, finished_at=now, error="lease expired")
                .execution_options(synchronize_session=False)
            )
            claimed: list[ClaimedJob] = []
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
                session.add(
                    JobAttempt(
                        job_id=row.id,
                        number=row.attempts,
                        worker=self.name,
                        lease_token=token,
                        started_at=now,
                    )
                )
                claimed.append(
                    ClaimedJob(row.id, row.kind, dict(row.payload), row.attempts, row.max_attempts)
                )
        return claimed, token

    async def _renew_leases(self) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            held = list(self._running.values())
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
            await self._record_success(job, token)
            bound.info("job.succeeded", ms=round((time.perf_counter() - started) * 1000, 1))
        finally:
            JOB_SECONDS.labels(job.kind).observe(time.perf_counter() - started)

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

    async def _record_success(self, job: ClaimedJob, token: uuid.UUID) -> None:
        values = {"status": JobStatus.SUCCEEDED, "lease_token": None, "finished_at": self.clock.now()}
        await self._finish(job, token, values, AttemptOutcome.SUCCEEDED, None)

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
