"""How ``malipo serve`` runs uvicorn and stops on SIGTERM (or Ctrl+C) within its grace period.

On the signal it stops listening and closes idle connections (uvicorn), tells the app to stop
taking work (the in-process worker stops claiming jobs and starts finishing or releasing the ones
it runs), and waits for the requests in flight for at most ``MALIPO_SHUTDOWN_GRACE_SECONDS``.
Requests still running then are cancelled (their transactions roll back; their clients get no
success), the app's shutdown writes what it buffers, and the process exits 0.

Why a bound at all: uvicorn's own default waits for every request in flight, however long, so a
client that stalls mid-request (a body that never ends, a download it stops reading) kept
``malipo serve`` alive until it was killed. And because nothing in Python can stop a task that
ignores its cancellation, a shutdown still stuck :data:`FORCE_EXIT_MARGIN_SECONDS` after the grace
period exits at once with code 1: what was committed stays committed, and jobs still marked
running go back to the queue when their lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn

from malipo.core.logging import get_logger

log = get_logger("malipo.serve")

FORCE_EXIT_MARGIN_SECONDS = 5.0
FORCED_EXIT_CODE = 1
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """A uvicorn server that calls ``on_signal`` when asked to stop, bounds its shutdown by the
    config's ``timeout_graceful_shutdown``, and exits 0 after a clean one (uvicorn re-raises the
    signal once it has stopped, which ends the process as killed by it: -15 rather than 0)."""

    def __init__(self, config: uvicorn.Config, *, on_signal: Callable[[], None]) -> None:
        # uvicorn's default (None) waits for the requests in flight for ever.
        if config.timeout_graceful_shutdown is None:
            raise ValueError("GracefulServer needs a config with timeout_graceful_shutdown")
        super().__init__(config)
        self.grace_seconds: float = config.timeout_graceful_shutdown
        self._on_signal = on_signal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: threading.Timer | None = None

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets=sockets)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)  # a second Ctrl+C skips the waiting, as in uvicorn
        if first and self._loop is not None:
            # Not here: a signal handler interrupts whatever held a lock (logging, threading).
            self._loop.call_soon_threadsafe(self._stopping, signal.Signals(sig).name)

    def _stopping(self, signal_name: str) -> None:
        log.info("serve.stopping", signal=signal_name, grace_seconds=self.grace_seconds)
        self._watchdog = threading.Timer(self.grace_seconds + FORCE_EXIT_MARGIN_SECONDS, self._force_exit)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._on_signal()

    def _force_exit(self) -> None:
        log.error(
            "serve.shutdown_forced",
            after_seconds=self.grace_seconds + FORCE_EXIT_MARGIN_SECONDS,
            hint="what was committed is kept; jobs still running return to the queue at their lease's end",
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(FORCED_EXIT_CODE)
