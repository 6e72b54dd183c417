"""The audit log: every API call, who made it, for which client, and how it ended.

Recording must not slow the request path, so the request middleware only
appends an entry to an in-memory buffer; a background task writes the buffer
in one multi-row INSERT every ``flush_seconds`` (sooner when it fills). The
price: a process killed hard loses at most one interval of entries. A clean
shutdown flushes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import insert

from malipo.core.ids import new_id
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.identity.models import AuditLog

log = get_logger("malipo.audit")

AUDITED_PREFIXES = ("/api/", "/mailer")


@dataclass(slots=True)
class AuditEntry:
    at: datetime
    request_id: str
    method: str
    route: str
    path: str
    status: int
    latency_ms: float
    ip: str | None
    principal_type: str | None = None
    principal_id: uuid.UUID | None = None
    api_user_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    mode: str | None = None


# dataclasses.asdict deep-copies every value; the entries hold only immutable scalars.
_FIELDS = tuple(f.name for f in fields(AuditEntry))


class AuditRecorder:
    def __init__(self, db: Database, *, flush_seconds: float = 1.0, max_buffer: int = 1000) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._buffer: list[AuditEntry] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: AuditEntry) -> None:
        """Keep ``entry`` for the next write. Never blocks, never raises."""
        self._buffer.append(entry)
        if len(self._buffer) >= self.max_buffer:
            self._full.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), timeout=self.flush_seconds)
            self._full.clear()
            await self.flush()

    async def flush(self) -> int:
        """Write what is buffered; return how many entries were written."""
        if not self._buffer:
            return 0
        batch, self._buffer = self._buffer, []
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    insert(AuditLog), [{"id": new_id(), **{f: getattr(e, f) for f in _FIELDS}} for e in batch]
                )
        except Exception:
            # The log keeps the loss visible; requests are never failed for their audit entry.
            log.exception("audit.flush_failed", entries=len(batch))
            return 0
        return len(batch)
