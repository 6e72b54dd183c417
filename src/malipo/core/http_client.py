"""The outgoing HTTP client malipo's worker and simulators share.

Code everywhere speaks httpx (``httpx.AsyncClient``: requests, responses, errors); underneath,
the connections are aiohttp's, through httpx-aiohttp's transport. Measured on this project's
machines (``bench/http_client.py``; bench/README.md, "HTTP client"), httpx's own transport
(httpcore) cost ~2 ms of CPU per request to a local peer against ~0.4 ms through aiohttp: the
worker's sends to the rails and the simulators' callbacks were a fifth of malipo's CPU in a
disbursement batch.

A client keeps up to ``connections`` connections open and lets at most that many requests in;
the others wait on a semaphore, which costs nothing per waiter and, unlike a wait inside the
connection pool (aiohttp counts that against the connect timeout), never times out: a burst of
thousands of callbacks waits its turn rather than failing. Few connections suit a peer on the
same machine or network (a simulator: 8); a provider a second away needs as many as requests in
flight (``MALIPO_HTTP_CONNECTIONS`` for the worker).

One correction to httpx-aiohttp: it reports every aiohttp connection error as ``ConnectTimeout``,
including a peer that dropped the connection after the request went out. malipo's rails read a
connect error as "the request never reached the rail" (safe to send again), so errors are raised
as httpcore raises them (``_as_httpx``): a connect error only while connecting; a dropped
connection is a ``RemoteProtocolError``, any other failure mid-exchange a ``ReadError`` (sent, and
no answer: the rail may have taken it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

CONNECTIONS = 32
# Idle connections are closed before a peer running uvicorn (5 s by default) closes them, so a
# request is never written to a connection its peer is closing.
KEEPALIVE_SECONDS = 4.0


class _Slot(httpx.AsyncByteStream):
    """A response body that gives its request's slot back when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, slots: asyncio.Semaphore) -> None:
        self._stream = stream
        self._slots: asyncio.Semaphore | None = slots

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._slots is not None:
                self._slots.release()
                self._slots = None


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport, at most ``limit`` requests in, errors as httpcore's."""

    def __init__(self, limits: httpx.Limits, limit: int) -> None:
        super().__init__(limits=limits)
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        try:
            response = await super().handle_async_request(request)
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            self._slots.release()
            mapped = _as_httpx(exc, request)
            if mapped is exc:
                raise
            raise mapped from (exc.__cause__ if isinstance(exc, httpx.TransportError) else exc)
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Slot(response.stream, self._slots)
        return response


def _as_httpx(exc: Exception, request: httpx.Request) -> Exception:
    """The error as httpcore would have raised it: a connect error only when the request never
    went out."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if isinstance(cause, aiohttp.ConnectionTimeoutError):  # connecting, or waiting for a connection
        return httpx.ConnectTimeout(str(cause), request=request)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause), request=request)
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    misnamed = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    if misnamed or not isinstance(exc, httpx.TransportError):
        # The request may have gone out (a connection reset or closed mid-exchange): not a
        # connect error, whatever httpx-aiohttp called it.
        return httpx.ReadError(f"{type(cause).__name__}: {cause}", request=request)
    return exc


def http_client(timeout: float | httpx.Timeout, *, connections: int = CONNECTIONS) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` keeping up to ``connections`` connections open, with at most that
    many requests in flight (the rest wait their turn)."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=KEEPALIVE_SECONDS
    )
    return httpx.AsyncClient(timeout=timeout, transport=_Transport(limits, connections))
