"""Job handlers for the outbox tests; subprocess workers load them via MALIPO_JOB_MODULES."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from malipo.worker.registry import (
    BatchContext,
    BatchItem,
    JobContext,
    PermanentJobError,
    batch_job_handler,
    job_handler,
)


def append_line(path: str, line: str) -> None:
    # O_APPEND writes of one short line are atomic across processes.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@job_handler("test.append", max_attempts=3)
async def append(ctx: JobContext, payload: dict[str, Any]) -> None:
    append_line(payload["path"], str(ctx.job_id))


@job_handler("test.fail", max_attempts=4, base_delay=1.0, max_delay=100.0)
async def always_fail(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise RuntimeError(f"boom on attempt {ctx.attempt}")


@job_handler("test.permanent", max_attempts=5)
async def permanent(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise PermanentJobError("the merchant's callback URL is not valid")


@job_handler("test.slow", max_attempts=3)
async def slow(ctx: JobContext, payload: dict[str, Any]) -> None:
    Path(payload["started"]).touch()
    await asyncio.sleep(payload["seconds"])
    append_line(payload["path"], str(ctx.job_id))


@job_handler("test.hang_first", max_attempts=3)
async def hang_first(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The first attempt announces itself and hangs (its worker is then killed); later ones finish."""
    marker = Path(payload["started"])
    if not marker.exists():
        marker.touch()
        await asyncio.sleep(3600)
    append_line(payload["path"], str(ctx.job_id))


@job_handler("test.gated", max_attempts=3)
async def gated(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Announces itself (a file named after the job), then waits for the ``gate`` file to appear."""
    Path(payload["started"], str(ctx.job_id)).touch()
    while not Path(payload["gate"]).exists():  # noqa: ASYNC110  (another process makes the file)
        await asyncio.sleep(0.02)
    append_line(payload["path"], str(ctx.job_id))


@job_handler("test.stubborn", max_attempts=3)
async def stubborn(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Announces itself and ignores its cancellation, as a badly written handler may, until the
    ``gate`` file appears (never, in a process the test stops)."""
    Path(payload["started"]).touch()
    while not Path(payload["gate"]).exists():
        try:
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            continue


@batch_job_handler("test.batch", max_attempts=2)
async def batch(ctx: BatchContext, items: list[BatchItem]) -> dict[uuid.UUID, BaseException]:
    """Appends one line per call with every job's id; ``fail`` / ``permanent`` payloads fail."""
    append_line(items[0].payload["path"], " ".join(sorted(str(item.job_id) for item in items)))
    failed: dict[uuid.UUID, BaseException] = {}
    for item in items:
        if item.payload.get("fail"):
            failed[item.job_id] = RuntimeError(f"failed on attempt {item.attempt}")
        elif item.payload.get("permanent"):
            failed[item.job_id] = PermanentJobError("never valid")
    return failed
