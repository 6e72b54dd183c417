"""Group commit: what arrives while one transaction is being written makes up the next one.

A burst of small writes (requests, provider callbacks) costs a commit each when each has its own
transaction (an fsync on SQLite, a round trip on PostgreSQL) and queues them all on the database
and on the rows they share (a merchant's wallet, the clearing account). A :class:`GroupCommit`
writes them many at a time instead, with one function that handles a list.

What a caller of :meth:`GroupCommit.submit` can rely on:
- it gets its item's result only after the transaction holding it has committed, so nobody is
  told of a write that could still be lost;
- an item the batch function refuses (it returns an exception in that item's place, and writes
  nothing for it) raises that exception to its caller alone; the rest of the batch commits;
- if the transaction fails, the items are either all failed with the error (the default: the
  sender repeats them) or, with ``alone_after_failure``, each tried again in a transaction of
  its own, so that one item's conflict is that item's error only;
- items are handled in the order they arrived.

No timer: an idle process writes a lone item at once; under load a batch is whatever queued up
during the previous write, up to ``max_batch``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.logging import get_logger
from malipo.db import Database

__all__ = ["BatchFunction", "GroupCommit"]

log = get_logger("malipo.group_commit")

T = TypeVar("T")
R = TypeVar("R")

# Handles a batch in the given session: one result, or the exception refusing it, per item.
BatchFunction = Callable[[AsyncSession, list[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    """One per process and database for each kind of write; ``submit`` from any request."""

    def __init__(
        self,
        db: Database,
        apply: BatchFunction[T, R],
        *,
        name: str,
        max_batch: int = 500,
        alone_after_failure: bool = False,
    ) -> None:
        self.db = db
        self.name = name
        self.max_batch = max(1, max_batch)
        self._apply = apply
        self._alone_after_failure = alone_after_failure
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write ``item`` with whatever else is waiting; its result once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name=self.name)
            self._writer.add_done_callback(self._writer_stopped)
        return await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                await self._write(batch)
            except asyncio.CancelledError:  # the process is stopping: rolled back, so unanswered
                _fail(batch, None)
                raise
            except Exception as exc:
                if not self._alone_after_failure or len(batch) == 1:
                    log.exception("group_commit.failed", batch=self.name, items=len(batch))
                    _fail(batch, exc)
                    continue
                log.warning("group_commit.retried_alone", batch=self.name, items=len(batch), error=str(exc))
                for one in batch:
                    try:
                        await self._write([one])
                    except asyncio.CancelledError:
                        _fail([one], None)
                        raise
                    except Exception as alone_exc:
                        log.exception("group_commit.failed", batch=self.name, items=1)
                        _fail([one], alone_exc)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        async with self.db.transaction() as session:
            results = await self._apply(session, [item for item, _future in batch])
        # Committed: only now may each caller answer.
        for (_item, future), result in zip(batch, results, strict=True):
            if future.done():  # its request may have gone away meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _writer_stopped(self, task: asyncio.Task[None]) -> None:
        if task is not self._writer:
            return  # a new writer has taken over what waits
        error = None if task.cancelled() else task.exception()
        if not task.cancelled() and error is None:
            return  # it wrote everything there was
        # Cancelled (maybe before it even started) or broken: what still waits is not answered.
        stranded, self._waiting = self._waiting, []
        _fail(stranded, error if isinstance(error, Exception) else None)


def _fail(batch: Sequence[tuple[object, asyncio.Future[R]]], exc: Exception | None) -> None:
    for _item, future in batch:
        if future.done():
            continue
        if exc is None:
            future.cancel()
        else:
            future.set_exception(exc)
