"""Africa's Talking delivery reports applied in batches, each answered only once it is committed.

A bulk send's reports arrive as thousands of small HTTP requests within seconds. One transaction
per report costs a commit each (an fsync on SQLite, a round trip on PostgreSQL) and queues them
all on the database; here the reports that arrive while one batch is being written make up the
next batch, applied in one transaction by ``sms.apply_delivery_reports`` (group commit).

What a caller of :meth:`DeliveryReportBatcher.apply` can rely on:
- it returns its report's outcome only after the transaction holding it has committed, so a
  provider is never acknowledged for a report that could still be lost;
- if that transaction fails, every report in it gets the error (none is acknowledged; the
  provider sends them again, and applying a report twice changes nothing);
- reports are applied in the order they arrived, so a later report about a message sees what
  an earlier one did.

No timer: an idle gateway writes a lone report at once; under load a batch is whatever queued up
during the previous write, up to ``max_batch``.
"""

from __future__ import annotations

import asyncio

from malipo.core.clock import Clock
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.messaging import sms
from malipo.providers.africastalking.client import DeliveryReport

__all__ = ["DeliveryReportBatcher"]

log = get_logger("malipo.messaging.delivery_reports")

_Waiting = tuple[DeliveryReport, "asyncio.Future[sms.ReportOutcome]"]


class DeliveryReportBatcher:
    """One per process and database: the callback route hands it every delivery report."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 500) -> None:
        self.db = db
        self.clock = clock
        self.max_batch = max(1, max_batch)
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def apply(self, report: DeliveryReport) -> sms.ReportOutcome:
        """Apply ``report`` with whatever else is waiting; its outcome once committed."""
        future: asyncio.Future[sms.ReportOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((report, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name="sms delivery reports")
            self._writer.add_done_callback(self._writer_stopped)
        return await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                async with self.db.transaction() as session:
                    outcomes = await sms.apply_delivery_reports(
                        session, [report for report, _future in batch], now=self.clock.now()
                    )
            except asyncio.CancelledError:  # the process is stopping: rolled back, so unanswered
                _fail(batch, None)
                raise
            except Exception as exc:
                log.exception("sms.delivery_reports_not_applied", reports=len(batch))
                _fail(batch, exc)
                continue
            # Committed: only now may each caller acknowledge its report.
            for (_report, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():  # its request may have gone away meanwhile
                    future.set_result(outcome)

    def _writer_stopped(self, task: asyncio.Task[None]) -> None:
        if task is not self._writer:
            return  # a new writer has taken over what waits
        error = None if task.cancelled() else task.exception()
        if not task.cancelled() and error is None:
            return  # it wrote everything there was
        # Cancelled (maybe before it even started) or broken: what still waits is not acknowledged.
        stranded, self._waiting = self._waiting, []
        _fail(stranded, error if isinstance(error, Exception) else None)


def _fail(batch: list[_Waiting], exc: Exception | None) -> None:
    for _report, future in batch:
        if future.done():
            continue
        if exc is None:
            future.cancel()
        else:
            future.set_exception(exc)
