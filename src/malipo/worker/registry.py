"""Job kinds and their handlers, and ``enqueue``: how a service asks for a side effect.

A domain's ``tasks.py`` declares its handlers with ``@job_handler("kind")``. A
handler takes ids from its payload, loads fresh state, opens its own
transactions through ``ctx.db`` and must be safe to run twice: a job runs at
least once, and again if its worker dies before recording the outcome.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.ids import new_id
from malipo.db import OUTBOX_FLAG
from malipo.worker.models import Job, JobStatus

if TYPE_CHECKING:
    import httpx

    from malipo.config import Settings
    from malipo.core.clock import Clock
    from malipo.db import Database


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: uuid.UUID
    kind: str
    attempt: int
    max_attempts: int
    db: Database
    clock: Clock
    settings: Settings
    http: httpx.AsyncClient


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One job of a batch: its id, payload and which attempt this is."""

    job_id: uuid.UUID
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


@dataclass(frozen=True, slots=True)
class BatchContext:
    db: Database
    clock: Clock
    settings: Settings
    http: httpx.AsyncClient


# Runs every job of one kind claimed together; returns the jobs that failed, by id, with why
# (``PermanentJobError`` marks a job dead, anything else retries it). The rest succeeded.
BatchHandler = Callable[[BatchContext, list[BatchItem]], Awaitable[dict[uuid.UUID, BaseException]]]


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    handler: Handler | None
    max_attempts: int
    base_delay: float
    max_delay: float
    batch_handler: BatchHandler | None = None


class PermanentJobError(Exception):
    """Raised by a handler when retrying cannot help: the job is marked dead at once."""


class UnknownJobKind(LookupError):
    pass


_KINDS: dict[str, JobKind] = {}

# Modules whose import registers the built-in handlers (domains add theirs here).
BUILTIN_JOB_MODULES: tuple[str, ...] = (
    "malipo.email.tasks",
    "malipo.collections.tasks",
    "malipo.collections.c2b.tasks",
    "malipo.webhooks.tasks",
    "malipo.api.payhero.mappers",  # the Pay Hero bodies of merchant callbacks (webhook renderers)
    "malipo.payouts.tasks",
    "malipo.disbursements.tasks",
    "malipo.transfers.tasks",
    "malipo.cards.tasks",
    "malipo.checkout.tasks",
    "malipo.sms.tasks",
    "malipo.whatsapp.tasks",
    "malipo.refunds.tasks",
    "malipo.railbalances.tasks",
    "malipo.reconciliation.tasks",
)


def job_handler(
    name: str, *, max_attempts: int = 10, base_delay: float = 2.0, max_delay: float = 3600.0
) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of jobs of kind ``name``."""

    def register(fn: Handler) -> Handler:
        existing = _KINDS.get(name)
        if existing is not None and existing.handler is not fn:
            raise ValueError(f"job kind {name!r} is already registered")
        _KINDS[name] = JobKind(name, fn, max_attempts, base_delay, max_delay)
        return fn

    return register


def batch_job_handler(
    name: str, *, max_attempts: int = 10, base_delay: float = 2.0, max_delay: float = 3600.0
) -> Callable[[BatchHandler], BatchHandler]:
    """Register ``fn`` as the handler of jobs of kind ``name``, called with all such jobs that one
    claim took: one transaction for many jobs where a handler per job would open one each.
    The same rules as ``job_handler``: each job runs at least once and must be safe to run twice."""

    def register(fn: BatchHandler) -> BatchHandler:
        existing = _KINDS.get(name)
        if existing is not None and existing.batch_handler is not fn:
            raise ValueError(f"job kind {name!r} is already registered")
        _KINDS[name] = JobKind(name, None, max_attempts, base_delay, max_delay, batch_handler=fn)
        return fn

    return register


# Kinds that run again and again: each run enqueues the next itself; a worker that starts makes
# sure one is waiting (``ensure_periodic``). The function gives the interval in seconds (0: off).
_PERIODIC: dict[str, Callable[[Settings], float]] = {}


def periodic_job(name: str, interval: Callable[[Settings], float]) -> None:
    """Declare ``name`` (a registered kind) periodic, every ``interval(settings)`` seconds."""
    _PERIODIC[name] = interval


def periodic_interval(name: str, settings: Settings) -> float:
    found = _PERIODIC.get(name)
    return found(settings) if found is not None else 0.0


async def ensure_periodic(session: AsyncSession, settings: Settings, now: datetime) -> list[str]:
    """Enqueue one job of each periodic kind that has none waiting (first run after its interval)."""
    added = []
    for name, interval in sorted(_PERIODIC.items()):
        seconds = interval(settings)
        if seconds <= 0:
            continue
        waiting = await session.scalar(
            select(Job.id)
            .where(Job.kind == name, Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]))
            .limit(1)
        )
        if waiting is None:
            enqueue(session, name, {"periodic": True}, now=now, delay=timedelta(seconds=seconds))
            added.append(name)
    return added


def get_kind(name: str) -> JobKind:
    if name not in _KINDS:
        # Services enqueue by kind name and never import their tasks: the handlers may not be loaded yet.
        load_job_modules()
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownJobKind(name) from None


def batched_kinds() -> list[str]:
    """The registered kinds that run in batches."""
    return sorted(name for name, kind in _KINDS.items() if kind.batch_handler is not None)


def load_job_modules(extra: Iterable[str] = ()) -> None:
    for module in (*BUILTIN_JOB_MODULES, *extra):
        importlib.import_module(module)


def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    delay: timedelta | None = None,
) -> Job:
    """Add a job to ``session``'s transaction: it exists only if that transaction commits."""
    spec = get_kind(kind)
    job = Job(
        id=new_id(),
        kind=kind,
        payload=payload,
        status=JobStatus.PENDING,
        attempts=0,
        max_attempts=spec.max_attempts,
        run_at=now + delay if delay else now,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.info[OUTBOX_FLAG] = True
    return job


async def enqueue_many(
    session: AsyncSession,
    kind: str,
    payloads: list[dict[str, Any]],
    *,
    now: datetime,
    delays: list[timedelta] | None = None,
) -> list[uuid.UUID]:
    """Add many jobs of one kind in one multi-row INSERT (bulk sends); same guarantees as ``enqueue``.

    ``delays``, when given, holds one delay per payload (how a bulk send is paced).
    """
    if not payloads:
        return []
    if delays is not None and len(delays) != len(payloads):
        raise ValueError("one delay per payload")
    spec = get_kind(kind)
    rows = []
    for index, payload in enumerate(payloads):
        run_at = now + delays[index] if delays is not None else now
        rows.append(
            {
                "id": new_id(),
                "kind": kind,
                "payload": payload,
                "status": JobStatus.PENDING.value,
                "attempts": 0,
                "max_attempts": spec.max_attempts,
                "run_at": run_at,
                "created_at": now,
                "updated_at": now,
            }
        )
    await session.execute(insert(Job.__table__), rows)
    session.info[OUTBOX_FLAG] = True
    return [row["id"] for row in rows]
