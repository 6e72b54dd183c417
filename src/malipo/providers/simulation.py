"""What the simulators that answer later share: their background tasks, the HTTP client they call
back with, and the delivery of a callback with retries (recorded for tests, logged without the
secret path)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from malipo.core.http_client import http_client
from malipo.core.logging import get_logger

__all__ = ["CallbackDelivery", "CallbackSender", "origin"]


@dataclass(slots=True)
class CallbackDelivery:
    """One callback the simulator sent (or tried to)."""

    url: str
    body: dict[str, Any]
    attempts: int = 0
    delivered: bool = False


def origin(url: str) -> str:
    """Where a URL goes, without its path (callback paths hold the receiver's secret token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class CallbackSender:
    """Background tasks and callbacks of a simulator: it logs to ``logger``, its events prefixed
    with ``events`` (``daraja_sim.callback.delivered``)."""

    def __init__(
        self, *, logger: str, events: str, callback_attempts: int, callback_backoff: float,
        callback_timeout: float,
    ) -> None:  # fmt: skip
        self.callback_attempts = max(1, callback_attempts)
        self.callback_backoff = callback_backoff
        self.callback_timeout = callback_timeout
        self.deliveries: list[CallbackDelivery] = []
        self._log = get_logger(logger)
        self._events = events
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel pending outcomes and callbacks, close the callback client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def pending(self) -> int:
        """How many outcomes and callbacks are still scheduled."""
        return len(self._tasks)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, kept until it ends (and cancelled by ``aclose``)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _callback_client(self) -> httpx.AsyncClient:
        if self._http is None:
            # The receivers are near (loopback in tests and `make run`): a few connections do.
            self._http = http_client(self.callback_timeout, connections=8)
        return self._http

    async def _deliver(self, url: str, body: dict[str, Any]) -> None:
        """POST ``body`` to ``url``, retrying with a doubling backoff while the receiver fails."""
        delivery = CallbackDelivery(url=url, body=body)
        self.deliveries.append(delivery)
        target = origin(url)
        failure = ""
        for attempt in range(1, self.callback_attempts + 1):
            delivery.attempts = attempt
            try:
                response = await self._callback_client().post(url, json=body)
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            else:
                if response.is_success:
                    delivery.delivered = True
                    self._log.info(f"{self._events}.callback.delivered", target=target, attempts=attempt)
                    return
                failure = f"HTTP {response.status_code}"
            if attempt < self.callback_attempts:
                await asyncio.sleep(self.callback_backoff * 2 ** (attempt - 1))
        self._log.warning(
            f"{self._events}.callback.undelivered",
            target=target,
            attempts=self.callback_attempts,
            error=failure,
        )
