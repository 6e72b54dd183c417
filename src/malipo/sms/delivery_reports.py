"""Africa's Talking delivery reports applied in batches, each answered only once it is committed.

A bulk send's reports arrive as thousands of small HTTP requests within seconds. One transaction
per report costs a commit each and queues them all on the database; here they go through a
:class:`~malipo.db.group_commit.GroupCommit` (the reports that arrive while one batch is being
written make up the next batch, applied in one transaction by ``sms.apply_delivery_reports``).

What a caller of :meth:`DeliveryReportBatcher.apply` can rely on:
- it returns its report's outcome only after the transaction holding it has committed, so a
  provider is never acknowledged for a report that could still be lost;
- if that transaction fails, every report in it gets the error (none is acknowledged; the
  provider sends them again, and applying a report twice changes nothing);
- reports are applied in the order they arrived, so a later report about a message sees what
  an earlier one did.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.clock import Clock
from malipo.db import Database
from malipo.db.group_commit import GroupCommit
from malipo.providers.africastalking.client import DeliveryReport
from malipo.sms import service as sms

__all__ = ["DeliveryReportBatcher"]


class DeliveryReportBatcher(GroupCommit[DeliveryReport, sms.ReportOutcome]):
    """One per process and database: the callback route hands it every delivery report."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 500) -> None:
        async def apply(session: AsyncSession, reports: list[DeliveryReport]) -> list[sms.ReportOutcome]:
            return await sms.apply_delivery_reports(session, reports, now=clock.now())

        super().__init__(db, apply, name="sms delivery reports", max_batch=max_batch)
        self.clock = clock

    async def apply(self, report: DeliveryReport) -> sms.ReportOutcome:
        """Apply ``report`` with whatever else is waiting; its outcome once committed."""
        return await self.submit(report)
